"""The paper's Figure 5: networks trained with different learning rates form clusters.

Many networks of one architecture, trained on the true labels with several learning rates
(SGD with momentum 0.9) and seeds (a different seed for every network), are compared pairwise at a late layer (fc1, PWCCA
distance, symmetrised, on the training images). Average-linkage clustering of the distance
matrix, cut into as many clusters as there are learning rates, is compared with the
learning-rate groups by the adjusted Rand index (Morcos, Raghu & Bengio 2018, Section 3.3).

As in the paper's Figure 5b, each network's robustness to cumulative ablation is set
against its generalisation error, coloured by cluster: fc1's units are zeroed in one fixed
random order, 0% to 100% in steps of 10%, and the test accuracy recorded. Robustness is
the area under that curve divided by the unablated accuracy (1 means no loss until every
unit is gone); generalisation error is training accuracy minus test accuracy. The same
networks at initialisation are compared and clustered the same way, as the baseline.

Claim and rule (fixed before the first run):

* ``clusters_match_learning_rates``: adjusted Rand index between the clusters and the
  learning-rate groups >= 0.5.
"""

from __future__ import annotations

import numpy as np

from . import cnn
from .common import Context, claim, pyplot, write_outputs

FIGURE = "fig5"
LAYER = "fc1"
FRACTIONS = tuple(np.round(np.linspace(0.0, 1.0, 11), 2))


def networks(ctx: Context) -> dict[str, cnn.NetSpec]:
    s = ctx.scale
    # every network has its own seed (initialisation and minibatch order): shared seeds across
    # learning rates would let the clusters follow the initialisation instead
    return {f"lr{lr:g}-{k}": ctx.spec(lr=lr, seed=1000 + 100 * i + k, optimizer="sgd", epochs=s.fig5_epochs,
                                      target_loss=s.fig5_target_loss)
            for i, lr in enumerate(s.fig5_lrs) for k in range(s.fig5_seeds)}


def robustness(curve: np.ndarray) -> float:
    """Area under the ablation curve over [0, 1], divided by the unablated accuracy."""
    curve = np.asarray(curve, dtype=float)
    if curve[0] <= 0:
        return float("nan")
    from scipy.integrate import trapezoid

    return float(trapezoid(curve, dx=1.0 / (len(curve) - 1)) / curve[0])



def train(ctx: Context) -> dict:
    """Train every network of the figure; name -> record."""
    return {name: ctx.network(spec) for name, spec in networks(ctx).items()}

