"""What every comparison of two (or many) representations does before any measure: both
sides checked and brought to one array library, each factorised (:func:`ccalens.factorize`)
with one backend, and the cross product of their orthonormal bases, the one product that
touches both data sets. The many-representation engine factorises side by side and stacks
the bases for one large product.

The measures (:mod:`~ccalens.core.measures`, :mod:`~ccalens.core.cka`,
:mod:`~ccalens.core.shape`, :mod:`~ccalens.core.alignment`) and the resampling share these
helpers; this module imports none of them.
"""

from __future__ import annotations

import numpy as np

from . import validate
from ._backend import blas_parallel_map, is_torch_tensor
from .factor import Factor, factorize_matrix, factorize_pair

__all__ = ["as_matrices", "as_tensor_like", "compute_pcas", "cross", "factor_pair", "factorize_each", "from_components",
           "pca_cross", "side_by_side", "stack_bases"]


def factor_pair(X, Y, *, layout, dtype, rtol, warn=True, stacklevel=4):
    """Factorise both sides (or reuse given Factors) with one backend and checks."""
    validate.check_layout(layout)
    rtol = validate.check_rtol(rtol)
    fx = X if isinstance(X, Factor) else None
    fy = Y if isinstance(Y, Factor) else None
    ax = None if fx else validate.as_matrix(X, "X", layout)
    ay = None if fy else validate.as_matrix(Y, "Y", layout)
    x_shape = (fx.n_samples, fx.n_neurons) if fx else tuple(ax.shape)
    y_shape = (fy.n_samples, fy.n_neurons) if fy else tuple(ay.shape)
    validate.check_same_datapoints(x_shape, y_shape)

    if fx is None and fy is None:
        validate.check_same_backend(ax, ay)
        if is_torch_tensor(ay) and not is_torch_tensor(ax):
            ax = as_tensor_like(ax, ay)
        elif is_torch_tensor(ax) and not is_torch_tensor(ay):
            ay = as_tensor_like(ay, ax)
        ops = validate.make_ops(ax, dtype)
    else:
        ops = (fx or fy).ops
        if fx is not None and fy is not None and fx.ops.name != fy.ops.name:
            raise TypeError(
                "X and Y were factorised with different array libraries "
                f"({fx.ops.name} and {fy.ops.name}); factorise both from numpy arrays or both "
                "from torch tensors."
            )
        for arr in (ax, ay):
            if arr is not None and is_torch_tensor(arr) and ops.name != "torch":
                raise TypeError(
                    "one side is a Factor built from numpy data and the other is a torch "
                    "tensor; pass both sides as the same kind of array (or factorise the "
                    "tensor's side from a tensor too)."
                )
        if ops.name == "torch":
            ax = None if ax is None else ops.torch.as_tensor(ax, device=ops.device)
            ay = None if ay is None else ops.torch.as_tensor(ay, device=ops.device)
    joint = None
    if fx is None and fy is None:
        fx, fy, joint = factorize_pair(ax, ay, ops, rtol)
    if fx is None:
        fx = factorize_matrix(ax, ops, rtol, "X")
    if fy is None:
        fy = factorize_matrix(ay, ops, rtol, "Y")
    if warn:
        validate.warn_small_sample(
            fx.n_samples, fx.kept.size, fy.kept.size, fx.rank, fy.rank, stacklevel=stacklevel
        )
    return fx, fy, joint


def as_matrices(X, Y, layout, *, allow_factor: bool, measure: str):
    """Both inputs as (datapoints, neurons) arrays or tensors of one kind, checked."""
    for arr, name in ((X, "X"), (Y, "Y")):
        if isinstance(arr, Factor) and not allow_factor:
            raise TypeError(
                f"{measure} works on the activations themselves, not on a Factor; pass {name} "
                f"as an array or tensor."
            )
    ax, ay = validate.as_matrix(X, "X", layout), validate.as_matrix(Y, "Y", layout)
    validate.check_same_datapoints(tuple(ax.shape), tuple(ay.shape))
    validate.check_same_backend(ax, ay)
    if is_torch_tensor(ay) and not is_torch_tensor(ax):
        ax = as_tensor_like(ax, ay)
    elif is_torch_tensor(ax) and not is_torch_tensor(ay):
        ay = as_tensor_like(ay, ax)
    return ax, ay


def as_tensor_like(arr, tensor):
    import torch

    return torch.as_tensor(np.asarray(arr), device=tensor.device)


def cross(fx: Factor, fy: Factor, joint=None) -> np.ndarray:
    """Q_x^T Q_y (x_rank x y_rank): the one product that touches both data sets.

    ``joint`` is X_c^T Y_c when it was computed with both factors (see
    ``factorize_pair``); it is reused when both bases are expressed in centred data.
    """
    if joint is not None and fx.method == "gram" and fy.method == "gram":
        inner = joint[np.ix_(fx.kept, fy.kept)] if (fx.dropped or fy.dropped) else joint
    else:
        inner = fx.ops.cross(fx.basis_data, fy.basis_data)
    return fx.basis_coef.T @ inner @ fy.basis_coef


