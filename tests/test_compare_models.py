"""compare_models: every layer against every layer in one pass, exact against extract +
the in-memory measures; masking and pooling for transformers; bounded memory; errors."""

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import ccalens  # noqa: E402
from ccalens import stream  # noqa: E402
from ccalens.core import registry  # noqa: E402
from ccalens.extract import ExtractionError, extract  # noqa: E402

EXACT = ("pwcca", "mean_cca", "svcca", "cka", "procrustes", "shape")


def check_exact(res, models, data, tol=1e-10, **policy):
    """Every row of ``res`` against extract + the registered measure on the same data."""
    acts = {m: extract(models[m], data, res.layers[m], **policy) for m in res.layers}
    worst = 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for r in res.table:
            x = acts[r["model_x"]][r["layer_x"]].astype(np.float64)
            y = acts[r["model_y"]][r["layer_y"]].astype(np.float64)
            ref = registry.MEASURES[r["measure"]].compute(x, y).similarity
            worst = max(worst, abs(ref - r["similarity"]))
            assert not r["estimate"]
    assert worst < tol, worst
    return acts


def cnn(channels, seed):
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, channels, 3), torch.nn.ReLU(), torch.nn.Conv2d(channels, 2 * channels, 3),
                              torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten(),
                              torch.nn.Linear(8 * channels, 10))
    return net


@pytest.fixture(scope="module")
def images():
    torch.manual_seed(1)
    return torch.randn(900, 1, 9, 9)


def test_two_cnns_equal_extract_then_measures(images):
    models = {"a": cnn(4, 0), "b": cnn(3, 1)}
    res = ccalens.compare_models(models, images, measures=EXACT, batch_size=50)
    assert res.layers["a"] == ["0", "1", "2", "3", "4", "5", "6"]
    assert res.n_samples == 900 and res.batches == 18
    assert len(res.table) == len(EXACT) * 14 * 14
    check_exact(res, models, images)
    m = res.matrix("cka", "a", "b")
    assert m.shape == (7, 7) and m.index.name == "a" and m.columns.name == "b"
    frame = res.to_pandas()
    assert set(frame.columns) >= {"model_x", "layer_x", "model_y", "layer_y", "measure", "similarity", "distance",
                                  "estimate", "n"}


def test_one_mlp_compares_its_layers_with_each_other_and_flattens_convolutions(images):
    torch.manual_seed(3)
    mlp = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(81, 20), torch.nn.Tanh(), torch.nn.Linear(20, 12),
                              torch.nn.ReLU(), torch.nn.Linear(12, 5))
    res = ccalens.compare_models(mlp, images, measures=("cka", "pwcca"), batch_size=128)
    assert list(res.layers) == ["model"] and res.pairs() == [("model", "model")]
    check_exact(res, {"model": mlp}, images)
    m = res.matrix("cka").to_numpy()
    np.testing.assert_allclose(m, m.T, atol=1e-12)
    np.testing.assert_allclose(np.diag(m), 1.0, atol=1e-12)
    res = ccalens.compare_models({"a": cnn(2, 5), "b": cnn(2, 6)}, images, layers=["2", "6"], measures="mean_cca",
                                 spatial="flatten", batch_size=300)
    check_exact(res, {"a": cnn(2, 5), "b": cnn(2, 6)}, images, spatial="flatten")
    assert res.widths["a/2"] == 4 * 5 * 5  # 4 channels of 5 x 5


class Recurrent(torch.nn.Module):
    def __init__(self, seed, vocab=10):
        super().__init__()
        torch.manual_seed(seed)
        self.embed = torch.nn.Embedding(30, 8)
        self.lstm = torch.nn.LSTM(8, 12, batch_first=True)
        self.head = torch.nn.Linear(12, vocab)

    def forward(self, tokens):
        out, _ = self.lstm(self.embed(tokens))
        return self.head(out)


