r"""Nearest-neighbour alignment (Huh et al. 2024, "The platonic representation hypothesis").

Both measures compare which datapoints are near each other in X and in Y. As in the
authors' released code (``metrics.py``, with ``compute_score``'s default
``normalize=True``), each datapoint's activation vector is scaled to unit length and the
neighbours of datapoint i are the k others with the largest inner products (cosine
similarities) with it:

* ``mutual_knn``: :math:`\frac{1}{n}\sum_i |N^X_k(i) \cap N^Y_k(i)| / k`;
* ``cknna``: CKA restricted to mutual neighbours: with :math:`K = \hat X \hat X^T`,
  :math:`L = \hat Y \hat Y^T` and :math:`M_{ij} = 1` where j is among i's k nearest in
  both, :math:`\mathrm{HSIC}_1(M \circ K, M \circ L) / \sqrt{\mathrm{HSIC}_1(M_X \circ K,
  M_X \circ K)\,\mathrm{HSIC}_1(M_Y \circ L, M_Y \circ L)}`, with the authors' unbiased
  HSIC (its first term sums :math:`\tilde K \circ \tilde L^T`: the masked kernels are not
  symmetric). The authors add 1e-6 to the denominator as a guard; here a zero
  denominator is refused instead.

Ties. Where several datapoints are equally similar to i, the authors' ``argsort`` picks
among them in an order that depends on the library and device. Here the nearer index wins
(a stable sort), so the value is deterministic, and ``result.ties`` counts the datapoints
whose k-th and (k+1)-th neighbours are tied (within 1e-12), where another implementation
may choose differently.

Invariances: rotations of the neurons, scaling, and permuting them leave inner products of
unit vectors unchanged; a translation does not.

Cost: the n x n similarity matrix of each side (refused above
:data:`~ccalens.core.cka.MAX_KERNEL_BYTES`), a sort of each row; it needs the datapoints.

References
----------
.. [1] M. Huh, B. Cheung, T. Wang, P. Isola. The platonic representation hypothesis.
   ICML 2024.
"""

from __future__ import annotations

import numpy as np

from . import registry
from .cka import check_square_memory
from .results import NeighbourResult
from .validate import host_matrix, unit_scaled

__all__ = ["DEFAULT_K", "cknna", "mutual_knn", "neighbours"]

#: the number of neighbours the authors' experiments use by default
DEFAULT_K = 10

#: similarities within this (relative) distance of each other count as tied
TIE_RTOL = 1e-12


def _unit_rows(arr, name: str, layout: str) -> np.ndarray:
    x = host_matrix(arr, name, layout)
    check_square_memory(x.shape[0], "nearest neighbours need the n x n similarities", "matrix")
    # cosine similarity ignores the scale: one exact power of two brings the largest value
    # near 1, so the row norms neither overflow (1e170: every row a tie, kNN 1.0 for 0.33)
    # nor underflow (1e-170: every row "all 0"); at ordinary scales nothing changes
    x = unit_scaled(x)
    norms = np.linalg.norm(x, axis=1)
    zero = np.flatnonzero(norms == 0)
    if zero.size:
        raise ValueError(f"{name}: datapoint {zero[0]} (and {zero.size - 1} other(s)) has all activations 0, so it has "
                         f"no direction to compare; nearest neighbours by cosine similarity are undefined for it.")
    return x / norms[:, None]


