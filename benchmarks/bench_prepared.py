"""Pairwise RSA with each representation's RDM ranked once (MeasureSpec.prepare), against
a plain numpy/scipy loop that does the same and nothing else.

K = 12 representations of 1,500 datapoints x 64 neurons (seeded; a shared signal plus
noise). ``ccalens.pairwise(reps, "rsa")`` is timed against:

* **loop**: scipy's ``pdist(x, "correlation")`` and ``rankdata`` once per representation,
  then ``np.corrcoef`` of each pair of rank vectors: the floor for this computation;
* **uncached**: ``ccalens.rsa(x, y)`` for every pair (each RDM recomputed per pair, as
  ``pairwise`` did before it cached the prepared parts).

Each is the best of three repeats, in one process; the values of all three must agree to
1e-10 (ccalens counts dissimilarities within 1e-12 of each other, relative to the largest,
as tied, where ``rankdata`` breaks such near-ties by their rounding). Target (issue 26): ``pairwise`` within 1.5x of the loop.
Run: ``python benchmarks/bench_prepared.py``; writes benchmarks/results/prepared.json.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
from scipy.spatial.distance import pdist
from scipy.stats import rankdata

import ccalens
from bench_compare_models import cpu

HERE = Path(__file__).resolve().parent
K, N, P = 12, 1500, 64


def data():
    rng = np.random.default_rng(0)
    signal = rng.standard_normal((N, 8))
    return [signal @ rng.standard_normal((8, P)) + rng.standard_normal((N, P)) * (0.5 + 0.1 * k) for k in range(K)]


def loop(reps):
    ranked = [rankdata(pdist(x, "correlation")) for x in reps]
    out = np.eye(len(reps))
    for i in range(len(reps)):
        for j in range(i + 1, len(reps)):
            out[i, j] = out[j, i] = np.corrcoef(ranked[i], ranked[j])[0, 1]
    return out


def uncached(reps):
    out = np.eye(len(reps))
    for i in range(len(reps)):
        for j in range(i + 1, len(reps)):
            out[i, j] = out[j, i] = ccalens.rsa(reps[i], reps[j]).similarity
    return out


def engine(reps):
    return ccalens.pairwise(reps, "rsa").similarity


def best(fn, reps, repeats=3):
    times, value = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        value = fn(reps)
        times.append(time.perf_counter() - t)
    return min(times), value


def main() -> None:
    reps = data()
    load = os.getloadavg()[0]
    results = {}
    for name, fn in (("loop", loop), ("pairwise", engine), ("uncached", uncached)):
        results[name] = best(fn, reps, repeats=1 if name == "uncached" else 3)
        print(f"{name:9s} {results[name][0]:7.2f} s", flush=True)
    worst = max(float(np.max(np.abs(results[k][1] - results["loop"][1]))) for k in results)
    summary = {
        "machine": f"{cpu()}, {os.cpu_count()} cores", "load_before": load,
        "K": K, "n": N, "neurons": P, "seconds": {k: v[0] for k, v in results.items()},
        "pairwise_over_loop": results["pairwise"][0] / results["loop"][0],
        "uncached_over_pairwise": results["uncached"][0] / results["pairwise"][0],
        "largest_difference": worst,
    }
    print(json.dumps(summary, indent=1))
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "prepared.json").write_text(json.dumps(summary, indent=1) + "\n")
    if worst > 1e-10:
        raise SystemExit(f"the three computations disagree by {worst:.2e}")


if __name__ == "__main__":
    main()
