r"""Every measure by name: what it is, what it claims, and how each engine computes it.

A measure is registered once, beside its definition, as a :class:`MeasureSpec`; every list
and dispatcher of ccalens (the resampling, ``pairwise``, ``stream``, the command line's
choices, ``ccalens sanity``) is derived from :data:`MEASURES`. This module is the bottom
of the core: it imports nothing else of ccalens.

Most measures are functions of one small matrix once each side is factorised
(:mod:`ccalens.core.factor`): with :math:`Q_x, Q_y` the orthonormal bases of the centred
data and :math:`M = Q_x^T Q_y`,

* the canonical correlations are the singular values of :math:`M`;
* with the PCA of each side inside its basis, :math:`X_c = Q_x U_x \Sigma_x W_x^T`, the
  cross-covariance :math:`X_c^T Y_c = W_x A W_y^T` with
  :math:`A = \Sigma_x U_x^T M U_y \Sigma_y`, so linear CKA
  (:math:`\|A\|_F^2` over the self terms) and the Procrustes similarity
  (:math:`\|A\|_*` over the Frobenius norms) need only :math:`A`.

Such a measure registers ``from_factors``, its kernel on :math:`M`: the pairwise engine
and the permutation null form many :math:`M` from one large product and call it for each.
``"cosine"``, ``"euclidean"`` (raw activations, matched neurons) and ``"cka_rbf"``
(n x n kernels) are computed from the data instead.

Adding a measure is one function and one registration beside it, plus its tests; the
engines, the command line and the sanity suite then know it:

>>> import numpy as np
>>> from ccalens.core import registry
>>> from ccalens.core.results import MatchedResult
>>> def mean_abs_corr(X, Y):  # matched neurons: the mean |correlation| of neuron i with neuron i
...     c = [abs(np.corrcoef(a, b)[0, 1]) for a, b in zip(np.asarray(X).T, np.asarray(Y).T)]
...     return MatchedResult(similarity=float(np.mean(c)), measure="mean_abs_corr", n_samples=len(X))
>>> spec = registry.register(registry.MeasureSpec(
...     "mean_abs_corr", "mean |correlation| (matched neurons)", "raw",
...     frozenset({"isotropic_scaling", "translation"}), mean_abs_corr, same_width=True))
>>> x = np.random.default_rng(0).standard_normal((100, 3))
>>> round(registry.MEASURES["mean_abs_corr"].compute(x, 2 * x + 1).similarity, 12)
1.0
>>> registry.unregister("mean_abs_corr")  # leave the registry as it was
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, field
from functools import cached_property
from typing import Callable, Mapping

__all__ = ["DISTANCE_LABELS", "FAMILIES", "MEASURES", "MeasureSpec", "TRANSFORMS", "angular", "check_measure", "distance",
           "distance_label", "from_cross", "names", "negated", "one_minus", "procrustes_distance", "register",
           "unregister"]

#: transforms of one side's neurons that the invariance checks apply (``ccalens sanity``)
TRANSFORMS = ("orthogonal", "isotropic_scaling", "invertible_linear", "permutation", "translation")

#: the families of measures that share an interval method's default and its measured
#: coverage (:mod:`ccalens.core.intervals`)
FAMILIES = ("cca", "cka", "shape", "neuronwise", "rsa", "predictivity", "neighbours")

#: invariances shared by several measures
ALL_LINEAR = frozenset(TRANSFORMS)
ORTHOGONAL = frozenset({"orthogonal", "isotropic_scaling", "permutation", "translation"})


def one_minus(similarity):
    """The paper's distance, 1 - similarity."""
    return 1.0 - similarity


def procrustes_distance(similarity):
    """The squared Procrustes distance of centred unit-norm data, 2 - 2 * similarity."""
    return 2.0 - 2.0 * similarity


def angular(similarity):
    """The shape metric's distance: the angle arccos(similarity), in radians (elementwise on
    an array, as a matrix of pairs needs)."""
    import numpy as np

    value = np.arccos(np.clip(np.asarray(similarity, dtype=np.float64), -1.0, 1.0))
    return float(value) if value.ndim == 0 else value


def negated(similarity):
    """Euclidean's distance: its similarity is the negated RMS distance."""
    return -similarity