@pytest.mark.parametrize("sequence", ["last", "all", "mean"])
def test_lstms_equal_extract_then_measures(sequence):
    torch.manual_seed(7)
    tokens = torch.randint(0, 30, (200, 6))
    models = {"a": Recurrent(0), "b": Recurrent(1)}
    res = ccalens.compare_models(models, tokens, layers=["embed", "lstm", "head"], measures=("pwcca", "cka"),
                                 sequence=sequence, batch_size=40)
    assert res.n_samples == (1200 if sequence == "all" else 200)
    check_exact(res, models, tokens, sequence=sequence)


def test_a_rank_deficient_float32_layer_agrees_to_its_conditioning():
    """A 30-wide head over 12 hidden units has rank 12 in exact arithmetic; in float32 its
    18 other directions are rounding at about 1e-7 of the largest, which the default rank
    tolerance keeps (they are real directions of the float64 data). CCA on them is
    conditioned about 1e7, so the summary and the in-memory route agree to eps x 1e7."""
    torch.manual_seed(7)
    tokens = torch.randint(0, 30, (200, 6))
    models = {"a": Recurrent(0, vocab=30), "b": Recurrent(1, vocab=30)}
    res = ccalens.compare_models(models, tokens, layers=["lstm", "head"], measures=("pwcca", "cka"), batch_size=40)
    check_exact(res, models, tokens, tol=1e-8)


def test_cka_minibatch_is_the_unbiased_hsic_average_and_labelled_an_estimate(images):
    models = {"a": cnn(3, 0), "b": cnn(3, 1)}
    res = ccalens.compare_models(models, images, layers=["1", "6"], measures=("cka_minibatch", "cka"), batch_size=100)
    acts = {m: extract(models[m], images, ["1", "6"]) for m in models}
    for r in res.table:
        if r["measure"] != "cka_minibatch":
            continue
        assert r["estimate"]
        acc = ccalens.MinibatchCKA()
        x, y = acts[r["model_x"]][r["layer_x"]], acts[r["model_y"]][r["layer_y"]]
        for start in range(0, 900, 100):
            acc.update(x[start:start + 100].astype(np.float64), y[start:start + 100].astype(np.float64))
        assert r["similarity"] == pytest.approx(acc.similarity, abs=1e-10)


def test_state_is_restored_and_no_gradient_is_kept(images):
    net = cnn(3, 2)
    net.train()
    net[1].eval()
    flags = [p.requires_grad for p in net.parameters()]
    ccalens.compare_models(net, images[:200], measures="cka")
    assert net.training and not net[1].training and net[0].training
    assert [p.requires_grad for p in net.parameters()] == flags
    assert all(p.grad is None for p in net.parameters())
    assert next(net.parameters()).device.type == "cpu"


def test_memory_stays_flat_over_many_batches(monkeypatch):
    """The summary holds at most (D + 1)^2 + (D + 1 + b)(D + 1) numbers, however many batches:
    the Gram route one (D + 1)^2 matrix, the TSQR route an R factor and its buffer."""
    held = {"auto": [], "tsqr": []}
    gram_add, row_add = stream.GramSummary.add, stream.RowSummary.add

    def add_gram(self, parts):
        gram_add(self, parts)
        held["auto"].append(self.acc.size if isinstance(self.acc, np.ndarray) else self.acc.numel())

    def add_row(self, parts):
        row_add(self, parts)
        held["tsqr"].append((0 if self.r is None else self.r.numel()) + sum(b.numel() for b in self.buffer))

    monkeypatch.setattr(stream.GramSummary, "add", add_gram)
    monkeypatch.setattr(stream.RowSummary, "add", add_row)
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(6, 10), torch.nn.ReLU(), torch.nn.Linear(10, 4))
    x = torch.randn(4000, 6)
    d = 10 + 10 + 4 + 1
    for route in ("auto", "tsqr"):
        ccalens.compare_models(mlp, x, measures="cka", batch_size=10, route=route)  # 400 batches
        assert len(held[route]) == 400 and max(held[route]) <= d * d + (d + 10) * d
    assert max(held["auto"]) == d * d


