"""DFT-CCA for conv layers: exact on translation-invariant data, and its error messages."""

import numpy as np
import pytest

import ccalens


def circular_conv(x, kernel):
    out = np.zeros(x.shape[:3] + (kernel.shape[-1],))
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            out += np.roll(x, (dy, dx), axis=(1, 2)) @ kernel[dy + 1, dx + 1]
    return out


def every_shift(a):
    """Every circular shift of every input: a translation-invariant dataset."""
    h, w = a.shape[1:3]
    return np.concatenate([np.roll(a, (i, j), axis=(1, 2)) for i in range(h) for j in range(w)])


def conv_pair(seed, n0=30, h=4, w=5, c=3, d=2):
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((n0, h, w, c))
    x = every_shift(base)
    y = np.tanh(every_shift(circular_conv(base, rng.standard_normal((3, 3, c, d))))) + 0.3 * every_shift(
        rng.standard_normal((n0, h, w, d)))
    return x, y


@pytest.mark.parametrize("seed", range(3))
def test_equals_cca_of_all_position_channel_neurons_on_shift_invariant_data(seed):
    x, y = conv_pair(seed)
    n, h, w, c = x.shape
    r = ccalens.dft_cca(x, y)
    full = np.sort(np.asarray(ccalens.cca(x.reshape(n, -1), y.reshape(n, -1)).rho))[::-1]
    assert r.rho.size == full.size == h * w * 2
    np.testing.assert_allclose(r.rho, full, rtol=0, atol=1e-10)
    assert abs(r.similarity - full.mean()) < 1e-10
    assert r.rho_by_frequency.shape == (h, w, 2) and np.all(r.ranks == 2)
    # real data: frequencies f and -f are conjugate, with the same correlations
    np.testing.assert_allclose(r.rho_by_frequency[1, 1], r.rho_by_frequency[-1, -1], atol=1e-12)
    # it is not the positions-as-datapoints CCA (the covariances summed over frequencies)
    pooled = ccalens.cca(x.reshape(-1, c), y.reshape(-1, 2)).rho
    assert abs(float(np.mean(pooled)) - r.similarity) > 0.05


def test_dc_frequency_is_cca_of_spatial_sums():
    x, y = conv_pair(4)
    r = ccalens.dft_cca(x, y)
    dc = ccalens.cca(x.sum(axis=(1, 2)), y.sum(axis=(1, 2))).rho
    np.testing.assert_allclose(r.rho_by_frequency[0, 0], dc, atol=1e-12)


def test_channels_first_and_torch():
    x, y = conv_pair(5)
    r = ccalens.dft_cca(x, y)
    np.testing.assert_allclose(ccalens.dft_cca(np.moveaxis(x, 3, 1), np.moveaxis(y, 3, 1), channels="first").rho, r.rho, atol=1e-13)
    torch = pytest.importorskip("torch")
    np.testing.assert_allclose(ccalens.dft_cca(torch.from_numpy(x), torch.from_numpy(y)).rho, r.rho, atol=1e-13)


def test_different_spatial_sizes_keep_the_shared_low_frequencies():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((200, 6, 6, 3))
    y = x[:, ::2, ::2, :2] + 0.1 * rng.standard_normal((200, 3, 3, 2))
    r = ccalens.dft_cca(x, y)
    assert r.shape == (3, 3) and r.rho_by_frequency.shape == (3, 3, 2)
    assert np.all(np.isfinite(r.rho)) and 0 < r.similarity < 1


def test_rank_deficient_frequencies_are_not_nan():
    rng = np.random.default_rng(7)
    x = np.repeat(rng.standard_normal((50, 1, 1, 3)), 4, axis=1).repeat(4, axis=2)  # constant over space
    y = x[..., :2] * 2.0 + 1.0
    r = ccalens.dft_cca(x, y)
    assert r.ranks[0, 0] == 2 and r.ranks.sum() == 2  # only the DC frequency carries anything
    np.testing.assert_allclose(r.rho, [1.0, 1.0], atol=1e-10)


def per_frequency_reference(x, y, rtol=1e-10):
    """Complex CCA per frequency from SVD bases with a rank cut, pooled (independent of the
    library's Gram/SVD hybrid)."""
    fx, fy = np.fft.fft2(x, axes=(1, 2)), np.fft.fft2(y, axes=(1, 2))
    vals = []
    for i in range(x.shape[1]):
        for j in range(x.shape[2]):
            bases = []
            for f in (fx[:, i, j], fy[:, i, j]):
                u, s, _ = np.linalg.svd(f - f.mean(axis=0), full_matrices=False)
                bases.append(u[:, : int((s > rtol * s[0]).sum())] if s[0] > 0 else u[:, :0])
            vals += list(np.linalg.svd(bases[0].conj().T @ bases[1], compute_uv=False))
    return np.sort(vals)[::-1]


def test_fewer_datapoints_than_channels_gives_no_spurious_directions():
    rng = np.random.default_rng(8)
    x, y = rng.standard_normal((6, 3, 3, 10)), rng.standard_normal((6, 3, 3, 10))
    r = ccalens.dft_cca(x, y)
    # centred data span n - 1 = 5 dimensions per frequency, and both sides span all of them
    assert np.all(r.ranks == 5) and r.rho.size == 45
    np.testing.assert_allclose(r.rho, 1.0, atol=1e-10)


def test_collinear_channels_match_a_per_frequency_svd_reference():
    rng = np.random.default_rng(9)
    x = rng.standard_normal((400, 4, 4, 5))
    x[..., 4] = x[..., 0] + x[..., 1]
    y = np.tanh(x[..., :3]) + 0.5 * rng.standard_normal((400, 4, 4, 3))
    y = np.concatenate([y, y[..., :1] - y[..., 1:2]], axis=-1)
    r = ccalens.dft_cca(x, y)
    ref = per_frequency_reference(x, y)
    assert np.all(r.ranks == 3) and r.rho.size == ref.size == 48
    np.testing.assert_allclose(r.rho, ref, atol=1e-10)


def test_errors():
    x = np.zeros((10, 4, 4, 3))
    for bad in (-1, 2, "a"):
        with pytest.raises(ValueError, match="rtol must be None"):
            ccalens.dft_cca(x + np.arange(3), x + np.arange(3), rtol=bad)
    rng = np.random.default_rng(10)
    with pytest.raises(ValueError, match="X has no varying neuron: all 3 channel.* constant over the 10 datapoints"):
        ccalens.dft_cca(np.ones((10, 4, 4, 3)), rng.standard_normal((10, 4, 4, 2)))
    with pytest.raises(ValueError, match="must be 4-D conv activations"):
        ccalens.dft_cca(x.reshape(10, -1), x)
    with pytest.raises(ValueError, match="channels must be 'last'"):
        ccalens.dft_cca(x, x, channels="middle")
    with pytest.raises(ValueError, match="same number of datapoints"):
        ccalens.dft_cca(x, x[:5])
    with pytest.raises(ValueError, match="non-finite"):
        ccalens.dft_cca(np.full((10, 2, 2, 1), np.nan), x[:, :2, :2, :1])
    with pytest.raises(TypeError, match="must hold real numbers"):
        ccalens.dft_cca(x.astype(complex), x)
    with pytest.raises(ValueError, match="at least 2 datapoints"):
        ccalens.dft_cca(x[:1], x[:1])
