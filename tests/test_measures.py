"""The paper's definitions: closed forms, invariances, bounds, independent oracles."""

import numpy as np
import pytest
from conftest import orthonormal_centred, related_pair

import ccalens
import oracles

SEEDS = [0, 1, 2]


# ---------------------------------------------------------------- closed forms


def principal_angle_pair(rng, n=500, cosines=(0.9, 0.6, 0.2)):
    """X = [e1, e2, e3]; Y's i-th column = cos_i e_i + sin_i f_i: rho = cosines exactly."""
    k = len(cosines)
    e = orthonormal_centred(rng, n, 2 * k)
    x = e[:, :k]
    c = np.asarray(cosines)
    y = x * c + e[:, k:] * np.sqrt(1 - c**2)
    return x, y, c


def test_canonical_correlations_are_the_cosines_of_principal_angles(rng):
    x, y, cosines = principal_angle_pair(rng)
    mixed_x = x @ rng.standard_normal((3, 3)) + 7.0
    mixed_y = y @ rng.standard_normal((3, 3)) - 2.0
    res = ccalens.cca(mixed_x, mixed_y)
    np.testing.assert_allclose(res.rho, cosines, atol=1e-12)
    assert res.similarity == pytest.approx(np.mean(cosines), abs=1e-12)
    assert ccalens.mean_cca(mixed_x, mixed_y).distance == pytest.approx(1 - np.mean(cosines), abs=1e-12)


def test_pwcca_closed_form_weights(rng):
    # X's neurons are 3*e1, 1*e2, 0.5*e3: the variates are e1, e2, e3 and
    # alpha~ = (3, 1, 0.5) exactly.
    x, y, cosines = principal_angle_pair(rng)
    scaled = x * np.array([3.0, 1.0, 0.5]) + 4.0
    res = ccalens.pwcca(scaled, y)
    expected_w = np.array([3.0, 1.0, 0.5]) / 4.5
    np.testing.assert_allclose(res.weights, expected_w, atol=1e-12)
    assert res.similarity == pytest.approx(float(expected_w @ cosines), abs=1e-12)
    assert float(res) == res.similarity
    assert res.distance == pytest.approx(1 - res.similarity)


def test_ridge_closed_form_one_neuron(rng):
    x = rng.standard_normal((400, 1))
    y = 0.5 * x + rng.standard_normal((400, 1))
    r = abs(np.corrcoef(x[:, 0], y[:, 0])[0, 1])
    for eps in (0.0, 0.1, 1.0):
        res = ccalens.cca(x, y, epsilon=eps)
        # each unit-norm side is shrunk by 1/sqrt(1 + eps)
        assert res.rho[0] == pytest.approx(r / (1 + eps), abs=1e-13)


def test_svcca_keep_counts_variance_share(rng):
    e = orthonormal_centred(rng, 600, 4)
    x = e[:, :3] * np.array([10.0, 3.0, 1.0])  # variance shares 100/110, 9/110, 1/110
    y = np.c_[e[:, 0], e[:, 3]]
    for keep, k in ((0.9, 1), (0.99, 2), (0.995, 3), (1.0, 3)):
        assert ccalens.svcca(x, y, keep=keep).x_components == k
    res = ccalens.svcca(x, y, keep=0.99)
    # span(e1, e2) against span(e1, e4): correlations 1 and 0
    np.testing.assert_allclose(res.rho, [1.0, 0.0], atol=1e-12)
    assert res.x_variance_kept == pytest.approx(109 / 110)
    assert res.similarity == pytest.approx(0.5, abs=1e-12)
    tiny = np.c_[x, 1e-7 * e[:, 3]]  # a direction with 1e-16 of the variance
    assert ccalens.svcca(tiny, y, keep=1.0).x_components == 4
    fixed = ccalens.svcca(x, y, n_components=(1, 2))
    assert (fixed.x_components, fixed.y_components) == (1, 2)
    np.testing.assert_allclose(fixed.rho, [1.0], atol=1e-12)


# ---------------------------------------------------------------- oracles


@pytest.mark.parametrize("seed", SEEDS)
def test_rho_matches_svd_and_covariance_oracles(seed):
    rng = np.random.default_rng(seed)
    x, y = related_pair(rng)
    rho = ccalens.cca(x, y).rho
    np.testing.assert_allclose(rho, oracles.cca_svd(x, y)[0], atol=1e-12)
    np.testing.assert_allclose(rho, oracles.cca_covariance(x, y), atol=1e-10)


@pytest.mark.parametrize("seed", SEEDS)
def test_pwcca_matches_literal_gram_schmidt(seed):
    rng = np.random.default_rng(seed)
    x, y = related_pair(rng, a=15, b=10)
    assert ccalens.pwcca(x, y).similarity == pytest.approx(oracles.pwcca_paper(x, y), abs=1e-12)
    assert ccalens.pwcca(y, x).similarity == pytest.approx(oracles.pwcca_paper(y, x), abs=1e-12)


