"""Linear predictivity against scikit-learn's RidgeCV (chosen penalty, held-out errors) and
explicit leave-one-out refits; directedness, the pairwise diagonal, nulls and errors."""

from __future__ import annotations

import numpy as np
import pytest

import ccalens
from ccalens.core import registry
from ccalens.core.predictivity import RELATIVE_ALPHAS, loo_errors

sklearn = pytest.importorskip("sklearn")
from sklearn.linear_model import Ridge, RidgeCV  # noqa: E402


def pair(seed=0, n=70, p=6, q=4, offset=0.0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, p)) + offset
    return x, (x - offset) @ rng.standard_normal((p, q)) + 1.5 * rng.standard_normal((n, q))


def pooled_r2(cv, y):
    return 1.0 - cv.sum() / np.sum((y - y.mean(0)) ** 2)


@pytest.mark.parametrize("case", ["plain", "wide X", "rank deficient", "offset"])
def test_equals_ridgecv(case):
    x, y = pair(1)
    if case == "wide X":
        x = np.c_[x, np.random.default_rng(2).standard_normal((70, 40))]  # more neurons than datapoints
    elif case == "rank deficient":
        x = np.c_[x, x[:, :3] @ np.ones((3, 2))]
    elif case == "offset":
        x, y = x + 1e3, y - 50.0
    alphas = np.logspace(-3, 4, 15)
    ref = RidgeCV(alphas=alphas, store_cv_results=True).fit(x, y)
    ours = ccalens.predictivity(x, y, alphas=alphas)
    assert ours.alpha == ref.alpha_
    np.testing.assert_allclose(loo_errors(x, y, alphas), ref.cv_results_, rtol=1e-9, atol=1e-12)
    k = list(alphas).index(ref.alpha_)
    assert ours.similarity == pytest.approx(pooled_r2(ref.cv_results_[:, :, k], y), abs=1e-10)


def test_held_out_errors_equal_refits_without_each_datapoint():
    x, y = pair(3, n=30)
    alpha = 2.5
    refits = np.empty_like(y)
    for i in range(30):
        keep = np.arange(30) != i
        refits[i] = Ridge(alpha=alpha).fit(x[keep], y[keep]).predict(x[i:i + 1])[0]
    np.testing.assert_allclose(loo_errors(x, y, np.array([alpha]))[:, :, 0], (y - refits) ** 2, atol=1e-10)


def test_default_grid_is_relative_to_x_and_the_value_is_directed():
    x, y = pair(4)
    r = ccalens.predictivity(x, y)
    scale = np.sum((x - x.mean(0)) ** 2) / min(x.shape)
    np.testing.assert_allclose(r.alphas, RELATIVE_ALPHAS * scale)
    assert ccalens.predictivity(7.0 * x, y).similarity == pytest.approx(r.similarity, abs=1e-12)
    assert abs(ccalens.predictivity(y, x).similarity - r.similarity) > 0.05  # Y predicts X less well
    spec = registry.MEASURES["predictivity"]
    assert spec.directed and spec.identical is None


def test_pairwise_matrix_is_directed_with_a_computed_diagonal():
    x, y = pair(5)
    res = ccalens.pairwise({"x": x, "y": y}, "predictivity", permutations=5, seed=0)
    assert res.similarity[0, 1] == pytest.approx(ccalens.predictivity(x, y).similarity, abs=1e-12)
    assert res.similarity[1, 0] == pytest.approx(ccalens.predictivity(y, x).similarity, abs=1e-12)
    assert res.similarity[0, 0] == pytest.approx(ccalens.predictivity(x, x).similarity, abs=1e-12)
    assert res.similarity[0, 0] < 1.0
    pytest.importorskip("pandas")
    assert res.to_pandas()["p_value"].notna().all()


def test_null_and_interval():
    x, y = pair(6, n=60)
    r = ccalens.predictivity(x, y, permutations=19, bootstrap=10, seed=1)
    gen = np.random.default_rng(1)
    again = [ccalens.predictivity(x, y[gen.permutation(60)]).similarity for _ in range(19)]
    np.testing.assert_allclose(r.null.values, again, atol=1e-12)
    assert r.null.p_value == pytest.approx(0.05) and r.null.mean < 0.1
    assert r.bootstrap.resamples == 10


def test_errors():
    x, y = pair(7)
    with pytest.raises(ValueError, match="alphas must be one or more positive, finite ridge penalties"):
        ccalens.predictivity(x, y, alphas=[1.0, -2.0])
    with pytest.raises(ValueError, match="Y is constant over the datapoints"):
        ccalens.predictivity(x, np.ones((70, 2)))
    with pytest.raises(ValueError, match="X is constant over the datapoints"):
        ccalens.predictivity(np.ones((70, 3)), y)
    with pytest.raises(ValueError, match="same number of datapoints"):
        ccalens.predictivity(x, y[:50])
    with pytest.raises(ValueError, match="at least 3 datapoints"):
        ccalens.predictivity(x[:2], y[:2])
    bad = x.copy()
    bad[4, 2] = np.inf
    with pytest.raises(ValueError, match="X contains 1 non-finite"):
        ccalens.predictivity(bad, y)
