"""The paper's Figure 4: wider networks converge to more similar solutions.

Groups of networks of increasing width (conv1 filters; the other layers scale with it),
each trained on the true labels from different seeds, are compared pairwise within each
group, layer by layer (PWCCA distance, symmetrised). At the last hidden layer (fc1) every
network is also cut to one fixed random subset of its units, as many as the narrowest
group has, so that the comparisons that decide the claims are of equal size. Across all
pairs, the distance is set against the pair's mean test accuracy; the paper reports a
correlation of -0.96 (Morcos, Raghu & Bengio 2018, Section 3.2).

The same networks at initialisation are compared the same way, as the untrained baseline
(dashed in the figure).

Claims and rules (fixed before the first run):

* ``wider_more_similar``: the group-mean fc1 distance (equal-size subsets) falls with
  width: Spearman correlation between width and distance <= -0.8;
* ``distance_predicts_accuracy``: across pairs, the Pearson correlation between the fc1
  distance (equal-size subsets) and the pair's mean test accuracy is <= -0.5.
"""

from __future__ import annotations

import numpy as np

from . import cnn
from .common import Context, claim, mean_sd, pair_rows, pyplot, write_outputs

FIGURE = "fig4"
SUBSET_LAYER = "fc1"


def networks(ctx: Context) -> dict[int, dict[str, cnn.NetSpec]]:
    return {w: {f"w{w}-{k}": ctx.spec(width=w, seed=k) for k in range(ctx.scale.group)} for w in ctx.scale.widths}


def unit_subset(units: int, size: int, seed: int = 0) -> np.ndarray:
    """One fixed random subset of ``size`` of ``units`` unit indices (sorted)."""
    if not 0 < size <= units:
        raise ValueError(f"subset size must be in [1, {units}]; got {size}.")
    return np.sort(np.random.default_rng(seed).choice(units, size, replace=False))



def train(ctx: Context) -> dict:
    """Train every network of the figure; name -> record."""
    return {name: ctx.network(spec) for g in networks(ctx).values() for name, spec in g.items()}

def run(ctx: Context) -> dict:
    from ..store import load_array

    s = ctx.scale
    ctx.log(f"{FIGURE}: {s.group} networks at each width {list(s.widths)} ({ctx.split.name})")
    groups = networks(ctx)
    records = {name: ctx.network(spec) for g in groups.values() for name, spec in g.items()}
    ratios = [ctx.check_ratio(cnn.layer_widths(max(s.widths), ctx.split.classes), "train")]
    subset_size = cnn.layer_widths(min(s.widths), ctx.split.classes)[SUBSET_LAYER]
    rows = []
    for width, specs in groups.items():
        keep = unit_subset(cnn.layer_widths(width, ctx.split.classes)[SUBSET_LAYER], subset_size)
        layers = list(cnn.LAYERS) + [f"{SUBSET_LAYER}-subset"]
        for state, epoch in (("trained", None), ("untrained", 0)):  # untrained: the same networks at init
            reps = {name: ctx.activations(FIGURE, spec, epoch=epoch) for name, spec in specs.items()}
            for name in reps:
                reps[name] = {**reps[name], f"{SUBSET_LAYER}-subset": load_array(reps[name][SUBSET_LAYER])[:, keep]}
            group_rows = pair_rows(ctx, FIGURE, reps, layers, ("pwcca",), {"width": width, "state": state})
            for row in group_rows:
                accs = [records[row["a"]]["test_accuracy"], records[row["b"]]["test_accuracy"]]
                row["mean_test_accuracy"] = float(np.mean(accs))
            rows += group_rows
    baseline = {(w, layer): mean_sd(r["distance"] for r in rows
                                    if r["width"] == w and r["layer"] == layer and r["state"] == "untrained")
                for w in s.widths for layer in list(cnn.LAYERS) + [f"{SUBSET_LAYER}-subset"]}
    trained_rows = [r for r in rows if r["state"] == "trained"]
    summary = {(w, layer): mean_sd(r["distance"] for r in trained_rows if r["width"] == w and r["layer"] == layer)
               for w in s.widths for layer in list(cnn.LAYERS) + [f"{SUBSET_LAYER}-subset"]}
    claims = evaluate_claims(trained_rows, summary, list(s.widths))
    nets = [{"network": name, "width": spec.width, "seed": spec.seed,
             **{k: records[name][k] for k in ("epochs", "train_accuracy", "test_accuracy")}}
            for g in groups.values() for name, spec in g.items()]
    paths = write_outputs(ctx, FIGURE, rows, claims, {
        "networks": nets, "datapoints_per_neuron": ratios, "subset": {"layer": SUBSET_LAYER, "units": subset_size},
        "summary": [{"width": w, "layer": layer, "mean": v[0], "sd": v[1]} for (w, layer), v in summary.items()],
        "untrained": [{"width": w, "layer": layer, "mean": v[0], "sd": v[1]} for (w, layer), v in baseline.items()]})
    paths["png"] = ctx.root / FIGURE / f"{FIGURE}.png"
    plot(trained_rows, summary, list(s.widths), paths["png"], claims,
         title=f"{ctx.split.name}, {s.group} networks per width", baseline=baseline)
    return {"claims": claims, "paths": paths, "summary": summary, "networks": nets}


