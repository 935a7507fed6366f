r"""``ccalens sanity``: tests of every measure that were designed elsewhere.

Three questions a user should ask of a similarity measure before trusting it, each
answered with a test from the literature, on real networks:

specificity (Kornblith et al. 2019, section 6.1)
    Networks of one architecture trained from different seeds: is layer i of one network
    most similar to layer i of the other? The score is the share of (network pair, layer)
    cases where it is. A measure that cannot tell layers apart across seeds cannot be used
    to say which layers correspond.

sensitivity (Ding, Denain & Steinhardt 2021, section 4)
    Delete a layer's principal components one at a time, lowest variance first. Each
    deletion moves the representation away from the original (the measure's distance)
    and may cost a linear probe some accuracy (the functional change). The score is the
    Spearman rank correlation, over all layers and deletions, between the distance and
    the drop in probe accuracy: a measure should call a perturbation large when it
    matters for what the layer can do.

invariances
    Which transforms of one side's neurons leave the value unchanged (orthogonal maps,
    isotropic scaling, invertible linear maps, permutations of the units, a translation),
    measured on the networks' own activations and compared with what each measure's
    documentation claims (:data:`ccalens.core.registry.MEASURES`).

By default the suite trains a few plain CNNs on scikit-learn's digits (no download;
``dataset="fashion-mnist"`` or ``"cifar10"`` for larger images) --
six 3x3 conv layers of equal width on the 8x8 images, each recorded after its ReLU and
averaged over its positions as the paper does (``grid=2`` averages over the four 4x4
quadrants instead: 4 x width neurons, and a run four times as long), so every measure,
the matched-neuron ones included, can compare every pair of layers. With a user's store, arrays named ``NETWORK/LAYER`` give the networks and layers,
and ``--labels`` the classes for the probe.

References
----------
.. [1] S. Kornblith, M. Norouzi, H. Lee, G. Hinton. Similarity of Neural Network
   Representations Revisited. ICML 2019.
.. [2] F. Ding, J.-S. Denain, J. Steinhardt. Grounding Representation Similarity with
   Statistical Testing. NeurIPS 2021.
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..core import registry

#: the measures the suite tests ("cca" is mean_cca under another name)
MEASURES = registry.names(aliases=False)  # "cca" is mean CCA again


@dataclass(frozen=True)
class SanityConfig:
    dataset: str = "digits"
    data_dir: str | None = None
    networks: int = 4
    depth: int = 6
    width: int = 16
    epochs: int = 20
    batch_size: int = 64
    lr: float = 3e-3
    max_train: int | None = None
    grid: int = 1
    probe_fraction: float = 0.3
    seed: int = 0


# --------------------------------------------------------------------------- networks


def build_plain_cnn(depth: int, width: int, classes: int = 10, in_channels: int = 1):
    """``depth`` 3x3 conv layers of ``width`` channels (named conv1.., their ReLUs layer1..),
    global average pooling and a linear classifier."""
    from collections import OrderedDict

    from torch import nn

    parts: list = []
    channels = in_channels
    for i in range(1, depth + 1):
        parts += [(f"conv{i}", nn.Conv2d(channels, width, 3, padding=1)), (f"layer{i}", nn.ReLU())]
        channels = width
    parts += [("pool", nn.AdaptiveAvgPool2d(1)), ("flat", nn.Flatten()), ("head", nn.Linear(width, classes))]
    return nn.Sequential(OrderedDict(parts))


def _pool(flat: np.ndarray, channels: int, grid: int) -> np.ndarray:
    """(N, C*H*W) activations averaged over a grid x grid partition of the positions:
    C * grid^2 neurons (grid 1 is the paper's average over all positions)."""
    n = flat.shape[0]
    side = int(round(np.sqrt(flat.shape[1] // channels)))
    maps = flat.reshape(n, channels, side, side)
    if side % grid:
        raise ValueError(f"grid={grid} must divide the {side}x{side} feature maps.")
    step = side // grid
    return maps.reshape(n, channels, grid, step, grid, step).mean(axis=(3, 5)).reshape(n, -1)


def trained_networks(cfg: SanityConfig, log=print, progress: bool = False):
    """Train ``cfg.networks`` plain CNNs on ``cfg.dataset`` from different seeds; returns
    (reps: network -> layer -> (n, width * grid^2) array, labels, details)."""
    import torch

    from ..extract import extract
    from .cnn import accuracy, train
    from .demo import load

    split = load(cfg)  # digits, fashion-mnist or cifar10, cut to max_train
    x, y = torch.from_numpy(split.x_train), torch.from_numpy(split.y_train)
    layers = [f"layer{i}" for i in range(1, cfg.depth + 1)]
    reps, details = {}, []
    for k in range(cfg.networks):
        seed = cfg.seed + k
        torch.manual_seed(seed)
        model = build_plain_cnn(cfg.depth, cfg.width, split.classes, in_channels=x.shape[1])
        t0 = time.perf_counter()
        acc = train(model, x, y, epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, seed=seed,
                    progress=f"training network {k}" if progress else None)[-1]["accuracy"]
        test = accuracy(model, torch.from_numpy(split.x_test), torch.from_numpy(split.y_test))
        acts = extract(model, x, layers, spatial="flatten")
        reps[f"net{k}"] = {layer: _pool(np.asarray(acts[layer], dtype=np.float64), cfg.width, cfg.grid)
                           for layer in layers}
        details.append({"network": f"net{k}", "seed": seed, "train_accuracy": acc, "test_accuracy": test,
                        "chance": 1.0 / split.classes, "test_datapoints": int(len(split.y_test)),
                        "seconds": round(time.perf_counter() - t0, 1)})
        log(f"  network {k} (seed {seed}): train accuracy {acc:.3f}, test {test:.3f}")
    return reps, y.numpy(), details


def store_networks(store: str, labels: str | None):
    """Networks and layers from a store's ``NETWORK/LAYER`` arrays, and the labels if given."""
    from ..store import ActivationStore, load_array

    st = ActivationStore(store, mode="r")
    names = [e["name"] for e in st.info() if e["complete"]]
    reps: dict[str, dict[str, np.ndarray]] = {}
    for name in names:
        if "/" not in name:
            continue
        net, layer = name.split("/", 1)
        reps.setdefault(net, {})[layer] = np.asarray(st.read(name), dtype=np.float64)
    if len(reps) < 2:
        raise ValueError(
            f"{store} needs arrays named NETWORK/LAYER for at least 2 networks (found {len(reps)} among "
            f"{names[:6]}{'...' if len(names) > 6 else ''}); extract the same layers of several networks, "
            f"for example net0/conv1, net1/conv1."
        )
    first = list(next(iter(reps.values())))
    missing = {net: sorted(set(first) - set(layers)) for net, layers in reps.items() if set(first) - set(layers)}
    if missing:
        raise ValueError(f"every network needs the same layers as the first ({first}); missing: {missing}.")
    reps = {net: {layer: layers[layer] for layer in first} for net, layers in reps.items()}
    y = None
    if labels is not None:
        y = np.asarray(load_array(labels)).reshape(-1)
        n = next(iter(reps.values()))[first[0]].shape[0]
        if y.shape[0] != n:
            raise ValueError(f"--labels has {y.shape[0]} entries for {n} datapoints; give one class label per datapoint.")
    return reps, y


# --------------------------------------------------------------------------- the three tests


def _similarity_matrix(measure: str, a: dict, b: dict) -> np.ndarray:
    """Layers of network a (rows) against layers of b (columns); NaN where not comparable."""
    from ..engine import pairwise

    spec = registry.MEASURES[measure]
    rows, cols = list(a), list(b)
    out = np.full((len(rows), len(cols)), np.nan)
    if spec.same_width:  # matched neurons: only layers of the same width
        for i, r in enumerate(rows):
            for j, c in enumerate(cols):
                if a[r].shape[1] == b[c].shape[1]:
                    out[i, j] = pairwise({"a": a[r]}, measure, others={"b": b[c]}).similarity[0, 0]
        return out
    return pairwise({f"a:{k}": v for k, v in a.items()}, measure, others={f"b:{k}": v for k, v in b.items()}).similarity


def specificity(reps: dict, measures=MEASURES, progress=None) -> dict:
    """Share of (ordered network pair, layer) cases where the most similar layer of the
    other network is the same layer."""
    out = {}
    for measure in measures:
        correct = total = 0
        for a, b in itertools.permutations(reps, 2):
            sim = _similarity_matrix(measure, reps[a], reps[b])
            for i in range(sim.shape[0]):
                row = sim[i]
                if np.count_nonzero(np.isfinite(row)) < 2:  # nothing to choose between
                    continue
                total += 1
                correct += int(np.nanargmax(row) == i)
            if progress:
                progress()
        out[measure] = {"accuracy": correct / total if total else float("nan"), "cases": total}
    return out


def _probe_accuracy(x: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    probe.fit(x[train], y[train])
    return float(probe.score(x[test], y[test]))


def _deleted(x: np.ndarray, k: int, vt: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """x without its k lowest-variance principal components."""
    keep = vt[: vt.shape[0] - k]
    return (x - mean) @ keep.T @ keep + mean


def sensitivity(network: dict, labels: np.ndarray, measures=MEASURES, probe_fraction: float = 0.3,
                seed: int = 0, progress=None) -> tuple[dict, list[dict]]:
    """Spearman correlation between each measure's distance and the probe's accuracy drop,
    over every layer and number of deleted principal components."""
    from scipy.stats import spearmanr

    from ..core.resampling import recompute

    n = len(labels)
    order = np.random.default_rng(seed).permutation(n)
    test, train = order[: int(probe_fraction * n)], order[int(probe_fraction * n):]
    points = []
    for layer, x in network.items():
        mean = x.mean(axis=0)
        _, sv, vt = np.linalg.svd(x - mean, full_matrices=False)
        rank = int(np.count_nonzero(sv > sv[0] * 1e-10))
        vt = vt[:rank]
        base = _probe_accuracy(x, labels, train, test)
        for k in range(1, rank):
            xk = _deleted(x, k, vt, mean)
            point = {"layer": layer, "deleted": k, "probe_drop": base - _probe_accuracy(xk, labels, train, test)}
            for measure in measures:
                value = recompute(measure, x, xk, {})
                point[measure] = float(registry.distance(measure, value))
            points.append(point)
            if progress:
                progress()
    scores = {}
    drops = np.array([p["probe_drop"] for p in points])
    for measure in measures:
        # differences below 1e-9 are rounding, not a ranking (CCA's distances here are 0)
        dist = np.round(np.array([p[measure] for p in points]), 9)
        note = ""
        if len(points) < 3:
            note = "too few deletions"
        elif np.ptp(dist) == 0:
            note = f"distance constant ({dist[0]:.3g}) under every deletion"
        elif np.ptp(drops) == 0:
            note = "the probe's accuracy never changed"
        rho = float("nan") if note else float(spearmanr(dist, drops).statistic)
        scores[measure] = {"spearman": rho, "points": len(points), "note": note}
    return scores, points


def _transform(kind: str, z: np.ndarray, rng) -> np.ndarray:
    width = z.shape[1]
    if kind == "orthogonal":
        return z @ np.linalg.qr(rng.standard_normal((width, width)))[0]
    if kind == "isotropic_scaling":
        return 3.7 * z
    if kind == "invertible_linear":
        return z @ (rng.standard_normal((width, width)) + 0.5 * np.eye(width))
    if kind == "permutation":
        return z[:, rng.permutation(width)]
    if kind == "translation":  # a different shift per neuron (a common one would leave correlation RDMs alone)
        return z + 5.0 + rng.standard_normal(width)
    raise ValueError(kind)


def invariances(x: np.ndarray, y: np.ndarray, measures=MEASURES, seed: int = 0) -> dict:
    """For each measure and transform: the largest change in value when the transform is
    applied to either side, whether that counts as invariant, and whether the docs agree."""
    from ..core.resampling import recompute

    rng = np.random.default_rng(seed)
    out = {}
    for measure in measures:
        spec = registry.MEASURES[measure]
        if spec.same_width and x.shape[1] != y.shape[1]:
            y_m = y[:, : x.shape[1]] if y.shape[1] >= x.shape[1] else None
        else:
            y_m = y
        if y_m is None:
            out[measure] = {}
            continue
        base = recompute(measure, x, y_m, {})
        row = {}
        for kind in registry.TRANSFORMS:
            change = max(abs(recompute(measure, _transform(kind, x, rng), y_m, {}) - base),
                         abs(recompute(measure, x, _transform(kind, y_m, rng), {}) - base))
            invariant = change <= 1e-8 * max(1.0, abs(base))
            row[kind] = {"change": float(change), "invariant": bool(invariant),
                         "documented": kind in spec.invariant_to,
                         "agrees": bool(invariant == (kind in spec.invariant_to))}
        out[measure] = row
    return out


# --------------------------------------------------------------------------- the suite


def not_learned(details: list) -> str | None:
    """Why the trained networks cannot support specificity and sensitivity, or None: each
    network's test accuracy must beat chance by a one-sided binomial test at 0.01 (networks
    at chance have layers that only their initialisation tells apart)."""
    from scipy.stats import binomtest

    weak = []
    for d in details:
        n = d["test_datapoints"]
        if binomtest(int(round(d["test_accuracy"] * n)), n, d["chance"], alternative="greater").pvalue >= 0.01:
            weak.append(f"{d['network']} {d['test_accuracy']:.3f}")
    if not weak:
        return None
    return (f"the networks did not learn: test accuracy {', '.join(weak)} against chance {details[0]['chance']:.3f} "
            f"(not above it by a binomial test at 0.01), so specificity and sensitivity would compare layers that "
            f"only their initialisation tells apart; they are not reported. Train longer (--epochs) or on more data "
            f"(--max-train).")


def run(cfg: SanityConfig = SanityConfig(), *, store: str | None = None, labels: str | None = None,
        measures=MEASURES, log=print, progress: bool = False) -> dict:
    started = time.perf_counter()
    for m in measures:
        registry.check_measure(m)
    if store is None:
        log(f"training {cfg.networks} plain CNNs ({cfg.depth} conv layers of {cfg.width} channels) on {cfg.dataset}")
        reps, y, details = trained_networks(cfg, log=log, progress=progress)
        source = cfg.dataset
    else:
        reps, y = store_networks(store, labels)
        details, source = [], store
    nets = list(reps)
    layers = list(reps[nets[0]])
    n = reps[nets[0]][layers[0]].shape[0]
    log(f"{len(nets)} networks x {len(layers)} layers, {n} datapoints; testing {len(measures)} measures")

    bar = None
    if progress:
        from tqdm.auto import tqdm

        widths = [min(reps[nets[0]][layer].shape) - 1 for layer in layers]
        steps = len(measures) * len(nets) * (len(nets) - 1) + (sum(widths) if y is not None else 0)
        bar = tqdm(total=steps, desc="sanity", unit="step")
    tick = (lambda: bar.update(1)) if bar else None
    premise = not_learned(details) if details else None
    if premise is not None:
        log(f"premise not met: {premise}")
        spec_scores = {m: {"accuracy": float("nan"), "cases": 0} for m in measures}
        sens_scores = {m: {"spearman": float("nan"), "points": 0,
                           "note": "not a result: the networks did not learn"} for m in measures}
        points = []
    else:
        spec_scores = specificity(reps, measures, progress=tick)
        if y is not None:
            sens_scores, points = sensitivity(reps[nets[0]], y, measures, cfg.probe_fraction, cfg.seed,
                                              progress=tick)
        else:
            log("no labels (--labels): the sensitivity test is skipped")
            sens_scores = {m: {"spearman": float("nan"), "points": 0, "note": "no labels"} for m in measures}
            points = []
    if bar:
        bar.close()
    mid = layers[len(layers) // 2]
    inv = invariances(reps[nets[0]][mid], reps[nets[1]][mid], measures, cfg.seed)
    table = []
    for m in measures:
        row = {"measure": m, "title": registry.MEASURES[m].title,
               "specificity": spec_scores[m]["accuracy"], "specificity_cases": spec_scores[m]["cases"],
               "sensitivity": sens_scores[m]["spearman"], "sensitivity_points": sens_scores[m]["points"],
               "sensitivity_note": sens_scores[m]["note"]}
        for kind in registry.TRANSFORMS:
            cell = inv[m].get(kind)
            row[f"invariant_{kind}"] = None if cell is None else cell["invariant"]
        row["docs_agree"] = all(c["agrees"] for c in inv[m].values()) if inv[m] else None
        table.append(row)
    return {"config": asdict(cfg), "source": source, "networks": details, "layers": layers, "datapoints": n,
            "premise_not_met": premise, "table": table, "invariances": inv, "sensitivity_points": points,
            "seconds": round(time.perf_counter() - started, 1)}


def _json_safe(obj):
    """NaN (a test that does not apply, e.g. CCA sensitivity) as null: JSON has no NaN."""
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


def write(result: dict, out: Path) -> dict[str, Path]:
    import pandas as pd

    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out / "sanity.csv", "png": out / "sanity.png", "json": out / "sanity.json",
             "points": out / "sensitivity_points.csv"}
    pd.DataFrame(result["table"]).to_csv(paths["csv"], index=False)
    pd.DataFrame(result["sensitivity_points"]).to_csv(paths["points"], index=False)
    paths["json"].write_text(json.dumps(_json_safe({k: v for k, v in result.items() if k != "sensitivity_points"}),
                                        indent=2, allow_nan=False))
    plot(result, paths["png"])
    return paths


def plot(result: dict, path: Path) -> None:
    from ..plot import pyplot

    plt = pyplot()
    table = result["table"]
    names = [r["measure"] for r in table]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), dpi=110, gridspec_kw={"width_ratios": [1, 1, 1.3]})
    ys = np.arange(len(names))
    axes[0].barh(ys, [r["specificity"] for r in table], color="tab:blue")
    axes[0].set_xlim(0, 1)
    layers = len(result["layers"])
    axes[0].axvline(1 / layers, color="0.5", lw=0.8, ls="--")
    axes[0].text(1 / layers, len(names) - 0.4, " chance", fontsize=7, color="0.4")
    axes[0].set_title("specificity: same layer found across seeds", fontsize=9)
    axes[0].set_xlabel("layer identification accuracy")
    axes[1].barh(ys, [r["sensitivity"] for r in table], color="tab:green")
    for y_pos, r in zip(ys, table):
        if r["sensitivity_note"]:
            short = "n/a: constant distance" if r["sensitivity_note"].startswith("distance constant") else "n/a"
            axes[1].text(0.03, y_pos, short, va="center", fontsize=7, color="0.3")
    axes[1].set_xlim(-1, 1)
    axes[1].axvline(0, color="0.5", lw=0.8)
    axes[1].set_title("sensitivity: distance vs probe drop (PC deletion)", fontsize=9)
    axes[1].set_xlabel("Spearman rank correlation")
    for ax in axes[:2]:
        ax.set_yticks(ys, names, fontsize=8)
        ax.invert_yaxis()
        ax.grid(axis="x", alpha=0.3)
    kinds = list(registry.TRANSFORMS)
    grid = np.full((len(names), len(kinds)), np.nan)
    for i, r in enumerate(table):
        for j, k in enumerate(kinds):
            v = r[f"invariant_{k}"]
            grid[i, j] = np.nan if v is None else float(v)
    axes[2].imshow(grid, cmap="RdYlGn", vmin=0, vmax=1, aspect="auto")
    for i, m in enumerate(names):
        for j, k in enumerate(kinds):
            cell = result["invariances"].get(m, {}).get(k)
            if cell is None:
                continue
            mark = ("yes" if cell["invariant"] else "no") + ("" if cell["agrees"] else " (docs differ!)")
            axes[2].text(j, i, mark, ha="center", va="center", fontsize=7)
    axes[2].set_xticks(range(len(kinds)), [k.replace("_", "\n") for k in kinds], fontsize=7)
    axes[2].set_yticks(ys, names, fontsize=8)
    axes[2].set_title("invariant to (measured on the networks' activations)", fontsize=9)
    fig.suptitle(f"ccalens sanity on {result['source']}: {len(result['table'])} measures, "
                 f"{result['datapoints']} datapoints", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def format_rows(result: dict) -> list[list[str]]:
    """The measures x tests table as strings (for the CLI's rich table)."""
    rows = []
    for r in result["table"]:
        cells = [r["measure"], f"{r['specificity']:.2f}" if np.isfinite(r["specificity"]) else "n/a",
                 f"{r['sensitivity']:+.2f}" if np.isfinite(r["sensitivity"]) else "n/a*"]
        for kind in registry.TRANSFORMS:
            v = r[f"invariant_{kind}"]
            cells.append("n/a" if v is None else ("yes" if v else "no"))
        cells.append("n/a" if r["docs_agree"] is None else ("yes" if r["docs_agree"] else "NO"))
        rows.append(cells)
    return rows
