"""The main job: groups of small CNNs compared layer by layer (``ccalens demo``).

Trains, on a small image dataset (scikit-learn's digits by default, no network needed), a
group of CNNs on the true labels with different seeds and a group on one fixed random
permutation of the labels; records every layer on the training images (conv layers
averaged over positions, as the paper does); and reports the per-layer PWCCA, SVCCA and
mean-CCA distances within each group and between the groups, as a table, a figure and
the numbers in ``runs/demo/``. Untrained networks of the same architecture give the
baseline that the trained distances should be read against.

Each PWCCA value also gets its uncertainty: a shuffled-datapoints null (the distance that
unrelated representations of these sizes would have, and a p-value) and a bootstrap
interval over the training images.
"""

from __future__ import annotations

import csv
import itertools
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..core import factorize, mean_cca, pwcca, svcca

LAYERS = ("conv1", "conv2", "conv3", "fc1", "logits")
MEASURES = ("pwcca", "svcca", "mean_cca")


@dataclass(frozen=True)
class DemoConfig:
    dataset: str = "digits"
    data_dir: str | None = None
    networks: int = 3
    epochs: int = 60
    width: int = 16
    batch_size: int = 64
    lr: float = 3e-3
    label_seed: int = 1234
    max_train: int | None = None
    permutations: int = 50
    bootstrap: int = 50


def build_cnn(width: int, in_channels: int, image: int, classes: int):
    """The reproductions' CNN (:func:`ccalens.experiments.cnn.build_cnn`), pooling once."""
    from .cnn import build_cnn as build

    return build(width, in_channels, image, classes, pool_first=False)


def load(cfg: DemoConfig):
    from .. import datasets

    if cfg.dataset == "digits":
        split = datasets.digits()
    elif cfg.dataset == "fashion-mnist":
        split = datasets.fashion_mnist(cfg.data_dir)
    elif cfg.dataset == "cifar10":
        if cfg.data_dir is None:
            raise ValueError("cifar10 needs --data-dir pointing at cifar-10-batches-py.")
        split = datasets.cifar10(cfg.data_dir)
    else:
        raise ValueError(f"dataset must be digits, fashion-mnist or cifar10; got {cfg.dataset!r}.")
    if cfg.max_train is not None:
        split = datasets.Split(split.name, split.x_train[: cfg.max_train], split.y_train[: cfg.max_train],
                               split.x_test, split.y_test, split.classes, split.meta)
    return split


def run(cfg: DemoConfig = DemoConfig(), log=print, progress: bool = False) -> dict:
    import torch

    from ..extract import extract
    from .cnn import accuracy, train

    started = time.perf_counter()
    split = load(cfg)
    x, y = (torch.from_numpy(split.x_train), torch.from_numpy(split.y_train))
    xt, yt = torch.from_numpy(split.x_test), torch.from_numpy(split.y_test)
    permuted = torch.from_numpy(np.random.default_rng(cfg.label_seed).permutation(split.y_train))
    n, c, side = x.shape[0], x.shape[1], x.shape[2]
    widths = {"conv1": cfg.width, "conv2": 2 * cfg.width, "conv3": 2 * cfg.width, "fc1": 4 * cfg.width, "logits": split.classes}
    ratio = n / max(widths.values())
    log(f"{split.name}: {n} training images; widest compared layer {max(widths.values())} neurons "
        f"({ratio:.0f} datapoints per neuron{'' if ratio >= 10 else ' -- below the 10x this demo aims for'})")

    groups = {"true": y, "random": permuted}
    acts: dict[tuple[str, int], dict[str, np.ndarray]] = {}
    networks = []
    for group, labels in groups.items():
        for k in range(cfg.networks):
            seed = 100 * (group == "random") + k
            torch.manual_seed(seed)
            model = build_cnn(cfg.width, c, side, split.classes)
            if group == "true":  # the baseline: the same architecture before training
                acts[("untrained", seed)] = extract(model, x, LAYERS)
            t0 = time.perf_counter()
            train_acc = train(model, x, labels, epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr,
                              seed=seed, progress=f"training {group} #{k}" if progress else None)[-1]["accuracy"]
            test_acc = accuracy(model, xt, yt)
            acts[(group, k)] = extract(model, x, LAYERS)
            networks.append({"group": group, "index": k, "seed": seed, "epochs": cfg.epochs,
                             "train_accuracy": train_acc, "test_accuracy": test_acc,
                             "seconds": round(time.perf_counter() - t0, 1)})
            log(f"  {group:>6} labels, seed {seed:>3}: train accuracy {train_acc:.3f}, test {test_acc:.3f} "
                f"({networks[-1]['seconds']} s)")
    untrained = [key for key in acts if key[0] == "untrained"]

    rows = []
    pairs = {
        "true-true": list(itertools.combinations([("true", k) for k in range(cfg.networks)], 2)),
        "random-random": list(itertools.combinations([("random", k) for k in range(cfg.networks)], 2)),
        "true-random": [(("true", i), ("random", j)) for i in range(cfg.networks) for j in range(cfg.networks)],
        "untrained": list(itertools.combinations(untrained, 2)),
    }
    for comparison, plist in pairs.items():
        for a, b in plist:
            for layer in LAYERS:
                fa, fb = factorize(acts[a][layer]), factorize(acts[b][layer])
                pw = pwcca(acts[a][layer], acts[b][layer], symmetric=True, permutations=cfg.permutations,
                                   bootstrap=cfg.bootstrap, seed=len(rows))
                row = {
                    "comparison": comparison, "a": f"{a[0]}{a[1]}", "b": f"{b[0]}{b[1]}", "layer": layer,
                    "pwcca": pw.distance,
                    "svcca": svcca(fa, fb).distance,
                    "mean_cca": mean_cca(fa, fb).distance,
                }
                if pw.null is not None:  # distances: the null's, and how far below it the pair is
                    row.update(pwcca_null=1.0 - pw.null.mean, pwcca_null_sd=pw.null.sd, pwcca_p=pw.null.p_value,
                               pwcca_corrected=pw.null.corrected)
                if pw.bootstrap is not None:  # a similarity interval [low, high] is a distance [1-high, 1-low]
                    row.update(pwcca_ci_low=1.0 - pw.bootstrap.high, pwcca_ci_high=1.0 - pw.bootstrap.low)
                rows.append(row)
    summary = {
        comp: {layer: {m: (float(np.mean(v)), float(np.std(v))) for m in MEASURES
                       for v in [[r[m] for r in rows if r["comparison"] == comp and r["layer"] == layer]]}
               for layer in LAYERS}
        for comp in pairs
    }
    uncertainty = {
        comp: {layer: _uncertainty_summary([r for r in rows if r["comparison"] == comp and r["layer"] == layer])
               for layer in LAYERS}
        for comp in pairs
    }
    return {"uncertainty": uncertainty,"config": asdict(cfg), "networks": networks, "rows": rows, "summary": summary,
            "seconds": round(time.perf_counter() - started, 1), "datapoints": n, "widths": widths}


