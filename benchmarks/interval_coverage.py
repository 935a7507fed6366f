"""Do ccalens's intervals cover the population value on every population we can build?

Not a timing: a coverage simulation over a grid of known-answer populations that decides
each measure family's default interval method (``ccalens.core.intervals.DEFAULT_BY_FAMILY``)
and the notes on regimes where no method reaches the target. Run:
``python benchmarks/interval_coverage.py`` (33 minutes here on 2 cores, shared with the paired benchmark; resumable: a
killed run keeps every finished cell in ``benchmarks/results/interval_coverage.partial.jsonl``);
it writes ``benchmarks/results/interval_coverage.json``.

Populations (p = 4 latent dimensions a side)
--------------------------------------------
Latents Z_x, E with independent unit-variance entries (standard normal, or Student's t
with 3 degrees of freedom scaled to unit variance); Z_y = Z_x diag(rho) + E diag(sqrt(1 -
rho^2)), so the population canonical correlations are rho. The neurons mix the latents
with fixed Gaussian 4 x 4 matrices (seed 2018): X = Z_x M, Y = Z_y N.

* ``separated``: rho = (0.9, 0.65, 0.4, 0.15), Gaussian;
* ``tied``: rho = (0.6, 0.58, 0.56, 0.54), nearly tied canonical correlations, Gaussian;
* ``unequal``: ``separated``, and Y has 4 more neurons that mix 4 independent noise
  latents (Y is 8 neurons wide; X is 4);
* ``dead_dup``: ``separated``, and each side gains a dead neuron (constant) and a
  duplicate of its first neuron (6 neurons, rank 4);
* ``heavy``: ``separated`` with Student-t(3) latents and noise.

Sizes: n = r x (the larger side's rank) datapoints for r = 10, 30, 100 and 300 datapoints
per neuron. The measures of n x n matrices (RBF CKA, RSA, the neighbour measures) run at
r = 10 and 30 only (at r = 300 one of their recomputations takes 0.1-0.2 s here).

Reference values: for every measure except the neighbour measures, the mean of 4
independent samples of 250,000 datapoints (2,000 for the n x n measures, which cannot be
computed at 250,000); the JSON keeps their standard error. The neighbour measures (mutual
k-NN, CKNNA) have no value independent of n (their neighbourhoods shrink as n grows), so
their reference at a size is the mean of the estimator over 300 further samples of that
size: their intervals are read as intervals for the expected value at that n.

Each sample: the estimate; B = 100 resamples with replacement (shared by percentile,
basic, bias_corrected and BCa), 100 half-samples without replacement (subsample), and
min(n, 100) jackknife groups (the jackknife interval, and BCa's acceleration as ccalens
computes it); the six 95 % intervals of ``ccalens.core.intervals`` from the library's own
draws (``draw_rows``) and formulas (``interval_bounds``). S = 100 samples per cell. A
sample whose estimate or draws a measure refuses (cosine on a dead neuron) counts as
refused, not as a miss, and the JSON says how many (in this run: the matched-neuron
measures on ``unequal``, where the widths differ).

Decision rule (committed before the first run)
----------------------------------------------
1. Coverage of (population, size, measure, method): the share of the non-refused samples
   whose interval contains the reference value. A *miss* is a coverage below the target
   within Monte Carlo error, 0.90 - 1.96 sqrt(0.90 x 0.10 / S) (0.841 at S = 100).
2. A family's decision cells: every population and size with r >= 30
   (``RELIABLE_DATAPOINTS_PER_NEURON``) and every measure of the family run there.
3. The family's default is, among the methods with no miss in its decision cells, the one
   with the smallest mean relative width (a cell's mean width over the mean of the six
   methods' in that cell, averaged over the decision cells). If every method misses
   somewhere: the one with the fewest misses, then the larger worst-case coverage, then
   the smaller relative width. An exact tie goes to the earlier of jackknife, subsample,
   bias_corrected, basic, bca, percentile.
4. A family whose default misses somewhere is listed in ``MISSED_TARGET`` with the cells
   and their coverage. For each population where it misses, results of that family get a
   note where the data show that regime, by a detector fixed here: ``tied``, two adjacent
   canonical correlations closer than 2 (1 - rho^2) / sqrt(n); ``unequal``, one side
   twice as wide as the other or more; ``dead_dup``, a side's rank below its width;
   ``heavy``, a neuron whose excess kurtosis exceeds 6 (a Gaussian's sample excess
   kurtosis at n >= 40 exceeds 6 with probability below 1e-3). ``separated`` has no
   detector: a miss there is reported in the family's note.
5. Below 30 datapoints per neuron the few-datapoints note gives the family default's
   coverage range at r = 10, from this run.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from multiprocessing import Pool
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from ccalens.core import intervals  # noqa: E402
from ccalens.core.factor import factorize  # noqa: E402
from ccalens.core.registry import MEASURES  # noqa: E402

OUT = Path(__file__).parent / "results" / "interval_coverage.json"
PARTIAL = OUT.with_suffix(".partial.jsonl")

P = 4
RHO = {"separated": (0.9, 0.65, 0.4, 0.15), "tied": (0.6, 0.58, 0.56, 0.54)}
POPULATIONS = ("separated", "tied", "unequal", "dead_dup", "heavy")
RATIOS = (10, 30, 100, 300)
SQUARE_RATIOS = (10, 30)
SAMPLES = 100
DRAWS = 100
CONFIDENCE = 0.95
DECIDE_FROM = 30
ORDER = ("jackknife", "subsample", "bias_corrected", "basic", "bca", "percentile")

#: measures by how they are computed here: on shared factors, from the activations, or of n x n matrices
GROUPS = {
    "factor": ("pwcca", "svcca", "mean_cca", "cka", "cka_debiased", "procrustes", "shape", "shape_cca"),
    "raw": ("cosine", "euclidean", "predictivity"),
    "square": ("cka_rbf", "cka_rbf_kornblith", "rsa", "rsa_euclidean"),
    "neighbours": ("mutual_knn", "cknna"),
}
REF_N = {"factor": 250_000, "raw": 250_000, "square": 2_000}
REF_REPEATS = 4
NEIGHBOUR_REF_SAMPLES = 300

_MIX = np.random.default_rng(2018)
M, N, G = (_MIX.standard_normal((P, P)) for _ in range(3))


def widths(pop: str) -> tuple[int, int]:
    """(neurons of X, neurons of Y); the ranks are P, except Y's in ``unequal`` (2P)."""
    return {"unequal": (P, 2 * P), "dead_dup": (P + 2, P + 2)}.get(pop, (P, P))


