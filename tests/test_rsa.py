"""RSA against rsatoolbox (its calc_rdm and compare) to 1e-10, on awkward inputs, with its
null, interval, pairwise and errors."""

from __future__ import annotations

import numpy as np
import pytest

import ccalens
from ccalens.core import registry

rsatoolbox = pytest.importorskip("rsatoolbox")
from rsatoolbox.data import Dataset  # noqa: E402
from rsatoolbox.rdm import calc_rdm, compare  # noqa: E402

COMPARE = {"spearman": "spearman", "pearson": "corr"}


def reference(x, y, rdm, how):
    """rsatoolbox's value; its RDMs rounded to 10 decimals, so that dissimilarities equal in exact
    arithmetic are tied there too (rsatoolbox ranks rounding noise as order)."""
    from rsatoolbox.rdm import RDMs

    rdms = [calc_rdm(Dataset(a), method=rdm) for a in (x, y)]
    rdms = [RDMs(np.round(r.get_vectors(), 10), dissimilarity_measure=rdm) for r in rdms]
    return float(compare(rdms[0], rdms[1], method=COMPARE[how])[0, 0])


def cases():
    rng = np.random.default_rng(11)
    x = rng.standard_normal((40, 6))
    yield "unequal widths", x, x @ rng.standard_normal((6, 9)) + rng.standard_normal((40, 9))
    yield "large offset", 1e3 + x, np.tanh(x) + 50.0
    # integer activations: many tied dissimilarities, which Spearman ranks as averages
    ints = rng.integers(0, 3, (25, 4)).astype(float)
    yield "ties", ints + np.arange(4), 2 * ints[:, ::-1] + np.arange(4)  # (no row is constant)
    yield "rank deficient", x[:, :2] @ rng.standard_normal((2, 6)), x
    yield "few datapoints", x[:5], x[:5] ** 2 + 0.1


@pytest.mark.parametrize("rdm", ["correlation", "euclidean"])
@pytest.mark.parametrize("how", ["spearman", "pearson"])
def test_equals_rsatoolbox(rdm, how):
    for label, x, y in cases():
        ours = ccalens.rsa(x, y, rdm=rdm, compare=how).similarity
        assert ours == pytest.approx(reference(x, y, rdm, how), abs=1e-10), label


def test_dissimilarities_equal_rsatoolbox_rdms():
    from ccalens.core.rsa import dissimilarities

    for _, x, _ in cases():
        for rdm in ("correlation", "euclidean"):
            ref = calc_rdm(Dataset(x), method=rdm).get_vectors()[0]
            np.testing.assert_allclose(dissimilarities(x, rdm), ref, atol=1e-10)


def test_registered_measures_and_their_invariances():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((60, 5))
    y = x @ rng.standard_normal((5, 7)) + rng.standard_normal((60, 7))
    base = ccalens.rsa(x, y).similarity
    q, _ = np.linalg.qr(rng.standard_normal((5, 5)))
    assert ccalens.rsa(2.5 * x[:, ::-1], y).similarity == pytest.approx(base, abs=1e-12)  # scaling, permutation
    assert abs(ccalens.rsa(x @ q, y).similarity - base) > 1e-3  # a correlation RDM is not rotation invariant
    euclid = ccalens.rsa(x, y, rdm="euclidean").similarity
    assert ccalens.rsa(3 * x @ q + rng.standard_normal(5), y, rdm="euclidean").similarity == pytest.approx(euclid,
                                                                                                            abs=1e-12)
    assert registry.MEASURES["rsa_euclidean"].compute(x, y).similarity == euclid
    assert registry.MEASURES["rsa"].compute(x, y, compare="pearson").similarity == \
        pytest.approx(reference(x, y, "correlation", "pearson"), abs=1e-10)


def test_null_interval_and_pairwise():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((50, 4))
    y = x + 2 * rng.standard_normal((50, 4))
    r = ccalens.rsa(x, y, permutations=30, bootstrap=20, seed=2)
    # the null permutes Y's RDM: the same values as the measure on Y's shuffled datapoints
    gen = np.random.default_rng(2)
    again = [ccalens.rsa(x, y[gen.permutation(50)]).similarity for _ in range(30)]
    np.testing.assert_allclose(r.null.values, again, atol=1e-12)
    assert r.null.p_value < 0.05 and r.bootstrap.method == "bca"  # RSA's default (benchmarks/interval_coverage.py)
    res = ccalens.pairwise({"x": x, "y": y, "z": np.tanh(y)}, "rsa", permutations=5, seed=1)
    assert res.similarity[0, 1] == pytest.approx(r.similarity, abs=1e-12)
    assert res.similarity[1, 2] == pytest.approx(ccalens.rsa(y, np.tanh(y)).similarity, abs=1e-12)


def test_errors_say_what_and_how():
    x = np.random.default_rng(5).standard_normal((20, 4))
    flat = x.copy()
    flat[3] = 1.0
    with pytest.raises(ValueError, match="datapoint 3 .* same activation in every neuron.*rdm='euclidean'"):
        ccalens.rsa(flat, x)
    with pytest.raises(ValueError, match="needs at least 3 datapoints"):
        ccalens.rsa(x[:2], x[:2])
    with pytest.raises(ValueError, match="dissimilarities are all equal"):
        ccalens.rsa(x, np.ones((20, 3)) * np.arange(3), rdm="euclidean")
    with pytest.raises(ValueError, match=r"rdm must be one of \('correlation', 'euclidean'\); got 'cosine'"):
        ccalens.rsa(x, x, rdm="cosine")
    with pytest.raises(ValueError, match=r"compare must be one of \('spearman', 'pearson'\); got 'kendall'"):
        ccalens.rsa(x, x, compare="kendall")
    with pytest.raises(ValueError, match="same number of datapoints"):
        ccalens.rsa(x, x[:10])
    bad = x.copy()
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="X contains 1 non-finite value.*datapoint 2, neuron 1"):
        ccalens.rsa(bad, x)


def test_tied_dissimilarities_do_not_depend_on_rounding_or_order():
    rng = np.random.default_rng(6)
    ints = rng.integers(0, 3, (30, 4)).astype(float) + np.arange(4)
    y = 2 * ints[:, ::-1] + np.arange(4)
    order = rng.permutation(30)
    a = ccalens.rsa(ints, y).similarity
    assert ccalens.rsa(ints[order], y[order]).similarity == pytest.approx(a, abs=1e-14)
    assert ccalens.rsa(ints * 0.1, y * 3.0).similarity == pytest.approx(a, abs=1e-14)  # other rounding, same ties
