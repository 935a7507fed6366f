"""What checking a store array's content costs, next to reading it and comparing it.

``python benchmarks/bench_store.py`` (two arrays of 50,000 x 512 float32 by default, as
``ccalens extract`` writes them): every read of a finished array recomputes the sha256 its
writer recorded (``ActivationStore.read``, and the streamed reads of ``ccalens.stream``).
This measures, best of ``--repeat``, in one run:

* the read with its check (``ActivationStore.read``) and the raw Zarr read (``arr[:]``);
* the sha256 alone over the array's bytes;
* PWCCA of the two arrays once read (``ccalens.pwcca``), and ``ccalens compare``'s whole
  path for two store arrays (``load_array`` twice, then PWCCA);
* the streamed PWCCA of the two arrays (``ccalens.stream.compare``), which hashes each
  chunk as it passes.

and reports the check's share of the whole comparison.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

import ccalens
from ccalens.store import ActivationStore, load_array


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    import hashlib

    from ccalens import stream

    rng = np.random.default_rng(0)
    latent = rng.standard_normal((args.n, 64)).astype(np.float32)
    mix = rng.standard_normal((64, args.width)).astype(np.float32)
    a = latent @ mix + rng.standard_normal((args.n, args.width), dtype=np.float32)
    b = np.maximum(latent @ mix + rng.standard_normal((args.n, args.width), dtype=np.float32), 0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "acts.zarr"
        store = ActivationStore(path)
        with store.writer() as w:
            for lo in range(0, args.n, 1000):  # as extraction appends batches
                w.append("a", a[lo:lo + 1000])
                w.append("b", b[lo:lo + 1000])
        st = ActivationStore(path, mode="r")
        raw = st.group["a"]
        t_read = best(lambda: st.read("a"), args.repeat)
        t_raw = best(lambda: raw[:], args.repeat)
        data = raw[:]
        t_hash = best(lambda: hashlib.sha256(memoryview(np.ascontiguousarray(data)).cast("B")).hexdigest(),
                      args.repeat)
        t_pwcca = best(lambda: ccalens.pwcca(a, b), args.repeat)
        t_compare = best(lambda: ccalens.pwcca(load_array(f"{path}:a"), load_array(f"{path}:b")), args.repeat)
        t_stream = best(lambda: stream.compare(f"{path}:a", f"{path}:b", "pwcca"), args.repeat)
    mb = data.nbytes / 2**20
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, numpy {np.__version__}; "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"two arrays of {args.n:,} x {args.width} float32 ({mb:.0f} MB each); best of {args.repeat}\n")
    print("| step | seconds |")
    print("|---|---|")
    for label, t in (("raw Zarr read of one array", t_raw), ("sha256 of one array", t_hash),
                     ("checked read of one array (ActivationStore.read)", t_read),
                     ("PWCCA of the two arrays in memory", t_pwcca),
                     ("compare path: two checked reads + PWCCA", t_compare),
                     ("streamed PWCCA of the two store arrays (chunks hashed as they pass)", t_stream)):
        print(f"| {label} | {t:.3f} |")
    check = 2 * t_hash
    print(f"\nthe checks ({check:.3f} s for both arrays, {mb / t_hash:.0f} MB/s) are "
          f"{100 * check / t_compare:.0f}% of the compare path and "
          f"{100 * (t_read - t_raw) / t_read:.0f}% of a checked read")


if __name__ == "__main__":
    main()
