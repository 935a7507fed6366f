"""The datapoint route on layers wider than the data: two conv layers of 64 x 28 x 28 =
50,176 flattened columns each, on 2,000 inputs, with compare_models' default memory limit.

Two seeded, untrained CNNs (a 64-channel 3 x 3 convolution on 28 x 28 images, ReLU, then
average pooling and a linear head) on the first 2,000 Fashion-MNIST test images (a seeded
random tensor of the same shape when the dataset is missing). compare_models(...,
spatial="flatten") compares every layer with every other by linear CKA, SVCCA and PWCCA;
the conv layers take the datapoint route (they are wider than the 2,000 datapoints).

Checks, in the same run:

* **exact**: linear CKA of the conv layers against the n x n formula
  <K_a, K_b> / (||K_a|| ||K_b||), with K the centred Gram matrix of the activations
  extracted by ccalens.extract and computed here in float64 on its own;
* **time** against the floor: the same forward passes and the two n x n Gram products
  (float64, over column blocks), which no exact method avoids;
* **memory**: the peak resident memory of each run (its own subprocess, VmHWM reset once
  the models and data are loaded), against compare_models' own estimate: the held
  activations plus ``datapoint_bytes`` (the n x n matrices).

Run: ``python benchmarks/bench_wide_layers.py``; writes benchmarks/results/wide_layers.json.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench_compare_models import cpu, reset_peak, status_mib

HERE = Path(__file__).resolve().parent
N = 2000


def setup():
    import numpy as np
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(os.cpu_count() or 1)
    try:
        from ccalens import datasets

        x = torch.as_tensor(datasets.fashion_mnist().x_test[:N], dtype=torch.float32)
        source = "Fashion-MNIST test images"
    except Exception:  # the dataset is not installed: seeded random images of the same shape
        x = torch.as_tensor(np.random.default_rng(0).random((N, 1, 28, 28)), dtype=torch.float32)
        source = "seeded random images (Fashion-MNIST not installed)"
    if x.ndim == 3:
        x = x[:, None]

    def net(seed):
        torch.manual_seed(seed)
        return torch.nn.Sequential(torch.nn.Conv2d(1, 64, 3, padding=1), torch.nn.ReLU(),
                                   torch.nn.AdaptiveAvgPool2d(4), torch.nn.Flatten(), torch.nn.Linear(64 * 16, 10))

    return {"A": net(0), "B": net(1)}, x, source


def child(config: str) -> dict:
    import numpy as np

    import ccalens

    models, x, source = setup()
    reset_peak()
    base = status_mib("VmRSS")
    t = time.perf_counter()
    out = {"config": config, "source": source}
    if config == "floor":
        from ccalens.extract import extract

        grams = []
        for name in ("A", "B"):
            acts = extract(models[name], x, ["1"], spatial="flatten", batch_size=250)["1"]
            a = np.asarray(acts, dtype=np.float32)
            mean = a.mean(0, dtype=np.float64)
            g = np.zeros((N, N))
            for c in range(0, a.shape[1], 4096):
                block = a[:, c:c + 4096].astype(np.float64) - mean[c:c + 4096]
                g += block @ block.T
            grams.append(g)
            del a, acts
        out["seconds"] = time.perf_counter() - t
    elif config == "ccalens":
        res = ccalens.compare_models(models, x, layers=["1", "4"], measures=["cka", "svcca", "pwcca"],
                                     spatial="flatten", batch_size=250)
        out["seconds"] = time.perf_counter() - t
        out["routes"], out["notes"], out["widths"] = res.routes, res.notes, res.widths
        out["table"] = res.table
    elif config == "formula":  # the n x n formula, from ccalens.extract's activations in float64
        from ccalens.extract import extract

        ks = []
        for name in ("A", "B"):
            a = np.asarray(extract(models[name], x, ["1"], spatial="flatten", batch_size=250)["1"], np.float64)
            a -= a.mean(0)
            ks.append(a @ a.T)
            del a
        out["cka"] = float(np.sum(ks[0] * ks[1]) / np.sqrt(np.sum(ks[0] ** 2) * np.sum(ks[1] ** 2)))
        out["seconds"] = time.perf_counter() - t
    out["peak_bytes"] = (status_mib("VmHWM") - base) * 2**20
    return out


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        print(json.dumps(child(sys.argv[2])))
        return
    load = os.getloadavg()[0]
    runs = {}
    for config in ("floor", "ccalens", "formula"):
        proc = subprocess.run([sys.executable, __file__, "--child", config], capture_output=True, text=True,
                              check=True)
        runs[config] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"{config:8s} {runs[config]['seconds']:7.1f} s   peak {runs[config]['peak_bytes'] / 2**30:5.2f} GiB",
              flush=True)
    table = runs["ccalens"]["table"]
    cka = next(r["similarity"] for r in table if r["measure"] == "cka" and r["model_x"] == "A"
               and r["layer_x"] == "1" and r["model_y"] == "B" and r["layer_y"] == "1")
    error = abs(cka - runs["formula"]["cka"])
    from ccalens.stream.datapoints import datapoint_bytes

    held = 4 * N * sum(runs["ccalens"]["widths"].values())  # float32 activations
    squares = datapoint_bytes(N, runs["ccalens"]["widths"].values())  # compare_models' estimate
    summary = {
        "machine": f"{cpu()}, {os.cpu_count()} cores", "load_before": load,
        "data": runs["ccalens"]["source"], "n": N, "widths": runs["ccalens"]["widths"],
        "routes": runs["ccalens"]["routes"], "notes": runs["ccalens"]["notes"],
        "cka_conv_A_vs_B": cka, "cka_formula": runs["formula"]["cka"], "abs_error": error,
        "seconds": {k: v["seconds"] for k, v in runs.items()},
        "ratio_to_floor": runs["ccalens"]["seconds"] / runs["floor"]["seconds"],
        "peak_bytes": {k: v["peak_bytes"] for k, v in runs.items()},
        "estimate_bytes": {"held": held, "datapoint_route": squares},
        "peak_ratio": runs["ccalens"]["peak_bytes"] / (held + squares),
    }
    print(json.dumps({k: v for k, v in summary.items() if k not in ("widths",)}, indent=1))
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "wide_layers.json").write_text(json.dumps(summary, indent=1) + "\n")
    if error > 1e-8:
        sys.exit(f"the datapoint route's CKA differs from the n x n formula by {error:.2e} (> 1e-8)")


if __name__ == "__main__":
    main()
