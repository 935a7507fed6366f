"""What every permutation null and interval is asked for: its options checked, its seed,
and its progress reported (:mod:`ccalens.core.resampling` and :mod:`ccalens.core.paired`
draw through these)."""

from __future__ import annotations

import contextlib
import contextvars
import numbers

import numpy as np

from . import intervals

__all__ = ["MAX_DRAWS", "MIN_DRAWS", "check_options", "few_draws_note", "progress"]

#: the most permutations or resamples one call takes: a permutation p-value's resolution
#: is 1/(N + 1), and the Monte Carlo error of a 95 % interval's ends is far below the
#: sampling error long before this
MAX_DRAWS = 1_000_000

_REPORT: contextvars.ContextVar = contextvars.ContextVar("ccalens_stats_progress", default=None)


@contextlib.contextmanager
def progress(callback=None):
    """Report the progress of permutation nulls, bootstraps and jackknives run inside the block.

    ``callback(kind, done, total)`` is called as draws finish (``kind`` is "permutations",
    "bootstrap" or "jackknife"); without one, a tqdm bar shows each run with its rate and
    time left.

    >>> import numpy as np, ccalens
    >>> from ccalens.stats import progress
    >>> x = np.random.default_rng(0).standard_normal((200, 5))
    >>> seen = []
    >>> with progress(lambda kind, done, total: seen.append((kind, done, total))):
    ...     r = ccalens.cka(x, x[:, ::-1], bootstrap=30)
    >>> seen[-1]
    ('bootstrap', 30, 30)
    """
    bars = None
    if callback is None:
        from tqdm.auto import tqdm

        bars = {}

        def callback(kind, done, total):
            bar = bars.get(kind)
            if bar is None or bar.total != total or done < bar.n:
                if bar is not None:
                    bar.close()
                bar = bars[kind] = tqdm(total=total, desc=kind, unit="draw", leave=False)
            bar.update(done - bar.n)
    token = _REPORT.set(callback)
    try:
        yield
    finally:
        _REPORT.reset(token)
        for bar in (bars or {}).values():
            bar.close()


def _tick(kind: str, done: int, total: int) -> None:
    report = _REPORT.get()
    if report is not None:
        report(kind, done, total)


def check_options(permutations, bootstrap, confidence, interval=None) -> None:
    for value, name in ((permutations, "permutations"), (bootstrap, "bootstrap")):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
            raise ValueError(f"{name} must be a whole number >= 0 (0 means none); got {value!r}.")
        if value > MAX_DRAWS:
            raise ValueError(f"{name}={value:,} is more than {MAX_DRAWS:,}: each one recomputes the measure, and "
                             f"{MAX_DRAWS:,} already resolve p-values to 1e-6 and interval ends far below their "
                             f"sampling error. Ask for fewer (10,000 is plenty for a 95% interval or p >= 0.001).")
    if isinstance(confidence, bool) or not isinstance(confidence, numbers.Real) or not (0 < confidence < 1):
        raise ValueError(f"confidence must be a level in (0, 1), such as 0.95; got {confidence!r}.")
    if interval is not None:
        intervals.check_method(interval)


def _rng(seed):
    try:
        return np.random.default_rng(seed)
    except (TypeError, ValueError):
        raise ValueError(f"seed must be None, a non-negative int or a numpy Generator; got {seed!r}.") from None


#: the draws (resamples, half-samples, jackknife groups) with which every method's coverage
#: was measured (benchmarks/interval_coverage.py); an interval from fewer carries a note
MIN_DRAWS = 100


def few_draws_note(method: str, draws: int) -> str | None:
    """A note for an interval from fewer draws than its coverage was measured with."""
    if int(draws) >= MIN_DRAWS:
        return None
    return (f"only {intervals.draws_text(method, draws)}: the interval's coverage was measured with {MIN_DRAWS} "
            f"draws (benchmarks/interval_coverage.py); from fewer its ends rest on a handful of draws and its level "
            f"is not known. Use at least {MIN_DRAWS} (1000 for stable percentile ends)")
