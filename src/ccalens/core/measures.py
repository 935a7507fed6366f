r"""CCA, mean CCA, SVCCA and PWCCA (Morcos, Raghu & Bengio 2018, section 2).

All measures share one step: each side is factorised (:func:`ccalens.factorize`) into an
orthonormal basis :math:`Q_0` of its centred data, and the canonical correlations are the
singular values of :math:`Q_{0,x}^T Q_{0,y} = P\,\mathrm{diag}(\rho)\,Q^T`
(Bjorck & Golub 1973). The canonical variates of X are :math:`h_i = Q_{0,x} p_i`; they are
orthonormal and have zero mean. PWCCA's weights
:math:`\tilde\alpha_i = \sum_j |\langle h_i, z_j\rangle|` are the row sums of
:math:`|P^T Q_{0,x}^T X_c|`, a small matrix, so no vector of length n is formed after the
factorisation.

Ridge (``epsilon > 0``) replaces each side's correlation matrix :math:`C` (the covariance
of the neurons scaled to unit variance) by :math:`C + \epsilon I` in the CCA constraint.

References
----------
.. [1] A. S. Morcos, M. Raghu, S. Bengio. Insights on representational similarity in
   neural networks with canonical correlation. NeurIPS 2018.
.. [2] M. Raghu, J. Gilmer, J. Yosinski, J. Sohl-Dickstein. SVCCA: Singular Vector
   Canonical Correlation Analysis for Deep Learning Dynamics and Interpretability.
   NeurIPS 2017.
.. [3] A. Bjorck, G. H. Golub. Numerical methods for computing angles between linear
   subspaces. Mathematics of Computation 27 (1973).
"""

from __future__ import annotations

import numpy as np

from . import pairs, registry, validate
from ._backend import svd
from .canonical import (DEFAULT_KEEP, attach_uncertainty, canonical, check_compat, check_components,
                        check_uncertainty, components_for, on_backend, rho_stack)
from .factor import Factor
from .pwcca import projection_weights, pwcca, tie_blocks  # noqa: F401  (registered first; re-exported)
from .results import CCAResult, MeanCCAResult, SVCCAResult


# --------------------------------------------------------------------------- measures


def cca(
    X,
    Y,
    *,
    epsilon: float = 0.0,
    variates: bool = False,
    layout: str = "datapoints_first",
    dtype=None,
    rtol: float | None = None,
    permutations: int = 0,
    bootstrap: int = 0,
    confidence: float = 0.95,
    interval: str | None = None,
    seed=None,
) -> CCAResult:
    r"""Canonical correlation analysis between two representations.

    Parameters
    ----------
    X : array-like, torch.Tensor or Factor, shape (n_samples, n_neurons_x)
    Y : array-like, torch.Tensor or Factor, shape (n_samples, n_neurons_y)
        Activations on the same datapoints: rows are datapoints, columns are neurons.
    epsilon : float, default 0
        Ridge added to each side's neuron correlation matrix; use it when datapoints are
        few relative to neurons.
    variates : bool, default False
        Also return the canonical variates (n_samples x c each).
    layout : {"datapoints_first", "neurons_first"}
        ``"neurons_first"`` takes google/svcca's (neurons, datapoints) arrays.
    dtype : float64 (default) or float32
        Computation dtype.
    rtol : float, optional
        Relative rank tolerance (see :func:`ccalens.factorize`).
    permutations, bootstrap, confidence, interval, seed
        Uncertainty: ``permutations=N`` adds a shuffled-datapoints null (``result.null``:
        mean, sd, p-value, baseline-corrected similarity), ``bootstrap=N`` an interval at
        level ``confidence`` by the method ``interval`` (``result.bootstrap``; None is
        the measure family's, :func:`ccalens.core.resampling.default_method`). See :mod:`ccalens.stats`.

    Returns
    -------
    CCAResult
        ``rho`` holds the c = min(rank X, rank Y) canonical correlations, descending.

    Examples
    --------
    >>> import numpy as np, ccalens
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((500, 4))
    >>> Y = X @ rng.standard_normal((4, 4)) + 3.0      # an invertible affine map of X
    >>> np.round(ccalens.cca(X, Y).rho, 10)
    array([1., 1., 1., 1.])
    """
    epsilon = validate.check_epsilon(epsilon)
    check_uncertainty(permutations, bootstrap, confidence, interval)
    fx, fy, joint = pairs.factor_pair(X, Y, layout=layout, dtype=dtype, rtol=rtol)
    rho, ax, ay = canonical(fx, fy, epsilon, joint)
    wx = _neuron_directions(fx, ax)
    wy = _neuron_directions(fy, ay)
    # Deterministic signs: the largest |coefficient| of each X direction is positive.
    if wx.shape[1]:
        signs = np.sign(wx[np.argmax(np.abs(wx), axis=0), np.arange(wx.shape[1])])
        signs[signs == 0] = 1.0
        wx, wy, ax, ay = wx * signs, wy * signs, ax * signs, ay * signs
    hx = hy = None
    if variates:
        hx = fx.ops.matmul_small(fx.basis_data, fx.basis_coef @ ax)
        hy = fy.ops.matmul_small(fy.basis_data, fy.basis_coef @ ay)
    result = CCAResult(
        similarity=float(np.mean(rho)) if rho.size else 0.0,
        rho=on_backend(fx, rho),
        x_directions=on_backend(fx, wx),
        y_directions=on_backend(fy, wy),
        x_rank=fx.rank,
        y_rank=fy.rank,
        x_dropped=fx.dropped,
        y_dropped=fy.dropped,
        n_samples=fx.n_samples,
        epsilon=epsilon,
        x_variates=hx,
        y_variates=hy,
    )
    opts = dict(epsilon=epsilon, layout=layout, dtype=dtype, rtol=rtol)
    return attach_uncertainty(result, "cca", (X, Y), opts, permutations, bootstrap, confidence, seed, (fx, fy), interval)


