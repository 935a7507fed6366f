r"""The per-representation factorisation that every measure reuses.

For a representation :math:`X` (n datapoints x a neurons) we compute once:

* the neuron means and the centred data :math:`X_c`;
* the constant neurons (dropped and reported: they carry nothing to correlate);
* an orthonormal basis :math:`Q_0` (n x r) of the column space of :math:`X_c`, held
  implicitly as ``basis_data @ basis_coef``, and the coordinates :math:`T` (r x k) of the
  *equilibrated* data :math:`X_s = X_c D^{-1}` in it (:math:`D` = the neurons' centred
  norms): :math:`X_s = Q_0 T`.

Canonical correlations are the singular values of :math:`Q_{0,x}^T Q_{0,y}`; nothing of
length n is needed after the factorisation except that one cross product.

Two routes lead to the same kind of factor:

``"gram"``
    One pass over the data: :math:`G = X_c^T X_c` (BLAS syrk), scaled to the correlation
    matrix :math:`C = D^{-1} G D^{-1}`. Its eigenvalues decide the route; if
    :math:`\epsilon\,\kappa^2 \le` ``GRAM_MAX_ROUNDING`` (in float64
    :math:`\sigma_{min}/\sigma_{max} \ge 3.2 \times 10^{-3}`), a Cholesky factor
    :math:`C = L L^T` gives :math:`T = L^T` and :math:`Q_0 = X_c D^{-1} L^{-T}`, never formed.
    Forming :math:`G` squares the condition number; under this bound the rounding it adds
    to the canonical correlations stays below about 3e-11 in the worst case we found, and
    near 1e-13 typically (``tests/test_numerics.py``).

``"gram2"``
    Moderately ill-conditioned data (:math:`\epsilon\,\kappa^2 \le`
    ``GRAM2_MAX_ROUNDING``, in float64 :math:`\sigma_{min}/\sigma_{max} \ge 3.2 \times 10^{-6}`): a
    second Gram pass over the explicitly whitened data (CholeskyQR2), stable as Householder
    in this range at half its cost.

``"householder"``
    Otherwise (near-duplicate neurons, rank deficiency, fewer datapoints than neurons): a
    Householder QR of :math:`X_s`, then an SVD of its small R factor. This is backward
    stable whatever the conditioning, and rank-revealing: singular values of :math:`X_s`
    at or below ``rtol * s_max`` are treated as zero (default ``rtol`` = max(n, a) times
    the machine epsilon of the computation dtype, numpy's ``matrix_rank`` rule).

Column equilibration (:math:`D^{-1}`) is exact for CCA, which is invariant to the scale
of each neuron, and it removes the ill-conditioning that neuron scales alone would cause.
Columns whose squares would overflow or underflow are first rescaled by powers of two.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import scipy.linalg

from . import validate
from ._backend import small_lapack, svd
from .linalg import relative_to_largest

#: The one-pass Gram route is taken when eps * kappa^2 <= GRAM_MAX_ROUNDING, with kappa the
#: condition number of the equilibrated data and eps that of the computation dtype. In
#: float64 that is kappa^2 <= 1e5 (sigma_min / sigma_max >= 3.2e-3), where the worst case
#: found adds 3e-11 to a canonical correlation; in float32 the route is never taken.
GRAM_MAX_ROUNDING = 1e5 * float(np.finfo(np.float64).eps)

#: The two-pass route is taken when eps * kappa^2 <= GRAM2_MAX_ROUNDING: in float64,
#: kappa^2 <= 1e11 (sigma_min / sigma_max >= 3.2e-6); in float32, kappa <= 13.
GRAM2_MAX_ROUNDING = 1e11 * float(np.finfo(np.float64).eps)


@dataclass(frozen=True, eq=False, repr=False)
class Factor:
    """One representation, factorised once and reused by every comparison.

    Build it with :func:`factorize`; every measure accepts a ``Factor`` wherever it
    accepts an array. Attributes are read-only.

    Attributes
    ----------
    n_samples, n_neurons : int
        Shape of the (datapoints, neurons) input.
    mean : ndarray, shape (n_neurons,)
        The neuron means that were subtracted.
    kept : ndarray of int
        Indices of the non-constant neurons that enter the analysis.
    dropped : tuple of int
        Indices of constant neurons (dead units), removed and reported.
    scale : ndarray, shape (len(kept),)
        Euclidean norm of each kept centred neuron.
    coords : ndarray, shape (rank, len(kept))
        Coordinates T of the equilibrated data in the basis: X_s = Q_0 T.
    rank : int
        Number of directions kept.
    method : {"gram", "gram2", "householder"}
        The route taken (see the module docstring).
    rcond : float
        sigma_min / sigma_max of the equilibrated data (0 when rank deficient).
    """

    n_samples: int
    n_neurons: int
    mean: Any
    kept: np.ndarray
    dropped: tuple[int, ...]
    scale: np.ndarray
    basis_data: Any = field(repr=False)
    basis_coef: np.ndarray = field(repr=False)
    coords: np.ndarray = field(repr=False)
    method: str
    rcond: float
    ops: Any = field(repr=False)

    @property
    def rank(self) -> int:
        return int(self.coords.shape[0])

    @cached_property
    def coords_svd(self):
        """SVD of the coordinates, T = U diag(s) V^T: (U, s, V).

        ``s`` are the singular values of the equilibrated centred data; ridge CCA and the
        neuron-space directions are expressed through them.
        """
        u, sv, vt = svd(self.coords, full_matrices=False)
        return u, sv, vt.T

    @property
    def singular_values(self) -> np.ndarray:
        """Singular values of the equilibrated centred data, descending."""
        return self.coords_svd[1]

    @cached_property
    def projections(self) -> np.ndarray:
        """:math:`Q_0^T X_c` restricted to the kept neurons, shape (rank, len(kept)).

        Entry (i, j) is the inner product of basis vector i with centred neuron j; PWCCA's
        weights are built from it without touching the data again.
        """
        return self.coords * self.scale[None, :]

    @cached_property
    def pca(self):
        """SVD of the centred (not equilibrated) data within the basis: (U_r, sigma).

        The centred data equal ``Q_0 @ U_r @ diag(sigma) @ W.T``; SVCCA keeps the
        leading columns of ``Q_0 @ U_r``.
        """
        u, sigma, _ = svd(self.projections, full_matrices=False)
        return u, sigma

    @cached_property
    def unit_spectrum(self) -> tuple[np.ndarray, float]:
        """(sigma / sigma_max, sigma_max): the PCA singular values relative to the largest.

        The scale-invariant measures are ratios of powers of sigma; taken on sigma itself,
        those powers underflow for data below about 1e-77 (sigma^4) and overflow above
        1e77, where CKA became NaN and Procrustes 0 or 1. Relative to the largest they
        stay in range at any scale.
        """
        return relative_to_largest(self.pca[1])

    @cached_property
    def gram_frobenius(self) -> float:
        """:math:`\\|X_c^T X_c\\|_F`, the norm linear CKA divides by (from the PCA spectrum;
        0 or inf only where the value itself is beyond float64's range)."""
        unit, top = self.unit_spectrum
        with np.errstate(over="ignore", under="ignore"):
            return float(top * top * np.sqrt(np.sum(unit**4)))

    @cached_property
    def unit_row_sqnorms(self) -> np.ndarray:
        """Squared norm of each centred datapoint over sigma_max^2, shape (n_samples,), as
        float64 numpy (relative, as :attr:`unit_spectrum`).

        The debiased (unbiased-HSIC) CKA needs them; one (n x rank) product, made once.
        """
        u, _ = self.pca
        unit, _ = self.unit_spectrum
        rows = self.ops.matmul_small(self.basis(), u * unit[None, :])
        return self.ops.to_numpy((rows * rows).sum(1))

    def basis(self):
        """The orthonormal basis Q_0 (n_samples x rank), in the input's array type."""
        return self.ops.matmul_small(self.basis_data, self.basis_coef)

    def __repr__(self) -> str:
        return (
            f"Factor(n_samples={self.n_samples}, n_neurons={self.n_neurons}, rank={self.rank}, "
            f"dropped={len(self.dropped)}, method={self.method!r}, backend={self.ops.name!r})"
        )


def factorize(
    X,
    *,
    layout: str = "datapoints_first",
    dtype=None,
    rtol: float | None = None,
    name: str = "X",
) -> Factor:
    """Factorise one representation for reuse across comparisons.

    Parameters
    ----------
    X : array-like or torch.Tensor, shape (n_samples, n_neurons)
        Activations: rows are datapoints, columns are neurons.
    layout : {"datapoints_first", "neurons_first"}
        ``"neurons_first"`` accepts google/svcca's (neurons, datapoints) arrays.
    dtype : float64 (default) or float32
        Computation dtype; int, float16 and float32 input is computed in float64 by default.
    rtol : float, optional
        Relative rank tolerance on the singular values of the equilibrated data.
    name : str
        How error messages refer to this array.

    Returns
    -------
    Factor
    """
    arr = validate.as_matrix(X, name, layout)
    ops = validate.make_ops(arr, dtype)
    rtol = validate.check_rtol(rtol)
    return factorize_matrix(arr, ops, rtol, name)


def _mean(arr, ops, name):
    """Column means, with the finiteness check folded in (a NaN or Inf poisons its mean), and
    what :meth:`centred` subtracts (the two parts of ``column_mean_parts`` where there are two)."""
    shift, residual = ops.column_mean_parts(arr)
    mean = shift if residual is None else shift + residual
    mean_np = ops.to_numpy(mean)
    if not np.all(np.isfinite(mean_np)):
        validate.check_finite(ops, arr, name)  # raises, naming the first bad entry
        raise ValueError(
            f"{name} has values too large to sum in {ops.dtype} (the column means overflow); "
            f"rescale it, for example divide by its largest absolute value."
        )
    return mean, mean_np, (mean if residual is None else (shift, residual))


def _gram_in_range(gram: np.ndarray, xc, ops) -> bool:
    """False when squares overflowed or fell into (or below) the subnormal range."""
    d = np.diag(gram)
    info = np.finfo(np.float32 if ops.eps > 1e-10 else np.float64)  # numpy or torch dtype
    if not np.all(np.isfinite(d)) or np.any(d > float(info.max) * 1e-8):
        return False
    if np.any((d > 0) & (d < float(info.tiny) * 1e8)):
        return False
    zero = np.flatnonzero(d == 0)  # exactly zero columns, or squares that underflowed to 0
    return not (zero.size and np.any(ops.column_absmax(ops.select_columns(xc, zero)) > 0))


def _safe_gram(xc, ops):
    """The Gram matrix of xc and the power-of-two column scales applied to xc (or None).

    Values beyond about 1e+/-150 (float64) overflow or underflow when squared; such
    columns are rescaled in place by exact powers of two, which CCA does not see.
    """
    gram = ops.gram(xc)
    if _gram_in_range(gram, xc, ops):
        return gram, None
    exponents = np.frexp(ops.column_absmax(xc))[1].astype(float)
    units = np.ldexp(1.0, exponents.astype(int))
    ops.scale_columns_(xc, units)
    return ops.gram(xc), units


def factorize_matrix(arr, ops, rtol, name) -> Factor:
    mean, mean_np, centre = _mean(arr, ops, name)
    xc = ops.centred(arr, centre)
    gram, units = _safe_gram(xc, ops)
    return _from_gram(arr, xc, gram, mean, mean_np, ops, rtol, name, units)


def factorize_pair(ax, ay, ops, rtol):
    """Both sides at once: one centred (n x (a + b)) buffer and one Gram matrix of it.

    The joint Gram holds both sides' Gram matrices and their cross product; a single
    syrk computes all three faster than two syrks and a GEMM. Returns the two factors and
    the cross block X_c^T Y_c, for :func:`ccalens.core.measures` to reuse.
    """
    mx, mx_np, cx = _mean(ax, ops, "X")
    my, my_np, cy = _mean(ay, ops, "Y")
    a = ax.shape[1]
    joint = ops.empty((ax.shape[0], a + ay.shape[1]))
    xc = ops.centred(ax, cx, out=joint[:, :a])
    yc = ops.centred(ay, cy, out=joint[:, a:])
    gram = ops.gram(joint)
    if not _gram_in_range(gram, joint, ops):  # extreme magnitudes: each side on its own, rescaled
        gx, ux = _safe_gram(xc, ops)
        gy, uy = _safe_gram(yc, ops)
        fx = _from_gram(ax, xc, gx, mx, mx_np, ops, rtol, "X", ux)
        fy = _from_gram(ay, yc, gy, my, my_np, ops, rtol, "Y", uy)
        return fx, fy, None
    fx = _from_gram(ax, xc, gram[:a, :a], mx, mx_np, ops, rtol, "X")
    fy = _from_gram(ay, yc, gram[a:, a:], my, my_np, ops, rtol, "Y")
    return fx, fy, gram[:a, a:]


def _from_gram(arr, xc, gram, mean, mean_np, ops, rtol, name, units=None) -> Factor:
    """Finish a factor from the centred data and its Gram matrix.

    ``units`` are the power-of-two scales already applied to xc's columns (None when
    none were needed); the factor's ``scale`` is in the input's own units.
    """
    n, a = arr.shape
    sumsq = np.diag(gram).copy()
    # Constant (dead) neurons: only columns whose spread is below 1e-6 of their mean are
    # suspects; for those, constant means max - min within a few units of rounding.
    constant = np.zeros(a, dtype=bool)
    rms = np.sqrt(sumsq / n) * (1.0 if units is None else units)  # in the input's units
    suspects = np.flatnonzero(rms <= 1e-6 * np.abs(mean_np))
    if suspects.size:
        spread = ops.column_spread(arr, suspects)
        constant[suspects] = spread <= 4.0 * ops.eps * np.abs(mean_np[suspects])
    kept = np.flatnonzero(~constant)
    dropped = tuple(int(i) for i in np.flatnonzero(constant))
    if kept.size == 0:
        raise ValueError(
            f"{name} has no varying neuron: all {a} neuron(s) are constant over the {n} "
            f"datapoints, so there is nothing to correlate. Check that the right layer was "
            f"recorded and that the inputs differ."
        )
    if dropped:
        xc = ops.select_columns(xc, kept)
        gram = gram[np.ix_(kept, kept)]
    tol = rtol if rtol is not None else max(n, kept.size) * ops.eps

    scale = np.sqrt(np.diag(gram))  # norms of the (possibly power-of-two scaled) columns
    true_scale = scale if units is None else scale * units[kept]
    corr = gram / scale[:, None] / scale[None, :]
    with small_lapack(corr):
        lam = np.linalg.eigvalsh(corr)
    rcond2 = max(lam[0], 0.0) / lam[-1]
    floor2 = (rtol or 0.0) ** 2  # a user's rtol can ask for rank loss the routes below ignore
    common = dict(
        n_samples=n, n_neurons=a, mean=mean, kept=kept, dropped=dropped, scale=true_scale, ops=ops
    )
    # eps * kappa^2 <= bound, written without dividing by a possibly zero rcond2
    if ops.eps <= GRAM_MAX_ROUNDING * rcond2 and rcond2 >= floor2 and n > kept.size:
        lower, inv_lower = _cholesky(corr)
        return Factor(
            **common,
            basis_data=xc,
            basis_coef=inv_lower.T / scale[:, None],
            coords=lower.T,
            method="gram",
            rcond=float(np.sqrt(rcond2)),
        )

    if ops.eps <= GRAM2_MAX_ROUNDING * rcond2 and rcond2 >= floor2 and n > kept.size:
        # Moderately ill-conditioned: two Gram passes (CholeskyQR2 with eigenvectors).
        # Pass 1 whitens with the eigendecomposition of the correlation matrix,
        # Q_1 = X_s V_1 diag(lambda_1)^(-1/2), formed in place of X_c; its columns are
        # orthonormal to about eps * kappa^2 (at most ~1e-5 here). Pass 2 orthonormalises
        # Q_1 through its own Gram matrix, close to the identity, so its Cholesky factor
        # loses nothing. One GEMM and one syrk more than the one-pass route, about half
        # the cost of a Householder QR.
        with small_lapack(corr):
            lam1, v1 = np.linalg.eigh(corr)
        q1 = ops.right_multiply_(xc, (v1 / np.sqrt(lam1)[None, :]) / scale[:, None])
        lower2, inv_lower2 = _cholesky(ops.gram(q1))
        return Factor(
            **common,
            basis_data=q1,
            basis_coef=inv_lower2.T,
            # X_s = Q_1 diag(lambda_1)^(1/2) V_1^T and Q_1 = Q_0 L_2^T
            coords=lower2.T @ (np.sqrt(lam1)[:, None] * v1.T),
            method="gram2",
            rcond=float(np.sqrt(rcond2)),
        )

    xs = ops.scale_columns_(xc, scale)
    # centre again: removes the rounding left by the first centring (about eps * |mean|),
    # which would otherwise count as one more direction when the data have a large offset
    xs = ops.recentre_(xs)
    q, r = ops.qr(xs)
    del xs, xc
    u_r, s_all, vt_r = svd(ops.to_numpy(r), full_matrices=False)
    rank = int(np.count_nonzero(s_all > tol * s_all[0]))
    return Factor(
        **common,
        basis_data=q,
        basis_coef=u_r[:, :rank],
        coords=s_all[:rank, None] * vt_r[:rank],
        method="householder",
        rcond=float(s_all[-1] / s_all[0]) if rank == s_all.size else 0.0,
    )


def _cholesky(matrix: np.ndarray):
    """Lower Cholesky factor L of a well-conditioned SPD matrix, and L^-1."""
    with small_lapack(matrix):
        lower = np.linalg.cholesky(matrix)
        return lower, scipy.linalg.lapack.dtrtri(lower, lower=1)[0]


