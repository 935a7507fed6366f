"""Accuracy of both factorisation routes, rank handling, dtypes, and no NaN ever."""

import warnings

import numpy as np
import pytest
from conftest import related_pair

import ccalens
import oracles
from ccalens.core import factor as factor_module


def conditioned(rng, n, a, kappa):
    """Centred-rank-a data whose singular values span 1 .. 1/kappa."""
    u, _ = np.linalg.qr(rng.standard_normal((n, a)))
    v, _ = np.linalg.qr(rng.standard_normal((a, a)))
    return (u * np.geomspace(1, 1 / kappa, a)) @ v.T


@pytest.mark.parametrize("kappa", [10.0, 1e2, 2e2])
def test_gram_route_is_exact_where_it_is_used(rng, kappa, monkeypatch):
    x = conditioned(rng, 3000, 40, kappa)
    y = x[:, :30] @ rng.standard_normal((30, 30)) + 0.5 * rng.standard_normal((3000, 30)) * x[:, :30].std(0)
    fx = ccalens.factorize(x)
    assert fx.method == "gram"  # kappa <= 316 after equilibration takes the one-pass route
    ref_rho = oracles.cca_svd(x, y)[0]
    np.testing.assert_allclose(ccalens.cca(x, y).rho, ref_rho, atol=1e-11)
    assert ccalens.pwcca(x, y).similarity == pytest.approx(oracles.pwcca_paper(x, y), abs=1e-11)


def test_ill_conditioned_data_take_the_stable_route(rng):
    x = conditioned(rng, 3000, 40, 1e7)
    y = x[:, :30] @ rng.standard_normal((30, 30)) + 0.5 * rng.standard_normal((3000, 30)) * x[:, :30].std(0)
    assert ccalens.factorize(x).method == "householder"
    np.testing.assert_allclose(ccalens.cca(x, y).rho, oracles.cca_svd(x, y)[0], atol=1e-9)


def test_neuron_scales_from_1e_minus_3_to_1e3(rng):
    x, y = related_pair(rng, n=4000, a=30, b=20)
    plain = ccalens.factorize(x)
    x = x * np.geomspace(1e-3, 1e3, 30)
    y = y * np.geomspace(1e3, 1e-3, 20)
    ref = oracles.cca_svd(x, y)[0]
    np.testing.assert_allclose(ccalens.cca(x, y).rho, ref, atol=1e-10)
    assert ccalens.pwcca(x, y).similarity == pytest.approx(oracles.pwcca_paper(x, y), abs=1e-10)
    # equilibration makes the scales irrelevant: same route, same conditioning
    scaled = ccalens.factorize(x)
    assert scaled.method == plain.method
    assert scaled.rcond == pytest.approx(plain.rcond, rel=1e-6)


@pytest.mark.parametrize("gap", [1e-4, 1e-6, 1e-8])
def test_near_duplicate_neurons(rng, gap):
    x, y = related_pair(rng, n=4000, a=20, b=15)
    x = np.c_[x, x[:, :5] + gap * rng.standard_normal((4000, 5)) * x[:, :5].std(0)]
    ref_rho, _, _ = oracles.cca_svd(x, y)
    np.testing.assert_allclose(ccalens.cca(x, y).rho, ref_rho, atol=1e-8)
    assert ccalens.pwcca(x, y).similarity == pytest.approx(oracles.pwcca_paper(x, y), abs=1e-8)
    assert ccalens.factorize(x).method == ("gram2" if gap == 1e-4 else "householder")


@pytest.mark.parametrize("kappa", [3e3, 1e4, 1e5])
def test_two_pass_route_for_moderate_ill_conditioning(rng, kappa):
    x = conditioned(rng, 3000, 40, kappa)
    y = x[:, :30] @ rng.standard_normal((30, 30)) + 0.5 * rng.standard_normal((3000, 30)) * x[:, :30].std(0)
    f = ccalens.factorize(x)
    assert f.method == "gram2" and f.rank == 40
    q = np.asarray(f.basis())
    np.testing.assert_allclose(q.T @ q, np.eye(40), atol=1e-13)
    xc = x - x.mean(0)
    np.testing.assert_allclose(q @ f.projections, xc, atol=1e-12 * np.abs(xc).max())
    np.testing.assert_allclose(ccalens.cca(x, y).rho, oracles.cca_svd(x, y)[0], atol=1e-12)
    assert ccalens.pwcca(x, y).similarity == pytest.approx(oracles.pwcca_paper(x, y), abs=1e-12)
    assert ccalens.pwcca(y, x).similarity == pytest.approx(oracles.pwcca_paper(y, x), abs=1e-12)


