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

import dataclasses

import numbers

import numpy as np

from . import validate, registry
from ._backend import is_torch_tensor, small_lapack, svd
from .factor import Factor, _factorize_pair, centred_columns, factorize_matrix, relative_to_largest
from .results import CCAResult, MeanCCAResult, PWCCAResult, SVCCAResult

COMPAT_MODES = (None, "svcca")

#: SVCCA's default share of variance kept on each side (the paper's 99%)
DEFAULT_KEEP = 0.99


# --------------------------------------------------------------------------- pairing


def _factor_pair(X, Y, *, layout, dtype, rtol, warn=True, stacklevel=4):
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
            ax = _as_tensor_like(ax, ay)
        elif is_torch_tensor(ax) and not is_torch_tensor(ay):
            ay = _as_tensor_like(ay, ax)
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
        fx, fy, joint = _factorize_pair(ax, ay, ops, rtol)
    if fx is None:
        fx = factorize_matrix(ax, ops, rtol, "X")
    if fy is None:
        fy = factorize_matrix(ay, ops, rtol, "Y")
    if warn:
        validate.warn_small_sample(
            fx.n_samples, fx.kept.size, fy.kept.size, fx.rank, fy.rank, stacklevel=stacklevel
        )
    return fx, fy, joint


def _as_matrices(X, Y, layout, *, allow_factor: bool, measure: str):
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
        ax = _as_tensor_like(ax, ay)
    elif is_torch_tensor(ax) and not is_torch_tensor(ay):
        ay = _as_tensor_like(ay, ax)
    return ax, ay


def _as_tensor_like(arr, tensor):
    import torch

    return torch.as_tensor(np.asarray(arr), device=tensor.device)


def _cross(fx: Factor, fy: Factor, joint=None) -> np.ndarray:
    """Q_x^T Q_y (x_rank x y_rank): the one product that touches both data sets.

    ``joint`` is X_c^T Y_c when it was computed with both factors (see
    ``_factorize_pair``); it is reused when both bases are expressed in centred data.
    """
    if joint is not None and fx.method == "gram" and fy.method == "gram":
        inner = joint[np.ix_(fx.kept, fy.kept)] if (fx.dropped or fy.dropped) else joint
    else:
        inner = fx.ops.cross(fx.basis_data, fy.basis_data)
    return fx.basis_coef.T @ inner @ fy.basis_coef


def _canonical(fx: Factor, fy: Factor, epsilon: float, joint=None, want="both", cross=None):
    """Canonical correlations and the canonical coefficients of each side.

    Returns ``(rho, A_x, A_y)`` where the canonical variates are ``Q_0x @ A_x`` and
    ``Q_0y @ A_y`` (orthonormal columns when ``epsilon == 0``). ``want`` is "both", "x"
    (``A_y`` is None) or "none" (correlations only). ``cross`` is Q_0x^T Q_0y when the
    caller already has it (the pairwise engine computes many at once).
    """
    m = _cross(fx, fy, joint) if cross is None else cross
    c = min(fx.rank, fy.rank)
    if epsilon:
        # Ridge: in the bases of left singular vectors, (C + eps I)^(-1/2) X_s^T scales
        # direction i by s_i / sqrt(s_i^2 + eps).
        ux, sx, _ = fx.coords_svd
        uy, sy, _ = fy.coords_svd
        shrink_x, shrink_y = sx / np.sqrt(sx * sx + epsilon), sy / np.sqrt(sy * sy + epsilon)
        m = shrink_x[:, None] * (ux.T @ m @ uy) * shrink_y[None, :]
    if want == "none":
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
    p, rho, qt = svd(m, full_matrices=False)
    rho, p, q = np.clip(rho[:c], 0.0, 1.0), p[:, :c], qt[:c].T
    if epsilon:
        p = ux @ (shrink_x[:, None] * p)
        q = uy @ (shrink_y[:, None] * q)
    return rho, p, (q if want == "both" else None)


def _check_compat(compat):
    if compat not in COMPAT_MODES:
        raise ValueError(
            f"compat must be None (the paper's definitions) or 'svcca' (google/svcca's numbers); "
            f"got {compat!r}."
        )


