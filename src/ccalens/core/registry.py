r"""Every measure by name: what it claims, and how it is computed from cached factors.

Most measures are functions of one small matrix once each side is factorised
(:mod:`ccalens.core.factor`): with :math:`Q_x, Q_y` the orthonormal bases of the centred
data and :math:`M = Q_x^T Q_y`,

* the canonical correlations are the singular values of :math:`M`;
* with the PCA of each side inside its basis, :math:`X_c = Q_x U_x \Sigma_x W_x^T`, the
  cross-covariance :math:`X_c^T Y_c = W_x A W_y^T` with
  :math:`A = \Sigma_x U_x^T M U_y \Sigma_y`, so linear CKA
  (:math:`\|A\|_F^2` over the self terms) and the Procrustes similarity
  (:math:`\|A\|_*` over the Frobenius norms) need only :math:`A`.

The pairwise engine and the permutation null both build on this: they form many
:math:`M` from one large product and call :func:`from_cross` for each.

``"cosine"``, ``"euclidean"`` (raw activations, matched neurons) and ``"cka_rbf"``
(n x n kernels) are computed from the data instead (:mod:`ccalens.core.alignment`,
:mod:`ccalens.core.cka`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._backend import svd

#: transforms of one side's neurons that the invariance checks apply (``ccalens sanity``)
TRANSFORMS = ("orthogonal", "isotropic_scaling", "invertible_linear", "permutation", "translation")


@dataclass(frozen=True)
class MeasureSpec:
    """What a measure is and what its documentation claims about it."""

    name: str
    title: str
    kind: str  # "factor" (from M), "kernel" (n x n kernels) or "raw" (matched neurons)
    invariant_to: frozenset
    same_width: bool = False


_ALL_LINEAR = frozenset(TRANSFORMS)
_ORTHO = frozenset({"orthogonal", "isotropic_scaling", "permutation", "translation"})

MEASURES: dict[str, MeasureSpec] = {
    spec.name: spec
    for spec in (
        MeasureSpec("cca", "mean CCA (cca)", "factor", _ALL_LINEAR),
        MeasureSpec("mean_cca", "mean CCA", "factor", _ALL_LINEAR),
        MeasureSpec("svcca", "SVCCA", "factor", _ORTHO),
        # the weights are sums of |projections| onto X's neurons: an L1 norm, so rotating
        # or mixing X's neurons changes them (transforms of Y alone do not)
        MeasureSpec("pwcca", "PWCCA", "factor", frozenset({"isotropic_scaling", "permutation", "translation"})),
        MeasureSpec("cka", "linear CKA", "factor", _ORTHO),
        MeasureSpec("cka_debiased", "debiased linear CKA", "factor", _ORTHO),
        MeasureSpec("cka_rbf", "RBF CKA", "kernel", _ORTHO),
        MeasureSpec("procrustes", "Procrustes", "factor", _ORTHO),
        MeasureSpec("cosine", "cosine (matched neurons)", "raw", frozenset({"isotropic_scaling"}), same_width=True),
        MeasureSpec("euclidean", "Euclidean (matched neurons)", "raw", frozenset(), same_width=True),
    )
}


def check_measure(measure: str) -> MeasureSpec:
    if measure not in MEASURES:
        raise ValueError(f"measure must be one of {tuple(MEASURES)}; got {measure!r}.")
    return MEASURES[measure]


def distance(measure: str, similarity):
    """The distance each measure reports, from its similarity: 1 - similarity, except
    Procrustes (2 - 2 * similarity, the squared Procrustes distance of unit-norm data) and
    Euclidean (whose similarity is the negated RMS distance)."""
    if measure == "procrustes":
        return 2.0 - 2.0 * similarity
    if measure == "euclidean":
        return -similarity
    return 1.0 - similarity


def _pca_cross(fx, fy, m: np.ndarray) -> np.ndarray:
    """A = Sigma_x U_x^T M U_y Sigma_y: X_c^T Y_c in the two sides' principal axes."""
    ux, sx = fx.pca
    uy, sy = fy.pca
    return (ux * sx[None, :]).T @ m @ (uy * sy[None, :])


