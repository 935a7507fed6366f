"""Streaming (TSQR) PWCCA from Zarr: time and peak memory, against the in-memory path.

``python benchmarks/bench_stream.py`` writes two 2,000,000 x 256 float32 arrays to a Zarr
store in a temporary folder (about 4 GB), streams PWCCA over them in a fresh process and
reports its peak resident memory; then, on a size that fits in memory (200,000 rows),
times the streamed and the in-memory path side by side and reports their difference.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import ccalens
from ccalens import stream
from ccalens.store import ActivationStore


def write_pair(path: Path, n: int, width: int, chunk: int = 100_000) -> None:
    rng = np.random.default_rng(0)
    mix_x = rng.standard_normal((width, width)).astype(np.float32)
    mix_y = rng.standard_normal((width, width)).astype(np.float32)
    store = ActivationStore(path)
    with store.writer(chunk_rows=65536) as w:
        for start in range(0, n, chunk):
            m = min(chunk, n - start)
            latent = rng.standard_normal((m, 64)).astype(np.float32)
            x = np.c_[latent + 0.5 * rng.standard_normal((m, 64)), rng.standard_normal((m, width - 64))].astype(np.float32)
            y = np.c_[latent + 0.5 * rng.standard_normal((m, 64)), rng.standard_normal((m, width - 64))].astype(np.float32)
            w.append("x", x @ mix_x)
            w.append("y", y @ mix_y)


PROBE = """
import json, time, sys
from ccalens import stream
t0 = time.perf_counter()
res = stream.compare(sys.argv[1] + ":x", sys.argv[1] + ":y", "pwcca", chunk_rows=int(sys.argv[2]))
seconds = time.perf_counter() - t0
with open("/proc/self/status") as f:
    peak = next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmHWM"))
print(json.dumps({"similarity": res.similarity, "seconds": seconds, "peak": peak, "n": res.n_samples}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=2_000_000)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--chunk-rows", type=int, default=32768)
    parser.add_argument("--fits", type=int, default=200_000, help="rows for the side-by-side comparison")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "big.zarr"
        t0 = time.perf_counter()
        write_pair(big, args.n, args.width)
        print(f"wrote 2 x {args.n:,} x {args.width} float32 to Zarr in {time.perf_counter() - t0:.1f} s")
        out = subprocess.run([sys.executable, "-c", PROBE, str(big), str(args.chunk_rows)], capture_output=True, text=True, check=True)
        m = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"| streamed PWCCA, {m['n']:,} x {args.width} per side | {m['seconds']:.1f} s, peak resident memory {m['peak'] / 2**30:.2f} GiB |")

        small = Path(tmp) / "small.zarr"
        write_pair(small, args.fits, args.width)
        s = ActivationStore(small, mode="r")
        x, y = s.read("x"), s.read("y")
        t0 = time.perf_counter()
        mem = ccalens.pwcca(x, y)
        t_mem = time.perf_counter() - t0
        t0 = time.perf_counter()
        st = stream.compare(f"{small}:x", f"{small}:y", "pwcca", chunk_rows=args.chunk_rows)
        t_st = time.perf_counter() - t0
        print(f"| {args.fits:,} x {args.width}: in memory | {t_mem:.2f} s |")
        print(f"| {args.fits:,} x {args.width}: streamed from Zarr | {t_st:.2f} s ({t_st / t_mem:.1f}x) |")
        print(f"| difference | {abs(mem.similarity - st.similarity):.1e} |")


if __name__ == "__main__":
    main()