def _out(f: Factor, array):
    return f.ops.from_numpy(array)


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
    _check_uncertainty(permutations, bootstrap, confidence, interval)
    fx, fy, joint = _factor_pair(X, Y, layout=layout, dtype=dtype, rtol=rtol)
    rho, ax, ay = _canonical(fx, fy, epsilon, joint)
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
        rho=_out(fx, rho),
        x_directions=_out(fx, wx),
        y_directions=_out(fy, wy),
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
    return _attach(result, "cca", (X, Y), opts, permutations, bootstrap, confidence, seed, (fx, fy), interval)


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
    _check_compat(compat)
    _check_uncertainty(permutations, bootstrap, confidence, interval)
    opts = dict(epsilon=epsilon, layout=layout, dtype=dtype, rtol=rtol, compat=compat)
    if compat == "svcca":
        from . import compat as _compat

        result = _compat.mean_cca_svcca(X, Y, epsilon=epsilon, layout=layout)
        return _attach(result, "mean_cca", (X, Y), opts, permutations, bootstrap, confidence, seed, None, interval)
    fx, fy, joint = _factor_pair(X, Y, layout=layout, dtype=dtype, rtol=rtol)
    rho, _, _ = _canonical(fx, fy, epsilon, joint, want="none")
    result = MeanCCAResult(
        similarity=float(np.mean(rho)),
        rho=_out(fx, rho),
        x_rank=fx.rank,
        y_rank=fy.rank,
        n_samples=fx.n_samples,
        epsilon=epsilon,
    )
    return _attach(result, "mean_cca", (X, Y), opts, permutations, bootstrap, confidence, seed, (fx, fy), interval)


def _relative_variance(sigma: np.ndarray) -> np.ndarray:
    """Each principal direction's variance relative to the largest, (sigma / sigma_max)^2.
    The shares SVCCA keeps are ratios; squaring sigma itself underflows for data below
    about 1e-154 (and overflows above 1e154), which made every share NaN and SVCCA keep
    the wrong directions (0.39 for 0.92 at a scale of 1e-170)."""
    return relative_to_largest(sigma)[0] ** 2


def _components_for(f: Factor, keep: float | None, n_components: int | None, name: str):
    u, sigma = f.pca
    var = _relative_variance(sigma)
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


def _check_components(n_components):
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
    kx_req, ky_req = _check_components(n_components)
    _check_uncertainty(permutations, bootstrap, confidence, interval)
    fx, fy, joint = _factor_pair(X, Y, layout=layout, dtype=dtype, rtol=rtol)
    ux, kx, var_x = _components_for(fx, keep, kx_req, "X")
    uy, ky, var_y = _components_for(fy, keep, ky_req, "Y")
    m = ux.T @ _cross(fx, fy, joint) @ uy
    rho = np.clip(svd(m, compute_uv=False)[: min(kx, ky)], 0.0, 1.0)
    result = SVCCAResult(
        similarity=float(np.mean(rho)),
        rho=_out(fx, rho),
        x_components=kx,
        y_components=ky,
        x_variance_kept=var_x,
        y_variance_kept=var_y,
        n_samples=fx.n_samples,
    )
    opts = dict(keep=keep, n_components=n_components, layout=layout, dtype=dtype, rtol=rtol)
    return _attach(result, "svcca", (X, Y), opts, permutations, bootstrap, confidence, seed, (fx, fy), interval)


#: canonical correlations within this of each other form one tied block (:func:`projection_weights`)
TIE_ATOL = 1e-8


def tie_blocks(rho: np.ndarray, atol: float = TIE_ATOL) -> list[slice]:
    """The runs of (descending) canonical correlations whose successive gaps are at most ``atol``."""
    rho = np.asarray(rho)
    blocks, start = [], 0
    for i in range(1, rho.size + 1):
        if i == rho.size or rho[i - 1] - rho[i] > atol:
            if i - start > 1:
                blocks.append(slice(start, i))
            start = i
    return blocks


def projection_weights(rho: np.ndarray, inner: np.ndarray, atol: float = TIE_ATOL) -> np.ndarray:
    r"""PWCCA's weights :math:`\alpha_i` from ``inner[i, j]`` = :math:`\langle h_i, z_j\rangle`.

    Inside a block of tied canonical correlations the canonical variates are not unique:
    any rotation of them is as canonical, and the L1 weights depend on which is taken. The
    weights are therefore computed in one basis fixed by the data: X's principal axes within
    the tied subspace (the variates rotated so that their inner products with X's neurons,
    ``inner[block]``, become ``S V^T`` from its SVD ``U S V^T``). Every code path (single
    pairs, the pairwise engine, streaming, torch) goes through this function, so they agree
    on tied inputs (a layer against its ReLU, duplicated neurons, identical inputs).
    Correlations within ``atol`` (1e-8) of each other count as tied; merging two that differ
    by less than that moves the similarity by less than that. Where X's variance within a
    tied subspace is itself tied (e.g. whitened neurons), the basis is still not unique.
    """
    inner = np.array(inner, dtype=np.float64, copy=True)
    for block in tie_blocks(rho, atol):
        _, s, vt = svd(inner[block], full_matrices=False)
        rotated = np.zeros_like(inner[block])
        rotated[: s.size] = s[:, None] * vt
        inner[block] = rotated
    alpha = np.abs(inner).sum(axis=1)
    return alpha / alpha.sum()