def test_directions_and_variates(rng):
    x, y = related_pair(rng)
    res = ccalens.cca(x, y, variates=True)
    xc, yc = x - x.mean(0), y - y.mean(0)
    hx, hy = xc @ res.x_directions, yc @ res.y_directions
    np.testing.assert_allclose(hx, res.x_variates, atol=1e-10)
    np.testing.assert_allclose(hy, res.y_variates, atol=1e-10)
    np.testing.assert_allclose(hx.T @ hx, np.eye(hx.shape[1]), atol=1e-10)  # orthonormal
    np.testing.assert_allclose(np.diag(hx.T @ hy), res.rho, atol=1e-10)  # correlations
    np.testing.assert_allclose(hx.mean(0), 0, atol=1e-12)
    off = hx.T @ hy - np.diag(np.diag(hx.T @ hy))
    assert np.abs(off).max() < 1e-10  # canonical pairs are uncorrelated across pairs
    # signs are deterministic: the largest |coefficient| of each X direction is positive
    idx = np.argmax(np.abs(res.x_directions), axis=0)
    assert np.all(res.x_directions[idx, np.arange(idx.size)] > 0)


def test_ridge_directions_give_the_ridge_correlations(rng):
    x, y = related_pair(rng, n=300)
    eps = 0.3
    res = ccalens.cca(x, y, epsilon=eps)
    xs = (x - x.mean(0)) / np.linalg.norm(x - x.mean(0), axis=0)
    ys = (y - y.mean(0)) / np.linalg.norm(y - y.mean(0), axis=0)
    cx = xs.T @ xs + eps * np.eye(x.shape[1])
    cy = ys.T @ ys + eps * np.eye(y.shape[1])

    def inv_sqrt(m):
        w, v = np.linalg.eigh(m)
        return (v / np.sqrt(w)) @ v.T

    expected = np.linalg.svd(inv_sqrt(cx) @ xs.T @ ys @ inv_sqrt(cy), compute_uv=False)
    np.testing.assert_allclose(res.rho, expected[: len(res.rho)], atol=1e-12)
    assert np.all(np.diff(res.rho) <= 1e-15)


# ---------------------------------------------------------------- invariances


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("measure", ["cca", "mean_cca", "svcca_fixed", "pwcca_y_side"])
def test_invariant_to_invertible_affine_maps(seed, measure):
    rng = np.random.default_rng(seed)
    x, y = related_pair(rng)
    fn = {
        "cca": lambda a, b: ccalens.cca(a, b).similarity,
        "mean_cca": lambda a, b: ccalens.mean_cca(a, b).similarity,
        # SVCCA's SVD step is invariant to orthogonal maps and isotropic scaling only
        "svcca_fixed": lambda a, b: ccalens.svcca(a, b, n_components=5).similarity,
        # PWCCA's weights come from X's neurons: an affine map of Y leaves it unchanged
        "pwcca_y_side": lambda a, b: ccalens.pwcca(a, b).similarity,
    }[measure]
    base = fn(x, y)
    if measure == "svcca_fixed":
        qx, _ = np.linalg.qr(rng.standard_normal((x.shape[1],) * 2))
        qy, _ = np.linalg.qr(rng.standard_normal((y.shape[1],) * 2))
        moved = fn(2.5 * x @ qx + 3.0, 0.1 * y @ qy - 1.0)
    elif measure == "pwcca_y_side":
        moved = fn(x, y @ rng.standard_normal((y.shape[1],) * 2) + 5.0)
    else:
        moved = fn(x @ rng.standard_normal((x.shape[1],) * 2) + 3.0, y @ rng.standard_normal((y.shape[1],) * 2) - 1.0)
    assert moved == pytest.approx(base, abs=1e-10)


@pytest.mark.parametrize("measure", [ccalens.cca, ccalens.mean_cca, ccalens.pwcca, ccalens.svcca])
def test_invariant_to_neuron_permutations_and_offsets(rng, measure):
    x, y = related_pair(rng)
    px, py = rng.permutation(x.shape[1]), rng.permutation(y.shape[1])
    base = measure(x, y).similarity
    assert measure(x[:, px] + 10.0, y[:, py]).similarity == pytest.approx(base, abs=1e-11)


def test_pwcca_scale_of_x_neurons_changes_weights_not_rho(rng):
    # The paper's weights depend on X's neuron scales (unlike CCA itself).
    x, y = related_pair(rng)
    d = np.geomspace(0.1, 10, x.shape[1])
    a, b = ccalens.pwcca(x, y), ccalens.pwcca(x * d, y)
    np.testing.assert_allclose(a.rho, b.rho, atol=1e-11)
    assert np.abs(np.asarray(a.weights) - np.asarray(b.weights)).max() > 1e-3


# ---------------------------------------------------------------- identity, bounds, symmetry


@pytest.mark.parametrize("measure", [ccalens.cca, ccalens.mean_cca, ccalens.pwcca, ccalens.svcca])
def test_identical_inputs_give_one(rng, measure):
    x, _ = related_pair(rng)
    res = measure(x, x)
    assert res.similarity == pytest.approx(1.0, abs=1e-12)
    assert res.distance == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
