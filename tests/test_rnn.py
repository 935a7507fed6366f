"""The RNN reproductions: LSTM model, training resume, probe extraction, claims logic."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from ccalens import datasets  # noqa: E402
from ccalens.experiments import lstm, rnn  # noqa: E402
from ccalens.extract import extract  # noqa: E402


def _corpus(n=3000, vocab=40, seed=0):
    rng = np.random.default_rng(seed)
    # a little structure: every token tends to be followed by token + 1
    tokens = np.cumsum(rng.integers(0, 3, n)) % vocab
    return datasets.Corpus(tokens.astype(np.int64), tokens[:600].astype(np.int64), tokens[:10].astype(np.int64),
                           [f"w{i}" for i in range(vocab)])


def _spec(**kw):
    base = dict(layers=2, hidden=8, embedding=6, seed=1, epochs=2, lr=1e-2, batch_size=4, bptt=10, evals_per_epoch=2)
    base.update(kw)
    return lstm.LMSpec(**base)


def _manual_hidden(lstm_module, inputs):
    """The LSTM equations step by step: (windows, steps, hidden) from (windows, steps, features)."""
    w_ih, w_hh = lstm_module.weight_ih_l0, lstm_module.weight_hh_l0
    b = lstm_module.bias_ih_l0 + lstm_module.bias_hh_l0
    n, steps, _ = inputs.shape
    hidden = w_hh.shape[1]
    h, c = torch.zeros(n, hidden), torch.zeros(n, hidden)
    outs = []
    for t in range(steps):
        i, f, g, o = (inputs[:, t] @ w_ih.T + h @ w_hh.T + b).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        outs.append(h)
    return torch.stack(outs, dim=1)


def test_probe_extraction_equals_a_manual_unrolled_pass():
    torch.manual_seed(0)
    model = lstm.build_lm(40, 6, 8, 2).eval()
    windows = torch.from_numpy(lstm.probe_windows(_corpus().valid, 7, 5))
    with torch.no_grad():
        h1 = _manual_hidden(model.lstm1, model.embed(windows))
        h2 = _manual_hidden(model.lstm2, h1)
    every = extract(model, windows, ["lstm1", "lstm2"], sequence="all", batch_size=3)
    np.testing.assert_allclose(every["lstm1"], h1.reshape(-1, 8).numpy(), atol=1e-6)
    np.testing.assert_allclose(every["lstm2"], h2.reshape(-1, 8).numpy(), atol=1e-6)
    each = extract(model, windows, ["lstm2"], sequence="each")
    for t in range(5):
        np.testing.assert_allclose(each[f"lstm2@t{t}"], h2[:, t].numpy(), atol=1e-6)


def test_forget_gate_bias_and_embedding_init():
    torch.manual_seed(0)
    model = lstm.build_lm(500, 16, 8, 1)
    bias = model.lstm1.bias_ih_l0 + model.lstm1.bias_hh_l0
    assert torch.all(bias[8:16] == 1.0)
    assert 0.9 < float(model.embed.weight.detach().std()) < 1.1


def test_probe_windows_and_checkpoints():
    tokens = np.arange(100)
    w = lstm.probe_windows(tokens, 4, 10)
    assert w.shape == (4, 10) and w[0, 0] == 0 and w[-1, -1] == 99
    assert np.all(np.diff(w, axis=1) == 1)
    overlapping = lstm.probe_windows(tokens, 50, 10)  # more windows than fit side by side
    assert overlapping.shape == (50, 10) and len(set(overlapping[:, 0])) == 50 and overlapping[-1, -1] == 99
    with pytest.raises(ValueError, match="92 windows of 10 tokens need at least 101 tokens; the split has 100"):
        lstm.probe_windows(tokens, 92, 10)
    assert lstm.checkpoint_steps(100, 4) == [0, 25, 50, 75, 100]
    with pytest.raises(ValueError, match="too few for batch size 8"):
        lstm.batchify(np.arange(10), 8)
    with pytest.raises(ValueError, match="scale must be one of tiny, small, paper"):
        lstm.get_rnn_scale("medium")


def test_lm_training_learns_and_resumes_exactly(tmp_path, monkeypatch):
    corpus = _corpus()
    spec = _spec()
    straight = lstm.train_lm(spec, corpus, tmp_path / "a", log=lambda m: None)
    ppl = straight["validation_perplexity"]
    assert ppl[str(straight["steps"])] < 0.5 * ppl["0"]  # it learns the +0..2 structure

    real = lstm.perplexity
    calls = {"n": 0}

    def dies_on_third(*args, **kw):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # a kill right after the second checkpoint's weights were written
        return real(*args, **kw)

    monkeypatch.setattr(lstm, "perplexity", dies_on_third)
    with pytest.raises(KeyboardInterrupt):
        lstm.train_lm(spec, corpus, tmp_path / "b", log=lambda m: None)
    monkeypatch.setattr(lstm, "perplexity", real)
    folder = lstm.lm_folder(tmp_path / "b", spec, corpus)
    assert (folder / "resume.pt").exists() and not (folder / "record.json").exists()
    resumed = lstm.train_lm(spec, corpus, tmp_path / "b", log=lambda m: None)
    assert resumed["validation_perplexity"] == straight["validation_perplexity"]
    a = torch.load(lstm.lm_folder(tmp_path / "a", spec, corpus) / f"step{straight['steps']}.pt")
    b = torch.load(folder / f"step{resumed['steps']}.pt")
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert not (folder / "resume.pt").exists()


# ---- claims logic on constructed curves ------------------------------------------------
def test_progress_t90_and_ordering():
    np.testing.assert_allclose(rnn.progress_curve([0.5, 0.75, 1.0]), [0.0, 0.5, 1.0])
    np.testing.assert_allclose(rnn.progress_curve([4.0, 1.0, 0.0], distance=True), [0.0, 0.75, 1.0])
    frac = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
    assert rnn.t90(frac, np.array([0, 0.5, 0.95, 1, 1])) == 0.5
    assert np.isnan(rnn.t90(frac, np.array([0, 0.1, 0.2, 0.3, 0.5])))
    lower_first = np.array([[0, 0.9, 1, 1, 1], [0, 0.5, 0.9, 1, 1], [0, 0.2, 0.6, 0.9, 1]])
    assert rnn.ordering_score(lower_first) == pytest.approx(5 / 6)  # one tie at the third interior step
    assert rnn.ordering_score(lower_first[::-1]) == pytest.approx(-5 / 6)
    assert rnn.bottom_up([0.25, 0.5, 0.75], 0.8)
    assert not rnn.bottom_up([0.5, 0.25, 0.75], 0.8)
    assert not rnn.bottom_up([0.25, 0.5, 0.75], -0.1)
    assert not rnn.bottom_up([0.25, float("nan")], 0.5)
