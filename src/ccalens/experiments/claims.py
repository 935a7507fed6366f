"""The claim record: each claim of the paper, decided by a rule fixed before the run that decides it.

Every figure writes one record per claim (and per layer or model where the claim is made
of each) into its ``claims.json``:

``id``
    the claim's id (:data:`ccalens.experiments.rules.RULES`), e.g. ``fig3.early_equal``;
``scope``
    what the record is about when a claim is made per layer, model or measure (else None);
``claim``
    the paper's words;
``statistic``
    what was measured, in words, and every number the rule reads (``values``);
``value`` and ``interval``
    the headline part's number and interval;
``rule``
    the decision and its premise, in words and code, and ``parts``: for each of the rule's
    parts (:class:`ccalens.experiments.rules.Part`) its statistic's value, its interval at
    the family-wise level (``part_confidence`` = 1 - alpha / parts, Bonferroni), the
    threshold and where it comes from (the paper, a control of the same run, or a
    convention), ``held_if`` and the part's own status;
``rule_commit`` and ``code_commit``
    the last commit that changed :mod:`ccalens.experiments.rules`, and the commit whose code
    made the run ("uncommitted" if the rules or the package had uncommitted changes): a
    committed result must come from rules committed before it, and from its own commit or an
    ancestor of it;
``replicates``
    independently trained networks (or seeds) per condition;
``status``
    ``held`` (every part's interval wholly on its held side), ``not held`` (some part's
    interval wholly on the other side), ``inconclusive`` (otherwise: an interval straddles
    its threshold or is undefined), or ``premise not met`` (the claim's premise, e.g. that
    performance converged and training went on past it, did not hold, so the claim was not
    tested; never a refutation).

Where a claim has replicates (networks, seeds), its intervals come from a delete-one
jackknife over them (:func:`network_jackknife`, a t interval with g - 1 degrees of freedom):
the networks are the independent repetitions of the experiment. Permutation p-values carry
their Monte Carlo interval (:func:`p_value_interval`), proportions a Wilson interval
(:func:`proportion_interval`). The older machinery below is kept for statistics over one
network's datapoints or windows:

the method depends on the unit (:data:`DATAPOINT_METHOD`, :data:`UNIT_METHOD`):

* resampled **datapoints or probe windows** feed a CCA computed on the resample, whose
  repeated rows raise canonical correlations by about as much as the finite sample raises
  them above the population's; the percentile interval then sits on one side of its
  estimate and covered 0.475-0.610 of population values at 30 datapoints per neuron, the
  basic (reflected) interval 0.905-0.950 (``benchmarks/bootstrap_coverage.py``,
  :mod:`ccalens.core.intervals`). These intervals are **basic** intervals, centred on the
  bias-corrected value (the estimate minus the bootstrap's bias, also recorded);
* resampled **networks or seeds** are whole independent repetitions, and the statistics are
  means (or rank statistics) of their distances: these intervals are **percentile**
  intervals, whose coverage on null data is tested (``tests/test_claims.py``);
* seq's statistics are CCA values *minus a row-shuffled null*: a resample's repeated
  windows raise the similarity but not the shuffled null (run 073b9c8: bootstrap bias +0.05
  against estimates of 0.01), a distortion that neither the percentile nor the basic
  interval undoes. They get a **grouped jackknife** interval (:func:`jackknife_interval`),
  which deletes windows and never repeats one;
* fig6's statistics (the ordering score, a mean of signs, and the clarity of convergence
  times) are read off each layer's progress normalised between its first and last
  checkpoint, which removes the level that repeated rows raise; their probe-window
  intervals stay **percentile** intervals (a reflected interval of a mean of signs can
  leave [-1, 1]).

For statistics of pairwise distances, a resample of networks keeps every pair of
*distinct* original networks it contains (a network is never paired with its own copy,
whose distance 0 is not a pair of networks).
"""

from __future__ import annotations

import functools
import math
import subprocess
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from ..core.intervals import bootstrap_bias, check_method, interval_bounds

STATUSES = ("held", "not held", "inconclusive", "premise not met")

_SAFE = {"abs": abs, "min": min, "max": max, "all": all, "any": any, "len": len, "isfinite": math.isfinite,
         "sum": sum, "True": True, "False": False}


