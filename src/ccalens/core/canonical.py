r"""The canonical decomposition that CCA, mean CCA, SVCCA and PWCCA share (Morcos, Raghu &
Bengio 2018, section 2), and the checks and glue those measures have in common.

The canonical correlations of two factorised representations are the singular values of
:math:`M = Q_{0,x}^T Q_{0,y} = P\,\mathrm{diag}(\rho)\,Q^T` (Bjorck & Golub 1973); with
ridge (``epsilon > 0``) each side's correlation matrix :math:`C` is replaced by
:math:`C + \epsilon I` in the CCA constraint. SVCCA first keeps each side's leading
principal directions (:func:`components_for`).
"""

from __future__ import annotations

import numbers

import numpy as np

from . import pairs, validate
from ._backend import is_torch_tensor, small_lapack, svd
from .factor import Factor
from .linalg import centred_columns, relative_to_largest

__all__ = ["COMPAT_MODES", "DEFAULT_KEEP", "attach_uncertainty", "canonical", "check_compat", "check_components",
           "check_uncertainty", "components_for", "on_backend", "relative_variance", "rho_stack", "svd_scores"]

#: google/svcca compatibility modes (None: the paper's definitions)
COMPAT_MODES = (None, "svcca")


#: SVCCA's default share of variance kept on each side (the paper's 99%)
DEFAULT_KEEP = 0.99


def canonical(fx: Factor, fy: Factor, epsilon: float, joint=None, want="both", cross=None, shared=None):
    """Canonical correlations and the canonical coefficients of each side.

    Returns ``(rho, A_x, A_y)`` where the canonical variates are ``Q_0x @ A_x`` and
    ``Q_0y @ A_y`` (orthonormal columns when ``epsilon == 0``). ``want`` is "both", "x"
    (``A_y`` is None) or "none" (correlations only). ``cross`` is Q_0x^T Q_0y when the
    caller already has it (the pairwise engine computes many at once). ``shared``: a dict
    that the measures of one pair share (:func:`ccalens.core.registry.from_cross`): a full
    SVD of the pair's matrix, once taken, serves every later call.
    """
    m = pairs.cross(fx, fy, joint) if cross is None else cross
    c = min(fx.rank, fy.rank)
    if epsilon:
        # Ridge: in the bases of left singular vectors, (C + eps I)^(-1/2) X_s^T scales
        # direction i by s_i / sqrt(s_i^2 + eps).
        ux, sx, _ = fx.coords_svd
        uy, sy, _ = fy.coords_svd
        shrink_x, shrink_y = sx / np.sqrt(sx * sx + epsilon), sy / np.sqrt(sy * sy + epsilon)
        m = shrink_x[:, None] * (ux.T @ m @ uy) * shrink_y[None, :]
    key = ("canonical svd", float(epsilon))
    if want == "none":
        if shared is not None and key in shared:
            return np.clip(shared[key][1][:c], 0.0, 1.0), None, None
        return np.clip(svd(m, compute_uv=False)[:c], 0.0, 1.0), None, None
    if want == "x" and not epsilon and m.shape[0] <= m.shape[1]:
        # P are the eigenvectors of M M^T (half the work of a full SVD). The correlations
        # are then read as |M^T p_i|, accurate to rounding of |M| even where rho ~ 0, which
        # sqrt(eigenvalue) is not.
        mm = m @ m.T
        with small_lapack(mm):
            _, vecs = np.linalg.eigh(mm)
        p = vecs[:, ::-1][:, :c]
        rho = np.linalg.norm(m.T @ p, axis=0)
        order = np.argsort(-rho, kind="stable")
        return np.clip(rho[order], 0.0, 1.0), p[:, order], None
    if shared is not None and key in shared:
        p, rho, qt = shared[key]
    else:
        p, rho, qt = svd(m, full_matrices=False)
        if shared is not None:
            shared[key] = (p, rho, qt)
    rho, p, q = np.clip(rho[:c], 0.0, 1.0), p[:, :c], qt[:c].T
    if epsilon:
        p = ux @ (shrink_x[:, None] * p)
        q = uy @ (shrink_y[:, None] * q)
    return rho, p, (q if want == "both" else None)


