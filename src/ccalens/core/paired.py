r"""Is this closer than that? Paired differences of two similarities that share one side.

Researchers mostly ask which of two things is closer: layer 3 or layer 4 of model A to
model B, checkpoint 10 or checkpoint 20 to the final one. With X the shared side (model B,
the final checkpoint) and Y, Z the two candidates, all on the same datapoints,

.. math:: d = s(X, Y) - s(X, Z)

and its interval comes from the same draws of the datapoints for both terms (each draw's
rows are taken from X, Y and Z at once), so what the two similarities share, the sampling
of the datapoints and of X itself, cancels in the difference instead of adding to it. The
p-value (two-sided, of d = 0) inverts the interval: it is the smallest level 1 - p whose
interval still excludes 0, so ``p <= 0.05`` exactly when the 95 % interval excludes 0.
Draw-quantile methods cannot resolve a p-value below 2 / (draws + 1); such a p is
reported as that floor (``p_floor``, and ``p_text`` says "p <= ...").

``shared="second"`` puts the shared side second, :math:`s(Y, X) - s(Z, X)`, for a directed
measure (PWCCA weighs by its first argument) or a column of a pairwise matrix.

The interval method defaults to the one calibrated for paired differences of the
measure's family (:data:`ccalens.core.intervals.PAIRED_DEFAULT_BY_FAMILY`, chosen by
``benchmarks/paired_calibration.py``: the method whose interval covers 0 at its level under
exchangeable Y and Z, and among those the most powerful; power is measured and reported,
not required, and the shape family's default missed the level once, which its note says).

>>> import numpy as np, ccalens
>>> rng = np.random.default_rng(0)
>>> x = rng.standard_normal((500, 6))
>>> near, far = x + 0.5 * rng.standard_normal((500, 6)), x + 2.0 * rng.standard_normal((500, 6))
>>> d = ccalens.paired_difference(x, near, far, "cka", bootstrap=200, names=("near", "far"))
>>> d.difference > 0 and d.low > 0 and d.p_value <= 0.05
True
"""

from __future__ import annotations

import numbers
import warnings
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from . import intervals, validate
from .factor import factorize_matrix
from .registry import check_measure

__all__ = ["PairedDifference", "paired_difference", "paired_differences"]

#: the smallest level searched when inverting an interval for its p-value (t-based methods)
_P_SEARCH_FLOOR = 1e-12


@dataclass(frozen=True, eq=False)
class PairedDifference:
    """The difference of two similarities that share one side, with its interval and p-value.

    Attributes
    ----------
    measure : str
    shared, first, second : str
        The names of the shared side and of the two compared sides: ``difference`` is
        s(shared, first) - s(shared, second) (or with the shared side second, ``order``).
    order : {"first", "second"}
        Where the shared side sits in each similarity.
    similarity_first, similarity_second, difference : float
    low, high, confidence : float
        The interval of the difference at level ``confidence``, by ``method``.
    method : str
        An interval method of :mod:`ccalens.core.intervals`.
    draws : int
        Resamples, half-samples or jackknife groups (``intervals.draws_text``).
    p_value, p_floor : float
        Two-sided p-value of a zero difference (the interval inverted); the smallest p the
        draws can resolve (0 where the method has no such floor).
    bias, sd : float
        The difference's estimated bias and standard error by the method's draws.
    n_samples : int
    note : str or None
        Why the interval may cover less often than its level says, or None.
    values : ndarray
        The difference on each draw.
    """

    measure: str
    shared: str
    first: str
    second: str
    order: str
    similarity_first: float
    similarity_second: float
    difference: float
    low: float
    high: float
    confidence: float
    method: str
    draws: int
    p_value: float
    p_floor: float
    bias: float
    sd: float
    n_samples: int
    note: str | None = None
    values: Any = field(default=None, repr=False)

    @property
    def corrected(self) -> float:
        """The bias-corrected difference, difference - bias."""
        return self.difference - self.bias

    @property
    def p_text(self) -> str:
        """The p-value as text: "p = 0.031", or "p <= 0.002" at the draws' floor (and
        "p < 1e-12" below the smallest level searched)."""
        if self.p_floor and self.p_value <= self.p_floor:
            return f"p <= {self.p_floor:.2g}"
        if self.p_value <= _P_SEARCH_FLOOR:
            return f"p < {_P_SEARCH_FLOOR:.0e}"
        return f"p = {self.p_value:.2g}"

    def _terms(self) -> tuple[str, str]:
        if self.order == "first":
            return f"s({self.shared}, {self.first})", f"s({self.shared}, {self.second})"
        return f"s({self.first}, {self.shared})", f"s({self.second}, {self.shared})"

    def describe(self) -> str:
        """One line: which is closer, by how much, the interval and the p-value."""
        a, b = self._terms()
        text = (f"{self.measure}: {a} - {b} = {self.similarity_first:.4f} - {self.similarity_second:.4f} = "
                f"{self.difference:+.4f}, {100 * self.confidence:g}% {self.method} CI [{self.low:+.4f}, "
                f"{self.high:+.4f}] ({intervals.draws_text(self.method, self.draws)}), {self.p_text}")
        if self.method in intervals.CENTRED_ON_CORRECTED or not (self.low <= self.difference <= self.high):
            text += f"; bias-corrected {self.corrected:+.4f}"
        return text + (f"; note: {self.note}" if self.note else "")

    def as_dict(self) -> dict:
        """The result's numbers and names (without the draws), for tables and JSON."""
        return {k: getattr(self, k) for k in ("measure", "shared", "first", "second", "order", "similarity_first",
                                              "similarity_second", "difference", "low", "high", "confidence",
                                              "method", "draws", "p_value", "p_floor", "bias", "sd", "n_samples",
                                              "note")} | {"corrected": self.corrected}

    def __repr__(self) -> str:
        return f"PairedDifference({self.describe()})"