def test_user_rtol_applies_on_every_route(rng):
    x = conditioned(rng, 2000, 20, 100.0)  # singular values 1 .. 0.01: the one-pass route
    assert ccalens.factorize(x).method == "gram"
    coarse = ccalens.factorize(x, rtol=0.05)
    expected = int(np.count_nonzero(np.geomspace(1, 0.01, 20) > 0.05 * 1.0001))
    assert coarse.method == "householder" and abs(coarse.rank - expected) <= 1


def test_exact_duplicates_and_linear_dependence_reduce_the_rank(rng):
    x, y = related_pair(rng, a=10, b=8)
    x_dup = np.c_[x, x[:, 0], x[:, 1] - 2 * x[:, 2]]
    f = ccalens.factorize(x_dup)
    assert f.rank == 10 and f.method == "householder" and f.rcond == 0.0
    res = ccalens.cca(x_dup, y)
    assert res.x_rank == 10
    np.testing.assert_allclose(res.rho, ccalens.cca(x, y).rho, atol=1e-10)
    assert ccalens.pwcca(x_dup, y).similarity == pytest.approx(oracles.pwcca_paper(x_dup, y), abs=1e-10)


def test_dead_and_constant_neurons_are_dropped_and_reported(rng):
    x, y = related_pair(rng, a=10, b=8)
    x_dead = np.c_[np.zeros(len(x)), x[:, :5], np.full(len(x), 3.7), x[:, 5:]]
    res = ccalens.cca(x_dead, y)
    assert res.x_dropped == (0, 6) and res.x_rank == 10
    np.testing.assert_allclose(res.rho, ccalens.cca(x, y).rho, atol=1e-12)
    assert np.all(np.asarray(res.x_directions)[[0, 6]] == 0)
    pw = ccalens.pwcca(x_dead, y)
    assert pw.similarity == pytest.approx(ccalens.pwcca(x, y).similarity, abs=1e-12)


def test_fewer_datapoints_than_neurons_warns_and_stays_finite(rng):
    x, y = rng.standard_normal((30, 50)), rng.standard_normal((30, 40))
    with pytest.warns(ccalens.SmallSampleWarning, match=r"at least 250 datapoints"):
        res = ccalens.cca(x, y)
    assert res.x_rank == 29 and res.y_rank == 29  # centring removes one dimension
    # both sides span every centred direction: all correlations are 1
    np.testing.assert_allclose(res.rho, 1.0, atol=1e-10)
    with pytest.warns(ccalens.SmallSampleWarning):
        ridge = ccalens.pwcca(x, y, epsilon=1.0)
    assert np.isfinite(ridge.similarity) and ridge.similarity < 0.9


def test_small_sample_warning_counts_the_forced_ones(rng):
    x, y = rng.standard_normal((60, 40)), rng.standard_normal((60, 30))
    with pytest.warns(ccalens.SmallSampleWarning, match=r"at least 11 correlation\(s\) are exactly 1"):
        res = ccalens.cca(x, y)
    rho = np.asarray(res.rho)
    assert np.sum(rho > 1 - 1e-10) == 11 and rho[11] < 1 - 1e-6


def test_small_sample_warning_threshold(rng):
    x, y = rng.standard_normal((100, 20)), rng.standard_normal((100, 10))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ccalens.mean_cca(x, y)  # 5x the widest side: no warning
    with pytest.warns(ccalens.SmallSampleWarning, match="biased upward"):
        ccalens.mean_cca(x[:99], y[:99])


