"""compat='svcca': google/svcca's numbers (with its PR #9 fix)."""

import numpy as np
import pytest
from conftest import related_pair

import ccalens
import oracles


def one_neuron_pair(rng, n=500):
    x = rng.standard_normal((n, 1)) * 3.0 + 2.0
    y = 0.6 * (x - 2.0) + rng.standard_normal((n, 1))
    r = abs(np.corrcoef(x[:, 0], y[:, 0])[0, 1])
    return x, y, r


# ------------------------------------------------------------- fixtures derived by hand


def test_hand_derived_one_neuron_values(rng):
    # One neuron per side: scaled covariances are 1, 1 and r; with epsilon added to the
    # diagonal the single coefficient is r / (1 + epsilon); the QR of one direction is that
    # direction, so PWCCA's single weight is 1 and PWCCA equals the coefficient.
    x, y, r = one_neuron_pair(rng)
    for eps in (0.0, 0.1, 0.5):
        m = ccalens.mean_cca(x, y, compat="svcca", epsilon=eps)
        p = ccalens.pwcca(x, y, compat="svcca", epsilon=eps)
        assert m.similarity == pytest.approx(r / (1 + eps), abs=1e-13)
        assert p.similarity == pytest.approx(r / (1 + eps), abs=1e-13)
        np.testing.assert_allclose(p.weights, [1.0])


def test_hand_derived_epsilon_drops_low_variance_neurons(rng):
    # X's second neuron has 1% of the first one's variance: epsilon = 0.05 drops it, and
    # what is left is the one-neuron case above.
    x, y, r = one_neuron_pair(rng)
    x2 = np.c_[x, 0.1 * 3.0 * rng.standard_normal(len(x))]
    x2[:, 1] *= np.sqrt(0.01 * x[:, 0].var() / x2[:, 1].var())
    res = ccalens.pwcca(x2, y, compat="svcca", epsilon=0.05)
    assert res.x_rank == 1 and res.weights_from == "X"
    assert res.similarity == pytest.approx(r / 1.05, abs=1e-13)
    # with epsilon = 0 both neurons stay
    assert ccalens.pwcca(x2, y, compat="svcca").x_rank == 2


def test_hand_derived_uncentred_weights(rng):
    # Two orthogonal zero-mean neurons of equal norm u, v, shifted by means (m1, m2); Y is
    # exactly X, so every coefficient is 1 and PWCCA is 1 whatever the weights; mean CCA too.
    n = 400
    q, _ = np.linalg.qr(rng.standard_normal((n, 2)) - rng.standard_normal((n, 2)).mean(0))
    q -= q.mean(0)
    x = q + np.array([5.0, -1.0])
    res = ccalens.pwcca(x, x, compat="svcca")
    assert res.similarity == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(res.rho, 1.0, atol=1e-12)


# ------------------------------------------------------------- against a transcription


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("epsilon", [0.0, 1e-6, 1e-2])
@pytest.mark.parametrize("shape", [(12, 9), (9, 12), (10, 10)])
def test_matches_a_line_by_line_transcription(seed, epsilon, shape):
    rng = np.random.default_rng(seed)
    a, b = shape
    x, y = related_pair(rng, n=1500, a=a, b=b)
    x = np.maximum(x, 0) + 0.5  # offset ReLU-like units, where the two definitions part
    mean_ref, pwcca_ref, weights_ref = oracles.svcca_reference_neurons_first(x.T, y.T, epsilon)
    # the covariance route is sensitive to rounding: agreement is to ~1e-11, not to the last bit
    assert ccalens.mean_cca(x, y, compat="svcca", epsilon=epsilon).similarity == pytest.approx(mean_ref, abs=1e-10)
    res = ccalens.pwcca(x, y, compat="svcca", epsilon=epsilon)
    assert res.similarity == pytest.approx(pwcca_ref, abs=1e-10)
    np.testing.assert_allclose(res.weights, weights_ref, atol=1e-10)
    assert res.weights_from == ("X" if a <= b else "Y")
    # the reference's own layout is accepted through the explicit option
    same = ccalens.pwcca(x.T, y.T, compat="svcca", epsilon=epsilon, layout="neurons_first")
    assert same.similarity == res.similarity


