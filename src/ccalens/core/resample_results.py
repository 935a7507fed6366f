"""The results of a permutation null and of a bootstrap (or another resampling interval),
attached to a measure's result or returned by :mod:`ccalens.stats`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["BootstrapResult", "NullResult"]


@dataclass(frozen=True, eq=False)
class NullResult:
    """A permutation null: the measure with one side's datapoints shuffled.

    Attributes
    ----------
    observed : float
        The unshuffled similarity.
    mean, sd : float
        Mean and standard deviation of the similarity over the permutations.
    p_value : float
        (1 + #{null >= observed}) / (1 + permutations): the one-sided p-value of an exact
        permutation test (Phipson & Smyth 2010), never 0.
    corrected : float
        Baseline-corrected similarity, observed - mean: what the representations share
        beyond what the same sizes give unrelated data.
    adjusted : float or None
        Chance-adjusted similarity (observed - mean) / (1 - mean), 0 at chance and 1 for
        identical representations (like the adjusted Rand index); None for measures
        without a maximum of 1 (Euclidean).
    z : float
        (observed - mean) / sd.
    permutations : int
    values : ndarray, shape (permutations,)
    """

    observed: float
    mean: float
    sd: float
    p_value: float
    corrected: float
    adjusted: float | None
    z: float
    permutations: int
    values: Any = None

    def __repr__(self) -> str:
        return (
            f"NullResult(mean={self.mean:.6f}, sd={self.sd:.6f}, p_value={self.p_value:.4g}, "
            f"corrected={self.corrected:.6f}, permutations={self.permutations})"
        )


@dataclass(frozen=True, eq=False)
class BootstrapResult:
    """A confidence interval over draws of the datapoints (bootstrap resamples, half-samples
    or jackknife groups, by ``method``).

    Attributes
    ----------
    low, high : float
        The interval's ends, by ``method`` (see :mod:`ccalens.core.resampling`).
    confidence : float
    sd : float
        The estimate's standard error by ``method``'s draws (the bootstrap values' sd, the
        half-samples' sd rescaled to n, or Tukey's jackknife error).
    resamples : int
        The draws: resamples, half-samples or jackknife groups.
    values : ndarray, shape (resamples,)
        The similarity on each draw.
    method : {"percentile", "basic", "bca", "bias_corrected", "subsample", "jackknife"}
    estimate : float
        The similarity of the data themselves.
    bias : float
        The estimate's bias as the draws estimate it (the bootstrap's mean(values) -
        estimate; for subsampling and the jackknife, the excess scaled to n:
        :func:`ccalens.core.intervals.estimate_bias`). CCA-type similarities are biased
        upward at finite sample size, and a resample, which repeats datapoints, more so.
    note : str or None
        Why the interval may cover less often than its level says (few datapoints per
        neuron, a degenerate BCa correction), or None.
    jackknife : ndarray or None
        Leave-one-group-out values (BCa only).
    n_samples : int or None
        The datapoints (subsampling and the jackknife scale their draws by it).
    """

    low: float
    high: float
    confidence: float
    sd: float
    resamples: int
    values: Any = None
    method: str = "percentile"
    estimate: float = float("nan")
    bias: float = float("nan")
    note: str | None = None
    jackknife: Any = None
    n_samples: int | None = None

    @property
    def corrected(self) -> float:
        """The bias-corrected estimate, estimate - bias (the centre of the basic and
        bias-corrected intervals)."""
        return self.estimate - self.bias

    @property
    def contains_estimate(self) -> bool:
        return bool(self.low <= self.estimate <= self.high)

    @property
    def reports_correction(self) -> bool:
        """Whether the interval is reported with the bias-corrected value beside it (it is
        centred on that value, or it excludes the estimate)."""
        from .intervals import reports_correction

        return reports_correction(self.method, self.contains_estimate)

    def interval(self, method: str) -> tuple[float, float]:
        """``(low, high)`` of another method that draws the datapoints the same way, from the
        same draws (BCa needs the jackknife values, kept only when the result was computed
        with ``interval="bca"``)."""
        from .intervals import SCHEMES, check_method, interval_bounds

        if SCHEMES[check_method(method)] != SCHEMES[self.method]:
            raise ValueError(f"a {method} interval needs {SCHEMES[method]} draws, and these are {SCHEMES[self.method]} "
                             f"draws ({self.method}); recompute with interval={method!r}.")
        low, high, _ = interval_bounds(self.estimate, self.values, self.confidence, method,
                                       jackknife=self.jackknife, n_samples=self.n_samples)
        return low, high

    def describe(self) -> str:
        """One line: the interval, and the bias-corrected estimate where the interval is
        centred on it or excludes the estimate."""
        text = f"{100 * self.confidence:g}% {self.method} CI [{self.low:.4f}, {self.high:.4f}]"
        if self.reports_correction:
            text += f" around the bias-corrected {self.corrected:.4f} (estimated bias {self.bias:+.4f})"
        return text

    def __repr__(self) -> str:
        return (
            f"BootstrapResult({100 * self.confidence:g}% {self.method} CI [{self.low:.6f}, {self.high:.6f}], "
            f"estimate={self.estimate:.6f}, bias={self.bias:+.6f}, corrected={self.corrected:.6f}, "
            f"sd={self.sd:.6f}, resamples={self.resamples})"
        )
