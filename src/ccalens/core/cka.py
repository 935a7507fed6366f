r"""Centred kernel alignment (CKA): linear, debiased (unbiased HSIC) and RBF.

.. math::

    \mathrm{CKA}(K, L) = \frac{\mathrm{HSIC}(K, L)}{\sqrt{\mathrm{HSIC}(K, K)\,\mathrm{HSIC}(L, L)}},
    \qquad \mathrm{HSIC}(K, L) \propto \mathrm{tr}(K H L H),

with :math:`H = I - \frac1n 1 1^T` and kernels over the datapoints [1]_. For linear
kernels :math:`K = X_c X_c^T` this is
:math:`\|X_c^T Y_c\|_F^2 / (\|X_c^T X_c\|_F \|Y_c^T Y_c\|_F)`, computed here from the
cached factorisation without any n x n matrix (see :mod:`ccalens.core.registry`).

The debiased CKA replaces HSIC by its unbiased estimator [2]_ [3]_

.. math::

    \mathrm{HSIC}_1(K, L) = \frac{1}{n(n-3)}\Big[\mathrm{tr}(\tilde K \tilde L)
      + \frac{1^T \tilde K 1 \; 1^T \tilde L 1}{(n-1)(n-2)}
      - \frac{2}{n-2} 1^T \tilde K \tilde L 1\Big],

:math:`\tilde K` being K with its diagonal set to zero. Linear CKA is biased upward when
datapoints are few relative to neurons; the debiased value is not (it can be negative).

RBF CKA uses :math:`K_{ij} = \exp(-\|x_i - x_j\|^2 / (2\sigma^2))` with
:math:`\sigma` = ``bandwidth`` times the median distance between distinct datapoints [1]_
(``bandwidth_rule="median_distance"``, the default). Kornblith et al.'s released code
sets :math:`\sigma^2` = ``bandwidth``:math:`^2` times the median squared distance over the
whole n x n matrix, its n zeros on the diagonal included, which gives a slightly smaller
sigma: ``bandwidth_rule="kornblith"`` (the measure ``"cka_rbf_kornblith"``) follows it and
reproduces their demo value 0.65483 (threshold 0.5) where the default rule gives 0.65401. The kernels are built from
pairwise differences (not from Gram matrices, which cancel for close datapoints) in
float64 on the CPU; torch tensors are copied to the host for them.

References
----------
.. [1] S. Kornblith, M. Norouzi, H. Lee, G. Hinton. Similarity of Neural Network
   Representations Revisited. ICML 2019.
.. [2] L. Song, A. Smola, A. Gretton, J. Bedo, K. Borgwardt. Feature Selection via
   Dependence Maximization. JMLR 13 (2012).
.. [3] T. Nguyen, M. Raghu, S. Kornblith. Do Wide and Deep Networks Learn the Same
   Things? ICLR 2021 (minibatch CKA).
"""

from __future__ import annotations

import numbers

import numpy as np

from . import registry
from ._backend import is_torch_tensor
from .pairs import pca_cross
from .pairs import cross, factor_pair
from .hsic import centre_kernel, hsic_biased, hsic_unbiased, hsic_unbiased_linear
from .results import CKAResult
from .validate import unit_scaled

KERNELS = ("linear", "rbf")

#: RBF CKA holds a few n x n float64 matrices; beyond this many bytes for one of them it
#: refuses, with advice, rather than exhaust memory.
MAX_KERNEL_BYTES = 4 * 2**30


#: RBF CKA's default sigma, as a fraction of the median distance between datapoints
DEFAULT_BANDWIDTH = 0.8

#: how the RBF width follows from ``bandwidth`` (see the module text)
BANDWIDTH_RULES = ("median_distance", "kornblith")


def check_bandwidth_rule(rule) -> str:
    if rule not in BANDWIDTH_RULES:
        raise ValueError(f"bandwidth_rule must be one of {BANDWIDTH_RULES}: 'median_distance' (sigma = bandwidth x "
                         f"the median distance between distinct datapoints) or 'kornblith' (sigma^2 = bandwidth^2 x "
                         f"the median squared distance, diagonal included, as Kornblith et al.'s code); got {rule!r}.")
    return rule


