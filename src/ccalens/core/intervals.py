r"""Bootstrap intervals from resampled values: percentile, basic, BCa and bias-corrected.

This module knows no measure. Given an estimate :math:`\hat\theta`, B bootstrap values
:math:`\theta^*_b` (the statistic on datapoints drawn with replacement) and, for BCa,
grouped-jackknife values, it returns the interval that a method names, with the
bootstrap's bias estimate :math:`\hat b = \overline{\theta^*} - \hat\theta`.

Why the method matters here. Similarities of the CCA family are biased upward at finite
sample size, and a resample, which repeats datapoints, has fewer distinct datapoints
than the sample: its value is biased upward again, by about as much. The percentile
interval therefore sits above the estimate (an interval of 0.716-0.743 around 0.680 is
easy to produce at 300 datapoints) and covers the population value rarely. Methods:

``"percentile"``
    :math:`[q_{\alpha/2}, q_{1-\alpha/2}]` of the bootstrap values.
``"basic"``
    :math:`[2\hat\theta - q_{1-\alpha/2},\ 2\hat\theta - q_{\alpha/2}]`, the reflected
    (pivotal) interval; it corrects a bias that the resamples reproduce.
``"bca"``
    bias-corrected and accelerated percentile interval (Efron 1987), with the
    acceleration from a grouped (delete-d) jackknife: the datapoints are split at random
    into ``min(n, 100)`` groups and the statistic is recomputed without each group. With
    one group per datapoint this is exactly ``scipy.stats.bootstrap(method="BCa")``.
``"bias_corrected"``
    the percentile interval moved by :math:`-2\hat b`: it has the shape of the resampled
    values and is centred on the bias-corrected estimate :math:`\hat\theta - \hat b`.

``basic`` and ``bias_corrected`` belong to the bias-corrected estimate, not to
:math:`\hat\theta`: where the bias is large next to the spread they exclude
:math:`\hat\theta`, and every report of them also reports :math:`\hat b` and
:math:`\hat\theta - \hat b`.

Measured coverage (``benchmarks/bootstrap_coverage.py``: 200 samples per size from a
Gaussian population with known canonical correlations, 1,000 resamples each, nominal 95 %;
the rule that picks the default was committed before the run). At 300 datapoints and 10
neurons per side (30 per neuron):

============  ==========  =====  =====  ==============
measure       percentile  basic  BCa    bias_corrected
============  ==========  =====  =====  ==============
mean CCA      0.610       0.905  0.840  0.915
PWCCA         0.475       0.905  0.810  0.900
linear CKA    0.475       0.950  0.860  0.960
============  ==========  =====  =====  ==============

so the default is ``"basic"``, by the rule. It only just reaches the issue's target of
90-99 %: 200 further samples with other seeds (``tests/test_intervals.py``) gave 0.850
for PWCCA, so its coverage there is about 0.875 +- 0.017, a little short, and no method
meets the target reliably. With fewer datapoints per neuron the upward bias grows
faster than the spread: at 20, 15 and 10 per neuron the percentile and BCa intervals
covered 0-49 % (CCA family) and the basic one 85-93 % for mean CCA and PWCCA (CKA 95-99 %);
at 600 datapoints and 20 neurons (30 per neuron again) basic covered 0.90-0.96, so the
ratio, not n, governs. :data:`RELIABLE_DATAPOINTS_PER_NEURON` = 30 is the smallest ratio
from which the default covered 90-99 % for all three measures; below it, every interval
carries a note that says so. Across 10-60 datapoints per neuron the basic interval
covered 85-99 %: read its 95 % as roughly 85-90 % for the CCA family.

References
----------
.. [1] B. Efron, R. Tibshirani. An Introduction to the Bootstrap. Chapman & Hall, 1993
   (chapters 13, 14 and 22).
.. [2] B. Efron. Better bootstrap confidence intervals. JASA 82 (1987).
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr, ndtri

__all__ = ["CENTRED_ON_CORRECTED", "DEFAULT_BY_FAMILY", "DEFAULT_METHOD", "JACKKNIFE_GROUPS", "METHODS",
           "MISSED_TARGET", "PAIRED_DEFAULT_BY_FAMILY", "PAIRED_MISSED_TARGET", "RELIABLE_DATAPOINTS_PER_NEURON",
           "SCHEMES", "bca_acceleration", "bootstrap_bias", "check_method", "coverage_note", "default_method",
           "draw_count", "draw_rows", "draws_text", "estimate_bias", "few_datapoints_note", "interval_bounds",
           "jackknife_groups", "paired_coverage_note", "paired_default_method", "reports_correction",
           "standard_error", "subsample_size"]

METHODS = ("percentile", "basic", "bca", "bias_corrected", "subsample", "jackknife")

#: how each method draws its datapoints: with replacement (n of n), half of them without
#: replacement, or all but one group of them
SCHEMES = {"percentile": "bootstrap", "basic": "bootstrap", "bca": "bootstrap", "bias_corrected": "bootstrap",
           "subsample": "subsample", "jackknife": "jackknife"}

#: the default method of each measure family (``ccalens.core.registry.FAMILIES``), chosen by benchmarks/interval_coverage.py's committed rule
DEFAULT_BY_FAMILY: dict[str, str] = {}

#: families whose default missed the coverage target somewhere in the grid: per population
#: of the grid (a regime that ``ccalens.core.regimes`` detects from the data, or
#: "separated", which has no detector and is noted always), what was measured
MISSED_TARGET: dict[str, dict[str, str]] = {}

#: the method of a family that the benchmark did not decide, and of measures without a family
DEFAULT_METHOD = "basic"


def default_method(family: str | None) -> str:
    """The interval method used for a measure of ``family`` when none is named."""
    return DEFAULT_BY_FAMILY.get(family, DEFAULT_METHOD)


#: the default method of a paired difference (``ccalens.core.paired``) per family, chosen
#: by benchmarks/paired_calibration.py's committed rule (a family it did not decide uses
#: its single-similarity default)
PAIRED_DEFAULT_BY_FAMILY: dict[str, str] = {}

#: families whose paired default missed its calibration target: what was measured
PAIRED_MISSED_TARGET: dict[str, str] = {}


def paired_default_method(family: str | None) -> str:
    """The interval method of a paired difference of a measure of ``family`` when none is named."""
    return PAIRED_DEFAULT_BY_FAMILY.get(family, default_method(family))


def paired_coverage_note(family: str | None, method: str) -> str | None:
    """The calibration benchmark's warning for a paired difference by its family's default, or None."""
    if family in PAIRED_MISSED_TARGET and method == paired_default_method(family):
        return PAIRED_MISSED_TARGET[family]
    return None


def coverage_note(family: str | None, method: str, regimes=()) -> str | None:
    """The coverage benchmark's warning for an interval by its family's default on data
    that show ``regimes`` (``ccalens.core.regimes.detect``), or None."""
    if method != default_method(family):
        return None
    missed = MISSED_TARGET.get(family, {})
    texts = [text for regime, text in missed.items() if regime == "separated" or regime in set(regimes)]
    return "; ".join(texts) or None

#: at most this many jackknife groups (one recomputation each) for BCa's acceleration
JACKKNIFE_GROUPS = 100

#: from this many datapoints per neuron (datapoints / the larger side's rank) the default
#: method's 95 % intervals covered 90-99 % in benchmarks/bootstrap_coverage.py; below it,
#: results carry a note
RELIABLE_DATAPOINTS_PER_NEURON = 30


def few_datapoints_note(n_samples: int | None, neurons: int | None) -> str | None:
    """A warning for data with fewer datapoints per neuron than intervals were found to cover at."""
    limit = RELIABLE_DATAPOINTS_PER_NEURON
    if limit is None or not n_samples or not neurons or n_samples >= limit * neurons:
        return None
    return (f"{n_samples / neurons:.3g} datapoints per neuron ({n_samples} datapoints, {neurons} neurons): below "
            f"{limit:g} per neuron, simulated 95% intervals covered the true value less often than they claim "
            f"(basic: 85-93% for mean CCA and PWCCA at 10-20 per neuron; percentile and BCa: 0-49%; see "
            f"ccalens.core.intervals): read the interval as too narrow, or use more datapoints")


#: the methods whose intervals are centred on the bias-corrected value, not on the estimate
CENTRED_ON_CORRECTED = ("basic", "bias_corrected", "subsample", "jackknife")


def reports_correction(method: str, contains_estimate: bool) -> bool:
    """Whether a report of this interval must show the bias-corrected value beside it: the
    interval is centred on that value, or it does not contain the estimate."""
    return method in CENTRED_ON_CORRECTED or not contains_estimate


def check_method(method) -> str:
    if method not in METHODS:
        raise ValueError(f"interval method must be one of {METHODS}; got {method!r}.")
    return method


def bootstrap_bias(estimate: float, values) -> float:
    r"""The bootstrap's bias estimate :math:`\overline{\theta^*} - \hat\theta`."""
    return float(np.mean(values) - estimate)