def larger_rank(pop: str) -> int:
    return 2 * P if pop == "unequal" else P


def _noise(rng, n: int, heavy: bool) -> np.ndarray:
    if heavy:  # Student's t(3) has variance 3
        return rng.standard_t(3, size=(n, P)) / np.sqrt(3.0)
    return rng.standard_normal((n, P))


def sample(pop: str, n: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """n datapoints (rows) of the population's two representations."""
    rho = np.asarray(RHO.get(pop, RHO["separated"]))
    heavy = pop == "heavy"
    zx = _noise(rng, n, heavy)
    zy = zx * rho + _noise(rng, n, heavy) * np.sqrt(1.0 - rho**2)
    x, y = zx @ M, zy @ N
    if pop == "unequal":
        y = np.hstack([y, _noise(rng, n, False) @ G])
    if pop == "dead_dup":
        x = np.hstack([x, np.full((n, 1), 0.7), x[:, :1]])
        y = np.hstack([y, np.full((n, 1), -1.3), y[:, :1]])
    return x, y


def values_on(group: str, x: np.ndarray, y: np.ndarray) -> dict:
    """Each measure of the group on (x, y): its similarity, or None where it refuses."""
    names = GROUPS[group]
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if group == "factor":
            fx, fy = factorize(x), factorize(y)
            return {m: float(MEASURES[m].compute(fx, fy).similarity) for m in names}
        for m in names:
            if MEASURES[m].same_width and x.shape[1] != y.shape[1]:
                out[m] = None
                continue
            try:
                out[m] = float(MEASURES[m].compute(x, y).similarity)
            except ValueError:
                out[m] = None
    return out


def applicable(group: str, pop: str, ratio: int) -> bool:
    if group in ("square", "neighbours"):
        return ratio in SQUARE_RATIOS
    return True


def _rng(*key) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(2026, spawn_key=key))