def check_bandwidth(bandwidth) -> float:
    if isinstance(bandwidth, bool) or not isinstance(bandwidth, numbers.Real) or not (0 < float(bandwidth) < np.inf):
        raise ValueError(
            f"bandwidth must be a positive number: the RBF width as a fraction of the median "
            f"distance between datapoints (Kornblith et al. use 0.2 to 0.8); got {bandwidth!r}."
        )
    return float(bandwidth)


def check_square_memory(n: int, what: str, unit: str, alternative: str = "") -> None:
    """Refuse, with advice, an n x n float64 matrix above :data:`MAX_KERNEL_BYTES` (the measures
    that hold one per representation: RBF CKA, RSA, nearest neighbours)."""
    if 8 * n * n > MAX_KERNEL_BYTES:
        raise ValueError(
            f"{what}: {n:,} datapoints make {8 * n * n / 2**30:.1f} GiB per {unit} (the limit is "
            f"{MAX_KERNEL_BYTES / 2**30:.0f} GiB). Compare a random subset of at most "
            f"{int(np.sqrt(MAX_KERNEL_BYTES / 8)):,} datapoints{alternative}."
        )


def rbf_kernel(arr, bandwidth: float, name: str, rule: str = "median_distance") -> np.ndarray:
    """The RBF kernel matrix of one representation (numpy float64, n x n); ``rule`` says how
    sigma follows from ``bandwidth`` (:data:`BANDWIDTH_RULES`)."""
    n = arr.shape[0]
    check_square_memory(n, "RBF CKA needs n x n kernels", "kernel", ", or use linear CKA, which needs no kernel matrix")
    x = arr.detach().cpu().numpy() if is_torch_tensor(arr) else np.asarray(arr)
    x = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        bad = np.argwhere(~np.isfinite(x))[0]
        raise ValueError(
            f"{name} contains {int(np.count_nonzero(~np.isfinite(x)))} non-finite value(s) (NaN or "
            f"Inf); the first is at datapoint {bad[0]}, neuron {bad[1]}. Remove or impute them "
            f"before comparing."
        )
    from scipy.spatial.distance import pdist, squareform

    x = unit_scaled(x)  # the kernel ignores the scale (sigma follows the distances): no square overflows
    # differences, not |x|^2 + |y|^2 - 2 x.y, which cancels for close datapoints
    off = pdist(x - x.mean(axis=0), "sqeuclidean")
    if rule == "kornblith":  # the median over all n^2 squared distances: each pair twice, and n zeros
        median_sq = float(np.median(np.concatenate([off, off, np.zeros(n)])))
    else:
        median_sq = float(np.median(np.sqrt(off))) ** 2
    if median_sq == 0.0:
        raise ValueError(
            f"{name}: the median distance between datapoints is 0 (most datapoints have identical "
            f"activations), so an RBF bandwidth relative to it is undefined; use linear CKA."
        )
    sigma_sq = bandwidth * bandwidth * median_sq
    return squareform(np.exp(-off / (2.0 * sigma_sq)), checks=False) + np.eye(n)


class KernelPair:
    """The RBF kernels of two representations, kept for permutations and bootstraps."""

    def __init__(self, x, y, bandwidth: float, debiased: bool, rule: str = "median_distance"):
        self.debiased = debiased
        if debiased:
            check_debiased(x.shape[0], 1.0, 1.0)  # n >= 4 before the estimator divides by n - 3
        self.k = rbf_kernel(x, bandwidth, "X", rule)
        self.l = rbf_kernel(y, bandwidth, "Y", rule)
        if debiased:
            self.xx, self.yy = hsic_unbiased(self.k, self.k), hsic_unbiased(self.l, self.l)
            check_debiased(self.k.shape[0], self.xx, self.yy)
        else:
            self.k, self.l = centre_kernel(self.k), centre_kernel(self.l)
            self.xx, self.yy = hsic_biased(self.k, self.k), hsic_biased(self.l, self.l)

    @classmethod
    def from_centred(cls, k: np.ndarray, kk: float, l: np.ndarray, ll: float) -> "KernelPair":
        """A biased-HSIC pair from kernels already centred (and their self terms), as the
        pairwise engine keeps them, one per representation."""
        pair = cls.__new__(cls)
        pair.debiased, pair.k, pair.l, pair.xx, pair.yy = False, k, l, kk, ll
        return pair

    def value(self, y_rows=None) -> tuple[float, float]:
        """(CKA, HSIC(X, Y)), with Y's datapoints permuted by ``y_rows`` if given."""
        l = self.l if y_rows is None else self.l[np.ix_(y_rows, y_rows)]
        xy = hsic_unbiased(self.k, l) if self.debiased else hsic_biased(self.k, l)
        return float(xy / np.sqrt(self.xx * self.yy)), xy