def subsample_size(n: int) -> int:
    """The datapoints of one subsample: half of ``n``, drawn without replacement."""
    return n // 2


def _subsample_scale(n: int) -> float:
    """sqrt(m / (n - m)): the spread of an m-of-n subsample's value (without replacement)
    is sqrt((n - m) / m) times the sample's, for a statistic with root-n rate."""
    m = subsample_size(n)
    return float(np.sqrt(m / (n - m)))


def draw_rows(method: str, n: int, draws: int, rng):
    """The rows of each draw of ``method``: ``draws`` resamples of n with replacement,
    ``draws`` half-samples without replacement, or the kept rows of each of
    ``min(n, draws)`` jackknife groups (each group left out once)."""
    scheme = SCHEMES[check_method(method)]
    if scheme == "bootstrap":
        return (rng.integers(0, n, n) for _ in range(draws))
    if scheme == "subsample":
        if n < 4:
            raise ValueError(f"subsampling needs at least 4 datapoints; got {n}. Use interval='basic'.")
        m = subsample_size(n)
        return (np.sort(rng.choice(n, m, replace=False)) for _ in range(draws))
    if draws < 2:
        raise ValueError(f"the jackknife interval needs at least 2 groups; got bootstrap={draws}.")
    keep = np.ones(n, dtype=bool)

    def kept(part):
        keep[:] = True
        keep[part] = False
        return np.flatnonzero(keep)
    return (kept(part) for part in jackknife_groups(n, rng, draws))


