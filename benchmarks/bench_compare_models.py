"""compare_models against pytorch-cka (PyPI ``pytorch-cka``) on all-layer linear CKA.

Two small CNNs (four conv blocks of 8-64 channels and a linear head), untrained but
seeded, on the 10,000 Fashion-MNIST test images (a seeded random tensor of the same shape
when the dataset is missing), with two layer sets that both libraries see identically:

* ``means``: each block's channel means (a tap module after each block returns them, as
  the paper summarises conv layers), the pooled features and the head: 7 layers of 8-64
  neurons;
* ``flat``: each block's flattened feature maps (what pytorch-cka does with any conv
  output; ``spatial="flatten"`` in ccalens), the pooled features and the head: up to
  1,568 neurons a layer, 5,684 in all.

Every configuration runs in its own subprocess; its memory is the peak resident memory
(VmHWM, reset through /proc/self/clear_refs once the models and the data are loaded)
minus the resident memory at that point.

Configurations (each in its own subprocess):

* ``floor``: the same forward passes and hooks, and one float64 Gram matrix of all the
  layers' columns with a column of ones, accumulated in place batch by batch by BLAS syrk:
  the one product that no exact method avoids (``floor32``: the same in float32); its peak
  memory is the Gram matrix plus what the forward passes of one batch hold;
* ``ccalens cka``: ``compare_models(..., measures="cka")``, exact full-data linear CKA
  (``ccalens cka float32``: the same with ``accumulate="float32"``);
* ``ccalens cca family``: the same pass with PWCCA, SVCCA, mean CCA and CKA (issue 26's
  target: within 2x the floor); ``ccalens cca+cka``: with Procrustes too;
* ``ccalens minibatch``: ``measures="cka_minibatch"``, the estimator pytorch-cka computes;
* ``pytorch-cka bB``: ``cka.compute_cka`` over a DataLoader of batch size B.

Values: every pytorch-cka matrix is compared with the exact full-data linear CKA and with
ccalens's minibatch estimate at the same batch size (the same estimator: their difference
is float32 against float64 arithmetic). Run with ``python benchmarks/bench_compare_models.py``;
it writes ``benchmarks/results/compare_models.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
LAYERS = {"means": ["t1", "t2", "t3", "t4", "pool", "flat", "head"],
          "flat": ["b1", "b2", "b3", "b4", "flat", "head"]}
#: layers that hold the same representation (the last block's maps are 1 x 1): any estimate
#: must give them equal rows and columns
IDENTICAL = {"means": ["t4", "pool", "flat"], "flat": ["b4", "flat"]}


def spread(matrix, layer_set: str) -> float:
    """The largest difference between entries that compare the same representations."""
    import numpy as np

    m = np.asarray(matrix)
    idx = [LAYERS[layer_set].index(name) for name in IDENTICAL[layer_set]]
    return float(max(np.ptp(m[:, idx], axis=1).max(), np.ptp(m[idx, :], axis=0).max()))


def make(seed: int):
    import torch
    from torch import nn

    class Tap(nn.Module):  # a block's channel means, for the hooks; the network does not use them
        def forward(self, x):
            return x.mean(dim=(2, 3))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            for i, (a, b) in enumerate(((1, 8), (8, 16), (16, 32), (32, 64)), 1):
                self.add_module(f"b{i}", nn.Sequential(nn.Conv2d(a, b, 3, padding=1), nn.BatchNorm2d(b), nn.ReLU(),
                                                       nn.MaxPool2d(2)))
                self.add_module(f"t{i}", Tap())
            self.pool, self.flat, self.head = nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10)

        def forward(self, x):
            for i in range(1, 5):
                x = getattr(self, f"b{i}")(x)
                getattr(self, f"t{i}")(x)
            return self.head(self.flat(self.pool(x)))

    torch.manual_seed(seed)
    return Net().eval()


def images(n: int):
    import numpy as np
    import torch

    try:
        from ccalens import datasets

        x = datasets.fashion_mnist().x_test[:n]
        source = "Fashion-MNIST test images"
    except Exception:  # noqa: BLE001 - the dataset is optional here
        x = np.random.default_rng(0).standard_normal((n, 1, 28, 28)).astype(np.float32)
        source = "seeded random images"
    return torch.as_tensor(np.asarray(x, dtype=np.float32)), source


def cpu() -> str:
    """The processor's model name (Linux), else the architecture."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def status_mib(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def reset_peak() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current resident memory
    except OSError:
        pass


