"""Token batches (issue 27): a (input_ids, attention_mask) tuple, as a TensorDataset yields
it, has its mask applied (padding never becomes datapoints), with a warning that says how
it was read; a dict of input_ids without a mask is warned about."""

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import ccalens  # noqa: E402


def tiny_bert():
    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    return transformers.BertModel(transformers.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1,
                                                          num_attention_heads=2, intermediate_size=32))


def padded(n=48, width=12, seed=0):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, width, n)
    ids = torch.zeros((n, width), dtype=torch.long)
    mask = torch.zeros((n, width), dtype=torch.long)
    for i, k in enumerate(lengths):
        ids[i, :k] = torch.as_tensor(rng.integers(1, 50, k))
        mask[i, :k] = 1
    return ids, mask


def test_a_tuple_of_ids_and_mask_has_its_mask_applied():
    bert = tiny_bert()
    ids, mask = padded()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(ids, mask), batch_size=16)
    with pytest.warns(UserWarning, match=r"read as \(input_ids, attention_mask\), and the mask is applied"):
        res = ccalens.compare_models(bert, loader, layers="hidden_states", sequence="all", measures="cka")
    assert res.n_samples == int(mask.sum())  # real tokens only (it counted every position before)
    as_dicts = [{"input_ids": ids[i:i + 16], "attention_mask": mask[i:i + 16]} for i in range(0, 48, 16)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a dict with its mask: no warning
        want = ccalens.compare_models(bert, as_dicts, layers="hidden_states", sequence="all", measures="cka")
    np.testing.assert_allclose(res.matrix("cka").to_numpy(), want.matrix("cka").to_numpy(), atol=1e-12)


def test_labels_that_are_not_a_padding_mask_stay_labels():
    from ccalens.extract.batching import inputs_of

    ids, mask = padded()
    labels = torch.as_tensor(np.random.default_rng(1).integers(0, 2, ids.shape))  # 0/1 per token, not a run
    assert isinstance(inputs_of((ids, labels)), torch.Tensor)
    assert isinstance(inputs_of((ids, torch.zeros(48, dtype=torch.long))), torch.Tensor)  # class labels
    assert isinstance(inputs_of((ids.float(), mask)), torch.Tensor)  # not token ids


def test_token_ids_without_a_mask_are_warned_about():
    bert = tiny_bert()
    ids, _ = padded()
    with pytest.warns(UserWarning, match="input_ids came without an attention_mask: every position, padding "
                                         "included, counts"):
        ccalens.compare_models(bert, [{"input_ids": ids}], layers="hidden_states", sequence="all", measures="cka")
