"""DFT-CCA against the CCAs it stands for, measured side by side.

``python benchmarks/bench_dft.py``: conv activations (N, H, W, C) made translation
invariant (every circular shift of each of N0 inputs). DFT-CCA is compared with

* the CCA of all H*W*C position-channel neurons, which it equals exactly on such data
  (the largest difference is printed), and which needs N > H*W*C datapoints;
* the positions-as-datapoints CCA ((N*H*W, C) matrices), the usual cheap alternative,
  which answers a different question (printed: its mean correlation).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

import ccalens


def every_shift(a):
    h, w = a.shape[1:3]
    return np.concatenate([np.roll(a, (i, j), axis=(1, 2)) for i in range(h) for j in range(w)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n0", type=int, default=80)
    parser.add_argument("--size", type=int, default=8)
    parser.add_argument("--channels", type=int, default=32)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    h = w = args.size
    c = args.channels
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, numpy {np.__version__}")
    base = rng.standard_normal((args.n0, h, w, c))
    mix = rng.standard_normal((c, c))
    x = every_shift(base)
    y = every_shift(np.tanh(base @ mix + np.roll(base, 1, axis=1) @ mix) + 0.5 * rng.standard_normal(base.shape))
    n = x.shape[0]
    print(f"\nN={n:,} ({args.n0} inputs x {h * w} shifts), {h}x{w} positions, {c} channels per side")
    timings = {}
    t0 = time.perf_counter()
    dft = ccalens.dft_cca(x, y)
    timings["dft"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    full = ccalens.cca(x.reshape(n, -1), y.reshape(n, -1))
    timings["full"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    pos = ccalens.cca(x.reshape(-1, c), y.reshape(-1, c))
    timings["pos"] = time.perf_counter() - t0
    diff = float(np.abs(np.sort(np.asarray(full.rho))[::-1] - dft.rho).max())
    print("| method | time | mean correlation |\n|---|---|---|")
    print(f"| dft_cca | {timings['dft']:.2f} s | {dft.similarity:.6f} |")
    print(f"| cca of {h * w * c} position-channel neurons | {timings['full']:.2f} s | {full.similarity:.6f} |")
    print(f"| cca, positions as datapoints | {timings['pos']:.2f} s | {pos.similarity:.6f} |")
    print(f"\nDFT-CCA speed-up over the full CCA: {timings['full'] / timings['dft']:.1f}x; "
          f"largest coefficient difference: {diff:.1e}")


if __name__ == "__main__":
    main()