def test_row_summary_on_tensors_equals_the_numpy_path():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((500, 7)) * 5 + 1e3
    y = np.hstack([x[:, :3] @ rng.standard_normal((3, 4)), np.zeros((500, 1))])
    a, b = stream.RowSummary(), stream.RowSummary()
    for start in range(0, 500, 37):
        a.add([x[start:start + 37], y[start:start + 37]])
        b.add([torch.as_tensor(x[start:start + 37]), torch.as_tensor(y[start:start + 37])])
    sa, sb = a.finish(), b.finish()
    assert sa.n == sb.n == 500 and sa.varying == sb.varying == [7, 4]
    for za, zb in zip(sa.matrices, sb.matrices):
        np.testing.assert_allclose(za.T @ za, zb.T @ zb, rtol=1e-10, atol=1e-8)
        xc = x - x.mean(0) if za.shape[1] == 7 else y - y.mean(0)
        np.testing.assert_allclose(za.T @ za, xc.T @ xc, rtol=1e-10, atol=1e-6)


def test_memory_budget_refusal_offers_the_routes_that_fit(images):
    with pytest.raises(MemoryError, match=r"(?s)the one-pass summary of 14 layers with \d+ neurons in all needs about "
                       r"[0-9.]+ MiB, above max_memory=0.98 KiB. Routes that fit: \(1\) fewer or narrower layers "
                       r"\(the widest: .*\(2\) blocks of layers over several passes, at most about \d+ neurons per "
                       r"pass.*\(3\) extract the layers to a store.*\(4\) route='datapoints' \(exact through the n x n Gram "
                       r"matrices, for up to about \d+ datapoints\)"):
        ccalens.compare_models([cnn(3, 0), cnn(3, 1)], images, max_memory=1000, route="tsqr")
    assert ccalens.stream.summary_bytes(99, 50) == 8 * 100 * (100 + 100)
    assert ccalens.stream.summary_bytes(99, 50, [60, 39]) == 8 * 100 * (100 + 100) + 88 * (60**2 + 39**2)
    # route="auto" tries the datapoint route too; where neither fits, both limits are named
    with pytest.raises(MemoryError, match=r"neither route fits max_memory=0.98 KiB.*narrow layers of at most about \d+ "
                                          r"neurons in all would fit.*datapoint route for 900 datapoints.*at most about \d+ datapoints"):
        ccalens.compare_models([cnn(3, 0), cnn(3, 1)], images, max_memory=1000)