def test_y_side_uses_y_activations_pr9(rng):
    # With fewer neurons in Y the weights must come from Y's activations (unfixed, the
    # reference reads acts1 with Y's indices). Changing X's raw offsets moves nothing
    # that the Y-side weights read except through the coefficients, which offsets leave alone.
    x, y = related_pair(rng, n=1500, a=12, b=6)
    res = ccalens.pwcca(x, y, compat="svcca")
    assert res.weights_from == "Y" and len(res.weights) == 6
    moved = ccalens.pwcca(x + 100.0, y, compat="svcca")
    assert moved.similarity == pytest.approx(res.similarity, abs=1e-9)
    np.testing.assert_allclose(moved.weights, res.weights, atol=1e-9)
    # whereas X-side weights read X's raw (uncentred) activations, so offsets move them
    xs = ccalens.pwcca(y, x, compat="svcca")
    assert xs.weights_from == "X"


def test_compat_and_paper_differ_where_the_documentation_says(rng):
    x, y = related_pair(rng, n=4000, a=10, b=10)
    clean = abs(ccalens.pwcca(x, y).similarity - ccalens.pwcca(x, y, compat="svcca").similarity)
    offset = x + np.linspace(0, 50, 10)
    shifted = abs(ccalens.pwcca(offset, y).similarity - ccalens.pwcca(offset, y, compat="svcca").similarity)
    # the paper's PWCCA ignores neuron offsets; the reference's does not
    assert ccalens.pwcca(offset, y).similarity == pytest.approx(ccalens.pwcca(x, y).similarity, abs=1e-12)
    assert shifted > 2 * clean


def test_mean_cca_compat_equals_paper_without_epsilon(rng):
    x, y = related_pair(rng)
    assert ccalens.mean_cca(x, y, compat="svcca").similarity == pytest.approx(
        ccalens.mean_cca(x, y).similarity, abs=1e-10
    )


def test_dead_neuron_gives_no_nan(rng):
    # google/svcca returns NaN here (epsilon=0 keeps the dead unit; sqrt of round-off
    # negative eigenvalues); compat clips them.
    x, y = related_pair(rng, n=1500)
    x = np.c_[np.zeros(len(x)), x]
    res = ccalens.pwcca(x, y, compat="svcca")
    assert np.isfinite(res.similarity)
    assert np.isfinite(ccalens.mean_cca(x, y, compat="svcca").similarity)


def test_compat_errors(rng):
    x, y = related_pair(rng, n=200)
    with pytest.raises(ValueError, match="drops every neuron of X"):
        ccalens.pwcca(x, y, compat="svcca", epsilon=2.0)
    with pytest.raises(ValueError, match="no varying neuron"):
        ccalens.mean_cca(np.ones((200, 3)), y, compat="svcca")
    with pytest.raises(ValueError, match="more datapoints than neurons"):
        ccalens.pwcca(x[:10], y[:10], compat="svcca")
    with pytest.raises(ValueError, match="no symmetric PWCCA"):
        ccalens.pwcca(x, y, compat="svcca", symmetric=True)
    with pytest.raises(TypeError, match="not a Factor"):
        ccalens.pwcca(ccalens.factorize(x), y, compat="svcca")
    with pytest.raises(ValueError, match="compat must be None"):
        ccalens.mean_cca(x, y, compat="google")


def test_overflowing_covariance_is_an_error_not_nan(rng):
    x, y = related_pair(rng, n=300)
    with pytest.raises(ValueError, match="covariance of these activations overflows"):
        ccalens.pwcca(x * 1e200, y, compat="svcca")
    assert np.isfinite(ccalens.pwcca(x * 1e200, y).similarity)
