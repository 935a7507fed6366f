"""Streaming PWCCA from Zarr: time and peak memory of each route, against the in-memory path.

``python benchmarks/bench_stream.py`` (writes ``benchmarks/results/stream.json``):

* writes two 2,000,000 x 256 float32 arrays to a Zarr store in a temporary folder (about
  4 GB), then streams PWCCA over them in a fresh process per route ("auto": the Gram
  route, with its second pass for the sources it cannot finish; "tsqr": one Householder
  pass) and reports each one's time, peak resident memory and the routes the sources took;
* on a size that fits in memory (200,000 rows), times the in-memory path and both
  streamed routes side by side, each a fresh process reading the same store, and reports
  their differences.

The data are two layers sharing 64 latent directions, mixed by random Gaussian matrices
(condition numbers of about 1e3, so the Gram route takes its whitened second pass, as the
in-memory factorisation does); ``--rotate`` mixes by random rotations instead (one pass).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ccalens.store import ActivationStore

HERE = Path(__file__).resolve().parent


def write_pair(path: Path, n: int, width: int, rotate: bool, chunk: int = 100_000) -> None:
    rng = np.random.default_rng(0)
    if rotate:
        mix_x, mix_y = (np.linalg.qr(rng.standard_normal((width, width)))[0].astype(np.float32) for _ in range(2))
    else:
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
import ccalens
from ccalens import stream
from ccalens.store import ActivationStore
path, chunk, how = sys.argv[1], int(sys.argv[2]), sys.argv[3]
t0 = time.perf_counter()
routes = None
read = None
if how == "memory":
    s = ActivationStore(path, mode="r")
    x, y = s.read("x"), s.read("y")
    read = time.perf_counter() - t0
    value = ccalens.pwcca(x, y).similarity
else:  # stream.compare, in its two public steps, to see the routes the sources took
    summary = stream.summarise([path + ":x", path + ":y"], chunk_rows=chunk, route=how)
    rtol = stream.default_rtol({}, summary.n, [z.shape[1] for z in summary.matrices])
    value = ccalens.pwcca(*summary.matrices, rtol=rtol).similarity
    routes = summary.routes
seconds = time.perf_counter() - t0
with open("/proc/self/status") as f:
    peak = next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmHWM"))
print(json.dumps({"similarity": value, "seconds": seconds, "read": read, "peak": peak, "routes": routes}))
"""


def probe(path: Path, chunk_rows: int, how: str) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, str(path), str(chunk_rows), how], capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=2_000_000)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--chunk-rows", type=int, default=32768)
    parser.add_argument("--fits", type=int, default=200_000, help="rows for the side-by-side comparison")
    parser.add_argument("--rotate", action="store_true", help="well-conditioned layers (random rotations)")
    parser.add_argument("--out", default=str(HERE / "results" / "stream.json"))
    args = parser.parse_args()
    result = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
              "load_before": os.getloadavg(), "n": args.n, "width": args.width, "rotate": args.rotate}
    with tempfile.TemporaryDirectory() as tmp:
        small = Path(tmp) / "small.zarr"
        write_pair(small, args.fits, args.width, args.rotate)
        side = {how: probe(small, args.chunk_rows, how) for how in ("memory", "auto", "tsqr")}
        result["fits"] = {"rows": args.fits, **side}
        mem = side["memory"]
        compute = mem["seconds"] - mem["read"]
        print(f"{args.fits:,} x {args.width} per side (one process each, best of one); in memory: "
              f"{mem['read']:.2f} s to read the store (checked) + {compute:.2f} s of PWCCA:")
        print("| path | seconds | / in-memory PWCCA | / read + PWCCA | peak GiB | routes | difference |\n"
              "|---|---|---|---|---|---|---|")
        for how, m in side.items():
            print(f"| {how} | {m['seconds']:.2f} | {m['seconds'] / compute:.2f} | {m['seconds'] / mem['seconds']:.2f} | "
                  f"{m['peak'] / 2**30:.2f} | {m['routes'] or '-'} | {abs(m['similarity'] - mem['similarity']):.1e} |")

        big = Path(tmp) / "big.zarr"
        t0 = time.perf_counter()
        write_pair(big, args.n, args.width, args.rotate)
        print(f"\nwrote 2 x {args.n:,} x {args.width} float32 to Zarr in {time.perf_counter() - t0:.1f} s")
        runs = {how: probe(big, args.chunk_rows, how) for how in ("auto", "tsqr")}
        result["big"] = runs
        print("| route | seconds | peak GiB | routes | value |\n|---|---|---|---|---|")
        for how, m in runs.items():
            print(f"| {how} | {m['seconds']:.1f} | {m['peak'] / 2**30:.2f} | {m['routes']} | {m['similarity']:.12f} |")
        print(f"difference between the routes: {abs(runs['auto']['similarity'] - runs['tsqr']['similarity']):.1e}")
    result["load_after"] = os.getloadavg()
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