def test_errors_say_what_was_wrong_and_how_to_fix_it(images):
    net = cnn(3, 0)
    with pytest.raises(ValueError, match=r"'rsa' \(RSA \(correlation RDMs\)\) is not available in compare_models: it "
                                         r"is not invariant to orthogonal maps.*ccalens.pairwise"):
        ccalens.compare_models(net, images, measures="rsa")
    # debiased CKA needs the datapoints: it takes the datapoint route (exact; tests/test_stream_datapoints.py)
    routes = ccalens.compare_models(net, images[:200], measures="cka_debiased").routes
    assert set(routes.values()) <= {"datapoint", "datapoint-tsqr"} and routes
    with pytest.raises(ValueError, match="unknown measure 'bogus'"):
        ccalens.compare_models(net, images, measures="bogus")
    with pytest.raises(ValueError, match="measures is empty"):
        ccalens.compare_models(net, images, measures=())
    with pytest.raises(ValueError, match="spatial must be 'mean' or 'flatten' in compare_models"):
        ccalens.compare_models(net, images, spatial="as_samples")
    with pytest.raises(ValueError, match="sequence='each' makes one array per timestep"):
        ccalens.compare_models(net, images, sequence="each")
    with pytest.raises(ValueError, match="model has no layer named 'conv9'"):
        ccalens.compare_models(net, images, layers=["conv9"])
    with pytest.raises(ValueError, match=r"layers names model\(s\) \['c'\] that are not among the models"):
        ccalens.compare_models({"a": net}, images, layers={"c": ["0"]})
    with pytest.raises(TypeError, match="models must be a torch.nn.Module, a list of them or a dict"):
        ccalens.compare_models("net", images)
    with pytest.raises(TypeError, match="model 'b' is a int, not a torch.nn.Module"):
        ccalens.compare_models({"a": net, "b": 3}, images)
    with pytest.raises(ValueError, match="the same model object is given twice"):
        ccalens.compare_models([net, net], images)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        ccalens.compare_models(net, images, batch_size=0)
    with pytest.raises(TypeError, match="unknown option colour= for compare_models; the measures' options it takes are epsilon, keep, symmetric"):
        ccalens.compare_models(net, images, colour="red")
    with pytest.raises(ValueError, match="data holds no datapoints"):
        ccalens.compare_models(net, images[:0])

    class Unused(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.used, self.spare = torch.nn.Linear(3, 4), torch.nn.Linear(3, 4)

        def forward(self, x):
            return self.used(x)

    with pytest.raises(ExtractionError, match="layer 'spare' of model 'model' never ran during the forward pass"):
        ccalens.compare_models(Unused(), torch.randn(50, 3), layers=["used", "spare"])
    res = ccalens.compare_models(Unused(), torch.randn(50, 3), measures="cka")  # default layers: left out, said so
    assert res.layers == {"model": ["used"]} and "never ran" in res.skipped["model"]["spare"]

    class Tokens(torch.nn.Module):  # reads each input's 6 features as 6 timesteps
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(1, 4)

        def forward(self, x):
            return self.lin(x.unsqueeze(-1))

    with pytest.raises(ExtractionError, match=r"the layers give different numbers of datapoints for the same batch "
                                              r"\(\{'b/lin': 240\} against 40"):
        ccalens.compare_models({"a": torch.nn.Sequential(torch.nn.Linear(6, 3)), "b": Tokens()}, torch.randn(40, 6),
                               layers={"a": ["0"], "b": ["lin"]}, sequence="all")


def test_a_few_datapoints_warn_once(images):
    with pytest.warns(ccalens.SmallSampleWarning, match="only 100 datapoints"):
        ccalens.compare_models({"a": cnn(8, 0), "b": cnn(8, 1)}, images[:100], layers=["3", "6"], measures="cka",
                               spatial="flatten")


def test_plot_draws_one_labelled_heatmap_per_pair_and_measure(images, tmp_path):
    pytest.importorskip("matplotlib")
    res = ccalens.compare_models({"a": cnn(3, 0), "b": cnn(3, 1), "c": cnn(2, 2)}, images[:400],
                                 measures=("cka", "pwcca"), batch_size=200)
    fig = res.plot(path=tmp_path / "heat.png")
    assert (tmp_path / "heat.png").stat().st_size > 10_000
    axes = fig.axes[::2]  # each heatmap has a colourbar
    assert len(axes) == 2 * 3
    assert axes[0].get_xlabel() == "b layer" and axes[0].get_ylabel() == "a layer"
    assert [t.get_text() for t in axes[0].get_xticklabels()] == res.layers["b"]
    assert "linear CKA: a vs b" in axes[0].get_title()


FACTORY = '''
import torch
from torch import nn

def small():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 24), nn.ReLU(), nn.Linear(24, 10))

def other():
    torch.manual_seed(1)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.Tanh(), nn.Linear(16, 10))
'''


def test_cli_end_to_end_in_a_temporary_folder(tmp_path, monkeypatch):
    pytest.importorskip("sklearn")
    pytest.importorskip("typer")
    import json

    import pandas as pd
    from typer.testing import CliRunner

    from ccalens.cli.app import app

    (tmp_path / "cm_factory.py").write_text(FACTORY)
    monkeypatch.syspath_prepend(str(tmp_path))
    import cm_factory

    torch.save(cm_factory.small().state_dict(), tmp_path / "s.pt")
    torch.save(cm_factory.other().state_dict(), tmp_path / "o.pt")
    runner = CliRunner()
    out = tmp_path / "cmp"
    args = ["compare-models", "cm_factory:small", "cm_factory:other", "--state-dict", str(tmp_path / "s.pt"),
            "--state-dict", str(tmp_path / "o.pt"), "--names", "small,other", "--layers", "1,2,3", "-m", "pwcca",
            "-m", "cka", "--limit", "300", "--batch-size", "64", "--out", str(out)]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "300 datapoints, 6 layers; pwcca, small (rows) vs other (columns)" in res.stdout
    table = pd.read_csv(out / "comparison.csv")
    assert len(table) == 2 * 6 * 6 and set(table.measure) == {"pwcca", "cka"}
    meta = json.loads((out / "comparison.json").read_text())
    assert meta["layers"] == {"small": ["1", "2", "3"], "other": ["1", "2", "3"]} and meta["datapoints"] == 300
    assert (out / "heatmaps.png").stat().st_size > 10_000
    # the same numbers as the library on the same inputs
    from ccalens import datasets

    x = datasets.digits().x_test[:300]
    lib = ccalens.compare_models({"small": cm_factory.small(), "other": cm_factory.other()}, x,
                                 layers=["1", "2", "3"], measures=("pwcca", "cka"), batch_size=64).to_pandas()
    np.testing.assert_allclose(table.similarity, lib.similarity, atol=1e-12)
    # errors: one line, exit code 1
    bad = runner.invoke(app, args[:3] + ["--state-dict", str(tmp_path / "s.pt"), "--out", str(out)])
    assert bad.exit_code == 1 and "--state-dict was given 1 time(s) for 2 model(s)" in bad.stderr
    bad = runner.invoke(app, ["compare-models", "cm_factory:small", "--max-memory", "0.000001", "--limit", "100",
                              "--out", str(out)])
    errors = [line for line in bad.stderr.splitlines() if "error:" in line]
    assert bad.exit_code == 1 and len(errors) == 1 and "neither route fits max_memory" in errors[0]
    assert "Traceback" not in bad.stderr
    bad = runner.invoke(app, ["compare-models", "cm_factory:small", "-m", "rsa", "--out", str(out)])
    assert bad.exit_code == 1 and "'rsa' (RSA (correlation RDMs)) is not available in compare_models" in bad.stderr


def test_cka_minibatch_does_not_lose_digits_to_uncentred_features():
    """The unbiased HSIC is exactly shift-invariant; a layer far from the origin (logits,
    post-ReLU units) must give the value of its centred copy, not cancellation noise."""

    class Shifted(torch.nn.Module):
        def __init__(self, offset):
            super().__init__()
            torch.manual_seed(0)
            self.lin, self.offset = torch.nn.Linear(6, 5).double(), offset
            self.out = torch.nn.Identity()

        def forward(self, x):
            h = self.lin(x)
            return self.out(h + self.offset)

    torch.manual_seed(1)
    x = torch.randn(2000, 6, dtype=torch.float64)
    near = ccalens.compare_models(Shifted(0.0), x, layers=["lin", "out"], measures="cka_minibatch", batch_size=500)
    far = ccalens.compare_models(Shifted(1e5), x, layers=["lin", "out"], measures="cka_minibatch", batch_size=500)
    np.testing.assert_allclose(far.matrix("cka_minibatch").to_numpy(), near.matrix("cka_minibatch").to_numpy(),
                               atol=1e-10)
    np.testing.assert_allclose(near.matrix("cka_minibatch").to_numpy(), 1.0, atol=1e-12)  # the same up to a shift


def test_layers_after_a_conv1d_are_channels_first_not_sequences():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv1d(2, 4, 3), torch.nn.ReLU(), torch.nn.BatchNorm1d(4),
                              torch.nn.AdaptiveAvgPool1d(1), torch.nn.Flatten(), torch.nn.Linear(4, 3))
    x = torch.randn(300, 2, 10)
    res = ccalens.compare_models(net, x, measures="cka", batch_size=100)
    assert res.widths == {"model/0": 4, "model/1": 4, "model/2": 4, "model/3": 4, "model/4": 4, "model/5": 3}
    acts = extract(net, x, ["0", "1"])  # extract reads them the same way: channel means over positions
    assert acts["1"].shape == (300, 4)
    check_exact(res, {"model": net}, x)