def p_floor(method: str, draws: int) -> float:
    """The smallest two-sided p-value ``method``'s ``draws`` resolve (0 for the jackknife's t)."""
    return 0.0 if intervals.SCHEMES[method] == "jackknife" else 2.0 / (draws + 1)


def invert_for_p(estimate: float, values, method: str, *, jackknife=None, n_samples=None, floor: float = 0.0) -> float:
    """The two-sided p-value of zero: the smallest alpha whose 1 - alpha interval of
    ``method`` excludes 0 (bisection; intervals of these methods nest as alpha falls)."""
    def excludes(alpha):
        low, high, _ = intervals.interval_bounds(estimate, values, 1.0 - alpha, method, jackknife=jackknife,
                                                 n_samples=n_samples)
        return not (low <= 0.0 <= high)

    lowest = max(floor, _P_SEARCH_FLOOR)
    if excludes(lowest):
        return lowest
    if not excludes(1.0 - 1e-9):
        return 1.0
    a, b = lowest, 1.0 - 1e-9  # excludes(a) is False, excludes(b) is True
    for _ in range(60):
        mid = 0.5 * (a + b)
        a, b = (a, mid) if excludes(mid) else (mid, b)
        if b - a < 1e-6 * b:
            break
    return float(b)


def _check_draws(bootstrap) -> int:
    if isinstance(bootstrap, bool) or not isinstance(bootstrap, numbers.Integral) or bootstrap < 2:
        raise ValueError(f"bootstrap must be a whole number >= 2 (the draws of the paired interval); got {bootstrap!r}.")
    from .draws import MAX_DRAWS

    if bootstrap > MAX_DRAWS:
        raise ValueError(f"bootstrap={bootstrap:,} is more than {MAX_DRAWS:,}; 10,000 is plenty for a 95% interval.")
    return int(bootstrap)


def paired_default_method(measure: str) -> str:
    """The interval method of a paired difference of ``measure`` when none is named."""
    return intervals.paired_default_method(check_measure(measure).family)