def run_one(config: str, layer_set: str, n: int, threads: int) -> dict:
    import gc

    import numpy as np
    import torch

    torch.set_num_threads(threads)
    a, b = make(0), make(1)
    x, source = images(n)
    layers = LAYERS[layer_set]
    with torch.no_grad():
        a(x[:8]), b(x[:8])  # warm-up: the first forward pass allocates its workspaces
    gc.collect()
    reset_peak()
    base = status_mib("VmRSS")
    t0 = time.perf_counter()
    spatial = "flatten" if layer_set == "flat" else "mean"
    if config.startswith("floor"):
        # the floor: the same forward passes and hooks, and one Gram matrix of [1 | every
        # layer's columns] accumulated batch by batch (float64, or float32 for "floor32")
        import scipy.linalg

        single = config == "floor32"
        dtype = torch.float32 if single else torch.float64
        syrk = scipy.linalg.blas.ssyrk if single else scipy.linalg.blas.dsyrk
        taps, acc, product = {}, None, 0.0
        hooks = [getattr(net, name).register_forward_hook(
            lambda mod, inp, out, key=(k, name): taps.__setitem__(key, out.reshape(out.shape[0], -1)))
            for k, net in enumerate((a, b)) for name in layers]
        with torch.no_grad():
            for start in range(0, n, 1000):
                batch = x[start : start + 1000]
                a(batch), b(batch)
                t1 = time.perf_counter()
                joint = torch.cat([torch.ones(batch.shape[0], 1, dtype=dtype)] + [taps[key].to(dtype) for key in
                                                                                   sorted(taps)], 1).numpy()
                if acc is None:
                    acc = np.zeros((joint.shape[1],) * 2, dtype=joint.dtype, order="F")
                acc = syrk(1.0, joint.T, beta=1.0, c=acc, trans=0, lower=0, overwrite_c=True)  # in place
                product += time.perf_counter() - t1
        for h in hooks:
            h.remove()
        seconds = time.perf_counter() - t0
        return {"config": config, "layers": layer_set, "seconds": seconds, "product_seconds": product,
                "peak_mib": status_mib("VmHWM") - base, "matrix": [], "source": source,
                "columns": int(acc.shape[0]) - 1, "routes": {}}
    if config.startswith("ccalens"):
        import ccalens

        measures = {"ccalens cka": ("cka",), "ccalens cca+cka": ("pwcca", "svcca", "mean_cca", "procrustes", "cka"),
                    "ccalens cca family": ("pwcca", "svcca", "mean_cca", "cka"),
                    "ccalens cka tsqr": ("cka",), "ccalens cka float32": ("cka",)}
        routes = {}
        if config.startswith("ccalens minibatch"):
            batch = int(config.split("b")[-1])
            res = ccalens.compare_models({"a": a, "b": b}, x, layers=layers, measures="cka_minibatch",
                                         batch_size=batch, spatial=spatial)
            key = "cka_minibatch"
        else:
            res = ccalens.compare_models({"a": a, "b": b}, x, layers=layers, measures=measures[config],
                                         batch_size=1000, spatial=spatial,
                                         route="tsqr" if config.endswith("tsqr") else "auto",
                                         accumulate="float32" if config.endswith("float32") else "float64")
            key = "cka"
            routes = res.routes
        seconds = time.perf_counter() - t0
        matrix = res.matrix(key, "a", "b").to_numpy()
        widths = sum(res.widths.values())
    else:
        routes = {}
        from cka import compute_cka

        batch = int(config.split("b")[-1])
        loader = torch.utils.data.DataLoader(x, batch_size=batch, shuffle=False)
        matrix = compute_cka(a, b, loader, layers=layers, device="cpu", progress=False)[0].double().numpy()
        seconds = time.perf_counter() - t0
        widths = None
    return {"config": config, "layers": layer_set, "seconds": seconds, "peak_mib": status_mib("VmHWM") - base,
            "matrix": np.asarray(matrix).tolist(), "source": source, "columns": widths, "routes": routes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--layers", choices=sorted(LAYERS), default=None, help="one layer set (default: both)")
    parser.add_argument("--out", default=str(HERE / "results" / "compare_models.json"))
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.layers, args.n, args.threads)))
        return
    import numpy as np

    try:
        import cka  # noqa: F401  (checked before the subprocesses start)
    except ImportError:
        sys.exit("pytorch-cka is not installed: pip install pytorch-cka (the import name is cka)")
    configs = ["floor", "floor32", "ccalens cka", "ccalens cka float32", "ccalens cka tsqr", "ccalens cca family",
               "ccalens cca+cka"]
    for batch in (64, 256, 1024):
        configs += [f"ccalens minibatch b{batch}", f"pytorch-cka b{batch}"]
    result = {"machine": f"{cpu()}, {os.cpu_count()} cores, {platform.platform()}",
              "load_before": os.getloadavg(), "n": args.n, "threads": args.threads, "layer_sets": {}}
    for layer_set in ([args.layers] if args.layers else list(LAYERS)):
        runs = {}
        print(f"layers: {layer_set} ({', '.join(LAYERS[layer_set])})", flush=True)
        for config in configs:
            out = subprocess.run([sys.executable, __file__, "--one", config, "--layers", layer_set, "--n",
                                  str(args.n), "--threads", str(args.threads)], capture_output=True, text=True,
                                 check=True)
            runs[config] = r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"  {config:26s} {r['seconds']:7.2f} s   peak {r['peak_mib']:7.1f} MiB above the loaded models "
                  f"and data" + (f" (the product alone {r['product_seconds']:.2f} s)" if "product_seconds" in r
                                 else ""), flush=True)
        floor = runs["floor"]
        gram_mib = 8 * (floor["columns"] + 1) ** 2 / 2**20
        batch_mib = 8 * 1000 * (floor["columns"] + 1) / 2**20
        for config in ("ccalens cka", "ccalens cka float32", "ccalens cca family", "ccalens cca+cka"):
            r = runs[config]
            r["floor_ratio"] = r["seconds"] / floor["seconds"]
            r["floor32_ratio"] = r["seconds"] / runs["floor32"]["seconds"]
            r["memory_ratio"] = r["peak_mib"] / (gram_mib + batch_mib)
            r["memory_floor_ratio"] = r["peak_mib"] / floor["peak_mib"]
            print(f"  {config}: {r['floor_ratio']:.2f}x the floor's time; peak memory {r['memory_ratio']:.2f}x "
                  f"the Gram matrix {gram_mib:.0f} MiB plus one batch of the hooked layers' outputs "
                  f"{batch_mib:.0f} MiB, {r['memory_floor_ratio']:.2f}x the floor's peak (the same forward passes, "
                  f"one Gram matrix accumulated in place)")
        exact = np.array(runs["ccalens cka"]["matrix"])
        single = float(np.abs(np.array(runs["ccalens cka float32"]["matrix"]) - exact).max())
        runs["ccalens cka float32"]["max_abs_vs_float64"] = single
        print(f"  accumulate='float32' (routes {sorted(set(runs['ccalens cka float32']['routes'].values()))}): "
              f"{runs['ccalens cka float32']['seconds']:.2f} s, {runs['ccalens cka float32']['floor32_ratio']:.2f}x "
              f"the float32 floor; largest difference from float64 {single:.1e}")
        same_pass = np.abs(np.array(runs["ccalens cca+cka"]["matrix"]) - exact).max()
        print(f"  exact CKA from the CCA+CKA pass vs the CKA-only pass: {same_pass:.1e}")
        routes_difference = float(np.abs(np.array(runs["ccalens cka tsqr"]["matrix"]) - exact).max())
        print(f"  Gram route {runs['ccalens cka']['seconds']:.2f} s (layer routes: "
              f"{sorted(set(runs['ccalens cka']['routes'].values()))}) vs one TSQR pass "
              f"{runs['ccalens cka tsqr']['seconds']:.2f} s: {runs['ccalens cka tsqr']['seconds'] / runs['ccalens cka']['seconds']:.1f}x, "
              f"difference {routes_difference:.1e}")
        rows = []
        print(f"  identical representations ({', '.join(IDENTICAL[layer_set])}): spread of exact CKA "
              f"{spread(exact, layer_set):.1e}")
        for batch in (64, 256, 1024):
            theirs = np.array(runs[f"pytorch-cka b{batch}"]["matrix"])
            ours = np.array(runs[f"ccalens minibatch b{batch}"]["matrix"])
            rows.append({"batch": batch, "max_abs_vs_exact": float(np.abs(theirs - exact).max()),
                         "mean_abs_vs_exact": float(np.abs(theirs - exact).mean()),
                         "ccalens_minibatch_max_abs_vs_exact": float(np.abs(ours - exact).max()),
                         "max_abs_vs_ccalens_minibatch": float(np.abs(theirs - ours).max()),
                         "identical_spread_theirs": spread(theirs, layer_set),
                         "identical_spread_ccalens_minibatch": spread(ours, layer_set),
                         "entries_at_exactly_0_or_1_theirs": int(np.count_nonzero((theirs == 0) | (theirs == 1)))})
            r = rows[-1]
            print(f"  batch {batch:5d}: |pytorch-cka - exact full-data CKA| max {r['max_abs_vs_exact']:.4f} (mean "
                  f"{r['mean_abs_vs_exact']:.4f}); ccalens minibatch max {r['ccalens_minibatch_max_abs_vs_exact']:.4f}; "
                  f"pytorch-cka vs ccalens minibatch (same estimator) {r['max_abs_vs_ccalens_minibatch']:.1e}; "
                  f"identical-layer spread: pytorch-cka {r['identical_spread_theirs']:.1e}, ccalens "
                  f"{r['identical_spread_ccalens_minibatch']:.1e}; pytorch-cka entries clamped at 0 or 1: "
                  f"{r['entries_at_exactly_0_or_1_theirs']}", flush=True)
        result["layer_sets"][layer_set] = {
            "layers": LAYERS[layer_set], "columns": runs["ccalens cka"]["columns"],
            "source": runs["ccalens cka"]["source"],
            "runs": {k: {kk: vv for kk, vv in v.items() if kk != "matrix"} for k, v in runs.items()},
            "same_pass_difference": float(same_pass), "routes_difference": routes_difference, "estimates": rows,
            "exact_cka": exact.tolist()}
    out = Path(args.out)
    if out.exists():  # a run of one layer set keeps the other set's last figures
        kept = json.loads(out.read_text()).get("layer_sets", {})
        result["layer_sets"] = {**{k: v for k, v in kept.items() if k not in result["layer_sets"]},
                                **result["layer_sets"]}
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