def test_cka_minibatch_takes_a_short_last_batch_into_the_one_before():
    models = {"a": cnn(3, 0), "b": cnn(3, 1)}
    x = torch.randn(257, 1, 9, 9)
    res = ccalens.compare_models(models, x, layers=["6"], measures="cka_minibatch", batch_size=128)
    acts = {m: extract(models[m], x, ["6"])["6"].astype(np.float64) for m in models}
    acc = ccalens.MinibatchCKA()
    acc.update(acts["a"][:128], acts["b"][:128])
    acc.update(acts["a"][128:], acts["b"][128:])  # 129 rows: the last batch of 1 joined the one before
    row = next(r for r in res.table if r["model_x"] == "a" and r["model_y"] == "b")
    assert row["similarity"] == pytest.approx(acc.similarity, abs=1e-10) and res.n_samples == 257
    with pytest.raises(ValueError, match="needs at least 4 datapoints per batch"):
        ccalens.compare_models(models, x[:3], layers=["6"], measures="cka_minibatch")


def test_bad_sequence_and_the_advised_block_size():
    with pytest.raises(ValueError, match="sequence must be 'last', 'first', 'mean', 'all' or a timestep index; got 'max'"):
        ccalens.compare_models(cnn(2, 0), torch.randn(20, 1, 9, 9), sequence="max")
    from ccalens.stream.models import _advice, summary_bytes

    for budget, rows in ((4 * 2**30, 100_000), (2**30, 256), (10**7, 64)):
        d = int(_advice({("m", "l"): 10**6}, 1e12, budget, rows).split("at most about ")[1].split(" neurons")[0])
        assert summary_bytes(d, rows) <= budget < summary_bytes(d + 3, rows)