@dataclass(frozen=True)
class MeasureSpec:
    """One measure: what it is, what it claims, and how it is computed.

    Attributes
    ----------
    name, title : str
    kind : {"factor", "kernel", "raw"}
        "factor": a function of the two sides' cached factors (``from_factors``);
        "kernel": of n x n kernels; "raw": of the activations themselves.
    invariant_to : frozenset
        The transforms of one side (:data:`TRANSFORMS`) that leave it unchanged.
    function : callable
        The public function, ``function(X, Y, **options)`` -> a result with ``.similarity``.
    fixed : mapping
        Keyword arguments that make ``function`` this measure (RBF CKA: ``kernel="rbf"``).
    from_factors : callable or None
        ``from_factors(fx, fy, m, *, epsilon, keep, y_rows)`` -> (value with fx's weights,
        value with fy's weights, details), from :math:`M = Q_x^T Q_y`.
    batched : callable or None
        ``batched(ops, m, proj_a, proj_b)`` -> one (value with the first side's weights,
        value with the second's, details) per pair of a stack ``m`` (pairs, r, r) of
        equal-rank cross matrices; ``proj_a[k]``, ``proj_b[k]`` are the k-th pair's factor
        projections.
    directed : bool
        The value depends on which side is X (PWCCA's weights come from X).
    same_width : bool
        Needs the same neurons on both sides (matched neurons).
    streamable : bool
        Computable from a streamed summary of the datapoints (:mod:`ccalens.stream`).
    alias_of : str or None
        The same quantity as another registered measure (``"cca"`` is mean CCA).
    distance : callable
        Its distance from its similarity.
    identical : float or None
        The similarity of a representation with itself; None where it must be computed
        (a ridge regression of X on X, held out, is not perfect).
    bounded : bool
        No similarity exceeds ``identical`` = 1, so a chance-adjusted value exists.
    family : str or None
        One of :data:`FAMILIES`: the measures whose intervals share a default method
        (``ccalens.core.intervals.default_method``); None for a measure added by a user.
    prepare, from_prepared : callable or None
        For a measure of the datapoints ("raw"): ``prepare(X, name, **fixed)`` is the part
        of one representation that every pair reuses (its RDM's ranks, its neighbour sets),
        and ``from_prepared(px, py)`` the value of a pair from two such parts, equal to
        ``function``'s. The many-representation engine prepares each representation once,
        so K representations cost K preparations, not one per pair (netrep's
        ``partial_fit`` / ``finalize_fit``).
    """

    name: str
    title: str
    kind: str
    invariant_to: frozenset
    function: Callable = field(default=None, repr=False)
    fixed: Mapping = field(default_factory=dict)
    from_factors: Callable | None = field(default=None, repr=False)
    batched: Callable | None = field(default=None, repr=False)
    directed: bool = False
    same_width: bool = False
    streamable: bool = False
    alias_of: str | None = None
    distance: Callable = field(default=one_minus, repr=False)
    identical: float | None = 1.0
    bounded: bool = True
    family: str | None = None
    prepare: Callable | None = field(default=None, repr=False)
    from_prepared: Callable | None = field(default=None, repr=False)

    @cached_property  # read on every recompute of a resample: the signature is inspected once
    def options(self) -> frozenset:
        """The keyword arguments ``function`` takes."""
        return frozenset(inspect.signature(self.function).parameters) - {"X", "Y"}

    @cached_property
    def defaults(self) -> dict:
        """The default values of ``function``'s keyword arguments."""
        return {k: p.default for k, p in inspect.signature(self.function).parameters.items()
                if p.default is not inspect.Parameter.empty}

    def compute(self, X, Y, **options):
        """``function(X, Y)`` with this measure's fixed arguments and the ``options`` it takes
        (options that are None, that it does not take, or that ``fixed`` sets are left out)."""
        accepted = self.options
        kwargs = {k: v for k, v in options.items() if k in accepted and v is not None and k not in self.fixed}
        return self.function(X, Y, **self.fixed, **kwargs)


#: every registered measure by name, in the order registered (pwcca first)
MEASURES: dict[str, MeasureSpec] = {}


