r"""Procrustes, and the matched-neuron controls (cosine and Euclidean).

Orthogonal Procrustes, as a similarity measure (Ding, Denain & Steinhardt 2021): centre
each representation and scale it to unit Frobenius norm, :math:`\hat X = X_c/\|X_c\|_F`;
then

.. math::

    \min_{R^T R = I} \|\hat X - \hat Y R\|_F^2 = 2 - 2\,\|\hat X^T \hat Y\|_*,

so the similarity is the nuclear norm :math:`\|\hat X^T \hat Y\|_*` in [0, 1] and the
reported distance is :math:`2 - 2\,\|\hat X^T \hat Y\|_*` (zero-padding the narrower side
makes R a partial isometry when the widths differ).

The controls the paper uses (Figures A5 and A8) compare neuron j of X with neuron j of Y,
so they need the same width and see how units are ordered and mixed:

* cosine: :math:`\langle X, Y\rangle_F / (\|X\|_F \|Y\|_F)` over the raw activations;
  distance 1 - cosine;
* Euclidean: :math:`\|X - Y\|_F / \sqrt n`, the root-mean-square distance between the
  datapoints' activation vectors; its similarity is the negated distance, so that larger
  is more similar, as everywhere else.

References
----------
.. [1] F. Ding, J.-S. Denain, J. Steinhardt. Grounding Representation Similarity with
   Statistical Testing. NeurIPS 2021.
.. [2] A. S. Morcos, M. Raghu, S. Bengio. Insights on representational similarity in
   neural networks with canonical correlation. NeurIPS 2018 (appendix A5, A8).
"""

from __future__ import annotations

import math

import numpy as np

from ._backend import is_torch_tensor
from .pairs import as_matrices, cross, factor_pair
from . import registry
from ._backend import svd
from .pairs import pca_cross
from .results import MatchedResult, ProcrustesResult
from .validate import unit_exponent


def procrustes(
    X,
    Y,
    *,
    layout: str = "datapoints_first",
    dtype=None,
    rtol: float | None = None,
    permutations: int = 0,
    bootstrap: int = 0,
    confidence: float = 0.95,
    interval: str | None = None,
    seed=None,
) -> ProcrustesResult:
    r"""Orthogonal Procrustes similarity of two representations (Ding et al. 2021).

    Parameters
    ----------
    X, Y : array-like, torch.Tensor or Factor, shape (n_samples, n_neurons)
        Rows are datapoints, columns are neurons; the widths may differ.
    layout, dtype, rtol
        As in :func:`ccalens.cca`.
    permutations, bootstrap, confidence, interval, seed
        Uncertainty: see :mod:`ccalens.stats`.

    Returns
    -------
    ProcrustesResult
        ``similarity`` = :math:`\|\hat X^T \hat Y\|_*`; ``distance`` = 2 - 2 similarity.

    Examples
    --------
    >>> import numpy as np, ccalens
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((200, 6))
    >>> Q, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    >>> round(ccalens.procrustes(X, 3 * X @ Q - 2).distance, 10)
    0.0
    """
    from .resampling import attach, check_options

    check_options(permutations, bootstrap, confidence, interval)
    fx, fy, joint = factor_pair(X, Y, layout=layout, dtype=dtype, rtol=rtol, warn=False)
    value = _procrustes_from_factors(fx, fy, cross(fx, fy, joint))[0]
    result = ProcrustesResult(similarity=value, x_rank=fx.rank, y_rank=fy.rank, n_samples=fx.n_samples)
    return attach(result, "procrustes", (X, Y), {"layout": layout, "dtype": dtype, "rtol": rtol},
                  permutations, bootstrap, confidence, seed, factors=(fx, fy), interval=interval)


def _procrustes_from_factors(fx, fy, m, **_):
    # relative to each side's largest singular value: the same ratio, at any scale
    nuclear = svd(pca_cross(fx, fy, m, relative=True), compute_uv=False).sum()
    v = float(nuclear / np.sqrt(np.sum(fx.unit_spectrum[0] ** 2) * np.sum(fy.unit_spectrum[0] ** 2)))
    v = min(v, 1.0)
    return v, v, {}


def _matched(X, Y, layout: str, measure: str):
    ax, ay = as_matrices(X, Y, layout, allow_factor=False, measure=f"{measure} distance")
    if tuple(ax.shape) != tuple(ay.shape):
        raise ValueError(
            f"{measure} compares neuron j of X with neuron j of Y, so X and Y need the same "
            f"shape; got {tuple(ax.shape)} and {tuple(ay.shape)} as (datapoints, neurons). Use a "
            f"measure that allows different widths (cca, pwcca, cka, procrustes) instead."
        )
    for arr, name in ((ax, "X"), (ay, "Y")):
        ok = bool(arr.isfinite().all()) if is_torch_tensor(arr) else bool(np.all(np.isfinite(arr)))
        if not ok:
            raise ValueError(f"{name} contains non-finite values (NaN or Inf); remove or impute them before comparing.")
    return ax, ay