def _neuron_directions(f: Factor, coef: np.ndarray) -> np.ndarray:
    """Directions w in neuron space with X_c w = Q_0 coef (zero rows for dropped neurons).

    X_c = Q_0 T D, so w = D^-1 T^+ coef, with T^+ = V diag(1/s) U^T from T's SVD.
    """
    u, s, v = f.coords_svd
    w_kept = ((v / s[None, :]) @ (u.T @ coef)) / f.scale[:, None]
    w = np.zeros((f.n_neurons, coef.shape[1]))
    w[f.kept] = w_kept
    return w


def mean_cca(
    X,
    Y,
    *,
    epsilon: float = 0.0,
    compat: str | None = None,
    layout: str = "datapoints_first",
    dtype=None,
    rtol: float | None = None,
    permutations: int = 0,
    bootstrap: int = 0,
    confidence: float = 0.95,
    interval: str | None = None,
    seed=None,
) -> MeanCCAResult:
    r"""Unweighted mean canonical correlation, :math:`\frac1c\sum_i \rho^{(i)}`.

    This is the similarity behind the paper's :math:`d_{SVCCA}` before the SVD step; it is
    symmetric in X and Y.

    Parameters
    ----------
    X, Y, layout, dtype, rtol
        As in :func:`cca`.
    epsilon : float, default 0
        Ridge (see :func:`cca`). With ``compat="svcca"`` it has google/svcca's meaning
        instead (see :mod:`ccalens.core.compat`).
    compat : {None, "svcca"}
        ``"svcca"`` returns the mean of google/svcca's ``get_cca_similarity(...)["cca_coef1"]``
        for the same data (given here as (datapoints, neurons)).
    permutations, bootstrap, confidence, interval, seed
        Uncertainty: ``permutations=N`` adds a shuffled-datapoints null (``result.null``:
        mean, sd, p-value, baseline-corrected similarity), ``bootstrap=N`` an interval at
        level ``confidence`` by the method ``interval`` (``result.bootstrap``; None is
        the measure family's, :func:`ccalens.core.resampling.default_method`). See :mod:`ccalens.stats`.

    Examples
    --------
    >>> import numpy as np, ccalens
    >>> rng = np.random.default_rng(1)
    >>> X = rng.standard_normal((2000, 3))
    >>> Y = np.c_[X[:, 0], rng.standard_normal((2000, 2))]   # one shared direction
    >>> rho = ccalens.mean_cca(X, Y).rho   # 1 for the shared direction, ~0.03 for the others
    >>> round(float(rho[0]), 6), bool(rho[1] < 0.1)
    (1.0, True)
    """
    epsilon = validate.check_epsilon(epsilon)
    check_compat(compat)
    check_uncertainty(permutations, bootstrap, confidence, interval)
    opts = dict(epsilon=epsilon, layout=layout, dtype=dtype, rtol=rtol, compat=compat)
    if compat == "svcca":
        from . import compat as _compat

        result = _compat.mean_cca_svcca(X, Y, epsilon=epsilon, layout=layout)
        return attach_uncertainty(result, "mean_cca", (X, Y), opts, permutations, bootstrap, confidence, seed, None, interval)
    fx, fy, joint = pairs.factor_pair(X, Y, layout=layout, dtype=dtype, rtol=rtol)
    rho, _, _ = canonical(fx, fy, epsilon, joint, want="none")
    result = MeanCCAResult(
        similarity=float(np.mean(rho)),
        rho=on_backend(fx, rho),
        x_rank=fx.rank,
        y_rank=fy.rank,
        n_samples=fx.n_samples,
        epsilon=epsilon,
    )
    return attach_uncertainty(result, "mean_cca", (X, Y), opts, permutations, bootstrap, confidence, seed, (fx, fy), interval)