def evaluate(code: str, values: Mapping[str, object]) -> bool:
    """The truth of a premise's ``code`` (a Python expression) over ``values``; NaN compares False.

    >>> evaluate("abs(a - b) <= 0.05 and c", {"a": 0.3, "b": 0.32, "c": True})
    True
    >>> evaluate("a > 0", {"a": float("nan")})
    False
    """
    try:
        return bool(eval(compile(code, "<rule>", "eval"), {"__builtins__": {}, **_SAFE}, dict(values)))  # noqa: S307
    except NameError as exc:
        raise KeyError(f"the rule {code!r} reads a value the statistic does not have: {exc}") from None


def _git(*args: str) -> subprocess.CompletedProcess | None:
    try:
        return subprocess.run(["git", *args], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None


@functools.lru_cache(maxsize=None)
def rule_commit() -> str:
    """The last commit that changed ``rules.py``; "uncommitted" if it has changes; "unknown" without git."""
    name = Path(__file__).with_name("rules.py").name
    diff = _git("diff", "--quiet", "HEAD", "--", name)
    if diff is None:
        return "unknown"
    if diff.returncode != 0:
        return "uncommitted"
    out = _git("log", "-1", "--format=%H", "--", name)
    return (out.stdout.strip() if out else "") or "unknown"


@functools.lru_cache(maxsize=None)
def code_commit() -> str:
    """The commit whose code makes the results: HEAD, or "uncommitted" when the package's sources
    differ from it (a committed result must name a commit equal to or an ancestor of its own)."""
    package = Path(__file__).parent.parent
    diff = _git("diff", "--quiet", "HEAD", "--", str(package))
    if diff is None:
        return "unknown"
    if diff.returncode != 0:
        return "uncommitted"
    out = _git("rev-parse", "HEAD")
    return (out.stdout.strip() if out else "") or "unknown"


def part_confidence(rule_id: str) -> float:
    """The confidence of each part's interval: 1 - ALPHA / parts (Bonferroni over the rule's parts)."""
    from .rules import ALPHA, RULES

    return 1.0 - ALPHA / len(RULES[rule_id].parts)


def decide_part(part, value, interval: dict | None, threshold: float, level: float) -> str:
    """"held", "not held" or "inconclusive" for one part.

    An interval part holds when its interval lies wholly on the held side of the threshold
    (strictly), fails when it lies wholly on the other side, and is inconclusive when it
    straddles or touches the threshold or is undefined. A p-value part (its interval the Monte
    Carlo interval of the p-value) holds when that interval lies below ``level`` and is
    inconclusive otherwise: a test that does not reject shows no effect, it does not refute one
    (only an interval on the effect's size can).

    >>> from ccalens.experiments.rules import Part
    >>> p = Part("d", "above", 0.0, "convention", "d > 0")
    >>> [decide_part(p, 0.5, {"low": lo, "high": hi}, 0.0, 0.05) for lo, hi in ((0.1, 0.9), (-0.2, 0.9), (-0.9, -0.1))]
    ['held', 'inconclusive', 'not held']
    """
    if interval is None or interval.get("low") is None or interval.get("high") is None:
        return "inconclusive"
    low, high = float(interval["low"]), float(interval["high"])
    if not (math.isfinite(low) and math.isfinite(high) and math.isfinite(threshold)):
        return "inconclusive"
    if part.kind == "p":  # a p-value shows an effect or shows nothing: not significant is not a refutation
        return "held" if high < level else "inconclusive"
    above, below = low > threshold, high < threshold
    if part.held_if == "above":
        return "held" if above else "not held" if below else "inconclusive"
    return "held" if below else "not held" if above else "inconclusive"


def combine(part_statuses: Sequence[str]) -> str:
    """A claim's status from its parts': held if all hold, not held if any fails, else inconclusive.

    >>> combine(["held", "held"]), combine(["held", "not held", "inconclusive"]), combine(["held", "inconclusive"])
    ('held', 'not held', 'inconclusive')
    """
    if part_statuses and all(s == "held" for s in part_statuses):
        return "held"
    if any(s == "not held" for s in part_statuses):
        return "not held"
    return "inconclusive"


def decide(rule_id: str, values: Mapping[str, object], *, intervals: Mapping[str, dict | None],
           scope: str | None = None, note: str | None = None, replicates: int | None = None) -> dict:
    """The claim record of rule ``rule_id`` (see the module docstring).

    ``values`` holds every number the rule and its premise read; ``intervals`` each part's
    interval (at :func:`part_confidence`, or None with no interval: that part is then
    inconclusive). ``replicates``: independently trained networks (or seeds) per condition;
    a rule that requires replicates refuses fewer.
    """
    from .rules import ALPHA, RULES

    rule = RULES[rule_id]
    values = {k: _plain(v) for k, v in values.items()}
    level = part_confidence(rule_id)
    if rule.replicates and (replicates is None or replicates < 1):
        raise ValueError(f"{rule_id} is decided over replicates: pass replicates= (networks per condition).")
    parts, statuses = [], []
    for part in rule.parts:
        if part.name not in values:
            raise KeyError(f"{rule_id}: the statistic has no value {part.name!r}; it has {sorted(values)}.")
        if part.name not in intervals:
            raise KeyError(f"{rule_id}: no interval for the part {part.name!r} (pass None with a reason in the note).")
        interval = intervals[part.name]
        if interval is not None and interval.get("confidence") is not None and part.kind != "p" \
                and float(interval["confidence"]) < level - 1e-9:  # a wider (simultaneous) interval is allowed
            raise ValueError(f"{rule_id}: the interval of {part.name!r} is at confidence {interval['confidence']}; "
                             f"the rule's parts need at least {level:.4f} (1 - {ALPHA} / {len(rule.parts)}).")
        threshold = values[part.threshold] if isinstance(part.threshold, str) and part.threshold != "level" \
            else (ALPHA / len(rule.parts) if part.threshold == "level" else part.threshold)
        status = decide_part(part, values[part.name], interval, float(threshold), ALPHA / len(rule.parts))
        statuses.append(status)
        parts.append({"name": part.name, "kind": part.kind, "words": part.words, "value": values[part.name],
                      "interval": interval, "threshold": float(threshold), "threshold_source": part.source,
                      "held_if": part.held_if, "status": status})
    premise_met = evaluate(rule.premise, values)
    status = combine(statuses) if premise_met else "premise not met"
    if rule.replicates and replicates is not None and replicates < rule.replicates and premise_met:
        status = "premise not met"
        note = ((note + "; ") if note else "") + (f"{replicates} replicates, fewer than the "
                                                  f"{rule.replicates} the rule requires")
    headline = next(p for p in parts if p["name"] == rule.value)
    return {
        "id": rule_id,
        "scope": scope,
        "claim": rule.claim,
        "statistic": {"description": rule.statistic, "values": values},
        "value": headline["value"],
        "interval": headline["interval"],
        "rule": {"decision": rule.words, "code": rule.decision, "parts": parts, "family_alpha": ALPHA,
                 "part_confidence": level, "premise": rule.premise_words or "none", "premise_code": rule.premise,
                 "premise_met": premise_met},
        "rule_commit": rule_commit(),
        "code_commit": code_commit(),
        "replicates": replicates,
        "status": status,
        "analysis": rule.analysis,
        "post_hoc": rule.post_hoc or None,
        "direction_only": rule.direction_only or None,
        "caveats": rule.caveats or None,
        "note": note,
    }


def _plain(value):
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


#: the interval method for bootstraps over datapoints or probe windows (see the module docstring)
DATAPOINT_METHOD = "basic"
#: the interval method for bootstraps over whole networks or seeds
UNIT_METHOD = "percentile"


def bootstrap_interval(draws: Sequence[float], estimate: float, *, unit: str, method: str = UNIT_METHOD,
                       confidence: float = 0.95) -> dict:
    """The ``method`` interval (:func:`ccalens.core.intervals.interval_bounds`) from bootstrap
    ``draws`` of a statistic whose estimate is ``estimate``.

    Draws that are not finite (a resample that leaves the statistic undefined) are dropped
    and counted. The record also carries the bootstrap's bias estimate (mean of the draws
    minus the estimate) and the bias-corrected value, so an interval that does not contain
    its estimate is explained.

    >>> r = bootstrap_interval([1.0, 2.0, 3.0] * 10, 1.5, unit="seeds", method="basic")
    >>> r["method"], r["low"], r["high"], r["corrected"]
    ('basic bootstrap', 0.0, 2.0, 1.0)
    """
    if check_method(method) == "bca":
        raise ValueError("claim intervals are percentile or basic bootstraps (or a jackknife); BCa needs jackknife "
                         "values that the claims do not compute.")
    arr = np.asarray(draws, dtype=float)
    finite = arr[np.isfinite(arr)]
    label = f"{method} bootstrap"
    if not np.isfinite(estimate):
        return {"low": None, "high": None, "method": label, "unit": unit, "draws": int(arr.size),
                "undefined_draws": int(arr.size - finite.size), "reason": "the statistic is undefined on the data"}
    if finite.size < 10:
        return {"low": None, "high": None, "method": label, "unit": unit, "draws": int(arr.size),
                "undefined_draws": int(arr.size - finite.size),
                "reason": "fewer than 10 resamples gave a defined statistic"}
    low, high, note = interval_bounds(estimate, finite, confidence, method)
    bias = bootstrap_bias(estimate, finite)
    record = {"low": low, "high": high, "confidence": confidence, "method": label, "unit": unit,
              "draws": int(arr.size), "undefined_draws": int(arr.size - finite.size), "bias": bias,
              "corrected": float(estimate - bias), "contains_estimate": bool(low <= estimate <= high)}
    if note:
        record["note"] = note
    return record


def group_bootstrap(groups: Mapping[str, Sequence[str]], statistic: Callable[[dict], float], *, draws: int = 1000,
                    seed: int = 0, unit: str = "networks within their groups", confidence: float = 0.95) -> dict:
    """Resample each group's members with replacement and recompute ``statistic(resampled)``.

    ``statistic`` receives ``{group: [member, ...]}`` (members may repeat) and returns a
    float; its value on the original ``groups`` is the estimate.
    """
    return group_bootstrap_many(groups, lambda G: {"x": statistic(G)}, ["x"], draws=draws, seed=seed, unit=unit,
                                confidence=confidence)["x"]


def group_bootstrap_many(groups: Mapping[str, Sequence[str]], statistics: Callable[[dict], Mapping[str, float]],
                         keys: Sequence[str], *, draws: int = 1000, seed: int = 0,
                         unit: str = "networks within their groups", confidence: float = 0.95) -> dict[str, dict]:
    """:func:`group_bootstrap` of several statistics at once: one ``statistics(resampled)`` call
    (a dict) per resample, the same resamples for every key; ``{key: interval}``."""
    rng = np.random.default_rng(seed)
    estimate = statistics({g: list(m) for g, m in groups.items()})
    values = {key: [] for key in keys}
    for _ in range(draws):
        sample = {g: [m[i] for i in rng.integers(0, len(m), len(m))] for g, m in groups.items()}
        drawn = statistics(sample)
        for key in keys:
            values[key].append(drawn[key])
    return {key: bootstrap_interval(values[key], estimate[key], unit=unit, method=UNIT_METHOD, confidence=confidence)
            for key in keys}


def row_bootstrap(n: int, statistic: Callable[[np.ndarray], float], *, draws: int = 200, seed: int = 0,
                  unit: str = "datapoints", confidence: float = 0.95, groups: np.ndarray | None = None) -> dict:
    """Resample rows (or whole ``groups`` of rows, e.g. a probe window's positions) with replacement.

    ``statistic(index)`` receives the row indices of a resample; the identity is the estimate.
    """
    rng = np.random.default_rng(seed)
    estimate = statistic(np.arange(n))
    values = []
    if groups is None:
        for _ in range(draws):
            values.append(statistic(rng.integers(0, n, n)))
    else:
        groups = np.asarray(groups)
        labels = np.unique(groups)
        members = {g: np.flatnonzero(groups == g) for g in labels}
        for _ in range(draws):
            pick = rng.choice(labels, len(labels), replace=True)
            values.append(statistic(np.concatenate([members[g] for g in pick])))
    return bootstrap_interval(values, estimate, unit=unit, method=DATAPOINT_METHOD, confidence=confidence)


def jackknife_interval(n: int, statistic: Callable[[np.ndarray], float], *, groups: int = 25, seed: int = 0,
                       unit: str = "datapoints", confidence: float = 0.95) -> dict:
    """A t interval from a grouped (delete-d) jackknife: the n rows split at random into
    ``groups`` groups, the statistic recomputed without each; estimate +- t * se with
    se^2 = (g - 1)/g * sum (theta_(g) - mean)^2 and t the quantile of Student's t with
    g - 1 degrees of freedom (se comes from g values; a normal quantile covered 0.874 of
    the truth at 5 groups and 0.937 at 25).

    Unlike a bootstrap it never repeats a row, so it suits statistics that repeated rows
    distort in a way the bootstrap's bias does not mirror (a CCA value against a
    row-shuffled null). ``statistic(index)`` receives the rows kept; the identity is the
    estimate. The record carries the jackknife's bias estimate (g - 1)(mean - estimate).
    """
    from ..core.intervals import jackknife_groups

    estimate = statistic(np.arange(n))
    parts = jackknife_groups(n, np.random.default_rng(seed), groups)
    values = np.array([statistic(np.setdiff1d(np.arange(n), part)) for part in parts], dtype=float)
    g = len(parts)
    return _t_interval(estimate, values, confidence, f"grouped jackknife ({g} groups), t with {g - 1} df", unit,
                       reason="the statistic is undefined without some group")


def _t_interval(estimate: float, values: np.ndarray, confidence: float, label: str, unit: str,
                reason: str = "fewer than 2 units, or the statistic is undefined without some unit") -> dict:
    """Delete-one or delete-d jackknife t interval from the leave-out values (g - 1 df)."""
    from scipy.stats import t as student

    g = len(values)
    if g < 2 or not np.all(np.isfinite(values)) or not np.isfinite(estimate):
        return {"low": None, "high": None, "confidence": confidence, "method": label, "unit": unit, "draws": int(g),
                "undefined_draws": int(np.count_nonzero(~np.isfinite(values))), "reason": reason}
    se = float(np.sqrt((g - 1) / g * np.sum((values - values.mean()) ** 2)))
    q = float(student.ppf(0.5 + confidence / 2, g - 1))
    bias = float((g - 1) * (values.mean() - estimate))
    return {"low": float(estimate - q * se), "high": float(estimate + q * se), "confidence": confidence,
            "method": label, "unit": unit, "draws": int(g), "undefined_draws": 0, "bias": bias, "se": se,
            "corrected": float(estimate - bias), "contains_estimate": True}


def network_jackknife(units: Mapping[str, Sequence[str]] | Sequence[str], statistics: Callable[[dict], Mapping[str, float]],
                      keys: Sequence[str], *, confidence: float, unit: str = "networks",
                      correlations: Sequence[str] = ()) -> dict[str, dict]:
    """Delete-one jackknife t intervals over independently trained networks (or seeds).

    ``units`` is a list of network ids, or ``{group: [ids]}``; each network in turn is left
    out of its group and ``statistics(kept)`` (``{group: ids}``, or ``{"all": ids}`` for a
    list) recomputed; the interval is estimate +- t * se with se^2 = (g - 1)/g * sum
    (theta_(i) - mean)^2 and t Student's quantile with g - 1 degrees of freedom, g the
    networks. For a mean over networks this is exactly the t interval of the networks'
    values; for means over pairs of networks (U-statistics) the jackknife variance is
    consistent. Each network's value is measured on the same datapoints, so the interval is
    about the population of networks that the training recipe gives, on that probe set. It
    never repeats a network (a bootstrap of 3-5 networks has very few distinct resamples).
    Its coverage on simulated replicates is tested (``tests/test_claims.py``).

    Keys in ``correlations`` are correlation coefficients: their interval is computed on
    Fisher's z = atanh(r) and mapped back with tanh, so it stays within [-1, 1].
    """
    groups = {"all": list(units)} if not isinstance(units, Mapping) else {g: list(m) for g, m in units.items()}
    estimate = statistics(groups)
    left_out = [(g, i) for g, members in groups.items() for i in range(len(members))]
    drawn = []
    for g, i in left_out:
        kept = {h: [m for j, m in enumerate(members) if not (h == g and j == i)] for h, members in groups.items()}
        drawn.append(statistics(kept))
    label = f"delete-one jackknife over {len(left_out)} {unit}, t with {len(left_out) - 1} df"
    out = {}
    for key in keys:
        values = np.array([float(d[key]) for d in drawn])
        if key not in correlations:
            out[key] = _t_interval(float(estimate[key]), values, confidence, label, unit)
            continue
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.arctanh(np.clip(values, -1.0, 1.0))
            iv = _t_interval(float(np.arctanh(np.clip(float(estimate[key]), -1.0, 1.0))), z, confidence,
                             label + ", on Fisher's z", unit)
        if iv["low"] is not None:
            iv.update(low=float(np.tanh(iv["low"])), high=float(np.tanh(iv["high"])),
                      corrected=float(np.tanh(iv["corrected"])))
            iv.pop("bias"), iv.pop("se")
            iv.update(bias_z=float((len(values) - 1) * (z.mean() - np.arctanh(float(estimate[key])))))
        out[key] = iv
    return out


def p_value_interval(exceed: int, permutations: int, *, confidence: float) -> dict:
    """The Monte Carlo interval of a permutation p-value (exact Clopper-Pearson on ``exceed`` of
    ``permutations`` draws at least as extreme), with p = (exceed + 1) / (permutations + 1).

    >>> r = p_value_interval(0, 9999, confidence=0.99)
    >>> r["value"], 0 <= r["low"] < r["high"] < 0.001
    (0.0001, True)
    """
    from scipy.stats import binomtest

    ci = binomtest(int(exceed), int(permutations)).proportion_ci(confidence_level=confidence, method="exact")
    return {"low": float(ci.low), "high": float(ci.high), "confidence": confidence, "value": (exceed + 1) / (permutations + 1),
            "method": "Clopper-Pearson interval of the Monte Carlo p-value", "unit": "permutations",
            "draws": int(permutations)}


def proportion_interval(successes: int, trials: int, *, confidence: float, shift: float = 0.0) -> dict:
    """Wilson score interval of a proportion (always within [0, 1]), minus ``shift`` (a chance rate).

    >>> r = proportion_interval(40, 40, confidence=0.95)
    >>> r["high"], round(r["low"], 3)
    (1.0, 0.912)
    """
    from scipy.stats import binomtest

    ci = binomtest(int(successes), int(trials)).proportion_ci(confidence_level=confidence, method="wilson")
    return {"low": float(ci.low) - shift, "high": float(ci.high) - shift, "confidence": confidence,
            "method": "Wilson score interval" + (f", minus the chance rate {shift:.4f}" if shift else ""),
            "unit": "networks (as independent trials)", "draws": int(trials)}


def draws_for(base: int, scale) -> int:
    """A figure's bootstrap resamples at a scale (its ``bootstrap`` share; at least 20)."""
    return max(20, int(round(base * getattr(scale, "bootstrap", 1.0))))


class PairTable:
    """Symmetric distances between named networks, and means over pairs of distinct networks."""

    def __init__(self, distances: Mapping[tuple[str, str], float]):
        self.d: dict[tuple[str, str], float] = {}
        for (a, b), v in distances.items():
            self.d[(a, b)] = self.d[(b, a)] = float(v)

    @classmethod
    def from_rows(cls, rows: Sequence[dict], **where) -> "PairTable":
        return cls({(r["a"], r["b"]): r["distance"] for r in rows if all(r.get(k) == v for k, v in where.items())})

    def mean(self, A: Sequence[str], B: Sequence[str] | None = None) -> float:
        """Mean distance over pairs (a in A, b in B) of distinct networks; within A when B is None.

        Within a group each unordered pair of positions counts once; a resampled network's
        copies are never paired with each other. NaN when there is no such pair.
        """
        values = []
        if B is None:
            for i in range(len(A)):
                for j in range(i + 1, len(A)):
                    if A[i] != A[j]:
                        values.append(self.d[(A[i], A[j])])
        else:
            values = [self.d[(a, b)] for a in A for b in B if a != b]
        return float(np.mean(values)) if values else float("nan")