def reference(task) -> dict:
    """The reference value of every measure of a group in a population (or, for the
    neighbour measures, at one size)."""
    pop, group, ratio = task
    pi, gi = POPULATIONS.index(pop), list(GROUPS).index(group)
    if group == "neighbours":
        n = ratio * larger_rank(pop)
        vals = [values_on(group, *sample(pop, n, _rng(9, pi, gi, ratio, s))) for s in range(NEIGHBOUR_REF_SAMPLES)]
    else:
        vals = [values_on(group, *sample(pop, REF_N[group], _rng(7, pi, gi, s))) for s in range(REF_REPEATS)]
    out = {}
    for m in GROUPS[group]:
        got = np.array([v[m] for v in vals if v[m] is not None], dtype=float)
        out[m] = None if got.size == 0 else {"value": float(got.mean()),
                                             "se": float(got.std(ddof=1) / np.sqrt(got.size)) if got.size > 1 else 0.0,
                                             "from": len(got)}
    return {"pop": pop, "group": group, "ratio": ratio if group == "neighbours" else None, "reference": out}


def one_cell(task) -> dict:
    """S samples of one (population, size, group): per measure and method, the covered
    count, the refused count, the mean width and the estimator's mean."""
    pop, ratio, group, refs = task
    pi, gi = POPULATIONS.index(pop), list(GROUPS).index(group)
    n = ratio * larger_rank(pop)
    names = GROUPS[group]
    stats = {m: {"covered": dict.fromkeys(intervals.METHODS, 0), "width": dict.fromkeys(intervals.METHODS, 0.0),
                 "valid": 0, "refused": 0, "estimate_sum": 0.0} for m in names}
    t0 = time.perf_counter()
    for s in range(SAMPLES):
        rng = _rng(1, pi, ratio, gi, s)
        x, y = sample(pop, n, rng)
        est = values_on(group, x, y)
        draws = {}
        for method in ("basic", "subsample", "jackknife"):  # one draw set per scheme
            draws[intervals.SCHEMES[method]] = [values_on(group, x[r], y[r])
                                                for r in intervals.draw_rows(method, n, DRAWS, rng)]
        for m in names:
            ref = refs.get(m)
            per = {k: [d[m] for d in v] for k, v in draws.items()}
            if ref is None or est[m] is None or any(v is None for vs in per.values() for v in vs):
                stats[m]["refused"] += 1
                continue
            st = stats[m]
            st["valid"] += 1
            st["estimate_sum"] += est[m]
            for method in intervals.METHODS:
                vals = np.asarray(per[intervals.SCHEMES[method]])
                jack = np.asarray(per["jackknife"]) if method == "bca" else None
                low, high, _ = intervals.interval_bounds(est[m], vals, CONFIDENCE, method, jackknife=jack,
                                                         n_samples=n)
                st["covered"][method] += int(low <= ref["value"] <= high)
                st["width"][method] += high - low
    for st in stats.values():
        if st["valid"]:
            st["width"] = {k: v / st["valid"] for k, v in st["width"].items()}
            st["estimate_mean"] = st.pop("estimate_sum") / st["valid"]
    return {"pop": pop, "ratio": ratio, "group": group, "n": n, "samples": SAMPLES, "stats": stats,
            "seconds": time.perf_counter() - t0}


def target(samples: int) -> float:
    return 0.90 - 1.96 * np.sqrt(0.90 * 0.10 / samples)


