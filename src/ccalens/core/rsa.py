r"""Representational similarity analysis (Kriegeskorte, Mur & Bandettini 2008).

Each representation gives a representational dissimilarity matrix (RDM) over its
datapoints, and the two RDMs are compared by the correlation of their upper triangles:

* ``rdm="correlation"``: :math:`D_{ij} = 1 - r(x_i, x_j)`, the Pearson correlation of two
  datapoints' activation patterns across neurons (each pattern centred across neurons);
* ``rdm="euclidean"``: :math:`D_{ij} = \|x_i - x_j\|^2 / p`, the squared Euclidean distance
  over the number of neurons (rsatoolbox's "euclidean");
* ``compare="spearman"`` (ranks, ties averaged; dissimilarities within 1e-12 of each other,
  relative to the largest, count as tied, so that rounding cannot break a tie) or
  ``"pearson"``.

These are rsatoolbox's ``calc_rdm(..., method="correlation" | "euclidean")`` and
``compare(..., method="spearman" | "corr")``, and the tests check the values against
rsatoolbox to 1e-10. The distances are formed from differences (not from Gram matrices,
which cancel for close datapoints), in float64 on the host.

Invariances: a correlation RDM does not change when all neurons are permuted or scaled
together; a Euclidean RDM also not under rotations of the neurons or a shift of every
datapoint (and Spearman or Pearson comparisons ignore the overall scale of an RDM).

Cost: an RDM holds n(n - 1)/2 distances per representation (n x n during a permutation
null, which permutes Y's RDM instead of recomputing it); like RBF CKA it refuses above
:data:`~ccalens.core.cka.MAX_KERNEL_BYTES` per matrix, and it cannot stream.

References
----------
.. [1] N. Kriegeskorte, M. Mur, P. Bandettini. Representational similarity analysis:
   connecting the branches of systems neuroscience. Frontiers in Systems Neuroscience 2
   (2008).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import pdist, squareform

from . import registry
from .cka import check_square_memory
from .results import RSAResult
from .validate import host_matrix, unit_scaled

__all__ = ["COMPARISONS", "RDM_METHODS", "dissimilarities", "rsa"]

RDM_METHODS = ("correlation", "euclidean")
COMPARISONS = ("spearman", "pearson")


def _host(arr, name: str, layout: str, unit: bool = False) -> np.ndarray:
    x = host_matrix(arr, name, layout)
    if unit:  # a comparison of RDMs ignores their scale: an exact power of two keeps every square in range
        x = unit_scaled(x)
    n = x.shape[0]
    check_square_memory(n, "RSA needs n x n dissimilarity matrices", "matrix")
    if n < 3:
        raise ValueError(f"RSA correlates the {n * (n - 1) // 2} dissimilarities of {n} datapoints; it needs at least "
                         f"3 datapoints.")
    return x


def dissimilarities(X, method: str = "correlation", *, layout: str = "datapoints_first", name: str = "X",
                    unit: bool = False) -> np.ndarray:
    """The upper triangle (row by row, as ``scipy.spatial.distance.pdist``) of X's RDM; with
    ``unit``, of X scaled by the power of two that brings its largest value near 1 (for RSA's
    comparisons, which ignore an RDM's scale, at any finite scale of X)."""
    if method not in RDM_METHODS:
        raise ValueError(f"rdm must be one of {RDM_METHODS}; got {method!r}.")
    x = _host(X, name, layout, unit)
    if method == "euclidean":
        return pdist(x, "sqeuclidean") / x.shape[1]
    centred = x - x.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(centred, axis=1)
    flat = np.flatnonzero(norms == 0)
    if flat.size:
        raise ValueError(f"{name}: datapoint {flat[0]} (and {flat.size - 1} other(s)) has the same activation in every "
                         f"neuron, so its correlation with other datapoints is undefined; use rdm='euclidean'.")
    return np.clip(pdist(centred / norms[:, None], "sqeuclidean") / 2.0, 0.0, 2.0)  # 1 - r = |u - v|^2 / 2


def _correlate(a: np.ndarray, b: np.ndarray, names=("X", "Y")) -> float:
    a, b = a - a.mean(), b - b.mean()
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        raise ValueError(f"{names[0] if na == 0 else names[1]}'s dissimilarities are all equal (every pair of datapoints "
                         f"equally far apart), so their correlation with another RDM is undefined.")
    return float(np.clip(a @ b / (na * nb), -1.0, 1.0))


#: dissimilarities within this relative distance of each other rank as ties (Spearman)
TIE_RTOL = 1e-12


def ranks(d: np.ndarray) -> np.ndarray:
    """Spearman's ranks of dissimilarities, ties averaged. Dissimilarities that are equal in
    exact arithmetic (duplicated or integer activations) come out of floating point a few
    ulps apart, in an order that depends on the code path; values within :data:`TIE_RTOL`
    of the largest are therefore ranked as ties, so the value does not depend on rounding."""
    order = np.argsort(d, kind="stable")
    v = d[order]
    tol = TIE_RTOL * (float(np.abs(v).max()) if v.size else 0.0)  # relative: scaling an RDM keeps its ties
    starts = np.flatnonzero(np.r_[True, np.diff(v) > tol])  # where each group of ties begins, in sorted order
    ends = np.r_[starts[1:], v.size]
    average = (starts + ends + 1) / 2.0  # the mean of the 1-based ranks starts+1 .. ends
    out = np.empty(d.size)
    out[order] = np.repeat(average, ends - starts)
    return out


class RDMPair:
    """Two RDMs, kept for a permutation null (Y's RDM permuted, not recomputed)."""

    def __init__(self, dx: np.ndarray, dy: np.ndarray, compare: str):
        if compare == "spearman":  # permuting datapoints permutes the entries, so ranks permute with them
            dx, dy = ranks(dx), ranks(dy)
        self.vx = dx
        self.k = squareform(dy, checks=False)  # n x n, for the permutations
        self.value_now = _correlate(dx, dy)

    def value(self, y_rows=None) -> tuple[float, None]:
        if y_rows is None:
            return self.value_now, None
        return _correlate(self.vx, squareform(self.k[np.ix_(y_rows, y_rows)], checks=False)), None


def rsa(
    X,
    Y,
    *,
    rdm: str = "correlation",
    compare: str = "spearman",
    layout: str = "datapoints_first",
    permutations: int = 0,
    bootstrap: int = 0,
    confidence: float = 0.95,
    interval: str | None = None,
    seed=None,
) -> RSAResult:
    """Representational similarity analysis: the correlation of two RDMs' upper triangles.

    Parameters
    ----------
    X, Y : array-like or torch.Tensor, shapes (n_samples, n_neurons_x), (n_samples, n_neurons_y)
        Rows are datapoints, columns are neurons; the widths may differ.
    rdm : {"correlation", "euclidean"}
        The dissimilarity between two datapoints (see the module text).
    compare : {"spearman", "pearson"}
        How the two RDMs are correlated.
    layout
        As in :func:`ccalens.cca`.
    permutations, bootstrap, confidence, interval, seed
        Uncertainty: see :mod:`ccalens.stats`. The null permutes Y's datapoints, that is
        the rows and columns of its RDM.

    Examples
    --------
    >>> import numpy as np, ccalens
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((50, 8))
    >>> round(ccalens.rsa(X, 3 * X + 1).similarity, 12)   # a scaled, shifted copy: the same RDM
    1.0
    """
    from .resampling import attach, check_options

    check_options(permutations, bootstrap, confidence, interval)
    method, how = rdm, compare
    if how not in COMPARISONS:
        raise ValueError(f"compare must be one of {COMPARISONS}; got {how!r}.")
    dx = dissimilarities(X, method, layout=layout, name="X", unit=True)
    dy = dissimilarities(Y, method, layout=layout, name="Y", unit=True)
    if dx.size != dy.size:
        raise ValueError(f"X and Y must have the same number of datapoints: their RDMs have {dx.size} and {dy.size} "
                         f"entries. Check the layout (rows are datapoints).")
    pair = RDMPair(dx, dy, how)
    n = squareform(dx, checks=False).shape[0]
    result = RSAResult(similarity=pair.value_now, rdm=method, compare=how, n_samples=int(n))
    name = "rsa" if method == "correlation" else "rsa_euclidean"
    return attach(result, name, (X, Y), {"layout": layout, "compare": how}, permutations, bootstrap, confidence, seed,
                  kernels=pair, interval=interval)


def prepared_rdm(X, name: str = "X", *, rdm: str = "correlation", compare: str = "spearman"):
    """One representation's part of RSA, made once for every pair: its RDM's upper triangle
    (ranked, for Spearman) minus its mean, and that vector's norm."""
    d = dissimilarities(X, rdm, name=name, unit=True)
    if compare == "spearman":
        d = ranks(d)
    centred = d - d.mean()
    return centred, float(np.linalg.norm(centred)), name


def rsa_from_prepared(px, py) -> tuple[float, float]:
    """RSA of a pair from :func:`prepared_rdm`'s parts: the same arithmetic as :func:`rsa`."""
    (a, na, x), (b, nb, y) = px, py
    if a.size != b.size:
        raise ValueError(f"{x} and {y} must have the same number of datapoints: their RDMs have {a.size} and {b.size} "
                         f"entries.")
    if na == 0 or nb == 0:
        raise ValueError(f"{x if na == 0 else y}'s dissimilarities are all equal (every pair of datapoints equally "
                         f"far apart), so their correlation with another RDM is undefined.")
    v = float(np.clip(a @ b / (na * nb), -1.0, 1.0))
    return v, v


registry.register(registry.MeasureSpec(
    "rsa", "RSA (correlation RDMs)", "raw", frozenset({"isotropic_scaling", "permutation"}), rsa, family="rsa",
    prepare=prepared_rdm, from_prepared=rsa_from_prepared))
registry.register(registry.MeasureSpec(
    "rsa_euclidean", "RSA (Euclidean RDMs)", "raw", registry.ORTHOGONAL, rsa, fixed={"rdm": "euclidean"},
    family="rsa", prepare=prepared_rdm, from_prepared=rsa_from_prepared))