def draw_count(method: str, n: int, draws: int) -> int:
    """How many values ``draw_rows`` gives."""
    return min(n, int(draws)) if SCHEMES[check_method(method)] == "jackknife" else int(draws)


def draws_text(method: str, draws: int) -> str:
    """The draws of ``method`` in their unit ("1000 resamples", "100 jackknife groups")."""
    unit = {"bootstrap": "resamples", "subsample": "half-samples", "jackknife": "jackknife groups"}
    return f"{draws} {unit[SCHEMES[check_method(method)]]}"


def estimate_bias(method: str, estimate: float, values, n: int | None) -> float:
    r"""The estimate's bias as ``method``'s draws estimate it: the bootstrap's
    :math:`\overline{\theta^*} - \hat\theta`; a half-sample's excess scaled to n, assuming a
    bias proportional to 1/n (:math:`(\overline{\theta^*} - \hat\theta)\, m / (n - m)`); the
    jackknife's :math:`(g - 1)(\overline{\theta_{(\cdot)}} - \hat\theta)` over g groups."""
    values = np.asarray(values, dtype=np.float64)
    excess = float(np.mean(values) - estimate)
    scheme = SCHEMES[check_method(method)]
    if scheme == "subsample":
        m = subsample_size(_need_n(n, method))
        return excess * m / (n - m)
    if scheme == "jackknife":
        return (values.size - 1) * excess
    return excess


def standard_error(method: str, values, n: int | None) -> float:
    """The estimate's standard error from ``method``'s draws: the bootstrap values' sd, the
    half-samples' sd rescaled to n, or Tukey's jackknife error over the groups."""
    values = np.asarray(values, dtype=np.float64)
    if values.size < 2:
        return 0.0
    scheme = SCHEMES[check_method(method)]
    if scheme == "jackknife":
        g = values.size
        return float(np.sqrt((g - 1) / g * np.sum((values - values.mean()) ** 2)))
    sd = float(np.std(values, ddof=1))
    return sd * _subsample_scale(_need_n(n, method)) if scheme == "subsample" else sd