def decide(cells: list[dict]) -> dict:
    """Rule 1-5 of the module text, from the cells' coverage."""
    family_of = {m: MEASURES[m].family for g in GROUPS.values() for m in g}
    rows = []  # (family, measure, pop, ratio, method, coverage, width, valid)
    for cell in cells:
        for m, st in cell["stats"].items():
            if not st["valid"]:
                continue
            mean_width = np.mean([st["width"][k] for k in intervals.METHODS])
            for k in intervals.METHODS:
                rows.append({"family": family_of[m], "measure": m, "pop": cell["pop"], "ratio": cell["ratio"],
                             "method": k, "coverage": st["covered"][k] / st["valid"], "valid": st["valid"],
                             "relative_width": st["width"][k] / mean_width if mean_width > 0 else 1.0})
    decision = {}
    for family in dict.fromkeys(family_of.values()):
        mine = [r for r in rows if r["family"] == family]
        if not any(r["ratio"] >= DECIDE_FROM for r in mine):
            continue
        scores = {}
        for k in intervals.METHODS:
            cells_k = [r for r in mine if r["method"] == k and r["ratio"] >= DECIDE_FROM]
            misses = [r for r in cells_k if r["coverage"] < target(r["valid"])]
            scores[k] = {"misses": len(misses), "worst": min(r["coverage"] for r in cells_k),
                         "relative_width": float(np.mean([r["relative_width"] for r in cells_k])),
                         "cells": len(cells_k),
                         "missed": [{key: r[key] for key in ("measure", "pop", "ratio", "coverage")} for r in misses]}
        ranked = sorted(ORDER, key=lambda k: (scores[k]["misses"] > 0, scores[k]["misses"], -scores[k]["worst"]
                                              if scores[k]["misses"] else 0.0, scores[k]["relative_width"],
                                              ORDER.index(k)))
        best = ranked[0]
        low = [r["coverage"] for r in mine if r["method"] == best and r["ratio"] == min(RATIOS)]
        decision[family] = {"default": best, "scores": scores, "target_met": scores[best]["misses"] == 0,
                            "coverage_at_10": [min(low), max(low)] if low else None,
                            "missed_populations": sorted({r["pop"] for r in scores[best]["missed"]})}
    return {"rows": rows, "families": decision}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()
    OUT.parent.mkdir(exist_ok=True)
    done = [json.loads(line) for line in PARTIAL.read_text().splitlines()] if PARTIAL.exists() else []
    have_refs = {(d["pop"], d["group"], d["ratio"]) for d in done if "reference" in d}
    have_cells = {(d["pop"], d["ratio"], d["group"]) for d in done if "stats" in d}
    ref_tasks = [(pop, g, r if g == "neighbours" else None) for pop in POPULATIONS for g in GROUPS
                 for r in (SQUARE_RATIOS if g == "neighbours" else (None,))]
    t0 = time.perf_counter()
    with Pool(args.processes) as pool, PARTIAL.open("a") as log:
        for res in pool.imap_unordered(reference, [t for t in ref_tasks if t not in have_refs]):
            log.write(json.dumps(res) + "\n")
            log.flush()
            done.append(res)
            print(f"reference {res['pop']} {res['group']} {res['ratio'] or ''}", flush=True)
        refs = {(d["pop"], d["group"], d["ratio"]): d["reference"] for d in done if "reference" in d}
        tasks = [(pop, r, g, refs[(pop, g, r if g == "neighbours" else None)])
                 for g in GROUPS for pop in POPULATIONS for r in RATIOS
                 if applicable(g, pop, r) and (pop, r, g) not in have_cells]
        tasks.sort(key=lambda t: -t[1] * larger_rank(t[0]) * (50 if t[2] in ("square", "neighbours") else 1))
        for res in pool.imap_unordered(one_cell, tasks):
            log.write(json.dumps(res) + "\n")
            log.flush()
            done.append(res)
            print(f"{res['pop']:10s} r={res['ratio']:<4d} {res['group']:10s} {res['seconds']:.0f} s", flush=True)
    cells = [d for d in done if "stats" in d]
    result = {"design": {"p": P, "rho": RHO, "populations": POPULATIONS, "ratios": RATIOS,
                         "square_ratios": SQUARE_RATIOS, "samples": SAMPLES, "draws": DRAWS,
                         "confidence": CONFIDENCE, "decide_from": DECIDE_FROM, "target_at_S": target(SAMPLES),
                         "groups": GROUPS, "reference_n": REF_N, "reference_repeats": REF_REPEATS},
              "references": [d for d in done if "reference" in d], "cells": cells, "decision": decide(cells),
              "seconds_this_run": time.perf_counter() - t0}
    OUT.write_text(json.dumps(result, indent=1) + "\n")
    for family, d in result["decision"]["families"].items():
        s = d["scores"][d["default"]]
        print(f"{family:13s} default {d['default']:15s} worst {s['worst']:.2f} misses {s['misses']}/{s['cells']}")


if __name__ == "__main__":
    main()