def _projection_weights(f: Factor, coef: np.ndarray, epsilon: float, rho: np.ndarray) -> np.ndarray:
    """alpha_i = sum_j |<h_i, z_j>| / total, h_i the orthonormalised canonical variates."""
    # h_i = Q_0 coef_i. With epsilon == 0 the coefficients come from an SVD (or a
    # symmetric eigendecomposition) and are orthonormal to working precision, so the
    # paper's Gram-Schmidt would change only rounding; with a ridge they are not, and are
    # orthonormalised in order (QR = Gram-Schmidt).
    if epsilon:
        coef, _ = np.linalg.qr(coef)
    return projection_weights(rho, coef.T @ f.projections)


def pwcca(
    X,
    Y,
    *,
    symmetric: bool = False,
    epsilon: float = 0.0,
    keep: float | None = None,
    compat: str | None = None,
    layout: str = "datapoints_first",
    dtype=None,
    rtol: float | None = None,
    permutations: int = 0,
    bootstrap: int = 0,
    confidence: float = 0.95,
    interval: str | None = None,
    seed=None,
) -> PWCCAResult:
    r"""Projection-weighted CCA (section 2.2 of the paper).

    .. math::

        \tilde\alpha_i = \sum_j |\langle h_i, z_j\rangle|, \quad
        \alpha_i = \tilde\alpha_i / \textstyle\sum_k \tilde\alpha_k, \quad
        \mathrm{similarity} = \sum_i \alpha_i \rho^{(i)}

    with :math:`z_j` X's centred neurons and :math:`h_i` X's orthonormalised canonical
    variates. It is not symmetric (footnote 6 of the paper): the weights come from X.

    Parameters
    ----------
    X, Y, epsilon, layout, dtype, rtol
        As in :func:`cca`.
    symmetric : bool, default False
        Average the two directions (X's weights and Y's weights).
    keep : float in (0, 1], optional
        PWCCA "with thresholding to remove low variance noise" (the caption of the paper's
        Figure 3): each side is first replaced by its PCA scores on the fewest leading
        singular directions of its centred data whose share of the variance reaches
        ``keep`` (as in :func:`svcca`), and PWCCA compares those. The truncation is computed
        once from all datapoints; nulls and intervals resample the truncated data. Takes
        arrays (not a :class:`Factor`); the scores are computed in float64 with numpy.
    compat : {None, "svcca"}
        ``"svcca"`` reproduces google/svcca's ``pwcca.compute_pwcca`` (with the fix of its
        PR #9); ``epsilon`` then has the reference's meaning. See :mod:`ccalens.core.compat`.
    permutations, bootstrap, confidence, interval, seed
        Uncertainty: ``permutations=N`` adds a shuffled-datapoints null (``result.null``:
        mean, sd, p-value, baseline-corrected similarity), ``bootstrap=N`` an interval at
        level ``confidence`` by the method ``interval`` (``result.bootstrap``; None is
        the measure family's, :func:`ccalens.core.resampling.default_method`). See :mod:`ccalens.stats`.

    Examples
    --------
    >>> import numpy as np, ccalens
    >>> rng = np.random.default_rng(2)
    >>> shared = rng.standard_normal((4000, 5))
    >>> X = np.c_[shared, 0.1 * rng.standard_normal((4000, 5))] @ rng.standard_normal((10, 10))
    >>> Y = np.c_[shared, 0.1 * rng.standard_normal((4000, 5))] @ rng.standard_normal((10, 10))
    >>> r = ccalens.pwcca(X, Y)
    >>> r.similarity > ccalens.mean_cca(X, Y).similarity
    True
    """
    epsilon = validate.check_epsilon(epsilon)
    _check_compat(compat)
    if not isinstance(symmetric, bool):
        raise TypeError(f"symmetric must be True or False; got {symmetric!r}.")
    _check_uncertainty(permutations, bootstrap, confidence, interval)
    if keep is not None:
        validate.check_keep(keep)
        if compat is not None:
            raise ValueError("keep= (SVD thresholding) is not part of google/svcca's compute_pwcca; "
                             "use keep with compat=None.")
        (X, kx), (Y, ky) = _svd_scores(X, keep, layout, "X"), _svd_scores(Y, keep, layout, "Y")
        result = pwcca(X, Y, symmetric=symmetric, epsilon=epsilon, dtype=dtype, rtol=rtol,
                       permutations=permutations, bootstrap=bootstrap, confidence=confidence, interval=interval,
                       seed=seed)
        return dataclasses.replace(result, x_components=kx, y_components=ky)
    opts = dict(epsilon=epsilon, symmetric=symmetric, layout=layout, dtype=dtype, rtol=rtol, compat=compat)
    if compat == "svcca":
        if symmetric:
            raise ValueError(
                "compat='svcca' reproduces google/svcca, which has no symmetric PWCCA; "
                "use symmetric=False with compat, or compat=None for the symmetric version."
            )
        from . import compat as _compat

        result = _compat.pwcca_svcca(X, Y, epsilon=epsilon, layout=layout)
        return _attach(result, "pwcca", (X, Y), opts, permutations, bootstrap, confidence, seed, None, interval)
    fx, fy, joint = _factor_pair(X, Y, layout=layout, dtype=dtype, rtol=rtol)
    rho, p, q = _canonical(fx, fy, epsilon, joint, want="both" if symmetric else "x")
    weights = _projection_weights(fx, p, epsilon, rho)
    forward = float(weights @ rho)
    reverse_weights = reverse = None
    similarity = forward
    if symmetric:
        reverse_weights_np = _projection_weights(fy, q, epsilon, rho)
        reverse = float(reverse_weights_np @ rho)
        similarity = 0.5 * (forward + reverse)
        reverse_weights = _out(fy, reverse_weights_np)
    result = PWCCAResult(
        similarity=similarity,
        rho=_out(fx, rho),
        weights=_out(fx, weights),
        forward=forward,
        reverse_weights=reverse_weights,
        reverse=reverse,
        weights_from="X",
        x_rank=fx.rank,
        y_rank=fy.rank,
        n_samples=fx.n_samples,
        epsilon=epsilon,
    )
    return _attach(result, "pwcca", (X, Y), opts, permutations, bootstrap, confidence, seed, (fx, fy), interval)


