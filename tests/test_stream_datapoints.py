"""The datapoint route of compare_models (ccalens.stream.datapoints): layers at least as wide
as the data, exact through their n x n Gram matrices; held activations spilled to a
temporary folder and removed; the route chosen automatically and named; refusals that
name the largest n and D that fit."""

import os
import tempfile
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import ccalens  # noqa: E402
from ccalens.core import registry  # noqa: E402
from ccalens.core.canonical import DEFAULT_KEEP  # noqa: E402
from ccalens.stream import datapoints  # noqa: E402
from ccalens.stream.options import DATAPOINT_MEASURES  # noqa: E402


class Lookup(torch.nn.Module):
    """A layer whose output for input i is row i of a fixed table (any activations we like)."""

    def __init__(self, table):
        super().__init__()
        self.register_buffer("table", torch.as_tensor(table))

    def forward(self, idx):
        return self.table[idx]


class Tables(torch.nn.Module):
    def __init__(self, *tables):
        super().__init__()
        self.parts = torch.nn.ModuleList(Lookup(t) for t in tables)

    def forward(self, idx):
        return [p(idx) for p in self.parts]


def tables(seed=0, n=150, widths=(400, 30, 220), dtype=np.float64, duplicates=0.0):
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((n, 12))
    out = []
    for w in widths:
        x = base @ rng.standard_normal((12, w)) + 0.8 * rng.standard_normal((n, w)) + 3.0
        if duplicates:  # near-duplicate neurons: the project's ill-conditioned case
            x[:, 1::2] = x[:, 0:-1:2][:, : x[:, 1::2].shape[1]] + duplicates * rng.standard_normal(
                (n, x[:, 1::2].shape[1]))
        out.append((x * rng.uniform(0.3, 3.0, w)).astype(dtype))
    return out


