"""Pairwise engine against pair-by-pair calls, measured side by side in one run.

``python benchmarks/bench_pairwise.py`` (K = 40 representations of 10,000 datapoints x 128
neurons by default): the full directed PWCCA matrix from ``ccalens.pairwise`` against
K * (K - 1) calls of ``ccalens.pwcca``, the largest difference between the two, and how the
engine's cost grows with K, n and width.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

import ccalens
from ccalens.engine import pairwise


def family(rng, k, n, width):
    """K layers sharing 32 latent directions, each seen through its own noise and mixing."""
    latent = rng.standard_normal((n, 32))
    reps = []
    for _ in range(k):
        own = latent + np.linspace(0.05, 1.0, 32) * rng.standard_normal((n, 32))
        x = np.c_[own, rng.standard_normal((n, width - 32))]
        reps.append(x @ np.linalg.qr(rng.standard_normal((width, width)))[0] + rng.standard_normal(width))
    return reps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--k", type=int, default=40)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--width", type=int, default=128)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, numpy {np.__version__}")
    reps = family(rng, args.k, args.n, args.width)

    t0 = time.perf_counter()
    engine = pairwise(reps, "pwcca")
    t_engine = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref = np.eye(args.k)
    for i, a in enumerate(reps):
        for j, b in enumerate(reps):
            if i != j:
                ref[i, j] = ccalens.pwcca(a, b).similarity
    t_pairs = time.perf_counter() - t0
    diff = float(np.abs(engine.similarity - ref).max())
    print(f"\nK={args.k}, n={args.n:,}, width={args.width}: directed PWCCA matrix")
    print("| figure | value |\n|---|---|")
    print(f"| ccalens.pairwise | {t_engine:.2f} s |")
    print(f"| {args.k * (args.k - 1)} calls of ccalens.pwcca | {t_pairs:.2f} s |")
    print(f"| speed-up | {t_pairs / t_engine:.1f}x |")
    print(f"| max difference | {diff:.1e} |")

    print("\nhow the engine's cost grows (seconds):")
    for k, n, w in [(10, args.n, args.width), (20, args.n, args.width), (40, args.n, args.width),
                    (20, args.n // 2, args.width), (20, args.n * 2, args.width), (20, args.n, args.width // 2), (20, args.n, args.width * 2)]:
        reps_kw = family(rng, k, n, w)
        t0 = time.perf_counter()
        pairwise(reps_kw, "pwcca")
        print(f"  K={k:>3} n={n:>6} width={w:>4}: {time.perf_counter() - t0:.2f}")


if __name__ == "__main__":
    main()
