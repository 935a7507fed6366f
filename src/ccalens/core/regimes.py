"""Regimes in which an interval was measured to cover less often than it claims, detected
from the data.

``benchmarks/interval_coverage.py`` measured every interval method on a grid of
known-answer populations; where a family's default method missed the target (coverage
0.90 within Monte Carlo error, at 30 or more datapoints per neuron), the population is in
:data:`ccalens.core.intervals.MISSED_TARGET`'s record for the family, and each result of
that family whose data show the regime carries a note. The detectors were fixed with the
benchmark's rule, before its run:

``tied``
    two adjacent canonical correlations closer than 2 (1 - rho^2) / sqrt(n), twice the
    large-sample standard error of a canonical correlation;
``unequal``
    one side at least twice as wide (in rank) as the other;
``dead_dup``
    a side whose rank is below its width (dead, constant or duplicated neurons);
``heavy``
    a neuron whose excess kurtosis exceeds 6 (a Gaussian's sample excess kurtosis at
    n >= 40 exceeds 6 with probability below 1e-3).

Only the detectors' false alarms were bounded when they were fixed; a sample from a
regime may not show it (a heavy-tailed sample of 120 datapoints need not have a neuron of
kurtosis above 6), so a missing note is not evidence that the regime is absent.
"""

from __future__ import annotations

import numpy as np

__all__ = ["KURTOSIS_LIMIT", "TIED_SE", "detect"]

#: a neuron with a larger sample excess kurtosis has heavy tails
KURTOSIS_LIMIT = 6.0

#: adjacent canonical correlations closer than this many standard errors are nearly tied
TIED_SE = 2.0


def tied(rho, n: int) -> bool:
    """Two adjacent canonical correlations within ``TIED_SE`` standard errors of each other."""
    rho = np.sort(np.asarray(rho, dtype=np.float64))[::-1]
    if rho.size < 2 or n < 2:
        return False
    se = (1.0 - (0.5 * (rho[:-1] + rho[1:])) ** 2) / np.sqrt(n)
    return bool(np.any(rho[:-1] - rho[1:] < TIED_SE * se))


def heavy(x) -> bool:
    """A neuron whose excess kurtosis exceeds ``KURTOSIS_LIMIT`` (constant neurons are left out)."""
    from scipy.stats import kurtosis

    x = np.asarray(x, dtype=np.float64)
    keep = np.ptp(x, axis=0) > 0
    if x.shape[0] < 4 or not keep.any():
        return False
    return bool(np.nanmax(kurtosis(x[:, keep], axis=0, fisher=True)) > KURTOSIS_LIMIT)


def detect(x, y, *, ranks=None, rho=None) -> set[str]:
    """The regimes of the coverage benchmark that the data (rows are datapoints) show.

    ``ranks`` is (rank of x, rank of y) when known (from factors); ``rho`` the canonical
    correlations, when known (the tied regime is only looked for when they are given).
    """
    x, y = np.asarray(x), np.asarray(y)
    widths = (x.shape[1], y.shape[1])
    if ranks is None:
        ranks = tuple(int(np.linalg.matrix_rank(a - a.mean(axis=0))) for a in (x, y))
    found = set()
    if max(ranks) >= 2 * max(1, min(ranks)):
        found.add("unequal")
    if any(r < w for r, w in zip(ranks, widths)):
        found.add("dead_dup")
    if heavy(x) or heavy(y):
        found.add("heavy")
    if rho is not None and tied(rho, x.shape[0]):
        found.add("tied")
    return found
