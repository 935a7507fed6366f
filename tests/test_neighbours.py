"""Mutual k-NN and CKNNA against the formulas of Huh et al.'s released metrics.py (written
out here in torch, step by step), ties, pairwise and errors."""

from __future__ import annotations

import numpy as np
import pytest

import ccalens
from ccalens.core import registry

torch = pytest.importorskip("torch")


def _theirs(x, y, k):
    """mutual_knn and cknna (unbiased), as their code computes them after normalize=True,
    without the 1e-6 guard in CKNNA's denominator."""
    a = torch.nn.functional.normalize(torch.as_tensor(x, dtype=torch.float64), p=2, dim=-1)
    b = torch.nn.functional.normalize(torch.as_tensor(y, dtype=torch.float64), p=2, dim=-1)
    n = a.shape[0]

    def knn(f):
        return (f @ f.T).fill_diagonal_(-1e8).argsort(dim=1, descending=True)[:, :k]

    rows = torch.arange(n).unsqueeze(1)
    ma, mb = torch.zeros(n, n, dtype=torch.float64), torch.zeros(n, n, dtype=torch.float64)
    ma[rows, knn(a)] = 1.0
    mb[rows, knn(b)] = 1.0
    mutual = float(((ma * mb).sum(dim=1) / k).mean())

    def hsic(kk, ll):
        kt, lt = kk.clone().fill_diagonal_(0), ll.clone().fill_diagonal_(0)
        v = (kt * lt.T).sum() + kt.sum() * lt.sum() / ((n - 1) * (n - 2)) - 2 * (kt @ lt).sum() / (n - 2)
        return float(v / (n * (n - 3)))

    def sim(kk, ll):
        ik = torch.topk(kk.clone().fill_diagonal_(float("-inf")), k, dim=1)[1]
        il = torch.topk(ll.clone().fill_diagonal_(float("-inf")), k, dim=1)[1]
        mask = torch.zeros(n, n, dtype=torch.float64).scatter_(1, ik, 1) * \
            torch.zeros(n, n, dtype=torch.float64).scatter_(1, il, 1)
        return hsic(mask * kk, mask * ll)

    kk, ll = a @ a.T, b @ b.T
    return mutual, sim(kk, ll) / np.sqrt(sim(kk, kk) * sim(ll, ll))


@pytest.mark.parametrize("k", [2, 5, 10])
def test_equal_to_the_authors_formulas(k):
    rng = np.random.default_rng(k)
    x = rng.standard_normal((60, 8))
    for y in (x @ rng.standard_normal((8, 12)) + 0.7 * rng.standard_normal((60, 12)),  # unequal widths
              np.tanh(x[:, :3] @ rng.standard_normal((3, 8))),  # rank deficient
              1e3 * x + 0.1 * rng.standard_normal((60, 8))):  # large scale
        mutual, cknna = _theirs(x, y, k)
        a, b = ccalens.mutual_knn(x, y, k=k), ccalens.cknna(x, y, k=k)
        assert a.ties == 0 and a.similarity == pytest.approx(mutual, abs=1e-12)
        assert b.similarity == pytest.approx(cknna, abs=1e-10)


def test_ties_are_broken_by_index_and_counted():
    from ccalens.core.neighbours import neighbours

    # unit vectors at these angles: datapoints 1 and 2 are twins, equally near to everything
    angles = np.r_[0, 0.1, 0.1, 0.5, 1.0, 2.0, 2.6, 3.3, 4.0, 4.9, 5.5]
    x = np.c_[np.cos(angles), np.sin(angles)]
    knn, ties = neighbours(x @ x.T, 1)
    assert knn[0].tolist() == [1] and ties == 3  # datapoint 0's nearest: 1 or its twin 2; the lower index wins
    knn, ties = neighbours(x @ x.T, 2)
    assert sorted(knn[0].tolist()) == [1, 2] and ties == 1  # both twins inside: no tie at the 2nd for datapoint 0
    y = np.c_[np.cos(1.3 * angles), np.sin(1.3 * angles), 0.1 * angles]
    r = ccalens.mutual_knn(x, y, k=1)
    assert r.ties == 5  # both sides' counts, reported in the result
    # the same data in another scale and rounding: the same ties, broken the same way
    again = ccalens.mutual_knn(7.0 * x, 0.3 * y, k=1)
    assert (again.similarity, again.ties) == (r.similarity, r.ties)


def test_registered_invariances_hold():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((50, 6))
    y = x @ rng.standard_normal((6, 6)) + rng.standard_normal((50, 6))
    q, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    for name in ("mutual_knn", "cknna"):
        spec = registry.MEASURES[name]
        base = spec.compute(x, y, k=5).similarity
        assert spec.compute(2.0 * x @ q, y, k=5).similarity == pytest.approx(base, abs=1e-12)
        assert spec.compute(x, y[:, ::-1], k=5).similarity == pytest.approx(base, abs=1e-12)
        assert "translation" not in spec.invariant_to


def test_pairwise_and_nulls():
    rng = np.random.default_rng(5)
    reps = {f"r{i}": rng.standard_normal((40, 4)) @ rng.standard_normal((4, 6)) for i in range(3)}
    res = ccalens.pairwise(reps, "cknna")
    assert res.similarity[0, 2] == pytest.approx(ccalens.cknna(reps["r0"], reps["r2"]).similarity, abs=1e-12)
    r = ccalens.mutual_knn(reps["r0"], reps["r0"] + 0.1 * rng.standard_normal((40, 6)), permutations=19, seed=0)
    assert r.null.p_value == pytest.approx(0.05)


def test_errors():
    x = np.random.default_rng(6).standard_normal((12, 3))
    with pytest.raises(ValueError, match="k must be a whole number of neighbours from 1 to n - 2 = 10"):
        ccalens.mutual_knn(x, x, k=11)
    with pytest.raises(ValueError, match="CKNNA needs k >= 2"):
        ccalens.cknna(x, x, k=1)
    zero = x.copy()
    zero[5] = 0.0
    with pytest.raises(ValueError, match="datapoint 5 .* has all activations 0"):
        ccalens.mutual_knn(zero, x, k=3)
    with pytest.raises(ValueError, match="same number of datapoints"):
        ccalens.cknna(x, x[:10], k=3)


@pytest.mark.parametrize("scale", [1e-300, 1e-170, 1e170, 1e300])
def test_extreme_scales_give_the_same_neighbours(scale):
    # cosine neighbours ignore the scale; the row norms overflowed at 1e170 (every
    # similarity tied: mutual kNN 1.0 for 0.33) and underflowed at 1e-170 ("all activations 0")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((300, 10))
    y = x @ rng.standard_normal((10, 8)) + rng.standard_normal((300, 8))
    for fn in (ccalens.mutual_knn, ccalens.cknna):
        assert fn(x * scale, y * scale).similarity == pytest.approx(fn(x, y).similarity, abs=1e-12)