def test_bounds_and_order(seed):
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal((300, 20)), rng.standard_normal((300, 25))
    for res in (ccalens.cca(x, y), ccalens.pwcca(x, y, symmetric=True), ccalens.svcca(x, y)):
        rho = np.asarray(res.rho)
        assert np.all((rho >= 0) & (rho <= 1))
        assert np.all(np.diff(rho) <= 1e-15)
        assert 0 <= res.similarity <= 1
    w = np.asarray(ccalens.pwcca(x, y).weights)
    assert np.all(w >= 0) and w.sum() == pytest.approx(1.0)


def test_mean_cca_is_symmetric_and_pwcca_is_not(rng):
    x, y = related_pair(rng, a=14, b=8)
    assert ccalens.mean_cca(x, y).similarity == pytest.approx(ccalens.mean_cca(y, x).similarity, abs=1e-13)
    xy, yx = ccalens.pwcca(x, y), ccalens.pwcca(y, x)
    assert abs(xy.similarity - yx.similarity) > 1e-3
    sym = ccalens.pwcca(x, y, symmetric=True)
    assert sym.similarity == pytest.approx(0.5 * (xy.similarity + yx.similarity), abs=1e-13)
    assert sym.forward == pytest.approx(xy.similarity) and sym.reverse == pytest.approx(yx.similarity)
    np.testing.assert_allclose(sym.reverse_weights, yx.weights, atol=1e-13)
    assert ccalens.pwcca(x, y, symmetric=True).similarity == pytest.approx(
        ccalens.pwcca(y, x, symmetric=True).similarity, abs=1e-13
    )


def test_factor_reuse_gives_identical_numbers(rng):
    x, y = related_pair(rng)
    fx, fy = ccalens.factorize(x), ccalens.factorize(y)
    assert fx.rank == x.shape[1] and fx.method == "gram"
    for measure in (ccalens.mean_cca, ccalens.pwcca, ccalens.svcca):
        # two arrays are factorised from one joint product, separate Factors from two: equal
        # to rounding (bitwise on some CPUs' BLAS kernels, within a few ulps on others)
        assert measure(fx, fy).similarity == pytest.approx(measure(x, y).similarity, abs=1e-12)
        assert measure(fx, y).similarity == pytest.approx(measure(x, y).similarity, abs=1e-12)
        assert measure(fx, fy).similarity == measure(fx, ccalens.factorize(y)).similarity  # reuse is exact
    q = np.asarray(fx.basis())
    np.testing.assert_allclose(q.T @ q, np.eye(fx.rank), atol=1e-12)
    assert "rank=12" in repr(fx)


def test_result_reprs_are_short(rng):
    x, y = related_pair(rng)
    text = repr(ccalens.pwcca(x, y))
    assert text.startswith("PWCCAResult(similarity=") and len(text) < 200


def test_pwcca_with_svd_thresholding_equals_pwcca_on_the_kept_pca_scores(rng):
    """keep= (Figure 3's "thresholding to remove low variance noise"): an independent reduction."""
    X = rng.standard_normal((600, 12)) @ np.diag(np.r_[np.ones(6), 1e-3 * np.ones(6)]) + 3.0
    Y = X[:, ::-1] @ rng.standard_normal((12, 12)) + 0.1 * rng.standard_normal((600, 12))

    def scores(A, keep):
        centred = A - A.mean(axis=0)
        u, s, _ = np.linalg.svd(centred, full_matrices=False)
        k = int(np.argmax(np.cumsum(s**2) / np.sum(s**2) >= keep)) + 1
        return u[:, :k] * s[:k], k

    (sx, kx), (sy, ky) = scores(X, 0.99), scores(Y, 0.99)
    r = ccalens.pwcca(X, Y, keep=0.99, symmetric=True)
    assert (r.x_components, r.y_components) == (kx, ky) and kx == 6
    assert r.similarity == pytest.approx(ccalens.pwcca(sx, sy, symmetric=True).similarity, abs=1e-10)
    assert ccalens.pwcca(X, Y).x_components is None
    # the same value from the neurons-first layout, and keep=1 keeps every direction
    assert ccalens.pwcca(X.T, Y.T, keep=0.99, layout="neurons_first").similarity == pytest.approx(
        ccalens.pwcca(X, Y, keep=0.99).similarity, abs=1e-12)
    assert ccalens.pwcca(X, Y, keep=1.0).x_components == 12


def test_pwcca_thresholding_errors(rng):
    X = rng.standard_normal((50, 4))
    with pytest.raises(ValueError, match="keep= .* is not part of google/svcca"):
        ccalens.pwcca(X, X, keep=0.9, compat="svcca")
    with pytest.raises(TypeError, match="keep= needs X as an array, not a Factor"):
        ccalens.pwcca(ccalens.factorize(X), X, keep=0.9)
    with pytest.raises(ValueError, match="keep"):
        ccalens.pwcca(X, X, keep=1.5)
    with pytest.raises(ValueError, match="Y is constant over the datapoints"):
        ccalens.pwcca(X, np.ones((50, 3)), keep=0.9)
    bad = X.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="X contains 1 non-finite value"):
        ccalens.pwcca(bad, X, keep=0.9)
