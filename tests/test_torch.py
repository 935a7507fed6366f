"""torch tensors: same numbers, computed on the tensor's device, torch in -> torch out."""

import subprocess
import sys

import numpy as np
import pytest
from conftest import related_pair

import ccalens

torch = pytest.importorskip("torch")


def test_import_never_imports_torch():
    code = "import sys, numpy as np, ccalens; ccalens.pwcca(np.random.rand(50, 3), np.random.rand(50, 2)); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("extra", ["plain", "ill_conditioned", "rank_deficient", "dead_neuron"])
def test_numpy_and_torch_paths_agree(rng, extra):
    x, y = related_pair(rng, n=2000, a=12, b=9)
    if extra == "ill_conditioned":
        x = np.c_[x, x[:, 0] + 1e-4 * x[:, 0].std() * rng.standard_normal(len(x))]
        assert ccalens.factorize(x).method == ccalens.factorize(torch.from_numpy(x)).method == "gram2"
    elif extra == "rank_deficient":
        x = np.c_[x, x[:, 0] - x[:, 1]]
    elif extra == "dead_neuron":
        x = np.c_[x, np.zeros(len(x))]
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    for measure in (ccalens.mean_cca, ccalens.svcca, ccalens.pwcca):
        a, b = measure(x, y), measure(tx, ty)
        assert b.similarity == pytest.approx(a.similarity, abs=1e-12)
        assert isinstance(b.rho, torch.Tensor)
        np.testing.assert_allclose(b.rho.numpy(), a.rho, atol=1e-12)
    res = ccalens.cca(tx, ty, variates=True)
    ref = ccalens.cca(x, y, variates=True)
    assert isinstance(res.x_variates, torch.Tensor) and res.x_variates.dtype == torch.float64
    np.testing.assert_allclose(res.x_variates.numpy(), ref.x_variates, atol=1e-10)
    np.testing.assert_allclose(res.x_directions.numpy(), ref.x_directions, atol=1e-9)
    sym_t, sym_n = ccalens.pwcca(tx, ty, symmetric=True), ccalens.pwcca(x, y, symmetric=True)
    assert sym_t.similarity == pytest.approx(sym_n.similarity, abs=1e-12)


def test_float32_tensors_are_computed_in_float64_by_default(rng):
    x, y = related_pair(rng)
    tx, ty = torch.from_numpy(x).float(), torch.from_numpy(y).float()
    res = ccalens.cca(tx, ty)
    assert res.rho.dtype == torch.float64
    ref = ccalens.cca(x.astype(np.float32), y.astype(np.float32)).rho
    np.testing.assert_allclose(res.rho.numpy(), ref, atol=1e-12)
    low = ccalens.cca(tx, ty, dtype=torch.float32)
    assert np.abs(low.rho.numpy() - ref).max() < 1e-3


def test_mixed_numpy_and_torch_inputs_and_factors(rng):
    x, y = related_pair(rng)
    ref = ccalens.pwcca(x, y).similarity
    assert ccalens.pwcca(torch.from_numpy(x), y).similarity == pytest.approx(ref, abs=1e-12)
    fx = ccalens.factorize(torch.from_numpy(x))
    assert fx.ops.name == "torch"
    assert ccalens.pwcca(fx, y).similarity == pytest.approx(ref, abs=1e-12)
    with pytest.raises(TypeError, match="Factor built from numpy data and the other is a torch"):
        ccalens.pwcca(ccalens.factorize(x), torch.from_numpy(y))
    with pytest.raises(TypeError, match="different array libraries"):
        ccalens.pwcca(ccalens.factorize(x), fx)


def test_torch_nan_message_and_compat(rng):
    x, y = related_pair(rng)
    tx = torch.from_numpy(x).clone()
    tx[3, 4] = float("nan")
    with pytest.raises(ValueError, match="X contains 1 non-finite value.*datapoint 3, neuron 4"):
        ccalens.cca(tx, torch.from_numpy(y))
    res = ccalens.pwcca(torch.from_numpy(x), torch.from_numpy(y), compat="svcca")
    assert isinstance(res.weights, torch.Tensor)
    assert res.similarity == pytest.approx(ccalens.pwcca(x, y, compat="svcca").similarity, abs=1e-12)


def test_tensors_requiring_grad_are_accepted(rng):
    x, y = related_pair(rng)
    tx = torch.from_numpy(x).requires_grad_(True)
    assert ccalens.mean_cca(tx, torch.from_numpy(y)).similarity == pytest.approx(ccalens.mean_cca(x, y).similarity, abs=1e-12)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_tensors_stay_on_the_gpu(rng):  # pragma: no cover - run on the GPU machine
    x, y = related_pair(rng, n=20000, a=64, b=48)
    tx, ty = torch.from_numpy(x).cuda(), torch.from_numpy(y).cuda()
    res = ccalens.pwcca(tx, ty)
    assert res.rho.device.type == "cuda"
    assert res.similarity == pytest.approx(ccalens.pwcca(x, y).similarity, abs=1e-10)


@pytest.mark.parametrize("offset", [1e6, 1e10])
def test_tensors_offset_far_above_their_spread_are_centred_exactly(rng, offset):
    # as tests/test_numerics.py's numpy case: the mean is the first row plus the mean of the
    # differences from it, so a large common offset loses nothing on the torch path either
    x, y = related_pair(rng, n=6000, a=20, b=15)
    xo, yo = torch.from_numpy(x * 1e-3 + offset), torch.from_numpy(y * 1e-3 + offset)
    plain = ccalens.cca(xo - offset, yo - offset).rho.numpy()
    np.testing.assert_allclose(ccalens.cca(xo, yo).rho.numpy(), plain, atol=1e-12)
    for fn in (ccalens.pwcca, ccalens.cka):
        assert fn(xo, yo).similarity == pytest.approx(fn(xo - offset, yo - offset).similarity, abs=1e-12)