def _need_n(n, method):
    if not n:
        raise ValueError(f"the {method} interval needs the number of datapoints (n_samples).")
    return int(n)


def jackknife_groups(n: int, rng, groups: int = JACKKNIFE_GROUPS) -> list[np.ndarray]:
    """The datapoints 0..n-1 split at random into ``min(n, groups)`` groups of near-equal size.

    With ``groups >= n`` every group is one datapoint, in order (the ordinary jackknife).
    """
    if n < 2:
        raise ValueError(f"a jackknife needs at least 2 datapoints; got {n}.")
    g = min(n, int(groups))
    if g == n:
        return [np.array([i]) for i in range(n)]
    return [np.sort(part) for part in np.array_split(rng.permutation(n), g)]


def bca_acceleration(jackknife_values) -> float:
    r"""Efron's acceleration :math:`\hat a = \sum d_g^3 / (6 (\sum d_g^2)^{3/2})`,
    :math:`d_g = \bar\theta_{(\cdot)} - \theta_{(g)}`, from leave-one-group-out values."""
    jack = np.asarray(jackknife_values, dtype=np.float64)
    d = jack.mean() - jack
    den = 6.0 * np.sum(d**2) ** 1.5
    return float(np.sum(d**3) / den) if den > 0 else 0.0


def interval_bounds(estimate: float, values, confidence: float, method: str, *,
                    jackknife=None, n_samples: int | None = None) -> tuple[float, float, str | None]:
    """``(low, high, note)`` of the ``method`` interval at level ``confidence``.

    ``note`` is None, or says why the interval is less trustworthy than its level (a BCa
    interval whose bias correction is degenerate because the estimate lies outside the
    resampled values).
    """
    check_method(method)
    values = np.asarray(values, dtype=np.float64)
    alpha = (1.0 - confidence) / 2.0
    note = None
    if method == "percentile":
        low, high = np.quantile(values, [alpha, 1.0 - alpha])
    elif method == "basic":
        q_low, q_high = np.quantile(values, [alpha, 1.0 - alpha])
        low, high = 2.0 * estimate - q_high, 2.0 * estimate - q_low
    elif method == "bias_corrected":
        shift = 2.0 * bootstrap_bias(estimate, values)
        low, high = np.quantile(values, [alpha, 1.0 - alpha]) - shift
    elif method == "subsample":  # reflected half-sample spread, rescaled to n, around the corrected value
        centre = estimate - estimate_bias(method, estimate, values, n_samples)
        q_low, q_high = (np.quantile(values, [alpha, 1.0 - alpha]) - values.mean()) * _subsample_scale(_need_n(n_samples, method))
        low, high = centre - q_high, centre - q_low
    elif method == "jackknife":  # bias-corrected jackknife estimate +- t(g - 1) x Tukey's standard error
        from scipy.stats import t as student

        centre = estimate - estimate_bias(method, estimate, values, n_samples)
        half = float(student.ppf(1.0 - alpha, values.size - 1)) * standard_error(method, values, n_samples)
        low, high = centre - half, centre + half
    else:
        if jackknife is None:
            raise ValueError("the BCa interval needs jackknife values (leave-one-group-out estimates).")
        # the share of resampled values below the estimate, ties counted half (as scipy does)
        share = (np.count_nonzero(values < estimate) + np.count_nonzero(values <= estimate)) / (2.0 * values.size)
        if share in (0.0, 1.0):
            note = ("BCa is degenerate: the estimate lies outside every resampled value (a bias larger than the "
                    "spread), so the interval is the extreme resampled value; use method='basic' or "
                    "'bias_corrected', or more datapoints")
            share = min(max(share, 0.5 / values.size), 1.0 - 0.5 / values.size)
        z0 = ndtri(share)
        a = bca_acceleration(jackknife)
        ends = []
        for z in (ndtri(alpha), ndtri(1.0 - alpha)):
            ends.append(float(ndtr(z0 + (z0 + z) / (1.0 - a * (z0 + z)))))
        low, high = np.quantile(values, ends)
    return float(low), float(high), note