def cka(
    X,
    Y,
    *,
    kernel: str = "linear",
    debiased: bool = False,
    bandwidth: float = DEFAULT_BANDWIDTH,
    bandwidth_rule: str = "median_distance",
    layout: str = "datapoints_first",
    dtype=None,
    rtol: float | None = None,
    permutations: int = 0,
    bootstrap: int = 0,
    confidence: float = 0.95,
    interval: str | None = None,
    seed=None,
) -> CKAResult:
    r"""Centred kernel alignment (Kornblith et al. 2019).

    .. math::

        \mathrm{CKA}_{lin}(X, Y) = \frac{\|X_c^T Y_c\|_F^2}{\|X_c^T X_c\|_F\,\|Y_c^T Y_c\|_F}

    Parameters
    ----------
    X, Y : array-like, torch.Tensor or Factor, shape (n_samples, n_neurons)
        Rows are datapoints, columns are neurons (Factors for the linear kernel only).
    kernel : {"linear", "rbf"}
    debiased : bool, default False
        Use the unbiased HSIC estimator (Song et al. 2012), which removes linear CKA's
        upward bias at few datapoints. Needs at least 4 datapoints.
    bandwidth : float, default 0.8
        RBF only: sigma as a fraction of the median distance between datapoints.
    bandwidth_rule : {"median_distance", "kornblith"}
        RBF only: how sigma follows from ``bandwidth`` ("kornblith": sigma^2 = bandwidth^2 x
        the median squared distance, diagonal included, as Kornblith et al.'s code, whose
        ``threshold`` is ``bandwidth``).
    layout, dtype, rtol
        As in :func:`ccalens.cca`.
    permutations, bootstrap, confidence, interval, seed
        Uncertainty: see :mod:`ccalens.stats`.

    Returns
    -------
    CKAResult
        ``similarity`` in [0, 1] (debiased: can be slightly negative); invariant to
        orthogonal transforms and isotropic scaling of either side, not to invertible
        linear maps.

    Examples
    --------
    >>> import numpy as np, ccalens
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((300, 8))
    >>> Q, _ = np.linalg.qr(rng.standard_normal((8, 8)))
    >>> round(ccalens.cka(X, 2.5 * X @ Q + 1.0).similarity, 10)   # rotated, scaled, shifted
    1.0
    """
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be 'linear' or 'rbf'; got {kernel!r}.")
    if not isinstance(debiased, (bool, np.bool_)):
        raise TypeError(f"debiased must be True or False; got {debiased!r}.")
    debiased = bool(debiased)
    bandwidth = check_bandwidth(bandwidth)
    from .resampling import attach, check_options

    check_options(permutations, bootstrap, confidence, interval)
    bandwidth_rule = check_bandwidth_rule(bandwidth_rule)
    if kernel == "rbf":
        measure = "cka_rbf_kornblith" if bandwidth_rule == "kornblith" else "cka_rbf"
    else:
        measure = "cka_debiased" if debiased else "cka"
    if kernel == "rbf":
        from .pairs import as_matrices

        ax, ay = as_matrices(X, Y, layout, allow_factor=False, measure="RBF CKA")
        pair = KernelPair(ax, ay, bandwidth, debiased, bandwidth_rule)
        value, xy = pair.value()
        result = CKAResult(similarity=value, kernel="rbf", debiased=debiased, bandwidth=bandwidth,
                           hsic_xy=xy, hsic_xx=pair.xx, hsic_yy=pair.yy, n_samples=int(ax.shape[0]))
        return attach(result, measure, (ax, ay), {"bandwidth": bandwidth, "debiased": debiased},
                      permutations, bootstrap, confidence, seed, kernels=pair, interval=interval)
    fx, fy, joint = factor_pair(X, Y, layout=layout, dtype=dtype, rtol=rtol, warn=False)
    m = cross(fx, fy, joint)
    if debiased:
        xy, xx, yy = debiased_terms(fx, fy, m)
        check_debiased(fx.n_samples, xx, yy)
        value = float(xy / np.sqrt(xx * yy))
        # the terms were taken relative to each side's largest singular value; reported at
        # the data's own scale (0 or inf only where that is beyond float64's range)
        tx, ty = np.float64(fx.unit_spectrum[1]), np.float64(fy.unit_spectrum[1])
        with np.errstate(over="ignore", under="ignore"):
            xy, xx, yy = xy * tx * tx * ty * ty, xx * tx**4, yy * ty**4
    else:
        value = _cka_from_factors(fx, fy, m)[0]
        gx, gy = np.float64(fx.gram_frobenius), np.float64(fy.gram_frobenius)
        with np.errstate(over="ignore", under="ignore"):  # reported at the data's own scale
            xy, xx, yy = value * gx * gy, gx * gx, gy * gy
    result = CKAResult(similarity=value, kernel="linear", debiased=debiased, bandwidth=None,
                       hsic_xy=float(xy), hsic_xx=float(xx), hsic_yy=float(yy), n_samples=fx.n_samples)
    return attach(result, measure, (X, Y), {"layout": layout, "dtype": dtype, "rtol": rtol},
                  permutations, bootstrap, confidence, seed, factors=(fx, fy), interval=interval)


