"""RBF CKA with Kornblith et al.'s bandwidth rule: their published demo value, and their
released formula written out independently here (Gram-based squared distances, the median
over the whole n x n matrix, centring by H K H)."""

from __future__ import annotations

import numpy as np
import pytest

import ccalens
from ccalens.core import registry


def _their_rbf(x, threshold):
    # as in Kornblith et al.'s released cka.py: sigma^2 = threshold^2 * median(all squared distances)
    dots = x @ x.T
    sq = np.diag(dots)
    sq_dist = -2 * dots + sq[:, None] + sq[None, :]
    return np.exp(-sq_dist / (2 * threshold**2 * np.median(sq_dist)))


def _their_cka(k, l):
    n = k.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    kc, lc = h @ k @ h, h @ l @ h
    return np.sum(kc * lc) / np.sqrt(np.sum(kc * kc) * np.sum(lc * lc))


def _demo():
    np.random.seed(1337)
    x = np.random.randn(100, 10)
    y = np.random.randn(100, 10) + x
    return x, y


def test_their_demo_value_is_reproduced():
    x, y = _demo()
    r = ccalens.cka(x, y, kernel="rbf", bandwidth=0.5, bandwidth_rule="kornblith")
    assert round(r.similarity, 5) == 0.65483
    assert round(ccalens.cka(x, y, kernel="rbf", bandwidth=0.5).similarity, 5) == 0.65401  # the default rule
    assert r.similarity == pytest.approx(_their_cka(_their_rbf(x, 0.5), _their_rbf(y, 0.5)), abs=1e-10)


@pytest.mark.parametrize("threshold", [0.2, 0.5, 1.0])
def test_equal_to_their_formula_on_awkward_inputs(threshold):
    rng = np.random.default_rng(4)
    x = 1e3 + rng.standard_normal((60, 7)) @ rng.standard_normal((7, 7))  # a large offset
    y = np.c_[np.tanh(x - 1e3), np.zeros((60, 2))]  # unequal widths, constant neurons
    ours = ccalens.cka(x, y, kernel="rbf", bandwidth=threshold, bandwidth_rule="kornblith").similarity
    theirs = _their_cka(_their_rbf(x - x.mean(0), threshold), _their_rbf(y - y.mean(0), threshold))
    assert ours == pytest.approx(theirs, abs=1e-10)


def test_available_by_name_in_the_registry_pairwise_and_resampling():
    x, y = _demo()
    spec = registry.MEASURES["cka_rbf_kornblith"]
    assert spec.kind == "kernel" and spec.invariant_to == registry.MEASURES["cka_rbf"].invariant_to
    direct = spec.compute(x, y, bandwidth=0.5).similarity
    assert round(direct, 5) == 0.65483
    res = ccalens.pairwise({"x": x, "y": y}, "cka_rbf_kornblith", bandwidth=0.5)
    assert res.similarity[0, 1] == pytest.approx(direct, abs=1e-12)
    r = ccalens.cka(x, y, kernel="rbf", bandwidth=0.5, bandwidth_rule="kornblith", permutations=9, bootstrap=9,
                    seed=0, interval="basic")
    assert r.null.p_value == pytest.approx(0.1) and r.bootstrap.method == "basic"
    # each resample is the same measure, recomputed with the same rule
    rng = np.random.default_rng(0)
    for _ in range(9):
        rng.permutation(100)  # the null's draws come first from the same generator
    rows = rng.integers(0, 100, 100)
    first = ccalens.cka(x[rows], y[rows], kernel="rbf", bandwidth=0.5, bandwidth_rule="kornblith").similarity
    assert r.bootstrap.values[0] == pytest.approx(first, abs=1e-12)


def test_bandwidth_rule_errors():
    x, y = _demo()
    with pytest.raises(ValueError, match="bandwidth_rule must be one of .'median_distance', 'kornblith'.*got 'scott'"):
        ccalens.cka(x, y, kernel="rbf", bandwidth_rule="scott")