def _check_k(k, n: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= n - 2:
        raise ValueError(f"k must be a whole number of neighbours from 1 to n - 2 = {n - 2} (each datapoint has n - 1 "
                         f"others, and k = n - 1 would make every datapoint a neighbour); got {k!r}.")
    return int(k)


def neighbours(kernel: np.ndarray, k: int) -> tuple[np.ndarray, int]:
    """(the k nearest others of each datapoint, (n, k) in index order; how many rows have a
    tie at the k-th).

    ``kernel`` is the n x n similarity matrix; the diagonal is excluded, and equal
    similarities are ordered by index (the nearer index first), as a stable sort by
    decreasing similarity would take them. A partition finds the k-th and (k+1)-th largest
    similarity of each row in O(n), not a sort in O(n log n)."""
    s = kernel.copy()
    np.fill_diagonal(s, -np.inf)
    n = s.shape[0]
    kth = -np.partition(-s, (k - 1, k), axis=1)[:, [k - 1, k]]  # the k-th and (k+1)-th largest per row
    above = s > kth[:, :1]
    equal = s == kth[:, :1]
    room = k - above.sum(axis=1, keepdims=True)  # slots left for the equally similar, by index
    chosen = above | (equal & (np.cumsum(equal, axis=1) <= room))
    knn = np.nonzero(chosen)[1].reshape(n, k)
    tol = TIE_RTOL * max(1.0, float(np.max(np.abs(kernel))))
    ties = int(np.count_nonzero(kth[:, 0] - kth[:, 1] <= tol))
    return knn, ties


def _mask(knn: np.ndarray) -> np.ndarray:
    n = knn.shape[0]
    mask = np.zeros((n, n))
    mask[np.arange(n)[:, None], knn] = 1.0
    return mask


def _hsic_authors(k: np.ndarray, l: np.ndarray) -> float:
    """The authors' unbiased HSIC of (possibly non-symmetric) matrices (Song et al., as written
    in their metrics.py)."""
    m = k.shape[0]
    kt, lt = k.copy(), l.copy()
    np.fill_diagonal(kt, 0.0)
    np.fill_diagonal(lt, 0.0)
    # 1' K L 1 = (1' K)(L 1): O(n^2), where their sum(K @ L) forms an n x n product in O(n^3)
    value = (np.sum(kt * lt.T) + kt.sum() * lt.sum() / ((m - 1) * (m - 2))
             - 2.0 * float(kt.sum(axis=0) @ lt.sum(axis=1)) / (m - 2))
    return float(value / (m * (m - 3)))


def _prepare(X, Y, k, layout):
    x, y = _unit_rows(X, "X", layout), _unit_rows(Y, "Y", layout)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"X and Y must have the same number of datapoints: X is {x.shape} and Y is {y.shape} as "
                         f"(datapoints, neurons).")
    k = _check_k(k, x.shape[0])
    kx, ky = x @ x.T, y @ y.T
    (nx, tx), (ny, ty) = neighbours(kx, k), neighbours(ky, k)
    return k, kx, ky, nx, ny, tx + ty


def mutual_knn(X, Y, *, k: int = DEFAULT_K, layout: str = "datapoints_first", permutations: int = 0,
               bootstrap: int = 0, confidence: float = 0.95, interval: str | None = None,
               seed=None) -> NeighbourResult:
    """Mutual k-nearest-neighbour alignment: the mean share of each datapoint's k nearest
    neighbours (by cosine similarity) that X and Y have in common.

    Parameters
    ----------
    X, Y : array-like or torch.Tensor, (n_samples, n_neurons); the widths may differ.
    k : int
        Neighbours per datapoint, 1 to n - 2.
    layout, permutations, bootstrap, confidence, interval, seed
        As in :func:`ccalens.cca`; uncertainty: see :mod:`ccalens.stats`.

    Examples
    --------
    >>> import numpy as np, ccalens
    >>> X = np.random.default_rng(0).standard_normal((40, 6))
    >>> ccalens.mutual_knn(X, 2 * X, k=5).similarity
    1.0
    """
    from .resampling import attach, check_options

    check_options(permutations, bootstrap, confidence, interval)
    k, kx, ky, nx, ny, ties = _prepare(X, Y, k, layout)
    value = mutual_knn_from_prepared((kx, _mask(nx), k, "X"), (ky, _mask(ny), k, "Y"))[0]
    result = NeighbourResult(similarity=value, k=k, ties=ties, n_samples=int(nx.shape[0]))
    return attach(result, "mutual_knn", (X, Y), {"layout": layout, "k": k}, permutations, bootstrap, confidence,
                  seed, interval=interval)