def _svd_scores(X, keep: float, layout: str, name: str):
    """PCA scores of X's centred data on the fewest leading directions holding ``keep`` of its variance."""
    if isinstance(X, Factor):
        raise TypeError(f"keep= needs {name} as an array, not a Factor: the scores need the datapoints.")
    mat = validate.as_matrix(X, name, layout)
    arr = np.asarray(mat.cpu().double().numpy() if is_torch_tensor(mat) else mat, dtype=np.float64)
    validate.check_finite(validate.make_ops(arr, np.float64), arr, name)
    centred = centred_columns(arr)
    u, sigma, _ = svd(centred, full_matrices=False)
    var = _relative_variance(sigma)
    if var.sum() <= 0:
        raise ValueError(f"{name} is constant over the datapoints: it has no variance to keep.")
    k = int(np.searchsorted(np.cumsum(var) / var.sum(), keep * (1.0 - 1e-12), side="left")) + 1
    k = min(k, len(sigma))
    return u[:, :k] * sigma[:k], k


def _check_uncertainty(permutations, bootstrap, confidence, interval) -> None:
    from .resampling import check_options

    check_options(permutations, bootstrap, confidence, interval)


def _attach(result, measure, data, opts, permutations, bootstrap, confidence, seed, factors, interval):
    from .resampling import attach

    return attach(result, measure, data, opts, permutations, bootstrap, confidence, seed, factors=factors,
                  interval=interval)


# ---- kernels on cached factors, and the registrations -------------------------------------

def _pwcca_from_factors(fx, fy, m, *, epsilon=0.0, **_):
    rho, p, q = _canonical(fx, fy, epsilon, want="both", cross=m)
    return (float(_projection_weights(fx, p, epsilon, rho) @ rho),
            float(_projection_weights(fy, q, epsilon, rho) @ rho), {"c": int(rho.size)})