@pytest.mark.parametrize(
    "make",
    [
        lambda r: np.zeros((50, 3)) + np.arange(3),  # every neuron constant: an error, not NaN
    ],
)
def test_all_constant_is_an_error_not_nan(rng, make):
    with pytest.raises(ValueError, match="no varying neuron"):
        ccalens.cca(make(rng), rng.standard_normal((50, 2)))


def test_no_nan_on_awkward_finite_input(rng):
    cases = [
        np.c_[np.ones(200), rng.standard_normal((200, 3))],  # one dead unit
        np.repeat(rng.standard_normal((200, 1)), 4, axis=1),  # four copies of one neuron
        rng.standard_normal((200, 3)) * 1e-150,  # tiny values
        rng.standard_normal((200, 3)) * 1e150,  # huge values
        rng.standard_normal((200, 3)) + 1e12,  # a large offset
        np.maximum(rng.standard_normal((200, 6)) @ rng.standard_normal((6, 6)), 0),  # ReLU
    ]
    y = rng.standard_normal((200, 2))
    for x in cases:
        for measure in (ccalens.cca, ccalens.mean_cca, ccalens.pwcca, ccalens.svcca):
            res = measure(x, y)
            assert np.isfinite(res.similarity) and np.all(np.isfinite(np.asarray(res.rho)))


def test_integer_and_low_precision_input_is_computed_in_float64(rng):
    x, y = related_pair(rng)
    xi = np.round(x * 100).astype(np.int64)
    x32, y32 = x.astype(np.float32), y.astype(np.float32)
    ref = ccalens.cca(x32.astype(np.float64), y32.astype(np.float64)).rho
    np.testing.assert_array_equal(ccalens.cca(x32, y32).rho, ref)
    assert ccalens.cca(xi, y).rho.dtype == np.float64
    np.testing.assert_allclose(ccalens.cca(xi, y).rho, ccalens.cca(xi.astype(float), y).rho, atol=0)
    x16 = x.astype(np.float16)
    np.testing.assert_allclose(ccalens.cca(x16, y).rho, ccalens.cca(x16.astype(np.float64), y).rho, atol=0)
    # dtype=float32 computes in float32: close, not identical
    r32 = ccalens.cca(x32, y32, dtype=np.float32).rho
    assert np.abs(r32 - ref).max() < 1e-3


def test_inputs_are_never_modified(rng):
    x, y = related_pair(rng)
    x_copy, y_copy = x.copy(), y.copy()
    ccalens.pwcca(x, y, symmetric=True)
    ccalens.cca(np.c_[x, x[:, 0]], y)  # the Householder route works in place on its copy
    np.testing.assert_array_equal(x, x_copy)
    np.testing.assert_array_equal(y, y_copy)


def test_rtol_controls_the_rank(rng):
    x, y = related_pair(rng, a=10, b=8)
    x = np.c_[x, x[:, 0] + 1e-9 * rng.standard_normal(len(x))]
    assert ccalens.factorize(x).rank == 11
    assert ccalens.factorize(x, rtol=1e-6).rank == 10


def test_route_thresholds_are_what_the_docs_say():
    eps = np.finfo(np.float64).eps
    assert factor_module.GRAM_MAX_ROUNDING / eps == pytest.approx(1e5)
    assert factor_module.GRAM2_MAX_ROUNDING / eps == pytest.approx(1e11)


def weak_shared_direction(rng, n, d):
    """Two sides whose weakest direction (relative size d) is the one they share."""
    z, w = rng.standard_normal((n, 4)), rng.standard_normal((n, 3))
    x = np.c_[z[:, 0], z[:, 0] + d * z[:, 1], z[:, 2], z[:, 3]]
    y = np.c_[w[:, 0], w[:, 0] + d * (z[:, 1] + 0.1 * w[:, 1]), w[:, 2]]
    return x, y


@pytest.mark.parametrize("seed", range(6))
def test_routes_agree_at_the_gram_threshold(seed, monkeypatch):
    # adversarial case at the edge of the one-pass route: the shared direction is the
    # weakest one, where squaring the condition number costs the most
    x, y = weak_shared_direction(np.random.default_rng(seed), 20000, 6.5e-3)
    assert ccalens.factorize(x).method == "gram"
    fast = np.asarray(ccalens.cca(x, y).rho)
    monkeypatch.setattr(factor_module, "GRAM_MAX_ROUNDING", 0.0)
    monkeypatch.setattr(factor_module, "GRAM2_MAX_ROUNDING", 0.0)
    assert ccalens.factorize(x).method == "householder"
    np.testing.assert_allclose(fast, ccalens.cca(x, y).rho, atol=1e-10)


