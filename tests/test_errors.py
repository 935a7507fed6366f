"""Every error message: what was wrong, and how to fix it."""

import numpy as np
import pytest

import ccalens


@pytest.fixture
def xy(rng):
    return rng.standard_normal((100, 4)), rng.standard_normal((100, 3))


def test_nan_names_the_array_count_and_first_position(xy):
    x, y = xy
    y = y.copy()
    y[7, 2] = np.nan
    y[9, 0] = np.inf
    with pytest.raises(ValueError, match=r"Y contains 2 non-finite value\(s\) \(NaN or Inf\); the first is at datapoint 7, neuron 2"):
        ccalens.cca(x, y)
    x = x.copy()
    x[0, 3] = -np.inf
    with pytest.raises(ValueError, match=r"X contains 1 non-finite .* datapoint 0, neuron 3"):
        ccalens.pwcca(x, y)


def test_nan_is_checked_in_compat_and_factorize_too(xy):
    x, y = xy
    x = x.copy()
    x[5, 1] = np.nan
    with pytest.raises(ValueError, match="X contains 1 non-finite"):
        ccalens.pwcca(x, y, compat="svcca")
    with pytest.raises(ValueError, match="X contains 1 non-finite"):
        ccalens.factorize(x)


def test_mismatched_datapoints_show_both_shapes(xy):
    x, y = xy
    with pytest.raises(ValueError, match=r"X has shape \(100, 4\) and Y has shape \(90, 3\).*layout='neurons_first'"):
        ccalens.mean_cca(x, y[:90])
    with pytest.raises(ValueError, match=r"same number of datapoints"):
        ccalens.pwcca(x, y[:90], compat="svcca")
    with pytest.raises(ValueError, match=r"same number of datapoints"):
        ccalens.cca(ccalens.factorize(x), y[:90])


def test_wrong_dimensions(xy):
    x, y = xy
    with pytest.raises(ValueError, match=r"X must be 2-D .* got shape \(100, 2, 2\).*average over H and W"):
        ccalens.cca(x.reshape(100, 2, 2), y)
    with pytest.raises(ValueError, match=r"Y must be 2-D .* got shape \(100,\).*reshape to \(N, 1\)"):
        ccalens.cca(x, y[:, 0])


def test_too_few_datapoints_and_no_neurons(xy):
    x, y = xy
    with pytest.raises(ValueError, match=r"X has 1 datapoint\(s\).*at least 2 are needed"):
        ccalens.cca(x[:1], y[:1])
    with pytest.raises(ValueError, match=r"Y has no neurons"):
        ccalens.cca(x, y[:, :0])


def test_non_numeric_input(xy):
    x, y = xy
    with pytest.raises(TypeError, match="X must be an array of activations.*got str"):
        ccalens.cca("activations.npy", y)
    with pytest.raises(TypeError, match="Y must be an array of activations.*got NoneType"):
        ccalens.cca(x, None)
    with pytest.raises(TypeError, match="complex dtype"):
        ccalens.cca(x.astype(complex), y)
    with pytest.raises(TypeError, match=r"must hold numbers; got an array of dtype <U1"):
        ccalens.cca(np.full((100, 2), "a"), y)
    with pytest.raises(TypeError, match="could not be read as a 2-D array"):
        ccalens.cca([[1.0, 2.0], [3.0]], y)


def test_bad_options(xy):
    x, y = xy
    with pytest.raises(ValueError, match="layout must be 'datapoints_first'.*got 'rows'"):
        ccalens.cca(x, y, layout="rows")
    with pytest.raises(ValueError, match=r"epsilon must be a finite number >= 0.*got -0.1"):
        ccalens.cca(x, y, epsilon=-0.1)
    with pytest.raises(TypeError, match="epsilon must be a real number"):
        ccalens.pwcca(x, y, epsilon="small")
    with pytest.raises(ValueError, match="dtype must be float64 .* or float32.*int32"):
        ccalens.cca(x, y, dtype=np.int32)
    with pytest.raises(ValueError, match="dtype must be float64"):
        ccalens.cca(x, y, dtype="not-a-dtype")
    with pytest.raises(ValueError, match=r"rtol must be None .* got 2"):
        ccalens.cca(x, y, rtol=2)
    with pytest.raises(ValueError, match=r"keep must be a share of variance in \(0, 1\]; got 1.5"):
        ccalens.svcca(x, y, keep=1.5)
    with pytest.raises(ValueError, match="n_components must be a positive int or a pair"):
        ccalens.svcca(x, y, n_components=0)
    with pytest.raises(ValueError, match=r"n_components=4 for Y, but Y has only 3"):
        ccalens.svcca(x, y, n_components=4)
    with pytest.raises(TypeError, match="symmetric must be True or False"):
        ccalens.pwcca(x, y, symmetric="yes")


def test_all_constant_neurons(xy):
    _, y = xy
    with pytest.raises(ValueError, match=r"X has no varying neuron: all 3 neuron\(s\) are constant over the 100 datapoints"):
        ccalens.pwcca(np.ones((100, 3)), y)


def test_layout_option_is_explicit_never_guessed(xy):
    x, y = xy
    # (neurons, datapoints) arrays are not transposed silently: their datapoint counts differ
    with pytest.raises(ValueError, match="same number of datapoints"):
        ccalens.cca(x.T, y.T)
    res = ccalens.cca(x.T, y.T, layout="neurons_first")
    assert res.rho == pytest.approx(ccalens.cca(x, y).rho)


def test_overflowing_values(xy):
    _, y = xy
    x = np.full((100, 2), 1.5e308)
    x[::2] *= -0.5
    x[:3] = 1.7e308
    with pytest.raises(ValueError, match=r"X has values too large to sum in float64.*rescale it"):
        ccalens.cca(x, y)


def test_torch_specific_errors(xy):
    torch = pytest.importorskip("torch")
    x, y = xy
    with pytest.raises(TypeError, match="X has complex dtype torch.complex128"):
        ccalens.cca(torch.from_numpy(x.astype(complex)), y)
    meta = torch.empty((100, 3), dtype=torch.float64, device="meta")
    with pytest.raises(ValueError, match=r"X is on device cpu and Y on device meta; move both to one device"):
        ccalens.cca(torch.from_numpy(x), meta)


def test_plot_without_matplotlib_says_how_to_install(monkeypatch, tmp_path):
    import sys

    from ccalens.experiments import fig2

    result = fig2.run(fig2.Fig2Config(n_samples=300, signal_dims=3, noise_dims=(2, 6), seeds=(0,)))
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"pip install 'ccalens\[plot\]'"):
        fig2.plot(result, tmp_path / "f.png")