def _mean_cca_from_factors(fx, fy, m, *, epsilon=0.0, **_):
    rho = _canonical(fx, fy, epsilon, want="none", cross=m)[0]
    v = float(np.mean(rho))
    return v, v, {"c": int(rho.size), "rho_max": float(rho[0]) if rho.size else 0.0}


def _svcca_from_factors(fx, fy, m, *, keep=None, **_):
    keep = DEFAULT_KEEP if keep is None else keep
    ux, kx, _ = _components_for(fx, keep, None, "X")
    uy, ky, _ = _components_for(fy, keep, None, "Y")
    rho = np.clip(svd(ux.T @ m @ uy, compute_uv=False)[: min(kx, ky)], 0.0, 1.0)
    v = float(np.mean(rho))
    return v, v, {"x_components": kx, "y_components": ky}


def _rho_stack(ops, m, compute_uv: bool):
    from ._backend import batched_svd

    if ops.name == "torch":
        return ops.torch.linalg.svd(m, full_matrices=False) if compute_uv else ops.torch.linalg.svdvals(m)
    return batched_svd(m, compute_uv=compute_uv)


def _mean_cca_batched(ops, m, proj_a, proj_b):
    """Mean CCA of a stack of equal-rank pairs: one batched SVD."""
    rho = np.clip(ops.to_numpy(_rho_stack(ops, m, False)), 0.0, 1.0)
    r = rho.shape[1]
    return [(float(v), float(v), {"c": r, "rho_max": float(top)}) for v, top in zip(rho.mean(axis=1), rho[:, 0])]


def _pwcca_batched(ops, m, proj_a, proj_b):
    """PWCCA of a stack of equal-rank pairs, both directions: one batched SVD, then the
    weights as one batched product per distinct representation (pairs that share one share
    its projections). Pairs with tied correlations take :func:`projection_weights`'s
    canonical basis, so the values equal :func:`pwcca`'s."""
    u, rho, vh = _rho_stack(ops, m, True)
    rho = np.clip(ops.to_numpy(rho), 0.0, 1.0)
    pairs, r = rho.shape
    weights = {0: np.empty((pairs, r)), 1: np.empty((pairs, r))}
    for side, coef, projs in ((0, u, proj_a), (1, vh, proj_b)):
        groups: dict = {}
        for k, proj in enumerate(projs):
            groups.setdefault(id(proj), (proj, []))[1].append(k)
        for proj, idx in groups.values():
            if ops.name == "torch":
                proj = ops.torch.as_tensor(proj, device=m.device, dtype=m.dtype)
            sel = coef[idx]
            # u's columns and vh's rows are the canonical coefficients of each side
            inner = sel.mT @ proj if side == 0 else sel @ proj
            alpha = ops.to_numpy(inner.abs().sum(-1) if ops.name == "torch" else np.abs(inner).sum(-1))
            weights[side][idx] = alpha / alpha.sum(axis=1, keepdims=True)
            tied = [j for j, k in enumerate(idx) if tie_blocks(rho[k])]
            if tied:  # tied correlations: the core's canonical basis, for those pairs only
                inner = ops.to_numpy(inner)
                for j in tied:
                    weights[side][idx[j]] = projection_weights(rho[idx[j]], inner[j])
    v_ab = (weights[0] * rho).sum(axis=1)
    v_ba = (weights[1] * rho).sum(axis=1)
    return [(float(x), float(y), {"c": r}) for x, y in zip(v_ab, v_ba)]


# the weights are sums of |projections| onto X's neurons: an L1 norm, so rotating or mixing
# X's neurons changes them (transforms of Y alone do not)
registry.register(registry.MeasureSpec(
    "pwcca", "PWCCA", "factor", frozenset({"isotropic_scaling", "permutation", "translation"}), pwcca,
    from_factors=_pwcca_from_factors, batched=_pwcca_batched, directed=True, streamable=True, family="cca"))
registry.register(registry.MeasureSpec(
    "svcca", "SVCCA", "factor", registry.ORTHOGONAL, svcca, from_factors=_svcca_from_factors, streamable=True,
    family="cca"))
registry.register(registry.MeasureSpec(
    "mean_cca", "mean CCA", "factor", registry.ALL_LINEAR, mean_cca, from_factors=_mean_cca_from_factors,
    batched=_mean_cca_batched, streamable=True, family="cca"))
registry.register(registry.MeasureSpec(
    "cca", "mean CCA (cca)", "factor", registry.ALL_LINEAR, cca, from_factors=_mean_cca_from_factors,
    batched=_mean_cca_batched, streamable=True, alias_of="mean_cca", family="cca"))