def register(spec: MeasureSpec) -> MeasureSpec:
    """Add ``spec`` to :data:`MEASURES` (each name once) and return it."""
    if spec.name in MEASURES:
        raise ValueError(f"a measure named {spec.name!r} is registered already.")
    if spec.kind not in ("factor", "kernel", "raw"):
        raise ValueError(f"kind must be 'factor', 'kernel' or 'raw'; got {spec.kind!r}.")
    if not set(spec.invariant_to) <= set(TRANSFORMS):
        raise ValueError(f"invariant_to names unknown transforms {sorted(set(spec.invariant_to) - set(TRANSFORMS))}; "
                         f"the transforms are {TRANSFORMS}.")
    if spec.family is not None and spec.family not in FAMILIES:
        raise ValueError(f"family must be None or one of {FAMILIES}; got {spec.family!r}.")
    if (spec.prepare is None) != (spec.from_prepared is None):
        raise ValueError(f"{spec.name}: give prepare and from_prepared together (or neither).")
    if spec.function is None or (spec.kind == "factor" and spec.from_factors is None):
        raise ValueError(f"{spec.name!r} needs its function (and, being of kind 'factor', from_factors).")
    MEASURES[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """Remove a measure added by :func:`register` (for examples and tests)."""
    MEASURES.pop(name, None)


def names(*, streamable: bool | None = None, aliases: bool = True, kind: str | None = None) -> tuple[str, ...]:
    """Registered names in order: all, or only the (non-)streamable ones, without aliases, or of one kind."""
    return tuple(n for n, s in MEASURES.items()
                 if (streamable is None or s.streamable == streamable) and (aliases or s.alias_of is None)
                 and (kind is None or s.kind == kind))


def check_measure(measure) -> MeasureSpec:
    """The registered spec of a measure given by name or by its spec (the engines carry specs)."""
    if isinstance(measure, MeasureSpec):
        if MEASURES.get(measure.name) is not measure:
            raise ValueError(f"measure {measure.name!r} is not registered (or was registered again); register it "
                             f"with ccalens.core.registry.register.")
        return measure
    if measure not in MEASURES:
        raise ValueError(f"measure must be one of {tuple(MEASURES)}; got {measure!r}.")
    return MEASURES[measure]


#: what each distance function means, for labels on screen and in tables
DISTANCE_LABELS = {one_minus: "1 - s", procrustes_distance: "2 - 2s (squared Procrustes)",
                   angular: "arccos s, radians", negated: "RMS distance"}


def distance_label(measure: str) -> str:
    """What ``measure``'s distance is, in a few words ("1 - s", "arccos s, radians", ...)."""
    return DISTANCE_LABELS.get(check_measure(measure).distance, "the measure's own distance")


def distance(measure: str, similarity):
    """The distance ``measure`` reports for ``similarity``: 1 - similarity, except Procrustes
    (2 - 2 * similarity, the squared Procrustes distance of unit-norm data) and Euclidean
    (whose similarity is the negated RMS distance)."""
    return check_measure(measure).distance(similarity)


def from_cross(measure: str, fx, fy, m, *, epsilon: float = 0.0, keep: float | None = None, y_rows=None,
               shared: dict | None = None):
    """(value with fx's weights, value with fy's weights, details) of one pair from M.

    ``m`` is :math:`Q_x^T Q_y`; ``y_rows`` is the permutation applied to Y's datapoints
    when m was formed from permuted rows (only the debiased CKA needs to know it);
    ``keep`` None is SVCCA's default. ``shared``: one dict per pair, passed to every
    measure of that pair, in which a kernel may leave a decomposition of ``m`` for the
    next (PWCCA's SVD gives mean CCA its correlations).
    """
    spec = check_measure(measure)
    if spec.from_factors is None:
        raise ValueError(f"{measure!r} is not computed from factors (its kind is {spec.kind!r}).")
    extra = {"shared": shared} if shared is not None and _takes_shared(spec.from_factors) else {}
    return spec.from_factors(fx, fy, m, epsilon=epsilon, keep=keep, y_rows=y_rows, **extra)


@functools.lru_cache(maxsize=None)
def _takes_shared(kernel) -> bool:
    """Whether a from_factors kernel accepts ``shared`` (a measure registered by a user
    may not)."""
    params = inspect.signature(kernel).parameters.values()
    return any(p.name == "shared" or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