def debiased_terms(fx, fy, m: np.ndarray, y_rows=None):
    """(HSIC_1(X, Y), HSIC_1(X, X), HSIC_1(Y, Y)) from the factors, each side's data divided
    by its largest singular value (:attr:`~ccalens.core.factor.Factor.unit_spectrum`: the
    ratio CKA takes is the same, and no power of sigma under- or overflows); ``y_rows``
    permutes Y."""
    if fx.n_samples < 4:
        check_debiased(fx.n_samples, 1.0, 1.0)
    a = fx.unit_row_sqnorms
    b = fy.unit_row_sqnorms if y_rows is None else fy.unit_row_sqnorms[y_rows]
    xy = float(np.sum(pca_cross(fx, fy, m, relative=True) ** 2))
    xx = hsic_unbiased_linear(float(np.sum(fx.unit_spectrum[0] ** 4)), a, a)
    yy = hsic_unbiased_linear(float(np.sum(fy.unit_spectrum[0] ** 4)), b, b)
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


def _cka_from_factors(fx, fy, m, **_):
    # relative to each side's largest singular value: the same ratio, at any scale
    v = float(np.sum(pca_cross(fx, fy, m, relative=True) ** 2)
              / np.sqrt(np.sum(fx.unit_spectrum[0] ** 4) * np.sum(fy.unit_spectrum[0] ** 4)))
    return v, v, {}


def _cka_debiased_from_factors(fx, fy, m, *, y_rows=None, **_):
    xy, xx, yy = debiased_terms(fx, fy, m, y_rows)
    check_debiased(fx.n_samples, xx, yy)
    v = float(xy / np.sqrt(xx * yy))
    return v, v, {}


registry.register(registry.MeasureSpec(
    "cka", "linear CKA", "factor", registry.ORTHOGONAL, cka, from_factors=_cka_from_factors, streamable=True,
    family="cka"))
registry.register(registry.MeasureSpec(
    "cka_debiased", "debiased linear CKA", "factor", registry.ORTHOGONAL, cka, fixed={"debiased": True},
    from_factors=_cka_debiased_from_factors, family="cka"))
registry.register(registry.MeasureSpec(
    "cka_rbf", "RBF CKA", "kernel", registry.ORTHOGONAL, cka, fixed={"kernel": "rbf"}, family="cka"))
registry.register(registry.MeasureSpec(
    "cka_rbf_kornblith", "RBF CKA (Kornblith et al.'s bandwidth rule)", "kernel", registry.ORTHOGONAL, cka,
    fixed={"kernel": "rbf", "bandwidth_rule": "kornblith"}, family="cka"))
