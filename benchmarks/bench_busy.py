"""ccalens on a busy machine: the core and pairwise, quiet and beside N competing BLAS jobs.

Each competitor is a process running multithreaded matrix products (as many BLAS threads
as cores) for as long as the measurement lasts. With N competitors on C cores, a fair
share of the cores for ccalens (C threads among C (N + 1)) makes it N + 1 times slower
than on a quiet machine; the report gives each slowdown against that fair share, with the
small LAPACK calls single-threaded (ccalens's default, ``_backend.SMALL_LAPACK``) and,
for comparison in the same run, with every call at the BLAS's full thread count.

    python benchmarks/bench_busy.py            # writes benchmarks/results/busy.json

Run it on an otherwise idle machine: the quiet baseline must be quiet.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import platform
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def competitor(stop, size: int = 1500) -> None:
    a = np.random.default_rng(0).standard_normal((size, size))
    while not stop.is_set():
        a = a @ a
        a /= np.abs(a).max()


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    import ccalens
    from ccalens.core import _backend

    rng = np.random.default_rng(0)
    x = rng.standard_normal((20_000, 512))
    y = x @ rng.standard_normal((512, 512)) * 0.1 + rng.standard_normal((20_000, 512))
    reps = [x[:5000, :128] @ rng.standard_normal((128, 128)) + rng.standard_normal((5000, 128)) for _ in range(12)]
    work = {"mean_cca 20000 x 512": (lambda: ccalens.mean_cca(x, y), 5),
            "pairwise 12 x 5000 x 128 (pwcca)": (lambda: ccalens.pairwise(reps, "pwcca"), 5)}
    small = _backend.SMALL_LAPACK
    cores = os.cpu_count() or 1
    result = {"machine": f"{platform.machine()}, {cores} cores, {platform.platform()}", "load_before": os.getloadavg(),
              "rows": []}
    quiet = {}
    for n_competitors in (0, 1, 2):
        stop = mp.Event()
        procs = [mp.Process(target=competitor, args=(stop,)) for _ in range(n_competitors)]
        for p in procs:
            p.start()
        time.sleep(1.0 if procs else 0.0)
        try:
            for name, (fn, repeat) in work.items():
                for mode, limit in (("small LAPACK single-threaded", small), ("every call multithreaded", 0)):
                    _backend.SMALL_LAPACK = limit
                    seconds = best(fn, repeat)
                    key = (name, mode)
                    if n_competitors == 0:
                        quiet[key] = seconds
                    slowdown = seconds / quiet[key]
                    row = {"work": name, "mode": mode, "competitors": n_competitors, "seconds": seconds,
                           "slowdown": slowdown, "fair_share": n_competitors + 1,
                           "against_fair_share": slowdown / (n_competitors + 1)}
                    result["rows"].append(row)
                    print(f"{name:34s} {mode:30s} N={n_competitors}: {seconds:7.2f} s, {slowdown:5.2f}x quiet, "
                          f"{row['against_fair_share']:4.2f}x the fair share", flush=True)
        finally:
            _backend.SMALL_LAPACK = small
            stop.set()
            for p in procs:
                p.join()
    out = HERE / "results" / "busy.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
