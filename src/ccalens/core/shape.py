r"""Generalised shape metrics (Williams, Kunz, Kornblith & Linderman 2021): angular distance
after partial whitening.

Each side is centred and partially whitened,
:math:`\phi_\alpha(X) = X_c\,(\alpha I + (1-\alpha)(X_c^T X_c)^{-1/2})`, and the distance is
the angle between the two whitened representations once the best rotation aligns them:

.. math::

    \theta_\alpha(X, Y) = \arccos \frac{\|\phi_\alpha(X)^T \phi_\alpha(Y)\|_*}
                                       {\|\phi_\alpha(X)\|_F\,\|\phi_\alpha(Y)\|_F}
    \in [0, \pi/2].

With the singular value decomposition of the centred data,
:math:`X_c = Q_x \operatorname{diag}(\sigma_x) V_x^T`, the whitening only reweights each
principal direction: :math:`\phi_\alpha(X) = Q_x \operatorname{diag}(w_x) V_x^T` with
:math:`w = \alpha\sigma + (1-\alpha)`, so the value needs only the two sides' cached
factors and :math:`Q_x^T Q_y`:
:math:`\cos\theta_\alpha = \|\operatorname{diag}(w_x)\,Q_x^T Q_y\operatorname{diag}(w_y)\|_*
/ (\|w_x\|\,\|w_y\|)`.

* :math:`\alpha = 0` is the CCA end: :math:`\cos\theta_0 = \sum_i \rho_i / \sqrt{r_x r_y}`
  (the mean canonical correlation when the ranks are equal), invariant to any invertible
  linear map of the neurons.
* :math:`\alpha = 1` is the Procrustes end: :math:`\cos\theta_1` is
  :func:`ccalens.procrustes`'s similarity, invariant to rotations and isotropic scaling.
* For :math:`0 < \alpha < 1` the weights mix :math:`\sigma`, which grows with the data's
  scale (and with :math:`\sqrt n`), with the constant :math:`1-\alpha`: the value is
  invariant to rotations, permutations and translations of the neurons, **not** to their
  overall scale. This is Williams et al.'s definition and netrep's (``LinearMetric``,
  which whitens with :math:`X_c^T X_c`, not divided by n); scale both sides alike (e.g.
  to unit total variance) when the scale should not matter.

:math:`\theta_\alpha` is a metric (it satisfies the triangle inequality) on
representations with the same datapoints; unequal widths are compared as netrep does, by
zero-padding the narrower side, which leaves the value unchanged (a zero column adds no
direction). Directions below the rank tolerance (``rtol``) are dropped, where netrep
clips the eigenvalues of :math:`X_c^T X_c` at :math:`10^{-7}`; on the tests' awkward
inputs (unequal widths, dead and repeated neurons, large offsets, 8 datapoints, scales
from 1e-2 to 1e3) the two agree to 1e-10 (measured: within 2e-13, the largest with the repeated neuron).

Cost: one factorisation per side (cached by :func:`ccalens.factorize` and by
``pairwise``), then a rank x rank product and one SVD per pair, as Procrustes.

References
----------
.. [1] A. H. Williams, E. Kunz, S. Kornblith, S. W. Linderman. Generalized shape metrics
   on neural representations. NeurIPS 2021.
"""

from __future__ import annotations

import functools

import numpy as np

from . import registry
from ._backend import svd
from .pairs import cross, factor_pair
from .results import ShapeResult

#: the partial-whitening parameter of the registered measure ``"shape"`` (the family's middle)
DEFAULT_ALPHA = 0.5


def check_alpha(alpha) -> float:
    try:
        value = float(alpha)
    except (TypeError, ValueError):
        raise TypeError(f"alpha must be a number in [0, 1]; got {alpha!r}.") from None
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1] (0: the CCA end, 1: Procrustes); got {alpha!r}.")
    return value