def _uncertainty_summary(rows: list[dict]) -> dict:
    """Mean null distance, share of pairs beyond the null (p <= 0.05), mean interval width."""
    out = {}
    if rows and "pwcca_null" in rows[0]:
        out.update(null_distance=float(np.mean([r["pwcca_null"] for r in rows])),
                   significant=float(np.mean([r["pwcca_p"] <= 0.05 for r in rows])),
                   corrected=float(np.mean([r["pwcca_corrected"] for r in rows])))
    if rows and "pwcca_ci_low" in rows[0]:
        out["ci_width"] = float(np.mean([r["pwcca_ci_high"] - r["pwcca_ci_low"] for r in rows]))
    return out


def write(result: dict, out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out / "distances.csv", "json": out / "demo.json", "png": out / "demo.png"}
    with paths["csv"].open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(result["rows"][0]))
        writer.writeheader()
        writer.writerows(result["rows"])
    paths["json"].write_text(json.dumps({k: v for k, v in result.items() if k != "rows"}, indent=2))
    plot(result, paths["png"])
    return paths


def plot(result: dict, path: Path) -> None:
    from ..plot import pyplot

    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8), dpi=110, sharey=True)
    colours = {"true-true": "tab:blue", "random-random": "tab:red", "true-random": "tab:purple", "untrained": "0.5"}
    xs = np.arange(len(LAYERS))
    for ax, m in zip(axes, MEASURES):
        for comp, colour in colours.items():
            mean = np.array([result["summary"][comp][layer][m][0] for layer in LAYERS])
            sd = np.array([result["summary"][comp][layer][m][1] for layer in LAYERS])
            if np.all(np.isnan(mean)):
                continue
            ax.errorbar(xs, mean, yerr=sd, marker="o", capsize=3, color=colour, label=comp,
                        linestyle="--" if comp == "untrained" else "-")
        ax.set_xticks(xs, LAYERS)
        ax.set_title({"pwcca": "PWCCA (symmetric)", "svcca": "SVCCA", "mean_cca": "mean CCA"}[m] + " distance")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("distance (1 - similarity)")
    axes[0].legend(fontsize=8)
    cfg = result["config"]
    fig.suptitle(f"{cfg['dataset']}: {cfg['networks']} CNNs per group, true vs permuted labels, "
                 f"{result['datapoints']} training images", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def format_table(result: dict) -> str:
    lines = [f"{'layer':<8}{'comparison':<15}" + "".join(f"{m:>18}" for m in MEASURES)]
    for layer in LAYERS:
        for comp in result["summary"]:
            cells = "".join(
                f"{result['summary'][comp][layer][m][0]:>11.3f} ± {result['summary'][comp][layer][m][1]:.3f}"
                for m in MEASURES
            )
            lines.append(f"{layer:<8}{comp:<15}{cells}")
    first = result.get("uncertainty", {}).get("true-true", {}).get(LAYERS[0], {})
    if first:
        cfg = result["config"]
        lines.append("")
        from ..core.intervals import draws_text
        from ..core.resampling import default_method

        draws = draws_text(default_method("pwcca"), cfg["bootstrap"])
        lines.append(f"PWCCA against chance ({cfg['permutations']} permutations, {draws} per pair, "
                     f"{default_method('pwcca')} intervals):")
        lines.append(f"{'layer':<8}{'comparison':<15}{'null distance':>15}{'p <= 0.05':>11}{'corrected sim.':>16}{'95% CI width':>14}")
        for layer in LAYERS:
            for comp in result["uncertainty"]:
                u = result["uncertainty"][comp][layer]
                lines.append(f"{layer:<8}{comp:<15}{u.get('null_distance', float('nan')):>15.3f}"
                             f"{100 * u.get('significant', float('nan')):>10.0f}%{u.get('corrected', float('nan')):>16.3f}"
                             f"{u.get('ci_width', float('nan')):>14.3f}")
    return "\n".join(lines)