def run(xs, measures, **kw):
    models = {"m": Tables(*xs)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ccalens.compare_models(models, torch.arange(xs[0].shape[0]), layers=["parts.%d" % k for k in
                                      range(len(xs))], measures=measures, batch_size=40, **kw)


def value(res, measure, i, j):
    return float(res.matrix(measure, "m", "m").iloc[i, j])


def in_memory(measure, x, y):
    spec = registry.MEASURES[measure]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(spec.compute(np.asarray(x, np.float64), np.asarray(y, np.float64)).similarity)


def leading_components(x, keep=DEFAULT_KEEP):
    """The PC scores that keep ``keep`` of the variance, by an SVD of the centred data."""
    xc = np.asarray(x, np.float64) - np.asarray(x, np.float64).mean(0)
    u, s, _ = np.linalg.svd(xc, full_matrices=False)
    share = np.cumsum(s**2) / np.sum(s**2)
    k = int(np.searchsorted(share, keep - 1e-12) + 1)
    return u[:, :k] * s[:k]


INVARIANT = [m for m in DATAPOINT_MEASURES if not datapoints.on_components(registry.MEASURES[m])]


@pytest.mark.parametrize("duplicates,tol", [(0.0, 1e-10), (1e-6, 1e-8)])
def test_every_measure_on_the_datapoint_route_equals_the_in_memory_measure(duplicates, tol):
    xs = tables(duplicates=duplicates)
    res = run(xs, INVARIANT + ["pwcca"])
    # two of the three layers are wider than the 150 inputs; near-duplicate neurons leave weak
    # directions that the n x n Gram cannot resolve, so those layers take the Householder QR
    routes = list(res.routes.values())
    # (the first keeps 200 strong directions, more than the data's 149, the third only 110)
    assert routes == (["datapoint"] * 3 if not duplicates else ["datapoint", "datapoint", "datapoint-tsqr"])
    pairs = [(0, 1), (1, 0), (0, 2), (2, 1)]  # wide-narrow both ways, wide-wide
    for m in INVARIANT:
        for i, j in pairs:
            want = in_memory(m, xs[i], xs[j])
            assert value(res, m, i, j) == pytest.approx(want, abs=tol, rel=tol), (m, i, j)
    # PWCCA: the narrow layer on its neurons, a wide layer on its leading principal components
    reps = [leading_components(x) if x.shape[1] >= x.shape[0] else x for x in xs]
    for i, j in pairs:
        assert value(res, "pwcca", i, j) == pytest.approx(in_memory("pwcca", reps[i], reps[j]), abs=tol)
    assert any("principal components" in note and "m/parts.0" in note for note in res.notes)


def test_the_datapoint_route_equals_the_n_by_n_formulas():
    xs = tables(seed=3, widths=(500, 180))
    res = run(xs, ["cka", "cka_debiased", "cka_rbf"])
    g = []
    for x in xs:
        xc = x - x.mean(0)
        g.append(xc @ xc.T)
    cka = np.sum(g[0] * g[1]) / np.sqrt(np.sum(g[0] ** 2) * np.sum(g[1] ** 2))
    assert value(res, "cka", 0, 1) == pytest.approx(cka, abs=1e-8)

    def hsic_u(k, l):  # Song et al. (2012), the unbiased estimator on zero-diagonal kernels
        n = k.shape[0]
        k, l = k - np.diag(np.diag(k)), l - np.diag(np.diag(l))
        return (np.sum(k * l) + k.sum() * l.sum() / ((n - 1) * (n - 2)) - 2 * k.sum(0) @ l.sum(0) / (n - 2)) / (
            n * (n - 3))

    raw = [x @ x.T for x in xs]
    debiased = hsic_u(raw[0], raw[1]) / np.sqrt(hsic_u(raw[0], raw[0]) * hsic_u(raw[1], raw[1]))
    assert value(res, "cka_debiased", 0, 1) == pytest.approx(debiased, abs=1e-8)

    def rbf(x):  # sigma: 0.8 x the median distance between distinct datapoints (the registered default)
        d2 = np.maximum(np.sum(x**2, 1)[:, None] + np.sum(x**2, 1)[None, :] - 2 * x @ x.T, 0)
        sigma = 0.8 * np.median(np.sqrt(d2[np.triu_indices(len(x), 1)]))
        k = np.exp(-d2 / (2 * sigma**2))
        h = np.eye(len(x)) - 1.0 / len(x)
        return h @ k @ h

    k0, k1 = rbf(xs[0] - xs[0].mean(0)), rbf(xs[1] - xs[1].mean(0))
    want = np.sum(k0 * k1) / np.sqrt(np.sum(k0**2) * np.sum(k1**2))
    assert value(res, "cka_rbf", 0, 1) == pytest.approx(want, abs=1e-8)


def test_held_activations_spill_to_a_temporary_folder_that_is_removed(monkeypatch):
    xs = tables(seed=5, widths=(600, 40), dtype=np.float32)
    made = []
    real = tempfile.mkdtemp

    def recording_mkdtemp(*a, **k):
        made.append(real(*a, **k))
        return made[-1]

    monkeypatch.setattr(tempfile, "mkdtemp", recording_mkdtemp)
    in_ram = run(xs, ["cka", "svcca"])
    assert not made
    spilled = run(xs, ["cka", "svcca"], max_memory=1_500_000)  # the n x n work fits; the activations do not
    assert made and not any(os.path.exists(p) for p in made)
    for m in ("cka", "svcca"):
        assert value(spilled, m, 0, 1) == pytest.approx(value(in_ram, m, 0, 1), abs=1e-12)
    # float32 activations are held as float32, and compared in float64
    assert value(in_ram, "cka", 0, 1) == pytest.approx(in_memory("cka", xs[0], xs[1]), abs=1e-10)


def test_a_failure_during_the_pass_removes_the_held_activations(monkeypatch):
    xs = tables(seed=6, widths=(300, 20))
    made = []
    real = tempfile.mkdtemp
    monkeypatch.setattr(tempfile, "mkdtemp", lambda *a, **k: made.append(real(*a, **k)) or made[-1])
    model = Tables(*xs)
    calls = {"n": 0}

    def fail_late(module, inputs, output):
        calls["n"] += 1
        if calls["n"] == 7:  # after the held activations went to disk (at the sixth batch)
            raise RuntimeError("interrupted")

    model.parts[0].register_forward_hook(fail_late)
    with pytest.raises(RuntimeError, match="interrupted"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ccalens.compare_models(model, torch.arange(150), layers=["parts.0", "parts.1"], measures="cka",
                               batch_size=20, max_memory=1_450_000)
    assert made and not any(os.path.exists(p) for p in made)


def test_the_route_is_chosen_by_width_memory_measure_or_request():
    narrow = tables(seed=1, widths=(20, 30))
    assert set(run(narrow, "cka").routes.values()) == {"gram"}
    assert set(run(narrow, "cka", route="datapoints").routes.values()) == {"datapoint"}
    assert set(run(narrow, ["cka", "cka_rbf"]).routes.values()) == {"datapoint"}
    gram, points = run(narrow, ["cka", "pwcca", "procrustes"]), run(narrow, ["cka", "pwcca", "procrustes"],
                                                                    route="datapoints")
    for m in ("cka", "pwcca", "procrustes"):  # narrow layers: the same values on both routes
        assert value(points, m, 0, 1) == pytest.approx(value(gram, m, 0, 1), abs=1e-10)
        assert value(points, m, 1, 0) == pytest.approx(value(gram, m, 1, 0), abs=1e-10)
    assert not points.notes
    # a D x D summary that does not fit sends narrow layers to the datapoint route
    assert set(run(narrow, "cka", max_memory=70_000).routes.values()) == {"datapoint"}


def test_neither_route_fitting_names_the_largest_n_and_d():
    xs = tables(seed=2, n=120, widths=(300, 200))
    with pytest.raises(MemoryError) as err:
        run(xs, "cka", max_memory=200_000)
    text = str(err.value)
    d_max = int(text.split("narrow layers of at most about ")[1].split(" neurons")[0])
    n_max = int(text.split("fits at most about ")[1].split(" datapoints")[0])
    assert "neither route fits" in text and n_max == datapoints.largest_datapoints(200_000, [300, 200])
    assert "0.00 GiB" not in text  # sizes in the unit that shows them
    assert datapoints.datapoint_bytes(n_max, [300, 200], wide=2) <= 200_000 < datapoints.datapoint_bytes(
        120, [300, 200])
    assert ccalens.stream.summary_bytes(d_max, 40) <= 200_000 < ccalens.stream.summary_bytes(500, 40, [300, 200])


def test_unknown_numbers_of_datapoints_are_refused_once_they_exceed_the_route():
    xs = tables(seed=2, n=120, widths=(300, 200))
    model = Tables(*xs)
    batches = (torch.arange(a, min(a + 20, 120)) for a in range(0, 120, 20))  # one-shot: n is not known
    limit = datapoints.largest_datapoints(200_000, [300, 200])
    with pytest.raises(MemoryError, match=f"neither route fits.*at most about {limit} datapoints"), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ccalens.compare_models(model, batches, layers=["parts.0", "parts.1"], measures="cka", max_memory=200_000)


def test_measures_the_datapoint_route_cannot_give_are_refused_with_the_reason():
    xs = tables(seed=1, widths=(20, 30))
    with pytest.raises(ValueError, match="'rsa'.*not invariant to orthogonal maps.*ccalens.pairwise"):
        run(xs, ["cka", "rsa"])
    with pytest.raises(ValueError, match="cka_rbf need.*datapoint route.*route='tsqr'"):
        run(xs, ["cka_rbf"], route="tsqr")
    with pytest.raises(ValueError, match="route must be one of 'auto', 'tsqr', 'datapoints'"):
        run(xs, "cka", route="points")


PEAK_CHILD = r"""
import json, sys, warnings
from pathlib import Path
import numpy as np, torch
sys.path.insert(0, {tests!r})
from test_stream_datapoints import Tables
import ccalens
from ccalens.stream import summary_bytes
from ccalens.stream.datapoints import datapoint_bytes
warnings.simplefilter("ignore")
n, widths, route, taken = {n}, {widths}, {route!r}, {taken!r}
rng = np.random.default_rng(0)
xs = [rng.standard_normal((n, w)).astype(np.float32) for w in widths]
model = Tables(*xs)
def status(key):
    return next(int(l.split()[1]) * 1024 for l in Path("/proc/self/status").read_text().splitlines()
                if l.startswith(key))
Path("/proc/self/clear_refs").write_text("5")
base = status("VmRSS")
res = ccalens.compare_models(model, torch.arange(n), layers=[f"parts.{{k}}" for k in range(len(widths))],
                             measures=["cka", "svcca"], batch_size=500, route=route)
peak = status("VmHWM") - base
estimate = (summary_bytes(sum(widths), 500, widths) if taken == "gram" else
            datapoint_bytes(n, widths) + 4 * n * sum(widths))
print(json.dumps({{"peak": peak, "estimate": estimate, "routes": sorted(set(res.routes.values()))}}))
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux's /proc peak counters")
@pytest.mark.parametrize("n,widths,route,taken", [(6000, [1500, 1500], "auto", "gram"),
                                                  (2500, [3000, 2600], "auto", "datapoint")])
def test_the_memory_estimates_match_measured_peaks(n, widths, route, taken):
    """compare_models' memory check (summary_bytes for the Gram route; datapoint_bytes plus
    the held activations for the datapoint route) against the peak resident memory that
    one run adds, in its own process: the estimate must neither miss the peak by more than
    a batch's worth nor overstate it by more than half."""
    import json
    import subprocess
    import sys

    code = PEAK_CHILD.format(tests=os.path.dirname(__file__), n=n, widths=widths, route=route, taken=taken)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["routes"] == [taken]
    batch = 500 * sum(widths) * 8 * 4  # one batch of activations, in float64, and its copies
    assert got["peak"] <= got["estimate"] + batch, got
    assert got["peak"] >= got["estimate"] / 1.5, got