def run(ctx: Context) -> dict:
    import torch

    from ..pairwise import pairwise
    from ..plot import clustering

    s = ctx.scale
    specs = networks(ctx)
    ctx.log(f"{FIGURE}: {len(specs)} networks, learning rates {list(s.fig5_lrs)} x {s.fig5_seeds} seeds "
            f"({ctx.split.name})")
    records = {name: ctx.network(spec) for name, spec in specs.items()}
    ratios = [ctx.check_ratio({LAYER: cnn.layer_widths(s.width, ctx.split.classes)[LAYER]}, "train")]
    reps = {name: ctx.activations(FIGURE, spec, layers=(LAYER,))[LAYER] for name, spec in specs.items()}
    result = pairwise(reps, "pwcca", symmetric=True, results=ctx.root / FIGURE / "pairs.sqlite", progress=ctx.progress)
    names = list(result.rows)
    lr_of = {name: specs[name].lr for name in names}
    link, order, labels = clustering(result, n_clusters=len(s.fig5_lrs))
    from sklearn.metrics import adjusted_rand_score

    lr_groups = [s.fig5_lrs.index(lr_of[n]) for n in names]
    ari = float(adjusted_rand_score(lr_groups, labels))
    # the baseline: the same networks at initialisation, compared and clustered the same way
    untrained = pairwise({name: ctx.activations(FIGURE, spec, epoch=0, layers=(LAYER,))[LAYER]
                          for name, spec in specs.items()}, "pwcca", symmetric=True,
                         results=ctx.root / FIGURE / "pairs.sqlite", progress=ctx.progress)
    untrained_ari = float(adjusted_rand_score(lr_groups, clustering(untrained, n_clusters=len(s.fig5_lrs))[2]))
    off = ~np.eye(len(names), dtype=bool)
    same_lr = np.equal.outer(lr_groups, lr_groups) & off
    baseline = {"mean_distance_untrained": float(untrained.distance[off].mean()),
                "adjusted_rand_index_untrained": untrained_ari,
                "mean_distance_trained_within_lr": float(result.distance[same_lr].mean()),
                "mean_distance_trained_between_lr": float(result.distance[off & ~same_lr].mean())}

    xt, yt = torch.from_numpy(ctx.split.x_test), torch.from_numpy(ctx.split.y_test)
    nets = []
    for name, cluster in zip(names, labels):
        model = cnn.load_network(specs[name], ctx.split, ctx.root).to(cnn._device(s.device))
        curve = cnn.ablation_curve(model, xt, yt, LAYER, FRACTIONS, seed=0)
        rec = records[name]
        nets.append({"network": name, "lr": lr_of[name], "seed": specs[name].seed, "cluster": int(cluster),
                     "epochs": rec["epochs"], "train_accuracy": rec["train_accuracy"],
                     "test_accuracy": rec["test_accuracy"],
                     "generalisation_error": rec["train_accuracy"] - rec["test_accuracy"],
                     "ablation_robustness": robustness(curve), "ablation_curve": [float(v) for v in curve]})
    claims = [claim("clusters_match_learning_rates",
                    "Networks with different learning rates converge to distinct clusters of solutions.",
                    {"adjusted_rand_index": ari, "clusters": len(set(labels)), "networks": len(names), **baseline},
                    "adjusted Rand index(clusters, learning-rate groups) >= 0.5", ari >= 0.5)]
    rows = [{"a": a, "b": b, "layer": LAYER, "measure": "pwcca", "distance": float(result.distance[i, j])}
            for i, a in enumerate(names) for j, b in enumerate(names) if i < j]
    paths = write_outputs(ctx, FIGURE, rows, claims, {"networks": nets, "datapoints_per_neuron": ratios,
                                                      "ablation_fractions": list(FRACTIONS)})
    paths["png"] = ctx.root / FIGURE / f"{FIGURE}.png"
    plot(result, order, labels, nets, ari, paths["png"], title=f"{ctx.split.name}, {len(names)} networks")
    return {"claims": claims, "paths": paths, "networks": nets}


def plot(result, order, labels, nets, ari, path, title: str = "") -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6), dpi=110, gridspec_kw={"width_ratios": [1.2, 1, 1]})
    dist = 0.5 * (result.distance + result.distance.T)
    names = list(result.rows)
    im = axes[0].imshow(dist[np.ix_(order, order)], cmap="magma_r")
    ticks = [f"{names[i]} [{labels[i]}]" for i in order]
    axes[0].set_xticks(range(len(order)), ticks, rotation=90, fontsize=4)
    axes[0].set_yticks(range(len(order)), ticks, fontsize=4)
    fig.colorbar(im, ax=axes[0], label=f"PWCCA distance at {LAYER}")
    axes[0].set_title(f"(a) distance matrix, clustered; ARI with learning rates = {ari:.2f}", fontsize=9)
    cmap = plt.get_cmap("tab10")
    for net in nets:
        axes[1].scatter(net["generalisation_error"], net["ablation_robustness"], color=cmap((net["cluster"] - 1) % 10),
                        s=20, label=f"cluster {net['cluster']}")
    handles, labs = axes[1].get_legend_handles_labels()
    uniq = dict(zip(labs, handles))
    axes[1].legend(uniq.values(), uniq.keys(), fontsize=7)
    axes[1].set_xlabel("generalisation error (train - test accuracy)")
    axes[1].set_ylabel("ablation robustness (normalised area)")
    axes[1].set_title("(b) robustness to cumulative ablation, coloured by cluster", fontsize=9)
    axes[1].grid(alpha=0.3)
    lrs = sorted({n["lr"] for n in nets})
    lr_cmap = plt.get_cmap("viridis")
    for net in nets:
        i = lrs.index(net["lr"])
        axes[2].plot(FRACTIONS, net["ablation_curve"], color=lr_cmap(i / max(1, len(lrs) - 1)), alpha=0.6, lw=1,
                     label=f"lr {net['lr']:g}")
    handles, labs = axes[2].get_legend_handles_labels()
    uniq = dict(zip(labs, handles))
    axes[2].legend(uniq.values(), uniq.keys(), fontsize=7)
    axes[2].set_xlabel(f"fraction of {LAYER} units zeroed")
    axes[2].set_ylabel("test accuracy")
    axes[2].set_title("(c) ablation curves by learning rate", fontsize=9)
    axes[2].grid(alpha=0.3)
    fig.suptitle(f"Figure 5: learning rates and clusters of solutions ({title})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