def svcca(
    X,
    Y,
    keep: float = DEFAULT_KEEP,
    *,
    n_components=None,
    layout: str = "datapoints_first",
    dtype=None,
    rtol: float | None = None,
    permutations: int = 0,
    bootstrap: int = 0,
    confidence: float = 0.95,
    interval: str | None = None,
    seed=None,
) -> SVCCAResult:
    r"""SVCCA: keep each side's leading singular directions, then mean CCA between them.

    Parameters
    ----------
    X, Y, layout, dtype, rtol
        As in :func:`cca`.
    keep : float in (0, 1], default 0.99
        Each side keeps the smallest number of singular directions (of its centred data)
        whose cumulative share of the variance (squared singular values) reaches ``keep``.
    n_components : int or (int, int), optional
        Keep exactly this many directions (on each side, or per side) instead of ``keep``.
    permutations, bootstrap, confidence, interval, seed
        Uncertainty: ``permutations=N`` adds a shuffled-datapoints null (``result.null``:
        mean, sd, p-value, baseline-corrected similarity), ``bootstrap=N`` an interval at
        level ``confidence`` by the method ``interval`` (``result.bootstrap``; None is
        the measure family's, :func:`ccalens.core.resampling.default_method`). See :mod:`ccalens.stats`.

    Returns
    -------
    SVCCAResult
        ``similarity`` is the mean of the canonical correlations between the kept
        subspaces; the paper's :math:`d_{SVCCA}` is its ``distance``.
    """
    validate.check_keep(keep)
    kx_req, ky_req = check_components(n_components)
    check_uncertainty(permutations, bootstrap, confidence, interval)
    fx, fy, joint = pairs.factor_pair(X, Y, layout=layout, dtype=dtype, rtol=rtol)
    ux, kx, var_x = components_for(fx, keep, kx_req, "X")
    uy, ky, var_y = components_for(fy, keep, ky_req, "Y")
    m = ux.T @ pairs.cross(fx, fy, joint) @ uy
    rho = np.clip(svd(m, compute_uv=False)[: min(kx, ky)], 0.0, 1.0)
    result = SVCCAResult(
        similarity=float(np.mean(rho)),
        rho=on_backend(fx, rho),
        x_components=kx,
        y_components=ky,
        x_variance_kept=var_x,
        y_variance_kept=var_y,
        n_samples=fx.n_samples,
    )
    opts = dict(keep=keep, n_components=n_components, layout=layout, dtype=dtype, rtol=rtol)
    return attach_uncertainty(result, "svcca", (X, Y), opts, permutations, bootstrap, confidence, seed, (fx, fy), interval)


# ---- kernels on cached factors, and the registrations -------------------------------------


def _mean_cca_from_factors(fx, fy, m, *, epsilon=0.0, shared=None, **_):
    rho = canonical(fx, fy, epsilon, want="none", cross=m, shared=shared)[0]
    v = float(np.mean(rho))
    return v, v, {"c": int(rho.size), "rho_max": float(rho[0]) if rho.size else 0.0}


def _svcca_from_factors(fx, fy, m, *, keep=None, **_):
    keep = DEFAULT_KEEP if keep is None else keep
    ux, kx, _ = components_for(fx, keep, None, "X")
    uy, ky, _ = components_for(fy, keep, None, "Y")
    rho = np.clip(svd(ux.T @ m @ uy, compute_uv=False)[: min(kx, ky)], 0.0, 1.0)
    v = float(np.mean(rho))
    return v, v, {"x_components": kx, "y_components": ky}


def _mean_cca_batched(ops, m, proj_a, proj_b):
    """Mean CCA of a stack of equal-rank pairs: one batched SVD."""
    rho = np.clip(ops.to_numpy(rho_stack(ops, m, False)), 0.0, 1.0)
    r = rho.shape[1]
    return [(float(v), float(v), {"c": r, "rho_max": float(top)}) for v, top in zip(rho.mean(axis=1), rho[:, 0])]


registry.register(registry.MeasureSpec(
    "svcca", "SVCCA", "factor", registry.ORTHOGONAL, svcca, from_factors=_svcca_from_factors, streamable=True,
    family="cca"))
registry.register(registry.MeasureSpec(
    "mean_cca", "mean CCA", "factor", registry.ALL_LINEAR, mean_cca, from_factors=_mean_cca_from_factors,
    batched=_mean_cca_batched, streamable=True, family="cca"))
registry.register(registry.MeasureSpec(
    "cca", "mean CCA (cca)", "factor", registry.ALL_LINEAR, cca, from_factors=_mean_cca_from_factors,
    batched=_mean_cca_batched, streamable=True, alias_of="mean_cca", family="cca"))