@pytest.mark.parametrize("scale", [1e-170, 1e-160, 1e160, 1e200])
def test_extreme_magnitudes_are_rescaled_not_lost(rng, scale):
    x, y = related_pair(rng, n=2000, a=10, b=8)
    ref_rho, ref_pw = ccalens.cca(x, y).rho, ccalens.pwcca(y, x).similarity
    np.testing.assert_allclose(ccalens.cca(x * scale, y).rho, ref_rho, atol=1e-12)
    assert ccalens.pwcca(y, x * scale).similarity == pytest.approx(ref_pw, abs=1e-12)
    one_tiny = np.c_[x, scale * rng.standard_normal(len(x))]
    res = ccalens.cca(one_tiny, y)
    assert np.all(np.isfinite(np.asarray(res.rho)))
    np.testing.assert_allclose(res.rho, ccalens.cca(np.c_[x, one_tiny[:, -1] / scale], y).rho, atol=1e-12)
    pw = ccalens.pwcca(x * scale, y)
    assert pw.similarity == pytest.approx(ccalens.pwcca(x, y).similarity, abs=1e-12)


def test_float32_computation_stays_float32_accurate(rng):
    torch = pytest.importorskip("torch")
    x, y = weak_shared_direction(rng, 20000, 1e-2)
    x, y = x.astype(np.float32), y.astype(np.float32)
    ref = np.asarray(ccalens.cca(x, y).rho)  # computed in float64
    r32 = np.asarray(ccalens.cca(x, y, dtype=np.float32).rho)
    t32 = ccalens.cca(torch.from_numpy(x), torch.from_numpy(y), dtype=torch.float32).rho.numpy()
    assert np.abs(r32 - ref).max() < 1e-4
    assert np.abs(t32 - ref).max() < 1e-4


def test_large_offset_with_few_datapoints_keeps_the_centred_rank(rng):
    x = rng.standard_normal((30, 50)) + 1e3
    with pytest.warns(ccalens.SmallSampleWarning):
        res = ccalens.cca(x, rng.standard_normal((30, 40)))
    assert res.x_rank == 29 and len(res.rho) == 29


@pytest.mark.parametrize("offset", [1e6, 1e10])
def test_offsets_far_above_the_spread_are_centred_exactly(rng, offset):
    # numpy sums a column row by row, losing about n * eps * offset: at 1e10 the mean was off
    # by a tenth of the spread and rho by 0.08. The stored deviations from the offset are
    # exact (Sterbenz), so the offset-free data give the true values.
    x, y = related_pair(rng, n=6000, a=20, b=15)
    xo, yo = x * 1e-3 + offset, y * 1e-3 + offset
    np.testing.assert_allclose(ccalens.cca(xo, yo).rho, ccalens.cca(xo - offset, yo - offset).rho, atol=1e-12)
    for fn in (ccalens.pwcca, ccalens.cka, ccalens.procrustes):
        assert fn(xo, yo).similarity == pytest.approx(fn(xo - offset, yo - offset).similarity, abs=1e-12)
    f = ccalens.factorize(xo)
    np.testing.assert_allclose(f.mean - offset, (xo - offset).mean(0), atol=4e-16 * offset)  # two units in the last place


@pytest.mark.parametrize("offset", [1e6, 1e10])
def test_every_translation_invariant_measure_keeps_what_a_far_offset_stores(rng, offset):
    # the registry's measures that declare translation invariance give, on data offset far
    # above its spread, the value of the deviations the array actually stores (predictivity
    # centred with plain means and was 1.5e-5 off at 1e10)
    from ccalens.core import registry

    x, y = related_pair(rng, n=600, a=20, b=20)
    xo, yo = x * 1e-3 + offset, y * 1e-3 + offset
    checked = []
    for name, spec in registry.MEASURES.items():
        if spec.alias_of is None and "translation" in spec.invariant_to:
            far, stored = spec.compute(xo, yo).similarity, spec.compute(xo - offset, yo - offset).similarity
            assert far == pytest.approx(stored, abs=1e-12), name
            checked.append(name)
    assert {"pwcca", "cka", "predictivity", "rsa_euclidean", "shape"} <= set(checked)