def evaluate_claims(rows: list[dict], summary: dict, widths: list[int]) -> list[dict]:
    from scipy import stats

    layer = f"{SUBSET_LAYER}-subset"
    means = [summary[(w, layer)][0] for w in widths]
    spearman = float(stats.spearmanr(widths, means).statistic) if len(widths) > 2 else float("nan")
    pairs = [r for r in rows if r["layer"] == layer]
    dist = np.array([r["distance"] for r in pairs])
    acc = np.array([r["mean_test_accuracy"] for r in pairs])
    pearson = float(np.corrcoef(dist, acc)[0, 1]) if len(pairs) > 2 and dist.std() > 0 and acc.std() > 0 else float("nan")
    return [
        claim("wider_more_similar", "Groups of wider networks converge to more similar solutions.",
              {"widths": widths, "mean_distance_fc1_subset": means, "spearman": spearman},
              "Spearman(width, group-mean fc1 distance on equal-size subsets) <= -0.8", spearman <= -0.8),
        claim("distance_predicts_accuracy",
              "The pairwise distance predicts test accuracy (the paper: correlation -0.96).",
              {"pearson": pearson, "pairs": len(pairs)},
              "Pearson(pair fc1 distance on equal-size subsets, pair mean test accuracy) <= -0.5", pearson <= -0.5),
    ]


def plot(rows, summary, widths, path, claims, title: str = "", baseline: dict | None = None) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.9), dpi=110)
    layers = list(cnn.LAYERS) + [f"{SUBSET_LAYER}-subset"]
    cmap = plt.get_cmap("viridis")
    xs = np.arange(len(layers))
    for i, w in enumerate(widths):
        vals = np.array([summary[(w, layer)] for layer in layers])
        axes[0].errorbar(xs, vals[:, 0], yerr=vals[:, 1], marker="o", capsize=3,
                         color=cmap(i / max(1, len(widths) - 1)), label=f"width {w}")
        if baseline:
            axes[0].plot(xs, [baseline[(w, layer)][0] for layer in layers], ls="--", lw=1, alpha=0.7,
                         color=cmap(i / max(1, len(widths) - 1)), label=f"width {w}, untrained" if i == 0 else None)
    axes[0].set_xticks(xs, layers, rotation=20)
    axes[0].set_ylabel("PWCCA distance within group (mean ± sd)")
    axes[0].set_title("(a) wider groups converge more", fontsize=9)
    axes[0].legend(fontsize=7)
    axes[0].grid(alpha=0.3)
    layer = f"{SUBSET_LAYER}-subset"
    for i, w in enumerate(widths):
        pts = [(r["distance"], r["mean_test_accuracy"]) for r in rows if r["layer"] == layer and r["width"] == w]
        d, a = zip(*pts)
        axes[1].scatter(d, a, color=cmap(i / max(1, len(widths) - 1)), label=f"width {w}", s=18)
    r = next(c for c in claims if c["name"] == "distance_predicts_accuracy")["statistic"]["pearson"]
    axes[1].set_xlabel(f"PWCCA distance at {SUBSET_LAYER} (equal-size unit subsets)")
    axes[1].set_ylabel("mean test accuracy of the pair")
    axes[1].set_title(f"(b) distance vs test accuracy: r = {r:.2f} (paper: -0.96)", fontsize=9)
    axes[1].grid(alpha=0.3)
    fig.suptitle(f"Figure 4: width ({title})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
