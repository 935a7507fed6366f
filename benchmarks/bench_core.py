"""Core benchmark: PWCCA speed, accuracy and memory, as ratios measured in one run.

Run with ``make bench`` (or ``python benchmarks/bench_core.py --quick`` for a smaller size).
Every baseline is measured in the same process, on the same machine, in the same run:

* the reference's algorithm, twice: a step-by-step reimplementation of google/svcca's
  ``compute_pwcca`` in its own (neurons, datapoints) layout (``tests/oracles.py``:
  ``np.cov``, pinv, eigh square roots, directions in sample space, QR), and ccalens'
  ``pwcca(..., compat="svcca")``, the same algorithm with rows as datapoints. The
  speed-up is reported against the faster of the two;
* the GEMM bound: the flops of the two Gram matrices and the cross product,
  n*a^2 + n*b^2 + 2*n*a*b, at the double-precision GEMM rate measured here;
* accuracy: against an SVD-based computation (numpy's SVD of the centred data).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np

import ccalens

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import oracles  # noqa: E402  (the reference algorithm in its own layout)


def best_time(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def gemm_rate(size: int = 3000) -> float:
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((size, size)), rng.standard_normal((size, size))
    a @ b  # warm up
    return 2.0 * size**3 / best_time(lambda: a @ b, 3)


def svd_basis(m: np.ndarray):
    """Orthonormal basis of the centred columns from numpy's SVD (columns scaled to unit
    norm first, which CCA is invariant to), and the centred data."""
    mc = m - m.mean(0)
    u, s, _ = np.linalg.svd(mc / np.linalg.norm(mc, axis=0), full_matrices=False)
    return u[:, s > max(mc.shape) * np.finfo(float).eps * s[0]], mc


def svd_rho(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.linalg.svd(svd_basis(x)[0].T @ svd_basis(y)[0], compute_uv=False)


def svd_pwcca(x: np.ndarray, y: np.ndarray) -> float:
    """Section 2.2 in sample space from SVD bases (independent of ccalens)."""
    qx, xc = svd_basis(x)
    qy, _ = svd_basis(y)
    p, rho, _ = np.linalg.svd(qx.T @ qy, full_matrices=False)
    c = min(qx.shape[1], qy.shape[1])
    h, _ = np.linalg.qr(qx @ p[:, :c])
    alpha = np.abs(h.T @ xc).sum(axis=1)
    return float(alpha @ rho[:c] / alpha.sum())


def make_pair(rng, n, a, b, shared=None):
    """Two layers that share half their directions, through different mixings."""
    shared = shared or min(a, b) // 2
    latent = rng.standard_normal((n, shared))
    x = np.c_[latent + 0.3 * rng.standard_normal((n, shared)), rng.standard_normal((n, a - shared))]
    y = np.c_[latent + 0.3 * rng.standard_normal((n, shared)), rng.standard_normal((n, b - shared))]
    mx = np.linalg.qr(rng.standard_normal((a, a)))[0] * rng.uniform(0.5, 2.0, a)
    my = np.linalg.qr(rng.standard_normal((b, b)))[0] * rng.uniform(0.5, 2.0, b)
    return x @ mx + 1.0, y @ my - 1.0


def ill_conditioned(rng, n, a, b, gap):
    """Neuron scales spanning 1e-3 .. 1e3, and near-duplicate neurons (relative gap)."""
    x, y = make_pair(rng, n, a, b)
    x = x * np.geomspace(1e-3, 1e3, a)
    y = y * np.geomspace(1e3, 1e-3, b)
    dup = min(16, a // 8)
    x[:, -dup:] = x[:, :dup] * (1 + gap * rng.standard_normal((n, dup)))
    return x, y


def memory_probe(n: int, a: int, b: int) -> dict:
    """Peak resident memory of pwcca in a fresh process, in units of the inputs' size.

    The process's high-water mark (VmHWM) is reset after the inputs are built (Linux
    /proc/self/clear_refs), so the peak counts the inputs plus what pwcca allocates.
    """
    code = f"""
import json, numpy as np, ccalens
def status(key):
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
rng = np.random.default_rng(0)
x = np.empty(({n}, {a})); y = np.empty(({n}, {b}))
for i in range(0, {n}, 5000):
    x[i:i+5000] = rng.standard_normal((min(5000, {n}-i), {a}))
    y[i:i+5000] = rng.standard_normal((min(5000, {n}-i), {b}))
ccalens.pwcca(x[:1000], y[:1000])  # load BLAS and code paths
idle = status('VmRSS') - x.nbytes - y.nbytes
with open('/proc/self/clear_refs', 'w') as f:
    f.write('5')
