"""Small dense linear algebra on Gram matrices and spectra, shared by the factorisation,
the measures and streaming: a square root of a semidefinite Gram matrix, the
eigendecomposition behind the routes' conditioning test, centring, and spectra relative to
their largest value."""

from __future__ import annotations

import numpy as np
import scipy.linalg

from . import validate
from ._backend import small_lapack

__all__ = ["centred_columns", "centred_gram", "correlation_eigh", "psd_root", "relative_to_largest", "symmetrise_upper"]


def correlation_eigh(gram: np.ndarray):
    """Eigendecomposition of the correlation matrix of a centred Gram matrix (varying
    columns only): (eigenvalues ascending, eigenvectors, the columns' norms). The routes'
    conditioning test, shared with :mod:`ccalens.stream`'s per-source check."""
    scale = np.sqrt(np.diag(gram))
    corr = gram / scale[:, None] / scale[None, :]
    with small_lapack(corr):
        lam, vec = np.linalg.eigh(corr)
    return lam, vec, scale


def relative_to_largest(sigma) -> tuple[np.ndarray, float]:
    """(sigma / max(sigma), max(sigma)) for non-negative singular values (unchanged when all
    are 0): ratios of their powers then neither underflow nor overflow at any data scale."""
    sigma = np.asarray(sigma, dtype=np.float64)
    top = float(sigma.max()) if sigma.size else 0.0
    return (sigma / top if top > 0 else sigma), top


def centred_columns(arr: np.ndarray) -> np.ndarray:
    """``arr`` minus its column means, as a new float64 array, centred as :func:`factorize`
    centres: the means are the first row plus the mean of the differences from it, and the
    two parts are subtracted in turn, so a common offset far above the spread (1e10 on a
    spread of 1e-3) loses nothing that the stored values hold."""
    arr = np.asarray(arr)
    ops = validate.make_ops(arr, np.float64)
    shift, residual = ops.column_mean_parts(arr)
    return ops.centred(arr, (shift, residual))


def psd_root(c: np.ndarray) -> np.ndarray:
    """W (rank x D) with W^T W = C, for a positive semidefinite C (zero columns allowed).

    A pivoted Cholesky factor (LAPACK dpstrf) of the equilibrated C, scaled back, stopped
    where the largest remaining diagonal is below the machine epsilon (relative to the unit
    diagonal): C may be singular (streamed sources that share directions), and what is
    dropped is within the rounding C already carries. Equilibrating first keeps a column of
    small scale from being truncated against a large one.
    """
    if not np.all(np.isfinite(c)):
        raise ValueError("psd_root needs a finite matrix; this one holds NaN or inf (an overflowed Gram matrix?).")
    d = np.sqrt(np.clip(np.diag(c), 0.0, None))
    live = np.flatnonzero(d > 0)
    if live.size == 0:
        return np.zeros((1, c.shape[0]))
    corr = c[np.ix_(live, live)] / d[live][:, None] / d[live][None, :]
    with small_lapack(corr):
        u, piv, rank, info = scipy.linalg.lapack.dpstrf(corr, lower=0, tol=np.finfo(np.float64).eps)
    if info < 0:  # pragma: no cover - an argument error in the call above
        raise RuntimeError(f"dpstrf failed (info {info}).")
    u = np.triu(u)[:rank]
    w = np.zeros((max(1, rank), c.shape[0]))
    w[:rank, live[piv - 1]] = u * d[live][piv - 1][None, :]
    return w


def symmetrise_upper(a: np.ndarray, step: int = 512) -> None:
    """Copy the upper triangle of a square matrix onto its lower one, in place, block by
    block (no full-size temporary)."""
    size = a.shape[0]
    for j in range(0, size, step):
        end = min(size, j + step)
        a[end:, j:end] = a[j:end, end:].T
        d = a[j:end, j:end]
        d[...] = np.triu(d) + np.triu(d, 1).T


def centred_gram(gram: np.ndarray, constant=None, *, in_place: bool = False) -> np.ndarray:
    """The centred Gram matrix from that of [1 | shifted columns], constant columns zeroed;
    with ``in_place``, written over ``gram``'s trailing block (returned as a view of it),
    row block by row block, with no full-size temporary."""
    sums = gram[0, 1:].copy()
    with np.errstate(over="ignore", invalid="ignore"):
        if in_place:
            c, n = gram[1:, 1:], gram[0, 0]
            for i in range(0, c.shape[0], 512):
                c[i : i + 512] -= np.outer(sums[i : i + 512], sums) / n
        else:
            c = gram[1:, 1:] - np.outer(sums, sums) / gram[0, 0]
    if constant is not None:
        c[constant, :] = 0.0
        c[:, constant] = 0.0
    return c