def paired_differences(shared, others: Mapping, measure: str = "pwcca", *, bootstrap: int = 1000,
                       confidence: float = 0.95, interval: str | None = None, seed=0, order: str = "first",
                       label: str = "X", layout: str = "datapoints_first", **options) -> list[PairedDifference]:
    """Every paired difference among ``others`` (name -> array) against the shared side.

    For each pair (a, b) of ``others`` in order, ``s(shared, a) - s(shared, b)``
    (``order="second"``: ``s(a, shared) - s(b, shared)``), all from one set of draws of the
    datapoints, so every difference and its interval share the same resamples.
    ``options`` go to the measure (epsilon, keep, symmetric, ...).
    """
    spec = check_measure(measure)
    if order not in ("first", "second"):
        raise ValueError(f"order must be 'first' (s(shared, other)) or 'second' (s(other, shared)); got {order!r}.")
    if not isinstance(others, Mapping) or len(others) < 2:
        raise ValueError("others must map at least two names to arrays: a paired difference compares two sides "
                         "against the shared one.")
    draws = _check_draws(bootstrap)
    from .draws import _rng, check_options

    check_options(0, draws, confidence, interval)
    method = interval or paired_default_method(measure)
    x = validate.as_matrix(shared, label, layout)
    sides = {str(k): validate.as_matrix(v, str(k), layout) for k, v in others.items()}
    ops = validate.make_ops(x, None)
    validate.check_finite(ops, x, label)
    n = x.shape[0]
    for name, arr in sides.items():
        validate.check_finite(validate.make_ops(arr, None), arr, name)
        if arr.shape[0] != n:
            raise ValueError(f"{name} has {arr.shape[0]} datapoints and {label} has {n}: a paired difference needs "
                             f"the same datapoints, in the same order, on every side.")
    if spec.same_width:
        for name, arr in sides.items():
            if arr.shape[1] != x.shape[1]:
                raise ValueError(f"{measure} compares neuron i with neuron i: {name} has {arr.shape[1]} neurons and "
                                 f"{label} has {x.shape[1]}.")
    names = list(sides)
    options = {k: v for k, v in options.items() if v is not None}

    def similarities(rows):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # one small-sample warning is enough, from the estimate itself
            xs = x if rows is None else x[rows]
            if spec.kind == "factor" and not options.get("n_components") and not options.get("compat"):
                xs = factorize_matrix(xs, ops, options.get("rtol"), label)
            out = []
            for name in names:
                other = sides[name] if rows is None else sides[name][rows]
                a, b = (xs, other) if order == "first" else (other, xs)
                out.append(float(spec.compute(a, b, **options).similarity))
            return np.array(out)

    estimate = similarities(None)
    count = intervals.draw_count(method, n, draws)
    values = np.empty((count, len(names)))
    rng = _rng(seed)
    for k, rows in enumerate(intervals.draw_rows(method, n, draws, rng)):
        try:
            values[k] = similarities(rows)
        except ValueError as err:
            raise ValueError(f"draw {k + 1} of {count} of the paired {method} interval cannot be measured: {err} "
                             f"Use more datapoints, or another interval=.") from None
    jack = None
    if method == "bca":
        jack = np.array([similarities(rows) for rows in intervals.draw_rows("jackknife", n, intervals.JACKKNIFE_GROUPS,
                                                                            rng)])
    floor = p_floor(method, count)
    results = []
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            d, dv = estimate[i] - estimate[j], values[:, i] - values[:, j]
            dj = None if jack is None else jack[:, i] - jack[:, j]
            low, high, note = intervals.interval_bounds(d, dv, confidence, method, jackknife=dj, n_samples=n)
            extra = intervals.paired_coverage_note(spec.family, method)
            results.append(PairedDifference(
                measure=measure, shared=label, first=names[i], second=names[j], order=order,
                similarity_first=float(estimate[i]), similarity_second=float(estimate[j]), difference=float(d),
                low=low, high=high, confidence=float(confidence), method=method, draws=count,
                p_value=invert_for_p(d, dv, method, jackknife=dj, n_samples=n, floor=floor), p_floor=floor,
                bias=intervals.estimate_bias(method, d, dv, n), sd=intervals.standard_error(method, dv, n),
                n_samples=n, note="; ".join(t for t in (note, extra) if t) or None, values=dv))
    return results


def paired_difference(X, Y, Z, measure: str = "pwcca", *, bootstrap: int = 1000, confidence: float = 0.95,
                      interval: str | None = None, seed=0, shared: str = "first", names=("Y", "Z"),
                      label: str = "X", layout: str = "datapoints_first", **options) -> PairedDifference:
    """``s(X, Y) - s(X, Z)`` (``shared="second"``: ``s(Y, X) - s(Z, X)``) with an interval
    from the same draws of the datapoints for both terms, and a two-sided p-value.

    Parameters
    ----------
    X : array-like, shape (n_samples, neurons)
        The shared side (the target layer, the final checkpoint).
    Y, Z : array-like, shape (n_samples, neurons_y), (n_samples, neurons_z)
        The two candidates, on the same datapoints in the same order.
    measure : str
        Any registered measure.
    bootstrap : int
        Draws: resamples, half-samples or jackknife groups, by the method.
    interval : str, optional
        An interval method; None is the paired default of the measure's family.
    shared : {"first", "second"}
        Where X sits in each similarity (it matters for a directed measure such as PWCCA).
    names, label : names of Y and Z, and of X, for the description.
    options
        The measure's own keyword arguments (epsilon, keep, ...).
    """
    if len(names) != 2 or str(names[0]) == str(names[1]):
        raise ValueError(f"names must be two different names for Y and Z; got {names!r}.")
    return paired_differences(X, {str(names[0]): Y, str(names[1]): Z}, measure, bootstrap=bootstrap,
                              confidence=confidence, interval=interval, seed=seed, order=shared, label=label,
                              layout=layout, **options)[0]