def _unit(top: float) -> float:
    """The power of two that brings a largest magnitude ``top`` into [0.5, 1) (1 for 0)."""
    return math.ldexp(1.0, unit_exponent(top))


def matched_value(measure: str, ax, ay) -> float:
    """Cosine similarity or negated RMS distance of two same-shape arrays, in float64, at
    any finite scale: each side (cosine) or both together (Euclidean) are first scaled by
    an exact power of two, so no square over- or underflows."""
    if is_torch_tensor(ax):
        import torch

        x, y = ax.detach().to(torch.float64), ay.detach().to(torch.float64)
        tops = (float(x.abs().max()) if x.numel() else 0.0, float(y.abs().max()) if y.numel() else 0.0)
        norm, inner_of = (lambda a: float(torch.linalg.norm(a))), (lambda a, b: float((a * b).sum()))
    else:
        x, y = np.asarray(ax, dtype=np.float64), np.asarray(ay, dtype=np.float64)
        tops = (float(np.max(np.abs(x))) if x.size else 0.0, float(np.max(np.abs(y))) if y.size else 0.0)
        norm, inner_of = (lambda a: float(np.linalg.norm(a))), (lambda a, b: float(np.vdot(a, b)))
    if measure != "cosine":
        unit = _unit(max(tops))
        distance = norm(x * unit - y * unit) / float(np.sqrt(x.shape[0])) / unit
        if not math.isfinite(distance):
            raise ValueError(f"the RMS distance between X and Y is beyond float64's range (about 1.8e308; the "
                             f"largest values are {max(tops):.3g}); rescale both sides by the same factor.")
        return -distance
    x, y = x * _unit(tops[0]), y * _unit(tops[1])
    nx, ny = norm(x), norm(y)
    inner = inner_of(x, y)
    if nx == 0.0 or ny == 0.0:
        raise ValueError(
            f"cosine similarity is undefined: {'X' if nx == 0.0 else 'Y'} is all zeros. Check that the "
            f"right layer was recorded (a layer of dead units gives all zeros)."
        )
    return min(1.0, max(-1.0, inner / (nx * ny)))  # rounding can step just past +-1


def cosine(X, Y, *, layout: str = "datapoints_first", permutations: int = 0, bootstrap: int = 0,
           confidence: float = 0.95, interval: str | None = None, seed=None) -> MatchedResult:
    r"""Cosine similarity of two same-shape representations, neuron j against neuron j.

    :math:`\langle X, Y\rangle_F / (\|X\|_F \|Y\|_F)` over the raw activations; the
    distance is 1 - cosine. The paper's control (Figures A5, A8): unlike CCA it changes
    when a layer's units are permuted or mixed.

    Examples
    --------
    >>> import numpy as np, ccalens
    >>> X = np.arange(12.0).reshape(6, 2)
    >>> ccalens.cosine(X, 4 * X).similarity
    1.0
    """
    return _matched_measure("cosine", X, Y, layout, permutations, bootstrap, confidence, interval, seed)


def euclidean(X, Y, *, layout: str = "datapoints_first", permutations: int = 0, bootstrap: int = 0,
              confidence: float = 0.95, interval: str | None = None, seed=None) -> MatchedResult:
    r"""Root-mean-square Euclidean distance between matched activation vectors.

    ``distance`` = :math:`\|X - Y\|_F / \sqrt n`; ``similarity`` is its negation.

    Examples
    --------
    >>> import numpy as np, ccalens
    >>> X = np.zeros((4, 2)); Y = np.full((4, 2), 3.0)
    >>> round(ccalens.euclidean(X, Y).distance, 12)   # each datapoint moved by sqrt(9 + 9)
    4.242640687119
    """
    return _matched_measure("euclidean", X, Y, layout, permutations, bootstrap, confidence, interval, seed)


def _matched_measure(measure, X, Y, layout, permutations, bootstrap, confidence, interval, seed):
    from .resampling import attach, check_options

    check_options(permutations, bootstrap, confidence, interval)
    ax, ay = _matched(X, Y, layout, measure)
    result = MatchedResult(similarity=matched_value(measure, ax, ay), measure=measure, n_samples=int(ax.shape[0]))
    return attach(result, measure, (ax, ay), {}, permutations, bootstrap, confidence, seed, interval=interval)


registry.register(registry.MeasureSpec(
    "procrustes", "Procrustes", "factor", registry.ORTHOGONAL, procrustes, from_factors=_procrustes_from_factors,
    streamable=True, distance=registry.procrustes_distance, family="shape"))
registry.register(registry.MeasureSpec(
    "cosine", "cosine (matched neurons)", "raw", frozenset({"isotropic_scaling"}), cosine, same_width=True,
    family="neuronwise"))
registry.register(registry.MeasureSpec(
    "euclidean", "Euclidean (matched neurons)", "raw", frozenset(), euclidean, same_width=True,
    distance=registry.negated, identical=0.0, bounded=False, family="neuronwise"))