def shape_metric(
    X,
    Y,
    *,
    alpha: float = DEFAULT_ALPHA,
    layout: str = "datapoints_first",
    dtype=None,
    rtol: float | None = None,
    permutations: int = 0,
    bootstrap: int = 0,
    confidence: float = 0.95,
    interval: str | None = None,
    seed=None,
) -> ShapeResult:
    r"""Angular shape distance with partial whitening (Williams et al. 2021).

    Parameters
    ----------
    X, Y : array-like, torch.Tensor or Factor, shape (n_samples, n_neurons)
        Rows are datapoints, columns are neurons; the widths may differ.
    alpha : float in [0, 1]
        Partial whitening: 0 whitens fully (the CCA end, invariant to invertible linear
        maps), 1 does not whiten (angular Procrustes). Between them the value depends on
        the data's overall scale (see the module docstring).
    layout, dtype, rtol
        As in :func:`ccalens.cca`.
    permutations, bootstrap, confidence, interval, seed
        Uncertainty: see :mod:`ccalens.stats`.

    Returns
    -------
    ShapeResult
        ``similarity`` = :math:`\cos\theta_\alpha`; ``distance`` = :math:`\theta_\alpha`
        in radians, in [0, pi/2].

    Examples
    --------
    >>> import numpy as np, ccalens
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((300, 5))
    >>> Q, _ = np.linalg.qr(rng.standard_normal((5, 5)))
    >>> round(ccalens.shape_metric(X, X @ Q + 7, alpha=0.5).distance, 6)  # a rotation and a shift
    0.0
    >>> A = rng.standard_normal((5, 5))
    >>> round(ccalens.shape_metric(X, X @ A, alpha=0.0).distance, 6)  # any invertible map at alpha = 0
    0.0
    >>> bool(ccalens.shape_metric(X, X @ A, alpha=1.0).distance > 0.1)
    True
    """
    from .resampling import attach, check_options

    alpha = check_alpha(alpha)
    check_options(permutations, bootstrap, confidence, interval)
    fx, fy, joint = factor_pair(X, Y, layout=layout, dtype=dtype, rtol=rtol, warn=False)
    value = shape_from_factors(fx, fy, cross(fx, fy, joint), alpha=alpha)[0]
    result = ShapeResult(similarity=value, alpha=alpha, x_rank=fx.rank, y_rank=fy.rank, n_samples=fx.n_samples)
    # the registered measure with this alpha resamples from the factors; any other alpha
    # recomputes this function on the resampled activations
    name = {0.0: "shape_cca", DEFAULT_ALPHA: "shape"}.get(alpha, "shape")
    registered = registry.MEASURES[name].fixed.get("alpha", DEFAULT_ALPHA) == alpha
    return attach(result, name, (X, Y), {"layout": layout, "dtype": dtype, "rtol": rtol, "alpha": alpha},
                  permutations, bootstrap, confidence, seed, factors=(fx, fy) if registered else None,
                  interval=interval)


def shape_from_factors(fx, fy, m, *, alpha: float, **_):
    """(cos theta, cos theta, {}) from the factors and :math:`M = Q_x^T Q_y` (symmetric)."""
    ux, sx = fx.pca
    uy, sy = fy.pca
    wx = alpha * np.asarray(sx, dtype=np.float64) + (1.0 - alpha)
    wy = alpha * np.asarray(sy, dtype=np.float64) + (1.0 - alpha)
    # the value is invariant to scaling wx and wy each by a positive number: divided by
    # their largest, the products below neither overflow nor underflow at extreme scales
    wx, wy = wx / wx.max(), wy / wy.max()
    b = (ux * wx[None, :]).T @ m @ (uy * wy[None, :])
    nuclear = float(svd(b, compute_uv=False).sum())
    v = min(nuclear / float(np.linalg.norm(wx) * np.linalg.norm(wy)), 1.0)
    return v, v, {}


registry.register(registry.MeasureSpec(
    "shape", f"shape metric (angular, alpha = {DEFAULT_ALPHA})", "factor",
    frozenset({"orthogonal", "permutation", "translation"}), shape_metric,
    from_factors=functools.partial(shape_from_factors, alpha=DEFAULT_ALPHA), streamable=True,
    distance=registry.angular, family="shape"))
registry.register(registry.MeasureSpec(
    "shape_cca", "shape metric (angular, alpha = 0)", "factor", registry.ALL_LINEAR, shape_metric, fixed={"alpha": 0.0},
    from_factors=functools.partial(shape_from_factors, alpha=0.0), streamable=True,
    distance=registry.angular, family="shape"))
