"""Are paired differences calibrated, and how often do they find a real difference?

Not a timing: a simulation that decides each measure family's default interval method for
paired differences (``ccalens.core.intervals.PAIRED_DEFAULT_BY_FAMILY``,
:func:`ccalens.paired_difference`). Run: ``python benchmarks/paired_calibration.py``
(38 minutes here, on 2 cores shared with the coverage benchmark for its first 29; resumable through
``benchmarks/results/paired_calibration.partial.jsonl``); it writes
``benchmarks/results/paired_calibration.json``.

Design
------
The populations of ``benchmarks/interval_coverage.py`` (4 latent dimensions a side, the
same mixing matrices): X = Z_x M; Y = (Z_x diag(rho) + E_1 diag(sqrt(1 - rho^2))) N and
Z = (Z_x diag(rho') + E_2 diag(sqrt(1 - rho'^2))) N with independent noises E_1, E_2, on
the ``separated`` population (Gaussian) and the ``heavy`` one (Student-t(3) latents and
noise), rho = (0.9, 0.65, 0.4, 0.15), at 30 datapoints per neuron (n = 120).

* **Null** (exchangeable Y and Z): rho' = rho. Y and Z are independent copies from one
  population given X, so s(X, Y) - s(X, Z) has expectation 0 for every measure. 160
  samples per population.
* **Alternative**: rho' = 0.8 rho, so Z is less related to X than Y is. 80 samples per
  population; the true difference is the mean of 4 samples of 250,000 datapoints (2,000
  for RBF CKA and RSA; the neighbour measures' mean over 300 samples at n = 120, as in the
  coverage benchmark).

Each sample: every measure of the registry (aliases left out), the paired difference
s(X, Y) - s(X, Z) through the library's own draws and intervals (100 resamples shared by
percentile, basic, bias_corrected and BCa; 100 half-samples; 100 jackknife groups), at
95 %; its p-value by inverting the interval (``ccalens.core.paired.invert_for_p``).

Decision rule (committed before the first run)
----------------------------------------------
1. Null coverage of (population, measure, method): the share of samples whose interval
   contains 0. A *miss* is a null coverage below 0.95 - 1.96 sqrt(0.95 x 0.05 / S)
   (0.916 at S = 160): the interval does not hold its level.
2. Power of (population, measure, method): the share of alternative samples whose interval
   lies wholly above 0.
3. A family's default is, among the methods with no miss over its measures and both
   populations, the one with the highest mean power over the same cells; then the
   smaller mean relative width under the null (a cell's mean width over the six methods'
   mean); an exact tie goes to the earlier of jackknife, subsample, bias_corrected, basic,
   bca, percentile. If every method misses somewhere: the fewest misses, then the larger
   worst null coverage, then the higher mean power.
4. A family whose default misses is listed in ``PAIRED_MISSED_TARGET`` with its cells and
   coverage; every paired difference of that family by that method carries the note.
5. Reported, not deciding: the p <= 0.05 rate under the null (it equals 1 - coverage by
   construction of the p-value), and the alternative's coverage of the true difference.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from multiprocessing import Pool
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
import interval_coverage as grid  # noqa: E402

from ccalens.core import intervals  # noqa: E402
from ccalens.core.paired import invert_for_p, p_floor  # noqa: E402
from ccalens.core.registry import MEASURES  # noqa: E402

OUT = Path(__file__).parent / "results" / "paired_calibration.json"
PARTIAL = OUT.with_suffix(".partial.jsonl")

POPULATIONS = ("separated", "heavy")
RATIO = 30
N = RATIO * grid.P
SAMPLES = {"null": 160, "alternative": 80}
SHRINK = 0.8
DRAWS = grid.DRAWS
CONFIDENCE = 0.95
CHUNK = 25
GROUPS = grid.GROUPS


def triple(pop: str, n: int, rng, condition: str):
    """(X, Y, Z): Y and Z share X's latents; Z's relation is rho or SHRINK x rho."""
    rho = np.asarray(grid.RHO["separated"])
    heavy = pop == "heavy"
    zx = grid._noise(rng, n, heavy)
    rho_z = rho if condition == "null" else SHRINK * rho
    y = (zx * rho + grid._noise(rng, n, heavy) * np.sqrt(1.0 - rho**2)) @ grid.N
    z = (zx * rho_z + grid._noise(rng, n, heavy) * np.sqrt(1.0 - rho_z**2)) @ grid.N
    return zx @ grid.M, y, z


def differences(group: str, x, y, z) -> dict:
    """s(X, Y) - s(X, Z) for each measure of the group (None where either refuses)."""
    a, b = grid.values_on(group, x, y), grid.values_on(group, x, z)
    return {m: None if a[m] is None or b[m] is None else a[m] - b[m] for m in GROUPS[group]}


def reference(task) -> dict:
    pop, group = task
    pi, gi = POPULATIONS.index(pop), list(GROUPS).index(group)
    if group == "neighbours":
        vals = [differences(group, *triple(pop, N, grid._rng(19, pi, gi, s), "alternative"))
                for s in range(grid.NEIGHBOUR_REF_SAMPLES)]
    else:
        vals = [differences(group, *triple(pop, grid.REF_N[group], grid._rng(17, pi, gi, s), "alternative"))
                for s in range(grid.REF_REPEATS)]
    return {"pop": pop, "group": group,
            "reference": {m: float(np.mean([v[m] for v in vals if v[m] is not None])) for m in GROUPS[group]}}


def chunk(task) -> dict:
    """CHUNK samples of one (population, condition, group): per sample, measure and method,
    the interval, the p-value, and whether it covers 0 / the true difference."""
    pop, condition, group, start, refs = task
    pi, gi, ci = POPULATIONS.index(pop), list(GROUPS).index(group), list(SAMPLES).index(condition)
    out = {m: {k: {"cover0": 0, "above": 0, "cover_true": 0, "p05": 0, "width": 0.0} for k in intervals.METHODS}
           | {"valid": 0} for m in GROUPS[group]}
    t0 = time.perf_counter()
    for s in range(start, min(start + CHUNK, SAMPLES[condition])):
        rng = grid._rng(3, pi, ci, gi, s)
        x, y, z = triple(pop, N, rng, condition)
        est = differences(group, x, y, z)
        draws = {}
        for method in ("basic", "subsample", "jackknife"):
            draws[intervals.SCHEMES[method]] = [differences(group, x[r], y[r], z[r])
                                                for r in intervals.draw_rows(method, N, DRAWS, rng)]
        for m in GROUPS[group]:
            per = {k: [d[m] for d in v] for k, v in draws.items()}
            if est[m] is None or any(v is None for vs in per.values() for v in vs):
                continue
            out[m]["valid"] += 1
            truth = 0.0 if condition == "null" else refs[m]
            for k in intervals.METHODS:
                vals = np.asarray(per[intervals.SCHEMES[k]])
                jack = np.asarray(per["jackknife"]) if k == "bca" else None
                low, high, _ = intervals.interval_bounds(est[m], vals, CONFIDENCE, k, jackknife=jack, n_samples=N)
                p = invert_for_p(est[m], vals, k, jackknife=jack, n_samples=N, floor=p_floor(k, vals.size))
                cell = out[m][k]
                cell["cover0"] += int(low <= 0.0 <= high)
                cell["above"] += int(low > 0.0)
                cell["cover_true"] += int(low <= truth <= high)
                cell["p05"] += int(p <= 0.05)
                cell["width"] += high - low
    return {"pop": pop, "condition": condition, "group": group, "start": start, "stats": out,
            "seconds": time.perf_counter() - t0}


def merge(chunks: list[dict]) -> dict:
    """Per (condition, population, measure, method): rates over all chunks."""
    total: dict = {}
    for c in chunks:
        for m, st in c["stats"].items():
            key = (c["condition"], c["pop"], m)
            acc = total.setdefault(key, {"valid": 0} | {k: dict.fromkeys(st[k], 0) for k in intervals.METHODS})
            acc["valid"] += st["valid"]
            for k in intervals.METHODS:
                for f, v in st[k].items():
                    acc[k][f] += v
    rows = []
    for (condition, pop, m), acc in total.items():
        if not acc["valid"]:
            continue
        for k in intervals.METHODS:
            v = acc["valid"]
            rows.append({"condition": condition, "pop": pop, "measure": m, "family": MEASURES[m].family, "method": k,
                         "valid": v, "cover0": acc[k]["cover0"] / v, "power": acc[k]["above"] / v,
                         "cover_true": acc[k]["cover_true"] / v, "p05": acc[k]["p05"] / v,
                         "width": acc[k]["width"] / v})
    return rows


def target(samples: int) -> float:
    return 0.95 - 1.96 * np.sqrt(0.95 * 0.05 / samples)


def decide(rows: list[dict]) -> dict:
    families = {}
    for family in dict.fromkeys(r["family"] for r in rows):
        null = [r for r in rows if r["family"] == family and r["condition"] == "null"]
        alt = [r for r in rows if r["family"] == family and r["condition"] == "alternative"]
        mean_width = {}
        for r in null:
            mean_width.setdefault((r["pop"], r["measure"]), []).append(r["width"])
        scores = {}
        for k in intervals.METHODS:
            mine = [r for r in null if r["method"] == k]
            misses = [r for r in mine if r["cover0"] < target(r["valid"])]
            rel = [r["width"] / np.mean(mean_width[(r["pop"], r["measure"])]) for r in mine]
            scores[k] = {"misses": len(misses), "worst_null_coverage": min(r["cover0"] for r in mine),
                         "power": float(np.mean([r["power"] for r in alt if r["method"] == k])),
                         "relative_width": float(np.mean(rel)), "cells": len(mine),
                         "missed": [{f: r[f] for f in ("measure", "pop", "cover0")} for r in misses]}
        ranked = sorted(grid.ORDER, key=lambda k: (
            scores[k]["misses"] > 0, scores[k]["misses"], -scores[k]["worst_null_coverage"] if scores[k]["misses"] else 0.0,
            -scores[k]["power"], scores[k]["relative_width"], grid.ORDER.index(k)))
        families[family] = {"default": ranked[0], "target_met": scores[ranked[0]]["misses"] == 0, "scores": scores}
    return families


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()
    done = [json.loads(line) for line in PARTIAL.read_text().splitlines()] if PARTIAL.exists() else []
    t0 = time.perf_counter()
    with Pool(args.processes) as pool, PARTIAL.open("a") as log:
        have = {(d["pop"], d["group"]) for d in done if "reference" in d}
        for res in pool.imap_unordered(reference, [(p, g) for p in POPULATIONS for g in GROUPS if (p, g) not in have]):
            log.write(json.dumps(res) + "\n")
            log.flush()
            done.append(res)
        refs = {(d["pop"], d["group"]): d["reference"] for d in done if "reference" in d}
        have = {(d["pop"], d["condition"], d["group"], d["start"]) for d in done if "stats" in d}
        tasks = [(p, c, g, s, refs[(p, g)]) for g in GROUPS for p in POPULATIONS for c in SAMPLES
                 for s in range(0, SAMPLES[c], CHUNK) if (p, c, g, s) not in have]
        tasks.sort(key=lambda t: t[2] not in ("square", "neighbours"))
        for i, res in enumerate(pool.imap_unordered(chunk, tasks)):
            log.write(json.dumps(res) + "\n")
            log.flush()
            done.append(res)
            print(f"{i + 1}/{len(tasks)} {res['pop']} {res['condition']} {res['group']} {res['start']} "
                  f"{res['seconds']:.0f} s", flush=True)
    rows = merge([d for d in done if "stats" in d])
    result = {"design": {"populations": POPULATIONS, "ratio": RATIO, "n": N, "samples": SAMPLES, "shrink": SHRINK,
                         "draws": DRAWS, "confidence": CONFIDENCE, "null_target_at_S": target(SAMPLES["null"])},
              "references": [d for d in done if "reference" in d], "rows": rows, "decision": decide(rows),
              "seconds_this_run": time.perf_counter() - t0}
    OUT.write_text(json.dumps(result, indent=1) + "\n")
    for family, d in result["decision"].items():
        s = d["scores"][d["default"]]
        print(f"{family:13s} paired default {d['default']:15s} worst null coverage {s['worst_null_coverage']:.3f} "
              f"misses {s['misses']}/{s['cells']} power {s['power']:.2f}")


if __name__ == "__main__":
    main()
