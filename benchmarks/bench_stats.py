"""Permutation nulls from the cached factorisation against N full runs, side by side.

``python benchmarks/bench_stats.py`` (n = 10,000 datapoints, 128 x 128 neurons, N = 200
permutations by default): for each measure, ``measure(X, Y, permutations=N)`` against N
calls of the measure on freshly shuffled data, with the same permutations, and the largest
difference between the two sets of null values.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

import ccalens

MEASURES = {
    "pwcca": ccalens.pwcca,
    "mean_cca": ccalens.mean_cca,
    "cka": ccalens.cka,
    "procrustes": ccalens.procrustes,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--permutations", type=int, default=200)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, numpy {np.__version__}")
    latent = rng.standard_normal((args.n, 32))
    x = np.c_[latent, rng.standard_normal((args.n, args.width - 32))] @ rng.standard_normal((args.width, args.width))
    y = np.c_[latent + rng.standard_normal((args.n, 32)), rng.standard_normal((args.n, args.width - 32))]
    print(f"\nn={args.n:,}, {args.width} x {args.width} neurons, {args.permutations} permutations")
    print("| measure | permutations= (cached factors) | N full runs | speed-up | max difference |")
    print("|---|---|---|---|---|")
    for name, fn in MEASURES.items():
        fn(x, y)  # warm up
        t0 = time.perf_counter()
        fast = fn(x, y, permutations=args.permutations, seed=1).null.values
        t_fast = time.perf_counter() - t0
        perm_rng = np.random.default_rng(1)
        t0 = time.perf_counter()
        slow = np.array([fn(x, y[perm_rng.permutation(args.n)]).similarity for _ in range(args.permutations)])
        t_slow = time.perf_counter() - t0
        diff = float(np.abs(fast - slow).max())
        print(f"| {name} | {t_fast:.2f} s | {t_slow:.2f} s | {t_slow / t_fast:.1f}x | {diff:.1e} |")


if __name__ == "__main__":
    main()