def hsic_unbiased_linear(xy_sq: float, a: np.ndarray, b: np.ndarray) -> float:
    r"""Song et al.'s unbiased HSIC for linear kernels of centred data, without n x n kernels.

    With :math:`K = X_c X_c^T` and :math:`a = \mathrm{diag}(K)` (row norms squared),
    centring gives :math:`K 1 = 0`, so :math:`\tilde K 1 = -a`,
    :math:`1^T \tilde K 1 = -\sum a` and :math:`\mathrm{tr}(\tilde K \tilde L) =
    \|X_c^T Y_c\|_F^2 - a \cdot b`. ``xy_sq`` is :math:`\|X_c^T Y_c\|_F^2`.
    """
    n = a.size
    ab = float(a @ b)
    return (xy_sq - ab + a.sum() * b.sum() / ((n - 1) * (n - 2)) - 2.0 * ab / (n - 2)) / (n * (n - 3))


def debiased_terms(fx, fy, m: np.ndarray, y_rows=None):
    """(HSIC_1(X, Y), HSIC_1(X, X), HSIC_1(Y, Y)) from the factors; ``y_rows`` permutes Y."""
    if fx.n_samples < 4:
        check_debiased(fx.n_samples, 1.0, 1.0)
    a = fx.row_sqnorms
    b = fy.row_sqnorms if y_rows is None else fy.row_sqnorms[y_rows]
    xy = float(np.sum(_pca_cross(fx, fy, m) ** 2))
    xx = hsic_unbiased_linear(fx.gram_frobenius**2, a, a)
    yy = hsic_unbiased_linear(fy.gram_frobenius**2, b, b)
    return hsic_unbiased_linear(xy, a, b), xx, yy


def check_debiased(n: int, xx: float, yy: float) -> None:
    if n < 4:
        raise ValueError(f"debiased CKA needs at least 4 datapoints (its estimator divides by n - 3); got {n}.")
    if xx <= 0 or yy <= 0:
        side = "X" if xx <= 0 else "Y"
        raise ValueError(
            f"debiased CKA is undefined here: the unbiased HSIC of {side} with itself is "
            f"{min(xx, yy):.3g} <= 0, which happens when datapoints are very few; use more "
            f"datapoints or the biased estimator (debiased=False)."
        )


def from_cross(measure: str, fx, fy, m: np.ndarray, *, epsilon: float = 0.0, keep: float = 0.99,
               y_rows=None):
    """(value with fx's weights, value with fy's weights, details) of one pair from M.

    ``m`` is :math:`Q_x^T Q_y`; ``y_rows`` is the permutation applied to Y's datapoints
    when m was formed from permuted rows (only the debiased CKA needs to know it).
    """
    from .measures import _canonical, _components_for, _projection_weights

    if measure == "pwcca":
        rho, p, q = _canonical(fx, fy, epsilon, want="both", cross=m)
        return (float(_projection_weights(fx, p, epsilon, rho) @ rho),
                float(_projection_weights(fy, q, epsilon, rho) @ rho), {"c": int(rho.size)})
    if measure in ("mean_cca", "cca"):
        rho = _canonical(fx, fy, epsilon, want="none", cross=m)[0]
        v = float(np.mean(rho))
        return v, v, {"c": int(rho.size), "rho_max": float(rho[0]) if rho.size else 0.0}
    if measure == "svcca":
        ux, kx, _ = _components_for(fx, keep, None, "X")
        uy, ky, _ = _components_for(fy, keep, None, "Y")
        rho = np.clip(svd(ux.T @ m @ uy, compute_uv=False)[: min(kx, ky)], 0.0, 1.0)
        v = float(np.mean(rho))
        return v, v, {"x_components": kx, "y_components": ky}
    if measure == "cka":
        v = float(np.sum(_pca_cross(fx, fy, m) ** 2) / (fx.gram_frobenius * fy.gram_frobenius))
        return v, v, {}
    if measure == "cka_debiased":
        xy, xx, yy = debiased_terms(fx, fy, m, y_rows)
        check_debiased(fx.n_samples, xx, yy)
        v = float(xy / np.sqrt(xx * yy))
        return v, v, {}
    if measure == "procrustes":
        nuclear = svd(_pca_cross(fx, fy, m), compute_uv=False).sum()
        v = float(nuclear / np.sqrt(np.sum(fx.pca[1] ** 2) * np.sum(fy.pca[1] ** 2)))
        v = min(v, 1.0)
        return v, v, {}
    raise ValueError(f"{measure!r} is not computed from factors (see MEASURES[{measure!r}].kind).")