def ill_conditioned_mlp():
    """float64 layers with nearly repeated units: a 1e-4 gap (the whitened second pass)
    and a 1e-8 gap (the Householder one); the last layer is well conditioned."""
    torch.manual_seed(5)
    first, second, last = torch.nn.Linear(81, 12), torch.nn.Linear(12, 10), torch.nn.Linear(10, 6)
    with torch.no_grad():
        first.weight[8:] = first.weight[:4] + 1e-4 * torch.randn(4, 81)
        second.weight[7:] = second.weight[:3] + 1e-8 * torch.randn(3, 12)
    return torch.nn.Sequential(torch.nn.Flatten(), first, torch.nn.Tanh(), second, last).double()


def test_ill_conditioned_layers_take_a_second_pass_and_stay_exact(images):
    model = ill_conditioned_mlp()
    data = images.double()
    layers = ["1", "3", "4"]
    res = ccalens.compare_models(model, data, layers=layers, measures=EXACT, batch_size=64)
    assert res.routes == {"model/1": "gram2", "model/3": "tsqr", "model/4": "gram"}
    check_exact(res, {"model": model}, data, tol=1e-8)
    qr = ccalens.compare_models(model, data, layers=layers, measures=EXACT, batch_size=64, route="tsqr")
    assert set(qr.routes.values()) == {"tsqr"}
    np.testing.assert_allclose([r["similarity"] for r in res.table], [r["similarity"] for r in qr.table], atol=1e-8)
    # the well-conditioned CNN: one pass, every layer from the Gram matrix
    assert set(ccalens.compare_models(cnn(4, 0), images, measures="cka", batch_size=100).routes.values()) == {"gram"}
    # linear CKA alone needs no conditioning check: one pass, exact on the ill-conditioned layers too
    alone = ccalens.compare_models(model, data, layers=layers, measures="cka", batch_size=64)
    assert set(alone.routes.values()) == {"gram"}
    check_exact(alone, {"model": model}, data, tol=1e-8)


