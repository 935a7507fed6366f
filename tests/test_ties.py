"""PWCCA on exactly tied canonical correlations: one canonical basis, the same number on every path.

Inside a block of tied correlations the canonical variates are not unique and the L1
weights depend on the basis taken; ccalens fixes it (X's principal axes within the tied
subspace, :func:`ccalens.core.measures.projection_weights`). Before, a layer against its
own ReLU gave 0.872216, 0.871533 and 0.872739 on three paths.
"""

from __future__ import annotations

import numpy as np
import pytest

import ccalens
from ccalens import stream
from ccalens.core.measures import projection_weights, tie_blocks
from ccalens.engine import pairwise


def _cases():
    rng = np.random.default_rng(11)
    n = 1500
    z = rng.standard_normal((n, 9)) @ rng.standard_normal((9, 9))
    offset = np.r_[40.0, 40.0, 40.0, np.zeros(6)]  # three units never below 0: ReLU leaves them as they are
    layer = z + offset
    relu = np.maximum(layer, 0.0)
    # four of X's units, two of them twice, beside units of their own: four correlations exactly 1
    duplicated = np.c_[layer[:, [0, 0, 1, 2, 3, 3]] * np.r_[1, 2, 1, 1, 1, -1], rng.standard_normal((n, 4))]
    return {"relu": (layer, relu), "duplicated": (layer, duplicated), "identical": (layer, layer.copy())}


CASES = _cases()


@pytest.mark.parametrize("case", list(CASES))
def test_every_path_gives_the_same_pwcca_on_tied_correlations(case):
    x, y = CASES[case]
    rho = np.asarray(ccalens.cca(x, y).rho)
    assert tie_blocks(rho), "the case must have tied correlations"
    single = ccalens.pwcca(x, y)
    sym = ccalens.pwcca(x, y, symmetric=True)
    values = {
        "factors": ccalens.pwcca(ccalens.factorize(x), ccalens.factorize(y)).similarity,
        "symmetric forward": sym.forward,
        "pairwise": pairwise({"x": x, "y": y}, "pwcca").similarity[0, 1],
        "pairwise block": pairwise({"x": x, "y": y, "x2": x + 1.0}, "pwcca", block=1).similarity[0, 1],
        "stream": stream.compare(x, y, "pwcca", chunk_rows=400).similarity,
        "neurons first": ccalens.pwcca(x.T, y.T, layout="neurons_first").similarity,
        "rows permuted": ccalens.pwcca(x[::-1], y[::-1]).similarity,
    }
    torch = pytest.importorskip("torch")
    values["torch"] = float(ccalens.pwcca(torch.from_numpy(x), torch.from_numpy(y)).similarity)
    for path, value in values.items():
        assert value == pytest.approx(single.similarity, abs=1e-10), path
    reverse = pairwise({"x": x, "y": y}, "pwcca").similarity[1, 0]
    assert reverse == pytest.approx(sym.reverse, abs=1e-10)


def test_dask_gives_the_same_pwcca_on_tied_correlations():
    pytest.importorskip("distributed")
    from dask.distributed import Client, LocalCluster

    x, y = CASES["relu"]
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        remote = pairwise({"x": x, "y": y}, "pwcca", scheduler=client).similarity[0, 1]
    assert remote == pytest.approx(ccalens.pwcca(x, y).similarity, abs=1e-10)


def test_the_tied_basis_is_the_principal_axes_within_the_tied_subspace():
    rng = np.random.default_rng(0)
    inner = rng.standard_normal((4, 6))
    rho = np.array([1.0, 1.0, 1.0 - 1e-12, 0.5])
    assert tie_blocks(rho) == [slice(0, 3)]
    assert tie_blocks(np.array([0.9, 0.8, 0.7])) == []
    w = projection_weights(rho, inner)
    # any rotation of the tied rows gives the same weights
    q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    rotated = inner.copy()
    rotated[:3] = q @ inner[:3]
    np.testing.assert_allclose(projection_weights(rho, rotated), w, atol=1e-12)
    # and they are the L1 norms of S V^T's rows (principal axes), independently computed
    _, s, vt = np.linalg.svd(inner[:3], full_matrices=False)
    alpha = np.r_[np.abs(s[:, None] * vt).sum(axis=1), np.abs(inner[3]).sum()]
    np.testing.assert_allclose(w, alpha / alpha.sum(), atol=1e-12)
    # untied rows are used as they are
    np.testing.assert_allclose(projection_weights(np.array([0.9, 0.5]), inner[:2]),
                               np.abs(inner[:2]).sum(1) / np.abs(inner[:2]).sum(), atol=1e-15)