def cknna(X, Y, *, k: int = DEFAULT_K, layout: str = "datapoints_first", permutations: int = 0,
          bootstrap: int = 0, confidence: float = 0.95, interval: str | None = None, seed=None) -> NeighbourResult:
    """CKNNA: CKA of the cosine kernels restricted to mutual k nearest neighbours (see the module text).

    Parameters are those of :func:`mutual_knn` (k at least 2, and n at least 4 for the
    unbiased HSIC).
    """
    from .resampling import attach, check_options

    check_options(permutations, bootstrap, confidence, interval)
    k, kx, ky, nx, ny, ties = _prepare(X, Y, k, layout)
    value = cknna_from_prepared((kx, _mask(nx), k, "X"), (ky, _mask(ny), k, "Y"))[0]
    result = NeighbourResult(similarity=value, k=k, ties=ties, n_samples=int(kx.shape[0]))
    return attach(result, "cknna", (X, Y), {"layout": layout, "k": k}, permutations, bootstrap, confidence, seed,
                  interval=interval)


def prepared_neighbours(X, name: str = "X", *, k: int = DEFAULT_K):
    """One representation's part of mutual k-NN and CKNNA, made once for every pair: its
    cosine kernel and the mask of each datapoint's k nearest others."""
    x = _unit_rows(X, name, "datapoints_first")
    k = _check_k(k, x.shape[0])
    kernel = x @ x.T
    return kernel, _mask(neighbours(kernel, k)[0]), k, name


def _check_pair(px, py) -> None:
    if px[0].shape != py[0].shape:
        raise ValueError(f"{px[3]} and {py[3]} must have the same number of datapoints; they have {px[0].shape[0]} "
                         f"and {py[0].shape[0]}.")


def mutual_knn_from_prepared(px, py) -> tuple[float, float]:
    """:func:`mutual_knn` from :func:`prepared_neighbours`' parts (the same arithmetic)."""
    _check_pair(px, py)
    v = float((px[1] * py[1]).sum(axis=1).mean() / px[2])
    return v, v


def cknna_from_prepared(px, py) -> tuple[float, float]:
    """:func:`cknna` from :func:`prepared_neighbours`' parts (the same arithmetic)."""
    _check_pair(px, py)
    (kx, mx, k, x), (ky, my, _, y) = px, py
    if k < 2:
        raise ValueError("CKNNA needs k >= 2 (the authors' code refuses k < 2 too).")
    if kx.shape[0] < 4:
        raise ValueError(f"CKNNA's unbiased HSIC needs at least 4 datapoints; got {kx.shape[0]}.")
    both = mx * my
    xy = _hsic_authors(both * kx, both * ky)
    xx, yy = _hsic_authors(mx * kx, mx * kx), _hsic_authors(my * ky, my * ky)
    if xx <= 0 or yy <= 0:
        raise ValueError(f"CKNNA is undefined here: the HSIC of {x if xx <= 0 else y}'s neighbour-restricted kernel "
                         f"with itself is {min(xx, yy):.3g} <= 0 (the authors' code would divide by 1e-6); use more "
                         f"datapoints or a larger k.")
    v = float(xy / np.sqrt(xx * yy))
    return v, v


_ROTATIONS = frozenset({"orthogonal", "isotropic_scaling", "permutation"})
registry.register(registry.MeasureSpec("mutual_knn", "mutual k-NN alignment", "raw", _ROTATIONS, mutual_knn,
                                        family="neighbours", prepare=prepared_neighbours,
                                        from_prepared=mutual_knn_from_prepared))
registry.register(registry.MeasureSpec("cknna", "CKNNA", "raw", _ROTATIONS, cknna, family="neighbours",
                                        prepare=prepared_neighbours, from_prepared=cknna_from_prepared))