def test_one_shot_data_take_one_pass_and_a_shuffling_loader_two(images):
    model = ill_conditioned_mlp()
    data = images.double()
    layers = ["1", "3", "4"]
    ref = ccalens.compare_models(model, data, layers=layers, measures="pwcca", batch_size=100)
    once = ccalens.compare_models(model, (data[i : i + 100] for i in range(0, 900, 100)), layers=layers,
                                  measures="pwcca")
    assert set(once.routes.values()) == {"tsqr"} and once.batches == 9
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(data), batch_size=100, shuffle=True)
    shuffled = ccalens.compare_models(model, loader, layers=layers, measures="pwcca")
    assert shuffled.routes == ref.routes and shuffled.batches == 9
    for res in (once, shuffled):  # the summary does not depend on the order of the datapoints
        np.testing.assert_allclose([r["similarity"] for r in res.table], [r["similarity"] for r in ref.table],
                                   atol=1e-8)


def test_data_that_differ_between_the_passes_are_refused(images):
    model = ill_conditioned_mlp()

    class Augmented:  # iterable again, but with new noise each time
        def __iter__(self):
            return iter([images[i : i + 100].double() + 0.01 * torch.randn(100, 1, 9, 9, dtype=torch.float64)
                         for i in range(0, 900, 100)])

    with pytest.raises(ValueError, match="changed between the two passes.*augmented differently"):
        ccalens.compare_models(model, Augmented(), layers=["1", "3"], measures=("cka", "pwcca"))
    assert ccalens.compare_models(model, Augmented(), layers=["1", "3"], measures="cka", route="tsqr").n_samples == 900
    with pytest.raises(ValueError, match="route must be one of 'auto', 'tsqr', 'datapoints'; got 'qr'"):
        ccalens.compare_models(model, images.double(), measures="cka", route="qr")


def test_rounding_between_the_passes_is_accepted_and_one_shot_loaders_take_one_pass(images):
    class Unsteady(torch.nn.Module):  # float32 sums in another order on every call, as GPU kernels may
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(81, 12)
            with torch.no_grad():
                self.lin.weight[8:] = self.lin.weight[:4] + 1e-5 * torch.randn(4, 81)
            self.calls = 0

        def forward(self, x):
            self.calls += 1
            x = x.flatten(1)
            w, b = self.lin.weight, self.lin.bias
            if self.calls % 2:
                return x @ w.T + b
            return x[:, :40] @ w[:, :40].T + (x[:, 40:] @ w[:, 40:].T + b)

    torch.manual_seed(6)
    model = torch.nn.Sequential(Unsteady(), torch.nn.Tanh())
    res = ccalens.compare_models(model, images, layers=["0", "1"], measures=("cka", "pwcca"), batch_size=100)
    assert res.routes["model/0"] != "gram"  # the nearly repeated units take the second pass
    assert res.n_samples == 900
    once = ccalens.compare_models(model, images, layers=["0", "1"], measures="cka", batch_size=100, route="tsqr")
    np.testing.assert_allclose(res.matrix("cka", "model", "model"), once.matrix("cka", "model", "model"), atol=1e-5)
    # linear CKA alone inverts nothing: one pass, whatever the conditioning
    alone = ccalens.compare_models(model, images, layers=["0", "1"], measures="cka", batch_size=100)
    assert set(alone.routes.values()) == {"gram"} and model[0].calls == 2 * 9 + 9 + 9  # 9 batches, once
    np.testing.assert_allclose(alone.matrix("cka", "model", "model"), once.matrix("cka", "model", "model"), atol=1e-5)

    class Stream(torch.utils.data.IterableDataset):  # a stored generator: readable once
        def __init__(self):
            self.it = (images[i] for i in range(900))

        def __iter__(self):
            return self.it

    ill = ill_conditioned_mlp()
    loader = torch.utils.data.DataLoader(Stream(), batch_size=100)
    res = ccalens.compare_models(ill.float(), loader, layers=["1", "3"], measures="cka")
    assert set(res.routes.values()) == {"tsqr"} and res.n_samples == 900