def check_compat(compat):
    if compat not in COMPAT_MODES:
        raise ValueError(
            f"compat must be None (the paper's definitions) or 'svcca' (google/svcca's numbers); "
            f"got {compat!r}."
        )


def on_backend(f: Factor, array):
    return f.ops.from_numpy(array)


def relative_variance(sigma: np.ndarray) -> np.ndarray:
    """Each principal direction's variance relative to the largest, (sigma / sigma_max)^2.
    The shares SVCCA keeps are ratios; squaring sigma itself underflows for data below
    about 1e-154 (and overflows above 1e154), which made every share NaN and SVCCA keep
    the wrong directions (0.39 for 0.92 at a scale of 1e-170)."""
    return relative_to_largest(sigma)[0] ** 2


def components_for(f: Factor, keep: float | None, n_components: int | None, name: str):
    u, sigma = f.pca
    var = relative_variance(sigma)
    total = float(var.sum())
    if n_components is not None:
        k = n_components
        if k > f.rank:
            raise ValueError(
                f"n_components={k} for {name}, but {name} has only {f.rank} non-degenerate "
                f"directions (rank of its centred data); ask for at most {f.rank}."
            )
    elif keep >= 1.0:
        k = f.rank
    else:
        share = np.cumsum(var) / total
        # smallest k whose cumulative share reaches keep (rounding-tolerant)
        k = int(np.searchsorted(share, keep * (1.0 - 1e-12), side="left")) + 1
        k = min(k, f.rank)
    return u[:, :k], k, float(var[:k].sum() / total)


def check_components(n_components):
    if n_components is None:
        return None, None
    pair = n_components if isinstance(n_components, (tuple, list)) else (n_components, n_components)
    if len(pair) != 2 or not all(
        isinstance(k, numbers.Integral) and not isinstance(k, bool) and k >= 1 for k in pair
    ):
        raise ValueError(
            f"n_components must be a positive int or a pair (for X, for Y) of positive ints; "
            f"got {n_components!r}."
        )
    return int(pair[0]), int(pair[1])


def svd_scores(X, keep: float, layout: str, name: str):
    """PCA scores of X's centred data on the fewest leading directions holding ``keep`` of its variance."""
    if isinstance(X, Factor):
        raise TypeError(f"keep= needs {name} as an array, not a Factor: the scores need the datapoints.")
    mat = validate.as_matrix(X, name, layout)
    arr = np.asarray(mat.cpu().double().numpy() if is_torch_tensor(mat) else mat, dtype=np.float64)
    validate.check_finite(validate.make_ops(arr, np.float64), arr, name)
    centred = centred_columns(arr)
    u, sigma, _ = svd(centred, full_matrices=False)
    var = relative_variance(sigma)
    if var.sum() <= 0:
        raise ValueError(f"{name} is constant over the datapoints: it has no variance to keep.")
    k = int(np.searchsorted(np.cumsum(var) / var.sum(), keep * (1.0 - 1e-12), side="left")) + 1
    k = min(k, len(sigma))
    return u[:, :k] * sigma[:k], k


def check_uncertainty(permutations, bootstrap, confidence, interval) -> None:
    from .resampling import check_options

    check_options(permutations, bootstrap, confidence, interval)


def attach_uncertainty(result, measure, data, opts, permutations, bootstrap, confidence, seed, factors, interval):
    from .resampling import attach

    return attach(result, measure, data, opts, permutations, bootstrap, confidence, seed, factors=factors,
                  interval=interval)


def rho_stack(ops, m, compute_uv: bool):
    from ._backend import batched_svd

    if ops.name == "torch":
        return ops.torch.linalg.svd(m, full_matrices=False) if compute_uv else ops.torch.linalg.svdvals(m)
    return batched_svd(m, compute_uv=compute_uv)
