r"""Linear predictivity: how well a ridge regression from X's neurons predicts Y's.

The measure of neural-predictivity work (and ReSi's "LinReg"): Y is regressed on X by ridge
regression with an unpenalised intercept, the penalty :math:`\alpha` chosen from a grid by
leave-one-out cross-validation over datapoints, and the similarity is the cross-validated
:math:`R^2`, pooled over Y's neurons (variance-weighted):

.. math::

    R^2 = 1 - \frac{\sum_{i,j} (y_{ij} - \hat y_{ij}^{(-i)})^2}{\sum_{i,j} (y_{ij} - \bar y_j)^2},

:math:`\hat y^{(-i)}` the prediction for datapoint i from a fit without it. The held-out
residuals need no refits: with the hat matrix
:math:`H = 11^T/n + X_c (X_c^T X_c + \alpha I)^{-1} X_c^T` (from one SVD of the centred X),
they are :math:`e_i / (1 - H_{ii})`. This is what scikit-learn's ``RidgeCV`` computes
(``cv_results_``), and the tests check the chosen penalty and the value against it and
against explicit leave-one-out refits. The value is directed (X predicts Y), at most 1, and
can be negative (a prediction worse than Y's mean).

The default grid is relative: :math:`\alpha = 10^{-4} \dots 10^{4}` (17 values) times X's
mean squared singular value, so that scaling X changes nothing; ``alphas=`` takes an
absolute grid, as ``RidgeCV`` does. The penalty is one for all of Y's neurons, the one with
the least total held-out error (the first of equals).

Cost: one SVD of the n x p centred X, then, per penalty, products of size n x rank x q; it
needs the datapoints (it cannot use cached factors or stream).
"""

from __future__ import annotations

import numpy as np

from . import registry
from .linalg import centred_columns
from .results import PredictivityResult
from .validate import host_matrix, unit_exponent, unit_scaled

__all__ = ["RELATIVE_ALPHAS", "predictivity"]

#: the default penalties, as multiples of X's mean squared singular value
RELATIVE_ALPHAS = np.logspace(-4, 4, 17)


def _check_alphas(alphas) -> np.ndarray | None:
    if alphas is None:
        return None
    a = np.atleast_1d(np.asarray(alphas, dtype=np.float64))
    if a.ndim != 1 or a.size == 0 or not np.all(np.isfinite(a)) or np.any(a <= 0):
        raise ValueError(f"alphas must be one or more positive, finite ridge penalties; got {alphas!r}.")
    return a


def loo_errors(X: np.ndarray, Y: np.ndarray, alphas: np.ndarray) -> np.ndarray:
    """Held-out squared errors, shape (n, q, len(alphas)), of ridge regressions of Y on X with an
    unpenalised intercept (scikit-learn's ``RidgeCV(...).cv_results_``)."""
    n = X.shape[0]
    xc, yc = centred_columns(X), centred_columns(Y)  # exact under large common offsets
    u, s, _ = np.linalg.svd(xc, full_matrices=False)
    keep = s > (s[0] if s.size else 0.0) * max(xc.shape) * np.finfo(np.float64).eps  # X's rank
    u, s = u[:, keep], s[keep]
    uty = u.T @ yc
    out = np.empty((n, Y.shape[1], alphas.size))
    for k, a in enumerate(alphas):
        d = s * s / (s * s + a)
        fitted = u @ (d[:, None] * uty)  # X_c beta, beta the ridge solution
        h = 1.0 / n + np.einsum("ij,j,ij->i", u, d, u)  # the hat matrix's diagonal
        out[:, :, k] = ((yc - fitted) / (1.0 - h)[:, None]) ** 2
    return out


def predictivity(
    X,
    Y,
    *,
    alphas=None,
    layout: str = "datapoints_first",
    permutations: int = 0,
    bootstrap: int = 0,
    confidence: float = 0.95,
    interval: str | None = None,
    seed=None,
) -> PredictivityResult:
    """Cross-validated :math:`R^2` of predicting Y's neurons from X's by ridge regression.

    Parameters
    ----------
    X, Y : array-like or torch.Tensor, shapes (n_samples, n_neurons_x), (n_samples, n_neurons_y)
        Rows are datapoints, columns are neurons. X predicts Y (the measure is directed).
    alphas : array-like, optional
        Absolute ridge penalties to choose from (default: :data:`RELATIVE_ALPHAS` times X's
        mean squared singular value).
    layout
        As in :func:`ccalens.cca`.
    permutations, bootstrap, confidence, interval, seed
        Uncertainty: see :mod:`ccalens.stats`.

    Returns
    -------
    PredictivityResult
        ``similarity`` is the pooled held-out :math:`R^2`; ``alpha`` the chosen penalty.

    Examples
    --------
    >>> import numpy as np, ccalens
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((200, 5))
    >>> r = ccalens.predictivity(X, X @ rng.standard_normal((5, 3)) + 0.1 * rng.standard_normal((200, 3)))
    >>> r.similarity > 0.95
    True
    """
    from .resampling import attach, check_options

    check_options(permutations, bootstrap, confidence, interval)
    given = _check_alphas(alphas)
    # predictivity ignores each side's scale: exact powers of two keep every square in range;
    # the penalties scale with X's squares, so they are given and reported in X's own units
    x, y = host_matrix(X, "X", layout), host_matrix(Y, "Y", layout)
    k = unit_exponent(float(np.max(np.abs(x))) if x.size else 0.0)
    x, y = np.ldexp(x, k), unit_scaled(y)
    shift = 2 * k  # the penalties in X's units are 2**-shift times those here
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"X and Y must have the same number of datapoints: X is {x.shape} and Y is {y.shape} as "
                         f"(datapoints, neurons).")
    n = x.shape[0]
    if n < 3:
        raise ValueError(f"leave-one-out predictivity needs at least 3 datapoints; got {n}.")
    total = float(np.sum(centred_columns(y) ** 2))
    if total == 0.0:
        raise ValueError("Y is constant over the datapoints: there is no variance to predict.")
    if given is None:
        scale = float(np.sum(centred_columns(x) ** 2)) / max(1, min(x.shape))
        if scale == 0.0:
            raise ValueError("X is constant over the datapoints: it cannot predict anything.")
        grid = RELATIVE_ALPHAS * scale
    else:
        with np.errstate(over="ignore", under="ignore"):
            grid = np.ldexp(np.asarray(given, dtype=np.float64), shift)
    errors = loo_errors(x, y, grid)
    per_alpha = errors.sum(axis=(0, 1))
    best = int(np.argmin(per_alpha))  # the first of equals, as RidgeCV
    value = 1.0 - float(per_alpha[best]) / total
    with np.errstate(over="ignore", under="ignore"):  # penalties of data near 1e300 are beyond float64: inf
        own = np.ldexp(grid, -shift)
    result = PredictivityResult(similarity=value, alpha=float(own[best]), alphas=own, n_samples=int(n))
    return attach(result, "predictivity", (x, y), {"alphas": alphas}, permutations, bootstrap, confidence, seed,
                  interval=interval)


registry.register(registry.MeasureSpec(
    "predictivity", "linear predictivity (ridge, held-out R^2)", "raw", registry.ORTHOGONAL, predictivity,
    directed=True, identical=None, family="predictivity"))
