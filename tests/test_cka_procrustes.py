"""CKA (linear, debiased, RBF), Procrustes and the matched-neuron controls.

References come from the definitions in sample space (n x n kernels, scipy's Procrustes
solver) or from closed forms, never from ccalens.
"""

import numpy as np
import pytest
import scipy.linalg
from scipy.spatial.distance import pdist, squareform

import ccalens
from ccalens.core import registry
from ccalens.experiments.sanity import _transform as transform


def related(seed, n=120, a=7, b=5, noise=0.7):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, a)) @ rng.standard_normal((a, a)) + rng.standard_normal(a)
    y = np.tanh(x @ rng.standard_normal((a, b))) + noise * rng.standard_normal((n, b)) - 2.0
    return x, y


def centring(n):
    return np.eye(n) - np.ones((n, n)) / n


def cka_kernels(k, l):
    h = centring(len(k))
    hsic = lambda p, q: np.trace(p @ h @ q @ h)  # noqa: E731
    return hsic(k, l) / np.sqrt(hsic(k, k) * hsic(l, l))


def hsic_song(k, l):
    """Song et al. (2012), eq. (5), written out with explicit n x n matrices."""
    n = len(k)
    kt, lt = k - np.diag(np.diag(k)), l - np.diag(np.diag(l))
    one = np.ones(n)
    return (np.trace(kt @ lt) + (one @ kt @ one) * (one @ lt @ one) / ((n - 1) * (n - 2))
            - 2.0 / (n - 2) * (one @ kt @ lt @ one)) / (n * (n - 3))


@pytest.mark.parametrize("seed", range(3))
def test_linear_cka_equals_the_kernel_definition(seed):
    x, y = related(seed)
    expected = cka_kernels(x @ x.T, y @ y.T)
    r = ccalens.cka(x, y)
    assert abs(r.similarity - expected) < 1e-12
    assert abs(r.distance - (1 - expected)) < 1e-12


@pytest.mark.parametrize("seed", range(3))
def test_debiased_cka_equals_songs_estimator(seed):
    x, y = related(seed, n=60)
    xc, yc = x - x.mean(0), y - y.mean(0)
    k, l = xc @ xc.T, yc @ yc.T
    expected = hsic_song(k, l) / np.sqrt(hsic_song(k, k) * hsic_song(l, l))
    assert abs(ccalens.cka(x, y, debiased=True).similarity - expected) < 1e-11


def test_debiased_cka_removes_the_small_sample_bias():
    # independent data, few datapoints for the neurons: linear CKA is far above 0, the
    # debiased estimate averages near 0
    rng = np.random.default_rng(0)
    biased, debiased = [], []
    for _ in range(40):
        x, y = rng.standard_normal((40, 30)), rng.standard_normal((40, 30))
        biased.append(ccalens.cka(x, y).similarity)
        debiased.append(ccalens.cka(x, y, debiased=True).similarity)
    assert np.mean(biased) > 0.4
    assert abs(np.mean(debiased)) < 0.02


@pytest.mark.parametrize("bandwidth", [0.4, 0.8, 2.0])
def test_rbf_cka_equals_the_definition(bandwidth):
    x, y = related(1, n=80)

    def kernel(z):
        d = pdist(z)  # distances between distinct datapoints
        sigma = bandwidth * np.median(d)
        return np.exp(-squareform(d) ** 2 / (2 * sigma**2))

    k, l = kernel(x), kernel(y)
    assert abs(ccalens.cka(x, y, kernel="rbf", bandwidth=bandwidth).similarity - cka_kernels(k, l)) < 1e-12
    debiased = hsic_song(k, l) / np.sqrt(hsic_song(k, k) * hsic_song(l, l))
    assert abs(ccalens.cka(x, y, kernel="rbf", bandwidth=bandwidth, debiased=True).similarity - debiased) < 1e-11


def test_rbf_cka_tends_to_linear_cka_for_wide_kernels():
    # exp(-d^2 / 2 s^2) ~ 1 - d^2 / 2 s^2: centred, a linear kernel of the data
    x, y = related(2, n=100)
    assert abs(ccalens.cka(x, y, kernel="rbf", bandwidth=300.0).similarity - ccalens.cka(x, y).similarity) < 1e-4


@pytest.mark.parametrize("seed", range(3))
def test_procrustes_equals_the_optimal_rotation(seed):
    x, y = related(seed, a=6, b=4)
    xs = (x - x.mean(0)) / np.linalg.norm(x - x.mean(0))
    ys = (y - y.mean(0)) / np.linalg.norm(y - y.mean(0))
    ys_padded = np.c_[ys, np.zeros((len(ys), 2))]  # R becomes a partial isometry
    rotation, _ = scipy.linalg.orthogonal_procrustes(ys_padded, xs)
    expected = np.linalg.norm(xs - ys_padded @ rotation) ** 2
    r = ccalens.procrustes(x, y)
    assert abs(r.distance - expected) < 1e-12
    assert abs(r.similarity - (1 - expected / 2)) < 1e-12