@pytest.mark.parametrize("scale", [1e-300, 1e-170, 1e170, 1e300])
def test_svcca_keeps_the_same_directions_at_extreme_scales(rng, scale):
    # the variance shares are ratios: squaring singular values of 1e-170 underflowed to 0,
    # every share was NaN and SVCCA kept one direction (0.39 for 0.92)
    x, y = related_pair(rng, n=300, a=10, b=8)
    for keep in (0.99, 0.8):
        ref = ccalens.svcca(x, y, keep=keep)
        got = ccalens.svcca(x * scale, y * scale, keep=keep)
        assert (got.x_components, got.y_components) == (ref.x_components, ref.y_components)
        assert got.similarity == pytest.approx(ref.similarity, abs=1e-12)


@pytest.mark.parametrize("scale", [1e-300, 1e-170, 1e-160, 1e150, 1e170, 1e300])
def test_every_scale_invariant_factor_measure_at_extreme_scales(rng, scale):
    # from the factors, each measure is a ratio of powers of the PCA spectrum: taken on the
    # spectrum itself they under- or overflowed (CKA NaN, Procrustes 0 or 1 at 1e-160 and
    # 1e150); taken relative to each side's largest value they stay exact at any scale
    from ccalens.core import registry

    x, y = related_pair(rng, n=300, a=10, b=8)
    checked = []
    for name, spec in registry.MEASURES.items():
        if spec.alias_of is None and spec.kind == "factor":
            got = spec.compute(x * scale, y * scale).similarity
            if "isotropic_scaling" in spec.invariant_to:
                assert got == pytest.approx(spec.compute(x, y).similarity, abs=1e-12), name
                checked.append(name)
            else:  # the shape metric with alpha > 0 depends on the scale, but stays a number
                assert np.isfinite(got), name
    assert {"pwcca", "svcca", "cka", "cka_debiased", "procrustes", "shape_cca"} <= set(checked)
    res = ccalens.cka(x * scale, y * scale, debiased=True)  # the HSIC terms at the data's own scale
    assert res.hsic_xx > 0 or scale < 1 and res.hsic_xx == 0.0


def test_batched_svd_matches_numpy_with_one_or_many_blas_threads(rng):
    from threadpoolctl import threadpool_limits

    from ccalens.core._backend import batched_svd

    m = rng.standard_normal((37, 40, 30))
    u, s, vh = np.linalg.svd(m, full_matrices=False)
    for limit in (1, 2):
        with threadpool_limits(limits=limit, user_api="blas"):
            bu, bs, bvh = batched_svd(m)
            np.testing.assert_allclose(bs, s, rtol=0, atol=1e-12)
            # singular vectors up to sign: the reconstruction and |u| agree
            np.testing.assert_allclose(bu * bs[:, None, :] @ bvh, m, atol=1e-12)
            np.testing.assert_allclose(np.abs(bu), np.abs(u), atol=1e-9)
            np.testing.assert_allclose(batched_svd(m, compute_uv=False), s, rtol=0, atol=1e-12)
    assert batched_svd(m[:1], compute_uv=False).shape == (1, 30)


def test_blas_parallel_map_keeps_order_and_raises(monkeypatch):
    from ccalens.core import _backend

    monkeypatch.setattr(_backend, "_blas_threads", lambda: 2)
    assert _backend.blas_parallel_map(lambda k: k * k, list(range(9))) == [k * k for k in range(9)]
    assert _backend._chunks(5, 8) == [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)]
    assert _backend._chunks(10, 3) == [(0, 3), (3, 6), (6, 10)]

    def boom(k):
        raise ValueError(f"item {k}")

    with pytest.raises(ValueError, match="item"):
        _backend.blas_parallel_map(boom, [1, 2])


