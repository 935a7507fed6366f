"""compare_models on tiny randomly initialised transformers built from configs (offline): a
BERT-like encoder and a GPT-2-like decoder, batches padded to different lengths. Padding
never becomes a datapoint: the result equals a manual extraction that drops padding by
hand, and padding every sequence further changes nothing."""

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import ccalens  # noqa: E402
from ccalens.core import registry  # noqa: E402

MEASURES = ("pwcca", "cka", "mean_cca", "procrustes")


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    quiet = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    try:
        bert = transformers.BertModel(transformers.BertConfig(
            vocab_size=40, hidden_size=12, num_hidden_layers=2, num_attention_heads=2, intermediate_size=24,
            max_position_embeddings=32))
        gpt = transformers.GPT2Model(transformers.GPT2Config(
            vocab_size=40, n_embd=12, n_layer=2, n_head=2, n_positions=32, bos_token_id=1, eos_token_id=1))
    finally:
        transformers.logging.set_verbosity(quiet)
    # float64, so that "padding changes nothing" can be checked to 1e-10, not to float32 rounding
    return {"bert": bert.double(), "gpt": gpt.double()}


def sequences(n=96, seed=1):
    rng = np.random.default_rng(seed)
    return [rng.integers(1, 40, rng.integers(2, 10)) for _ in range(n)]


def padded_batches(seqs, batch=16, extra=0):
    """Right-padded dict batches, each padded to its own longest sequence (plus ``extra``)."""
    out = []
    for start in range(0, len(seqs), batch):
        group = seqs[start:start + batch]
        length = max(len(s) for s in group) + extra
        ids = torch.zeros((len(group), length), dtype=torch.long)
        mask = torch.zeros((len(group), length), dtype=torch.long)
        for i, s in enumerate(group):
            ids[i, :len(s)] = torch.as_tensor(s)
            mask[i, :len(s)] = 1
        out.append({"input_ids": ids, "attention_mask": mask})
    return out


def by_hand(models, batches, sequence):
    """Hidden states with padding dropped by hand (numpy indexing of each padded batch)."""
    acts = {}
    for name, model in models.items():
        model.eval()
        for b in batches:
            with torch.no_grad():
                hidden = model(**b, output_hidden_states=True).hidden_states
            mask = b["attention_mask"].numpy().astype(bool)
            for i, h in enumerate(hidden):
                h = h.numpy()
                if sequence == "all":
                    rows = h[mask]
                elif sequence == "mean":
                    rows = np.stack([h[j][mask[j]].mean(0) for j in range(len(h))])
                elif sequence == "first":
                    rows = np.stack([h[j][np.flatnonzero(mask[j])[0]] for j in range(len(h))])
                else:
                    rows = np.stack([h[j][np.flatnonzero(mask[j])[-1]] for j in range(len(h))])
                acts.setdefault((name, f"hidden_states.{i}"), []).append(rows)
    return {k: np.concatenate(v) for k, v in acts.items()}


@pytest.mark.parametrize("sequence", ["all", "mean", "first", "last"])
def test_masked_hidden_states_equal_a_manual_extraction(models, sequence):
    batches = padded_batches(sequences())
    res = ccalens.compare_models(models, batches, layers="hidden_states", measures=MEASURES, sequence=sequence)
    assert res.layers == {m: [f"hidden_states.{i}" for i in range(3)] for m in models}
    acts = by_hand(models, batches, sequence)
    tokens = sum(len(s) for s in sequences())
    assert res.n_samples == (tokens if sequence == "all" else 96)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for r in res.table:
            x, y = acts[(r["model_x"], r["layer_x"])], acts[(r["model_y"], r["layer_y"])]
            ref = registry.MEASURES[r["measure"]].compute(x, y).similarity
            assert r["similarity"] == pytest.approx(ref, abs=1e-10), r


def test_padding_length_changes_nothing(models):
    seqs = sequences(seed=2)
    tight = ccalens.compare_models(models, padded_batches(seqs), layers="hidden_states", measures=MEASURES,
                                   sequence="all").to_pandas()
    loose = ccalens.compare_models(models, padded_batches(seqs, batch=24, extra=7), layers="hidden_states",
                                   measures=MEASURES, sequence="all").to_pandas()
    np.testing.assert_allclose(tight.similarity, loose.similarity, atol=1e-10)


def test_hooked_layers_take_the_mask_too(models):
    batches = padded_batches(sequences(48, seed=3))
    bert = {"bert": models["bert"]}
    hooked = ccalens.compare_models(bert, batches, layers=["encoder.layer.0.output", "encoder.layer.1.output"],
                                    measures="cka", sequence="mean")
    hidden = ccalens.compare_models(bert, batches, layers="hidden_states", measures="cka", sequence="mean")
    a = hooked.matrix("cka").to_numpy()
    b = hidden.matrix("cka").to_numpy()[1:, 1:]  # hidden_states.1 and .2 are those modules' outputs
    np.testing.assert_allclose(a, b, atol=1e-10)


def test_mask_errors(models):
    batches = padded_batches(sequences(16, seed=4))
    with pytest.raises(Exception, match=r"sequence=3 cannot be used with an attention mask: a position may be padding"):
        ccalens.compare_models(models["gpt"], batches, layers="hidden_states", sequence=3)
    batches[0]["attention_mask"][2] = 0
    with pytest.raises(Exception, match="sequence 2 of the batch is all padding"):
        ccalens.compare_models(models["gpt"], batches, layers="hidden_states")
    with pytest.raises(Exception, match="returned no hidden_states with output_hidden_states=True"):
        ccalens.compare_models(torch.nn.Sequential(torch.nn.Linear(3, 3)), [torch.randn(5, 3)],
                               layers="hidden_states")


def test_tokenizer_outputs_and_nan_padding(models):
    from transformers import BatchEncoding

    seqs = sequences(32, seed=5)
    plain = padded_batches(seqs)
    encoded = [BatchEncoding(b) for b in plain]  # what tokenizers and collators return (a UserDict)
    a = ccalens.compare_models(models["gpt"], plain, layers="hidden_states", measures="cka", sequence="mean")
    b = ccalens.compare_models(models["gpt"], encoded, layers="hidden_states", measures="cka", sequence="mean")
    np.testing.assert_allclose(a.matrix("cka").to_numpy(), b.matrix("cka").to_numpy(), atol=1e-12)
    whole = BatchEncoding({k: torch.cat([p[k] for p in padded_batches(seqs, batch=32)]) for k in plain[0]})
    c = ccalens.compare_models(models["gpt"], whole, layers="hidden_states", measures="cka", sequence="mean",
                               batch_size=16)
    assert c.n_samples == 32
    from ccalens.extract.policy import _masked

    h = torch.randn(2, 4, 3, dtype=torch.float64)
    h[0, 3] = float("nan")  # a padding position holding NaN
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    out = _masked("layer", h, mask, "mean")
    assert torch.isfinite(out).all()
    assert torch.allclose(out[0], h[0, :3].mean(0))


def test_a_later_batch_failure_names_its_cause(models):
    batches = padded_batches(sequences(32, seed=6))
    batches[1]["attention_mask"][0] = 0
    with pytest.raises(Exception, match="sequence 0 of the batch is all padding"):
        ccalens.compare_models(models["bert"], batches, measures="cka", sequence="mean")