def test_closed_forms_for_two_orthogonal_directions():
    # X has two uncorrelated directions of variances s1^2, s2^2; Y keeps the first one
    n, s1, s2 = 400, 3.0, 1.5
    q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((n, 2)) - 0.0)
    q -= q.mean(0)
    q, _ = np.linalg.qr(q)
    x = q * np.array([s1, s2])
    y = x[:, :1]
    assert abs(ccalens.cka(x, y).similarity - s1**2 / np.sqrt(s1**4 + s2**4)) < 1e-12
    assert abs(ccalens.procrustes(x, y).similarity - s1 / np.sqrt(s1**2 + s2**2)) < 1e-12


def test_matched_neuron_controls():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((50, 4)), rng.standard_normal((50, 4))
    cos = ccalens.cosine(x, y)
    assert abs(cos.similarity - np.sum(x * y) / np.linalg.norm(x) / np.linalg.norm(y)) < 1e-14
    assert abs(cos.distance - (1 - cos.similarity)) < 1e-15
    euc = ccalens.euclidean(x, y)
    assert abs(euc.distance - np.sqrt(np.mean(np.sum((x - y) ** 2, axis=1)))) < 1e-13
    assert euc.similarity == -euc.distance
    # the paper's point: a permutation of the units changes them, not CCA
    perm = y[:, ::-1]
    assert abs(ccalens.cosine(x, perm).similarity - cos.similarity) > 1e-3
    assert abs(ccalens.mean_cca(x, perm).similarity - ccalens.mean_cca(x, y).similarity) < 1e-12


TRANSFORM_CASES = registry.TRANSFORMS


@pytest.mark.parametrize("measure", list(registry.MEASURES))
def test_every_documented_invariance_holds_and_no_other(measure):
    """The registry's claims, checked on both sides (an invariance must hold for either)."""
    spec = registry.MEASURES[measure]
    rng = np.random.default_rng(5)
    x, y = related(3, n=150, a=5, b=5, noise=0.5)

    def value(a, b):
        return ccalens.pairwise([a, b], measure, names=["a", "b"]).similarity[0, 1]

    base = value(x, y)
    for kind in TRANSFORM_CASES:
        change = max(abs(value(transform(kind, x, rng), y) - base), abs(value(x, transform(kind, y, rng)) - base))
        if kind in spec.invariant_to:
            assert change < 1e-9 * max(1.0, abs(base)), (measure, kind, change)
        else:
            assert change > 1e-4, (measure, kind, change)


def test_torch_inputs_give_the_numpy_values():
    torch = pytest.importorskip("torch")
    x, y = related(4, n=90, a=5, b=5)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    for fn, kw in ((ccalens.cka, {}), (ccalens.cka, {"debiased": True}), (ccalens.cka, {"kernel": "rbf"}),
                   (ccalens.procrustes, {}), (ccalens.cosine, {}), (ccalens.euclidean, {})):
        assert abs(fn(tx, ty, **kw).similarity - fn(x, y, **kw).similarity) < 1e-12
    assert abs(ccalens.cka(tx.float(), ty.float()).similarity - ccalens.cka(x, y).similarity) < 1e-6


def test_factors_are_reused_by_cka_and_procrustes():
    x, y = related(5)
    fx, fy = ccalens.factorize(x), ccalens.factorize(y)
    assert abs(ccalens.cka(fx, fy).similarity - ccalens.cka(x, y).similarity) < 1e-13
    assert abs(ccalens.procrustes(fx, fy).similarity - ccalens.procrustes(x, y).similarity) < 1e-13
    assert abs(ccalens.cka(fx, fy, debiased=True).similarity - ccalens.cka(x, y, debiased=True).similarity) < 1e-13


def test_dead_and_duplicate_neurons_do_not_give_nan():
    x, y = related(6, a=5, b=5)
    x = np.c_[x, np.full(len(x), 2.0), x[:, :1]]  # a constant and a duplicated neuron
    for measure in ("cka", "cka_debiased", "procrustes"):
        fn = {"cka": ccalens.cka, "procrustes": ccalens.procrustes}.get(measure)
        r = fn(x, y) if fn else ccalens.cka(x, y, debiased=True)
        assert np.isfinite(r.similarity)
    # the constant neuron carries nothing: the values equal those without it
    assert abs(ccalens.cka(x, y).similarity - ccalens.cka(np.delete(x, 5, axis=1), y).similarity) < 1e-12