def test_svd_falls_back_to_gesvd_where_gesdd_does_not_converge(monkeypatch):
    """numpy's gesdd once failed on a layer against itself (Q^T Q = I up to rounding) with a
    single-threaded OpenBLAS; every SVD of the core then takes LAPACK's gesvd instead."""
    from ccalens.core import _backend

    rng = np.random.default_rng(0)
    x = rng.standard_normal((400, 12))
    y = x @ rng.standard_normal((12, 12)) + 0.3 * rng.standard_normal((400, 12))
    expected = {f.__name__: f(x, y).similarity for f in (ccalens.pwcca, ccalens.mean_cca, ccalens.svcca)}
    stack = rng.standard_normal((5, 20, 20))
    expected_stack = np.linalg.svd(stack, compute_uv=False)
    real = np.linalg.svd
    calls = {"failed": 0}

    def gesdd_fails(*args, **kwargs):
        calls["failed"] += 1
        raise np.linalg.LinAlgError("SVD did not converge")

    monkeypatch.setattr(np.linalg, "svd", gesdd_fails)
    for f in (ccalens.pwcca, ccalens.mean_cca, ccalens.svcca):
        assert f(x, y).similarity == pytest.approx(expected[f.__name__], abs=1e-12)
    np.testing.assert_allclose(_backend.batched_svd(stack, compute_uv=False), expected_stack, atol=1e-12)
    u, s, vh = _backend.svd(stack[0])
    np.testing.assert_allclose((u * s) @ vh, stack[0], atol=1e-12)
    assert calls["failed"] > 3
    monkeypatch.setattr(np.linalg, "svd", real)
    bad = stack[0].copy()
    bad[0, 0] = np.nan
    with pytest.raises(np.linalg.LinAlgError):  # not finite: no fallback hides it
        monkeypatch.setattr(np.linalg, "svd", gesdd_fails)
        _backend.svd(bad)


def test_small_lapack_calls_run_single_threaded_and_restore_the_count():
    """Neuron-sized LAPACK calls take one BLAS thread; concurrent callers share one counted
    limit, and the process's thread count is what it was once every call has ended."""
    import threading

    from threadpoolctl import threadpool_info

    from ccalens.core._backend import SMALL_LAPACK, small_lapack

    def blas_threads():
        return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]

    before = blas_threads()
    with small_lapack(np.eye(64)):
        assert set(blas_threads()) == {1}
        with small_lapack(np.eye(8)):  # nested
            assert set(blas_threads()) == {1}
        assert set(blas_threads()) == {1}
    assert blas_threads() == before
    with small_lapack(np.empty((SMALL_LAPACK + 1, 2))):  # large: untouched
        assert blas_threads() == before
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2000, 40))
    y = x @ rng.standard_normal((40, 30)) + rng.standard_normal((2000, 30))
    ref = ccalens.pwcca(x, y).similarity
    values, errors = [], []

    def work():
        try:
            for _ in range(5):
                values.append(ccalens.pwcca(x, y).similarity)
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(values) == 20
    np.testing.assert_allclose(values, ref, atol=1e-12)
    assert blas_threads() == before


def test_the_blas_thread_count_survives_callers_in_several_threads():
    """Only the main thread sets the process-wide limit; with small LAPACK calls and
    blas_parallel_map running in other threads at the same time, the count is restored."""
    import threading

    from threadpoolctl import threadpool_info

    from ccalens.core import _backend

    def blas_threads():
        return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]

    before = blas_threads()
    rng = np.random.default_rng(0)
    mats = [rng.random((40, 40)) for _ in range(4)]

    def mapper():
        for _ in range(100):
            _backend.blas_parallel_map(np.linalg.svd, mats)

    def single():
        for _ in range(200):
            _backend.svd(mats[0])

    threads = [threading.Thread(target=mapper), threading.Thread(target=single)]
    for t in threads:
        t.start()
    for _ in range(100):
        _backend.blas_parallel_map(np.linalg.svd, mats)
        _backend.svd(mats[1])
    for t in threads:
        t.join()
    assert blas_threads() == before