ccalens.pwcca(x, y)
print(json.dumps({{"inputs": x.nbytes + y.nbytes, "idle": idle, "peak": status('VmHWM')}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    m = json.loads(out.stdout.strip().splitlines()[-1])
    m["peak_over_inputs"] = (m["peak"] - m["idle"]) / m["inputs"]
    return m


def threads_info() -> str:
    try:
        from threadpoolctl import threadpool_info

        blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
        blas.sort(key=lambda i: "numpy" not in i.get("filepath", ""))  # numpy's BLAS first
        if blas:
            i = blas[0]
            return f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture')}), {i.get('num_threads')} threads"
    except Exception:  # pragma: no cover - informational only
        pass
    return "unknown BLAS"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--a", type=int, default=512)
    parser.add_argument("--b", type=int, default=512)
    parser.add_argument("--quick", action="store_true", help="n=10,000, 256 x 256")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args()
    if args.quick:
        args.n, args.a, args.b = 10_000, 256, 256
    n, a, b = args.n, args.a, args.b
    rng = np.random.default_rng(0)

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.processor() or platform.platform()}")
    print(f"BLAS: {threads_info()}; numpy {np.__version__}")
    rate = gemm_rate()
    print(f"measured DGEMM rate: {rate / 1e9:.1f} GF/s")

    x, y = make_pair(rng, n, a, b)
    flops = n * a * a + n * b * b + 2 * n * a * b
    bound = flops / rate
    ours = best_time(lambda: ccalens.pwcca(x, y), 5)
    xt, yt = np.ascontiguousarray(x.T), np.ascontiguousarray(y.T)
    ref_layout = best_time(lambda: oracles.svcca_reference_neurons_first(xt, yt), 2)
    ref_compat = best_time(lambda: ccalens.pwcca(x, y, compat="svcca"), 2)
    ref = min(ref_layout, ref_compat)
    # the part no exact method avoids: one syrk of the joint centred data at this BLAS
    joint = np.concatenate([x - x.mean(0), y - y.mean(0)], axis=1)
    floor = best_time(lambda: joint.T @ joint, 3)
    method = ccalens.factorize(x).method

    rho_svd = svd_rho(x, y)
    err_rho = float(np.abs(np.asarray(ccalens.cca(x, y).rho) - rho_svd[: min(a, b)]).max())
    err_pw = abs(ccalens.pwcca(x, y).similarity - svd_pwcca(x, y))

    ill = {}
    for gap in (1e-4, 1e-7):
        xi, yi = ill_conditioned(rng, n, a, b, gap)
        t_ill = best_time(lambda: ccalens.pwcca(xi, yi), 2)
        c_ill = ccalens.cca(xi, yi)
        rho_ill = svd_rho(xi, yi)[: len(c_ill.rho)]
        ill[gap] = {
            "seconds": t_ill,
            "route": ccalens.factorize(xi).method,
            "max_abs_err_rho_vs_svd": float(np.abs(np.asarray(c_ill.rho) - rho_ill).max()),
            "abs_err_pwcca_vs_svd": abs(ccalens.pwcca(xi, yi).similarity - svd_pwcca(xi, yi)),
        }

    mem = memory_probe(n, a, b)

    rows = {
        "n": n, "a": a, "b": b,
        "gemm_gflops": rate / 1e9,
        "gemm_bound_s": bound,
        "pwcca_s": ours,
        "reference_algorithm_own_layout_s": ref_layout,
        "reference_algorithm_compat_s": ref_compat,
        "joint_syrk_s": floor,
        "speedup_vs_reference": ref / ours,
        "ratio_to_gemm_bound": ours / bound,
        "route_well_conditioned": method,
        "max_abs_err_rho_vs_svd": err_rho,
        "abs_err_pwcca_vs_svd": err_pw,
        "ill_conditioned": {str(g): v for g, v in ill.items()},
        "peak_memory_over_inputs": mem["peak_over_inputs"],
    }
    print()
    print(f"PWCCA at {n:,} datapoints x {a} vs {b} neurons, float64")
    print("| figure | value |")
    print("|---|---|")
    print(f"| ccalens pwcca (best of 5) | {ours:.3f} s ({method} route) |")
    print(f"| reference algorithm, (neurons, datapoints) layout (best of 2) | {ref_layout:.3f} s |")
    print(f"| reference algorithm, ccalens compat='svcca' (best of 2) | {ref_compat:.3f} s |")
    print(f"| speed-up over the faster reference | {ref / ours:.1f}x |")
    print(f"| one syrk of the joint centred data (no exact method does less) | {floor:.3f} s |")
    print(f"| ceiling on the speed-up at this BLAS (reference / syrk) | {ref / floor:.1f}x |")
    print(f"| GEMM bound at {rate / 1e9:.1f} GF/s | {bound:.3f} s |")
    print(f"| ccalens / GEMM bound | {ours / bound:.2f} |")
    print(f"| max abs error of rho vs SVD, well conditioned | {err_rho:.1e} |")
    print(f"| abs error of PWCCA vs SVD, well conditioned | {err_pw:.1e} |")
    for gap, v in ill.items():
        print(
            f"| scales 1e-3..1e3, near-duplicates at {gap:.0e}: time, error of rho, of PWCCA | "
            f"{v['seconds']:.3f} s ({v['route']} route), {v['max_abs_err_rho_vs_svd']:.1e}, "
            f"{v['abs_err_pwcca_vs_svd']:.1e} |"
        )
    print(f"| peak memory / size of the two inputs | {mem['peak_over_inputs']:.2f} |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=2)


if __name__ == "__main__":
    main()
