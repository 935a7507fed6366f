"""The one script to run on a CUDA machine: correctness of the torch/CUDA path, then speed.

    python benchmarks/gpu_check.py                      # K = 200 x 512 neurons x 10,000 datapoints
    python benchmarks/gpu_check.py --device cpu --k 8 --n 2000 --width 32 --images 1000   # a dry run anywhere

1. Correctness: every measure (the CCA family, CKA, Procrustes, the matched-neuron
   controls), a permutation null and a small pairwise matrix, computed from CUDA tensors and
   from numpy arrays, must agree to 1e-10 (the script exits non-zero otherwise).
2. Speed: the directed PWCCA matrix of K representations with ``ccalens.pairwise`` on the
   device, against single ``ccalens.pwcca`` calls on the device for a sample of pairs
   (extrapolated to all K*(K-1)), with a sample of entries checked against numpy on the CPU.
3. ``ccalens.compare_models``: two float64 CNNs, every layer against every layer with the
   summary (the Gram route) accumulated on the device, against the same pass on the CPU (to
   1e-10, exact measures and the minibatch CKA estimate), and its time on the device; then
   a float64 MLP with nearly repeated units, whose layers take the second pass's weak
   directions ("gram2") and its Householder TSQR ("tsqr") on the device, against the CPU
   and against ``route="tsqr"`` (to 1e-8); then the newer routes on the device: linear CKA
   with ``accumulate="float32"`` (routes "gram32", within FLOAT32_CKA_TOLERANCE of float64
   on the CPU) and the datapoint route (a flattened 16 x 28 x 28 = 12,544-column conv layer
   on fewer images than that: routes "datapoint", equal to the CPU's to 1e-10).
Prints one JSON object at the end.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch

import ccalens
from ccalens.stream.gram import FLOAT32_CKA_TOLERANCE


def family(k, n, width, seed=0):
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n, width // 4))
    reps = []
    for _ in range(k):
        own = latent + np.linspace(0.05, 1.0, width // 4) * rng.standard_normal(latent.shape)
        x = np.c_[own, rng.standard_normal((n, width - width // 4))]
        reps.append(x @ np.linalg.qr(rng.standard_normal((width, width)))[0] + rng.standard_normal(width))
    return reps


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--k", type=int, default=200)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--block", type=int, default=50)
    parser.add_argument("--sample", type=int, default=40, help="pairs timed one by one and checked on the CPU")
    parser.add_argument("--images", type=int, default=20_000, help="images for the compare_models pass")
    args = parser.parse_args()
    device = torch.device(args.device)
    report = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "torch": torch.__version__, "k": args.k, "n": args.n, "width": args.width}

    # 1. correctness on small data
    small = family(6, 3000, 24, seed=1)
    worst = 0.0
    x, y = small[0], small[1]
    tx, ty = (torch.from_numpy(a).to(device) for a in (x, y))
    for fn in (ccalens.mean_cca, ccalens.svcca, ccalens.pwcca):
        worst = max(worst, abs(fn(tx, ty).similarity - fn(x, y).similarity))
    worst = max(worst, abs(ccalens.pwcca(tx, ty, symmetric=True).similarity - ccalens.pwcca(x, y, symmetric=True).similarity))
    worst = max(worst, float(np.abs(ccalens.cca(tx, ty).rho.cpu().numpy() - ccalens.cca(x, y).rho).max()))
    for fn, kw in ((ccalens.cka, {}), (ccalens.cka, {"debiased": True}), (ccalens.cka, {"kernel": "rbf"}),
                   (ccalens.procrustes, {}), (ccalens.cosine, {}), (ccalens.euclidean, {}),
                   (ccalens.shape_metric, {"alpha": 0.5})):
        worst = max(worst, abs(fn(tx, ty, **kw).similarity - fn(x, y, **kw).similarity))
    # the permutation null from CUDA factors: the same permutations give the same values
    null_gpu = ccalens.pwcca(tx, ty, permutations=20, seed=3).null.values
    null_cpu = ccalens.pwcca(x, y, permutations=20, seed=3).null.values
    worst = max(worst, float(np.abs(null_gpu - null_cpu).max()))
    on_device = ccalens.pwcca(tx, ty).rho.device.type == device.type
    mat_gpu = ccalens.pairwise([torch.from_numpy(a).to(device) for a in small]).similarity
    mat_cpu = ccalens.pairwise(small).similarity
    worst = max(worst, float(np.abs(mat_gpu - mat_cpu).max()))
    report["correctness_max_difference"] = worst
    report["results_stay_on_device"] = on_device
    print(f"correctness: max difference {worst:.1e}, results on {device.type}: {on_device}", flush=True)

    # 2. speed at full size
    reps = family(args.k, args.n, args.width)
    treps = [torch.from_numpy(a).to(device) for a in reps]
    sync(device)
    t0 = time.perf_counter()
    res = ccalens.pairwise(treps, "pwcca", block=args.block)
    sync(device)
    report["pairwise_seconds"] = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    pairs = [tuple(rng.choice(args.k, 2, replace=False)) for _ in range(args.sample)]
    t0 = time.perf_counter()
    single = [ccalens.pwcca(treps[i], treps[j]).similarity for i, j in pairs]
    sync(device)
    per_pair = (time.perf_counter() - t0) / len(pairs)
    report["single_calls_seconds_extrapolated"] = per_pair * args.k * (args.k - 1)
    report["speedup"] = report["single_calls_seconds_extrapolated"] / report["pairwise_seconds"]
    cpu = [ccalens.pwcca(reps[i], reps[j]).similarity for i, j in pairs[: min(10, len(pairs))]]
    report["max_difference_vs_single_calls"] = float(max(abs(res.similarity[i, j] - s) for (i, j), s in zip(pairs, single)))
    report["max_difference_vs_cpu_numpy"] = float(max(abs(res.similarity[i, j] - c) for (i, j), c in zip(pairs, cpu)))

    # 3. compare_models: one pass on the device against the CPU
    report["compare_models"] = models_check(device, args.images)
    print(json.dumps(report, indent=2))
    ok = (worst < 1e-10 and report["max_difference_vs_cpu_numpy"] < 1e-10 and on_device
          and report["compare_models"]["max_difference_vs_cpu"] < 1e-10
          and report["compare_models"]["second_pass_max_difference_vs_cpu"] < 1e-8
          and report["compare_models"]["second_pass_max_difference_vs_tsqr"] < 1e-8
          and set(report["compare_models"]["second_pass_routes"].values()) == {"gram", "gram2", "tsqr"}
          and report["compare_models"]["float32_max_difference_vs_float64_cpu"] <= FLOAT32_CKA_TOLERANCE
          and report["compare_models"]["float32_routes"] == ["gram32"]
          and report["compare_models"]["datapoint_max_difference_vs_cpu"] < 1e-10
          and set(report["compare_models"]["datapoint_routes"]) <= {"datapoint", "datapoint-tsqr"})
    return 0 if ok else 1


def cnn(seed):
    from torch import nn

    torch.manual_seed(seed)
    layers = []
    for a, b in ((1, 16), (16, 32), (32, 64), (64, 128)):
        layers += [nn.Conv2d(a, b, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(128, 10)).double().eval()


def models_check(device, n_images: int) -> dict:
    measures = ("pwcca", "mean_cca", "cka", "procrustes", "cka_minibatch")
    x = torch.from_numpy(np.random.default_rng(2).standard_normal((n_images, 1, 28, 28)))
    models = {"a": cnn(0), "b": cnn(1)}
    sync(device)
    t0 = time.perf_counter()
    on_device = ccalens.compare_models(models, x, measures=measures, device=device, batch_size=500).to_pandas()
    sync(device)
    seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    on_cpu = ccalens.compare_models(models, x, measures=measures, device="cpu", batch_size=500).to_pandas()
    cpu_seconds = time.perf_counter() - t0
    diff = float(np.abs(on_device.similarity.to_numpy() - on_cpu.similarity.to_numpy()).max())
    out = {"images": n_images, "layers": int(on_device.layer_x.nunique()), "seconds_on_device": seconds,
           "seconds_on_cpu": cpu_seconds, "max_difference_vs_cpu": diff,
           "models_back_on_cpu": all(p.device.type == "cpu" for m in models.values() for p in m.parameters())}
    print(f"compare_models: {n_images} images on {device.type} in {seconds:.2f} s (CPU {cpu_seconds:.2f} s), "
          f"max difference {diff:.1e}", flush=True)
    out.update(second_pass_check(device, x))
    out.update(new_routes_check(device, x, models))
    return out


def new_routes_check(device, x, models) -> dict:
    """float32 accumulation (linear CKA) and the datapoint route, on the device against the CPU."""
    values = lambda r: r.to_pandas().similarity.to_numpy()  # noqa: E731
    sync(device)
    t0 = time.perf_counter()
    single = ccalens.compare_models(models, x, measures="cka", device=device, batch_size=500, accumulate="float32")
    sync(device)
    single_seconds = time.perf_counter() - t0
    double = ccalens.compare_models(models, x, measures="cka", device="cpu", batch_size=500)
    images = x[: min(2000, x.shape[0])]  # fewer images than the first conv layer has columns
    layers = ["1", "4"]
    sync(device)
    t0 = time.perf_counter()
    wide = ccalens.compare_models(models, images, layers=layers, measures=("cka", "svcca", "pwcca"), device=device,
                                  spatial="flatten", batch_size=250)
    sync(device)
    wide_seconds = time.perf_counter() - t0
    wide_cpu = ccalens.compare_models(models, images, layers=layers, measures=("cka", "svcca", "pwcca"),
                                      device="cpu", spatial="flatten", batch_size=250)
    out = {"float32_routes": sorted(set(single.routes.values())), "float32_seconds_on_device": single_seconds,
           "float32_max_difference_vs_float64_cpu": float(np.abs(values(single) - values(double)).max()),
           "datapoint_routes": sorted(set(wide.routes.values())), "datapoint_seconds_on_device": wide_seconds,
           "datapoint_widths": wide.widths,
           "datapoint_max_difference_vs_cpu": float(np.abs(values(wide) - values(wide_cpu)).max())}
    print(f"compare_models, accumulate='float32': {single_seconds:.2f} s on {device.type}, "
          f"{out['float32_max_difference_vs_float64_cpu']:.1e} from float64; datapoint route "
          f"({images.shape[0]} images, widths {sorted(set(wide.widths.values()))}): {wide_seconds:.2f} s, "
          f"{out['datapoint_max_difference_vs_cpu']:.1e} from the CPU", flush=True)
    return out


def ill_conditioned_mlp():
    """Nearly repeated units: a 1e-4 gap (the second pass's weak directions) and a 1e-8 gap
    (its Householder TSQR); the last layer is well conditioned (the Gram matrix alone)."""
    from torch import nn

    torch.manual_seed(5)
    first, second, last = nn.Linear(784, 48), nn.Linear(48, 40), nn.Linear(40, 10)
    with torch.no_grad():
        first.weight[40:] = first.weight[:8] + 1e-4 * torch.randn(8, 784)
        second.weight[34:] = second.weight[:6] + 1e-8 * torch.randn(6, 48)
    return nn.Sequential(nn.Flatten(), first, nn.Tanh(), second, last).double().eval()


def second_pass_check(device, x) -> dict:
    model, layers, measures = ill_conditioned_mlp(), ["1", "3", "4"], ("pwcca", "cka", "procrustes")
    sync(device)
    t0 = time.perf_counter()
    res = ccalens.compare_models(model, x, layers=layers, measures=measures, device=device, batch_size=500)
    sync(device)
    seconds = time.perf_counter() - t0
    cpu = ccalens.compare_models(model, x, layers=layers, measures=measures, device="cpu", batch_size=500)
    qr = ccalens.compare_models(model, x, layers=layers, measures=measures, device=device, batch_size=500,
                                route="tsqr")
    values = lambda r: r.to_pandas().similarity.to_numpy()  # noqa: E731
    out = {"second_pass_routes": res.routes, "second_pass_seconds_on_device": seconds,
           "second_pass_max_difference_vs_cpu": float(np.abs(values(res) - values(cpu)).max()),
           "second_pass_max_difference_vs_tsqr": float(np.abs(values(res) - values(qr)).max())}
    print(f"compare_models, second pass: routes {res.routes}, {seconds:.2f} s on {device.type}, differences "
          f"{out['second_pass_max_difference_vs_cpu']:.1e} (CPU), {out['second_pass_max_difference_vs_tsqr']:.1e} "
          f"(tsqr)", flush=True)
    return out


if __name__ == "__main__":
    sys.exit(main())