def pca_cross(fx: Factor, fy: Factor, m: np.ndarray, relative: bool = False) -> np.ndarray:
    """A = Sigma_x U_x^T M U_y Sigma_y: X_c^T Y_c in the two sides' principal axes (M = Q_x^T Q_y).

    With ``relative``, each Sigma is divided by its largest value (:attr:`Factor.unit_spectrum`):
    A / (sigma_max,x sigma_max,y), for the ratios that are invariant to each side's scale.
    """
    ux, sx = fx.pca
    uy, sy = fy.pca
    if relative:
        sx, sy = fx.unit_spectrum[0], fy.unit_spectrum[0]
    return (ux * sx[None, :]).T @ m @ (uy * sy[None, :])


def factorize_each(make, items: list) -> list:
    """``[make(item) for item in items]`` for many factorisations (``make`` returns a
    :class:`Factor`), two or more side by side, one per BLAS thread, each with a
    single-threaded BLAS: the products of one representation of 10,000 x 128 keep two
    threads mostly waiting (24 of them: 0.41 s in turn, 0.22 s side by side, on 2 cores).
    The first error is the plain loop's; the results equal its to rounding (a single-threaded
    BLAS adds in another order), and are the same from run to run."""
    return blas_parallel_map(make, list(items))


def side_by_side(fn, items: list) -> list:
    """``[fn(item) for item in items]``, two or more side by side with one BLAS thread each
    (as :func:`factorize_each`): for many small LAPACK calls, such as the measures of many
    pairs of factors."""
    return blas_parallel_map(fn, list(items))


def compute_pcas(factors: list) -> None:
    """Each factor's PCA (:attr:`Factor.pca`), computed side by side (one BLAS thread each,
    as :func:`factorize_each`) and cached on the factor, so that the pairs that use them
    later (SVCCA, Procrustes, the shape metrics) can run side by side too: a cached property
    computed inside threads would run one factor at a time under its class-wide lock."""
    todo = [f for f in factors if "pca" not in f.__dict__]
    for f, pca in zip(todo, blas_parallel_map(lambda f: Factor.pca.func(f), todo)):
        f.__dict__["pca"] = pca


def stack_bases(factors: list, dtype) -> np.ndarray:
    """The numpy factors' orthonormal bases side by side, (n_samples x sum of ranks).

    Each basis is written straight into its rows of one (sum of ranks x n) buffer, returned
    as its transposed view: no per-representation copies, and BLAS reads the view as a
    transposed operand (x.T @ x of it is still one syrk). The per-representation products
    run side by side, as in :func:`factorize_each`.
    """
    total = sum(f.rank for f in factors)
    out = np.empty((total, factors[0].n_samples), dtype=dtype)
    edges = np.cumsum([0] + [f.rank for f in factors])

    def write(k):
        f = factors[k]
        coef = np.asarray(f.basis_coef, dtype=dtype)
        np.matmul(coef.T, f.basis_data.T, out=out[edges[k] : edges[k + 1]])

    blas_parallel_map(write, list(range(len(factors))))
    return out.T


def from_components(basis: np.ndarray, sigma: np.ndarray, n_neurons: int | None = None) -> Factor:
    r"""The factor of a representation given by its principal components, without
    factorising it again: the data :math:`X_c = U \operatorname{diag}(\sigma)` with ``basis``
    :math:`U` (n x r, orthonormal columns) and ``sigma`` (r, descending, positive), padded
    with ``n_neurons - r`` zero (constant) neurons. Its neurons are its principal axes, so
    its basis is :math:`U`, its coordinates the identity and its PCA :math:`(I, \sigma)`.
    The datapoint route (:mod:`ccalens.stream.datapoints`) builds one from an
    eigendecomposition of the n x n Gram matrix, where a factorisation of
    :math:`U \operatorname{diag}(\sigma)` would take an SVD of n x n matrices for nothing."""
    from .ops import NumpyOps

    basis, sigma = np.asarray(basis, dtype=np.float64), np.asarray(sigma, dtype=np.float64)
    n, r = basis.shape
    width = r if n_neurons is None else int(n_neurons)
    if sigma.shape != (r,) or width < r or (r and (np.any(sigma <= 0) or np.any(np.diff(sigma) > 0))):
        raise ValueError(f"from_components needs an (n x r) basis with r descending positive singular values and "
                         f"n_neurons >= r; got a basis of shape {basis.shape}, {sigma.shape[0]} values, "
                         f"n_neurons={width}.")
    eye = np.eye(r)
    f = Factor(n_samples=n, n_neurons=width, mean=np.zeros(width), kept=np.arange(r),
               dropped=tuple(range(r, width)), scale=sigma.copy(), basis_data=basis, basis_coef=eye, coords=eye,
               method="gram", rcond=1.0 if r else 0.0, ops=NumpyOps())
    f.__dict__["coords_svd"] = (eye, np.ones(r), eye)  # the cached decompositions, known exactly
    f.__dict__["pca"] = (eye, sigma.copy())
    return f
