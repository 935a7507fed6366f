"""Generalised shape metrics (Williams et al. 2021) against netrep's LinearMetric and
against the definition written out in sample space.

netrep's values were made by tests/data/make_netrep_reference.py (netrep is not on PyPI);
the sample-space reference here whitens with an eigendecomposition of X_c^T X_c and aligns
with scipy's orthogonal Procrustes solver, sharing no code with ccalens.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg

import ccalens
from ccalens.core import registry
from oracles import SHAPE_ALPHAS, shape_cases

NETREP = json.loads((Path(__file__).parent / "data" / "netrep_shape.json").read_text())


def whiten(x, alpha):
    """phi_alpha(X) = X_c (alpha I + (1 - alpha) (X_c^T X_c)^(-1/2)), on the range of X_c."""
    xc = x - x.mean(axis=0)
    lam, v = np.linalg.eigh(xc.T @ xc)
    keep = lam > 1e-10 * lam.max()
    lam, v = lam[keep], v[:, keep]
    return xc @ v @ np.diag(alpha + (1 - alpha) / np.sqrt(lam)) @ v.T


def shape_sample_space(x, y, alpha):
    wx, wy = whiten(x, alpha), whiten(y, alpha)
    width = max(wx.shape[1], wy.shape[1])  # zero-pad the narrower side, as netrep
    wx = np.pad(wx, ((0, 0), (0, width - wx.shape[1])))
    wy = np.pad(wy, ((0, 0), (0, width - wy.shape[1])))
    r, _ = scipy.linalg.orthogonal_procrustes(wx, wy)
    cos = np.sum((wx @ r) * wy) / (np.linalg.norm(wx) * np.linalg.norm(wy))
    return float(np.arccos(np.clip(cos, -1, 1)))


@pytest.mark.parametrize("case", sorted(shape_cases()))
@pytest.mark.parametrize("alpha", SHAPE_ALPHAS)
def test_equals_netrep_linear_metric(case, alpha):
    x, y = shape_cases()[case]
    got = ccalens.shape_metric(x, y, alpha=alpha)
    assert got.distance == pytest.approx(NETREP["values"][case][str(alpha)], abs=1e-10)
    assert got.distance == pytest.approx(shape_sample_space(x, y, alpha), abs=1e-10)
    assert got.similarity == pytest.approx(np.cos(got.distance), abs=1e-12)


def test_the_two_ends_are_cca_and_procrustes():
    x, y = shape_cases()["equal_widths"]
    rho = ccalens.cca(x, y).rho
    assert ccalens.shape_metric(x, y, alpha=0.0).similarity == pytest.approx(rho.mean(), abs=1e-12)
    assert ccalens.shape_metric(x, y, alpha=1.0).similarity == pytest.approx(ccalens.procrustes(x, y).similarity,
                                                                             abs=1e-12)
    x, y = shape_cases()["unequal_widths"]  # ranks 3 and 7: the sum of 3 correlations over sqrt(3 * 7)
    assert ccalens.shape_metric(x, y, alpha=0.0).similarity == pytest.approx(
        ccalens.cca(x, y).rho.sum() / np.sqrt(21), abs=1e-12)


def test_triangle_inequality_on_random_triples():
    rng = np.random.default_rng(3)
    base = rng.standard_normal((150, 4))
    reps = [base @ rng.standard_normal((4, w)) + s * rng.standard_normal((150, w))
            for w, s in ((4, 0.3), (6, 1.0), (3, 0.1), (5, 2.0), (4, 0.6))]
    for alpha in (0.0, 0.3, 1.0):
        d = np.array([[ccalens.shape_metric(a, b, alpha=alpha).distance for b in reps] for a in reps])
        np.testing.assert_allclose(d, d.T, atol=1e-12)  # symmetric
        assert np.all(np.abs(np.diag(d)) < 1e-6)
        for i in range(5):
            for j in range(5):
                for k in range(5):
                    assert d[i, k] <= d[i, j] + d[j, k] + 1e-10


def test_invariances_as_declared():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((200, 5))
    y = x @ rng.standard_normal((5, 5)) + 0.5 * rng.standard_normal((200, 5))
    q, _ = np.linalg.qr(rng.standard_normal((5, 5)))
    a = rng.standard_normal((5, 5))
    shift = rng.standard_normal(5) * 10
    for name, alpha in (("shape", 0.5), ("shape_cca", 0.0)):
        base = ccalens.shape_metric(x, y, alpha=alpha).similarity
        invariant = registry.MEASURES[name].invariant_to
        moved = {"orthogonal": y @ q, "translation": y + shift, "permutation": y[:, ::-1], "isotropic_scaling": 7 * y,
                 "invertible_linear": y @ a}
        for transform, y2 in moved.items():
            same = abs(ccalens.shape_metric(x, y2, alpha=alpha).similarity - base) < 1e-10
            assert same == (transform in invariant), (name, transform)


def test_registered_measures_compute_through_the_registry_and_pairwise():
    x, y = shape_cases()["unequal_widths"]
    z = x[:, :2] + 0.1
    for name, alpha in (("shape", 0.5), ("shape_cca", 0.0)):
        spec = registry.MEASURES[name]
        assert spec.compute(x, y).similarity == pytest.approx(ccalens.shape_metric(x, y, alpha=alpha).similarity,
                                                              abs=1e-14)
        rows = {(r["row"], r["column"]): r for r in ccalens.pairwise({"x": x, "y": y, "z": z}, name).table}
        for a, b in (("x", "y"), ("y", "z"), ("x", "z")):
            ref = ccalens.shape_metric({"x": x, "y": y, "z": z}[a], {"x": x, "y": y, "z": z}[b], alpha=alpha)
            assert rows[(a, b)]["similarity"] == pytest.approx(ref.similarity, abs=1e-12)
            assert rows[(a, b)]["distance"] == pytest.approx(ref.distance, abs=1e-6)  # arccos near 1 amplifies rounding
    assert registry.angular(1.0) == 0.0 and registry.angular(0.0) == pytest.approx(np.pi / 2)


def test_factors_and_tensors_give_the_same_value():
    x, y = shape_cases()["dead_units"]
    ref = ccalens.shape_metric(x, y, alpha=0.25).similarity
    assert ccalens.shape_metric(ccalens.factorize(x), ccalens.factorize(y), alpha=0.25).similarity == pytest.approx(
        ref, abs=1e-12)
    torch = pytest.importorskip("torch")
    got = ccalens.shape_metric(torch.as_tensor(x), torch.as_tensor(y), alpha=0.25).similarity
    assert got == pytest.approx(ref, abs=1e-10)


def test_null_and_bootstrap_recompute_with_the_requested_alpha():
    x, y = shape_cases()["equal_widths"]
    for alpha in (0.3, 0.5, 0.0):  # 0.3 is recomputed from the activations, 0.5 and 0 from the factors
        r = ccalens.shape_metric(x, y, alpha=alpha, permutations=15, bootstrap=12, seed=7, interval="basic")
        rng = np.random.default_rng(7)
        null = [ccalens.shape_metric(x, y[rng.permutation(len(y))], alpha=alpha).similarity for _ in range(15)]
        np.testing.assert_allclose(r.null.values, null, atol=1e-10)
        boot = []
        for _ in range(12):
            rows = rng.integers(0, len(x), len(x))
            boot.append(ccalens.shape_metric(x[rows], y[rows], alpha=alpha).similarity)
        np.testing.assert_allclose(r.bootstrap.values, boot, atol=1e-10)


@pytest.mark.parametrize("alpha, error, match", [
    (-0.1, ValueError, r"alpha must lie in \[0, 1\] \(0: the CCA end, 1: Procrustes\); got -0.1"),
    (1.5, ValueError, r"alpha must lie in \[0, 1\]"),
    ("half", TypeError, r"alpha must be a number in \[0, 1\]; got 'half'"),
    (None, TypeError, r"alpha must be a number"),
])
def test_bad_alpha_is_refused(alpha, error, match):
    x, y = shape_cases()["equal_widths"]
    with pytest.raises(error, match=match):
        ccalens.shape_metric(x, y, alpha=alpha)


def test_input_errors_are_the_core_ones():
    x, y = shape_cases()["equal_widths"]
    with pytest.raises(ValueError, match="same number of datapoints"):
        ccalens.shape_metric(x, y[:-1])
    bad = x.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"X contains 1 non-finite value\(s\).*datapoint 3, neuron 1"):
        ccalens.shape_metric(bad, y)


def test_streaming_keeps_the_scale_that_partial_whitening_reads(tmp_path):
    from ccalens import stream

    rng = np.random.default_rng(8)
    x = rng.standard_normal((3000, 6)) * 3 + 100
    y = x @ rng.standard_normal((6, 8)) + rng.standard_normal((3000, 8))
    np.save(tmp_path / "y.npy", y)
    for alpha in (0.0, 0.3, 0.5, 1.0):
        streamed = stream.compare(x, tmp_path / "y.npy", "shape", alpha=alpha, chunk_rows=700)
        assert streamed.similarity == pytest.approx(ccalens.shape_metric(x, y, alpha=alpha).similarity, abs=1e-10)
        assert streamed.n_samples == 3000
    assert "shape" in stream.MEASURES and "shape_cca" in stream.MEASURES