class TestMinibatch:
    def test_one_batch_is_the_debiased_cka(self):
        x, y = related(7, n=64)
        acc = ccalens.MinibatchCKA().update(x, y)
        assert abs(acc.similarity - ccalens.cka(x, y, debiased=True).similarity) < 1e-12

    def test_many_batches_estimate_the_full_debiased_value(self):
        x, y = related(8, n=4096, noise=0.5)
        acc = ccalens.MinibatchCKA()
        for start in range(0, 4096, 256):
            acc.update(x[start : start + 256].astype(np.float32), y[start : start + 256].astype(np.float32))
        assert acc.batches == 16 and acc.n_samples == 4096
        assert abs(acc.similarity - ccalens.cka(x, y, debiased=True).similarity) < 0.02
        assert np.isfinite(acc.similarity)

    def test_errors_not_nan(self):
        acc = ccalens.MinibatchCKA()
        with pytest.raises(ValueError, match="no minibatch yet"):
            _ = acc.similarity
        with pytest.raises(ValueError, match="at least 4 datapoints"):
            acc.update(np.ones((3, 2)), np.ones((3, 2)))
        acc.update(np.ones((10, 2)), np.random.default_rng(0).standard_normal((10, 2)))
        with pytest.raises(ValueError, match="mean unbiased HSIC of X with itself is 0 <= 0"):
            _ = acc.similarity
        with pytest.raises(ValueError, match="non-finite"):
            acc.update(np.full((5, 2), np.nan), np.ones((5, 2)))


def test_error_messages():
    x, y = related(9, n=40)
    with pytest.raises(ValueError, match="kernel must be 'linear' or 'rbf'; got 'poly'"):
        ccalens.cka(x, y, kernel="poly")
    with pytest.raises(ValueError, match="bandwidth must be a positive number"):
        ccalens.cka(x, y, kernel="rbf", bandwidth=0)
    with pytest.raises(TypeError, match="debiased must be True or False"):
        ccalens.cka(x, y, debiased="yes")
    with pytest.raises(ValueError, match="debiased CKA needs at least 4 datapoints"):
        ccalens.cka(x[:3], y[:3], debiased=True)
    with pytest.raises(ValueError, match="median distance between datapoints is 0"):
        ccalens.cka(np.r_[np.zeros((30, 2)), np.ones((3, 2))], y[:33], kernel="rbf")
    with pytest.raises(TypeError, match="works on the activations themselves, not on a Factor"):
        ccalens.cka(ccalens.factorize(x), y, kernel="rbf")
    with pytest.raises(ValueError, match="same number of datapoints"):
        ccalens.cka(x, y[:30])
    with pytest.raises(ValueError, match="need the same shape; got .40, 7. and .40, 5."):
        ccalens.cosine(x, y)
    with pytest.raises(ValueError, match="cosine similarity is undefined: Y is all zeros"):
        ccalens.cosine(x, np.zeros_like(x))
    with pytest.raises(ValueError, match="non-finite"):
        ccalens.euclidean(np.full((4, 2), np.inf), np.ones((4, 2)))


def test_rbf_refuses_kernels_that_do_not_fit(monkeypatch):
    import importlib

    cka_module = importlib.import_module("ccalens.core.cka")

    monkeypatch.setattr(cka_module, "MAX_KERNEL_BYTES", 8 * 50 * 50)
    x, y = related(0, n=60)
    with pytest.raises(ValueError, match="RBF CKA needs n x n kernels: 60 datapoints"):
        ccalens.cka(x, y, kernel="rbf")


def test_debiased_cka_refuses_a_non_positive_self_term():
    # one datapoint apart from three equal ones: the unbiased HSIC of X with itself is 0
    x = np.array([[1.0], [0.0], [0.0], [0.0]])
    y = np.array([[1.0], [2.0], [0.5], [3.0]])
    with pytest.raises(ValueError, match="unbiased HSIC of X with itself is .* <= 0"):
        ccalens.cka(x, y, debiased=True)
    with pytest.raises(ValueError, match="unbiased HSIC of X with itself"):
        ccalens.pairwise([x, y], "cka_debiased")


def test_pairwise_rbf_refuses_kernels_that_do_not_fit(monkeypatch):
    import importlib

    monkeypatch.setattr(importlib.import_module("ccalens.core.cka"), "MAX_KERNEL_BYTES", 8 * 60 * 60)
    reps = [related(s, n=80)[0] for s in range(3)]
    with pytest.raises(ValueError, match="cka_rbf keeps one n x n kernel per representation: 3 x 80"):
        ccalens.pairwise(reps, "cka_rbf")
