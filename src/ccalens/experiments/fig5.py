"""The paper's Figure 5: networks trained with different learning rates form clusters.

Many networks of one architecture, trained on the true labels with several learning rates
(SGD with momentum 0.9) and seeds (a different seed for every network), are compared
pairwise at a late layer (fc1, PWCCA distance, symmetrised, on the training images)
(Morcos, Raghu & Bengio 2018, Section 3.3). The paper's premise is that "these networks all
achieved similar train loss": every network trains until its training loss reaches the
scale's target (``fig5_target_loss``), at most ``fig5_epochs`` epochs, and whether it did
is recorded.

Whether the distances follow the learning rates is tested three ways: a permutation test
of the mean between-rate minus mean within-rate distance (rates shuffled over networks),
complete-linkage clusters (as many as rates) against the rates by the adjusted Rand index
(average and Ward linkage are reported too), and 1-nearest-neighbour recovery. Each
network's dead fc1 units and the rank of its fc1 representation are reported: CCA counts
only min(rank) correlations, so low-rank layers look close to everything. SVCCA with a
fixed number of directions and linear CKA are reported beside PWCCA.

As in the paper's Figure 5b, each network's robustness to cumulative ablation is set
against its generalisation error: fc1's units are zeroed in one fixed random order, 0% to
100% in steps of 10%, and the test accuracy recorded. Robustness is the area under that
curve divided by the unablated accuracy; generalisation error is training accuracy minus
test accuracy. The networks are clustered in that (standardised) plane by Ward linkage,
and the clusters compared with the CCA clusters. The same networks at initialisation are
compared and clustered the same way, as the baseline. Claims: ``fig5.*`` in :mod:`.rules`.
"""

from __future__ import annotations

import numpy as np

from . import claims as claim_records
from . import cnn
from .claims import PairTable
from .common import Context, write_outputs
from ..plot import pyplot

FIGURE = "fig5"
LAYER = "fc1"
FRACTIONS = tuple(np.round(np.linspace(0.0, 1.0, 11), 2))
PERMUTATIONS = 10_000
SVCCA_K = 16
DRAWS = 1000


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

def cluster_labels(dist: np.ndarray, k: int, method: str) -> np.ndarray:
    """Hierarchical clusters (1..k) of a symmetric distance matrix."""
    from scipy.cluster import hierarchy
    from scipy.spatial.distance import squareform

    d = np.clip(0.5 * (dist + dist.T), 0.0, None)
    np.fill_diagonal(d, 0.0)
    return hierarchy.fcluster(hierarchy.linkage(squareform(d, checks=False), method=method), t=k,
                              criterion="maxclust")


def within_between_gap(dist: np.ndarray, labels) -> float:
    """Mean distance between networks of different labels minus mean within the same label."""
    labels = np.asarray(labels)
    off = ~np.eye(len(labels), dtype=bool)
    same = np.equal.outer(labels, labels)
    return float(dist[off & ~same].mean() - dist[off & same].mean())


def permutation_gap(dist: np.ndarray, labels, permutations: int = PERMUTATIONS, seed: int = 0) -> tuple[float, float]:
    """(gap, one-sided permutation p-value): labels shuffled over networks; p = (1 + #{gap* >= gap}) / (1 + N)."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    gap = within_between_gap(dist, labels)
    hits = sum(within_between_gap(dist, rng.permutation(labels)) >= gap - 1e-12 for _ in range(permutations))
    return gap, (1 + hits) / (1 + permutations)


def nn_recovery(dist: np.ndarray, labels) -> float:
    """The share of networks whose nearest other network has their label (ties: the first)."""
    labels = np.asarray(labels)
    d = dist.astype(float).copy()
    np.fill_diagonal(d, np.inf)
    return float(np.mean(labels[np.argmin(d, axis=1)] == labels))


def apart_ratio(dist: np.ndarray, clusters) -> float:
    """For the cluster farthest from the rest: its mean distance to the others over theirs among themselves."""
    clusters = np.asarray(clusters)
    ids = sorted(set(clusters.tolist()))
    if len(ids) < 3:
        return float("nan")

    def between(a, b):
        return float(dist[np.ix_(clusters == a, clusters == b)].mean())

    far = max(ids, key=lambda c: np.mean([between(c, o) for o in ids if o != c]))
    rest = [c for c in ids if c != far]
    to_rest = np.mean([between(far, o) for o in rest])
    among = np.mean([between(a, b) for i, a in enumerate(rest) for b in rest[i + 1:]])
    return float(to_rest / among) if among > 0 else float("inf")


def ablation_clusters(nets: list[dict], k: int) -> np.ndarray:
    """Ward clusters of the networks in the standardised (generalisation error, robustness) plane."""
    from scipy.cluster import hierarchy

    pts = np.array([[n["generalisation_error"], n["ablation_robustness"]] for n in nets], dtype=float)
    sd = pts.std(axis=0)
    pts = (pts - pts.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    return hierarchy.fcluster(hierarchy.linkage(pts, method="ward"), t=k, criterion="maxclust")


def structure(dist: np.ndarray, lr_groups, k: int, seed: int = 0) -> dict:
    """How a distance matrix follows the learning rates: gap, p-value, ARIs, 1-NN recovery."""
    from sklearn.metrics import adjusted_rand_score

    gap, p = permutation_gap(dist, lr_groups, seed=seed)
    out = {"gap": gap, "p_permutation": p, "nn_recovery": nn_recovery(dist, lr_groups)}
    for method in ("complete", "average", "ward"):
        out[f"ari_{method}"] = float(adjusted_rand_score(lr_groups, cluster_labels(dist, k, method)))
    return out


def run(ctx: Context) -> dict:
    import torch

    from ..core import factorize, svcca
    from sklearn.metrics import adjusted_rand_score

    from ..engine import pairwise
    from ..store import load_array

    s = ctx.scale
    specs = networks(ctx)
    ctx.log(f"{FIGURE}: {len(specs)} networks, learning rates {list(s.fig5_lrs)} x {s.fig5_seeds} seeds "
            f"({ctx.split.name}), each until its training loss reaches {s.fig5_target_loss:g}")
    records = train(ctx)
    ratios = [ctx.check_ratio({LAYER: cnn.layer_widths(s.width, ctx.split.classes)[LAYER]}, "train")]
    reps = {name: ctx.activations(FIGURE, spec, layers=(LAYER,))[LAYER] for name, spec in specs.items()}
    results = ctx.root / FIGURE / "pairs.sqlite"
    result = pairwise(reps, "pwcca", symmetric=True, results=results, progress=ctx.progress)
    names = list(result.rows)
    k = len(s.fig5_lrs)
    lr_of = {name: specs[name].lr for name in names}
    lr_groups = np.array([s.fig5_lrs.index(lr_of[n]) for n in names])
    dist = 0.5 * (result.distance + result.distance.T)
    clusters = cluster_labels(dist, k, "complete")
    arrays = {name: np.asarray(load_array(reps[name]), dtype=np.float64) for name in names}
    others = {"cka": pairwise(reps, "cka", results=results, progress=ctx.progress).distance}
    factors = {name: factorize(arrays[name]) for name in names}
    fixed_k = np.zeros((len(names), len(names)))
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            kk = min(SVCCA_K, factors[names[i]].rank, factors[names[j]].rank)
            fixed_k[i, j] = fixed_k[j, i] = svcca(factors[names[i]], factors[names[j]], n_components=kk).distance
    others[f"svcca_k{SVCCA_K}"] = fixed_k
    untrained = pairwise({name: ctx.activations(FIGURE, spec, epoch=0, layers=(LAYER,))[LAYER]
                          for name, spec in specs.items()}, "pwcca", symmetric=True, results=results,
                         progress=ctx.progress)
    udist = 0.5 * (untrained.distance + untrained.distance.T)

    xt, yt = torch.from_numpy(ctx.split.x_test), torch.from_numpy(ctx.split.y_test)
    nets = []
    for name, cluster in zip(names, clusters):
        model = cnn.load_network(specs[name], ctx.split, ctx.root).to(cnn._device(s.device))
        curve = cnn.ablation_curve(model, xt, yt, LAYER, FRACTIONS, seed=0)
        rec = records[name]
        a = arrays[name]
        nets.append({"network": name, "lr": lr_of[name], "seed": specs[name].seed, "cluster": int(cluster),
                     **{key: rec.get(key) for key in ("epochs", "target_reached", "train_loss", "train_accuracy",
                                                       "test_accuracy")},
                     "generalisation_error": rec["train_accuracy"] - rec["test_accuracy"],
                     "dead_units": int(np.sum(np.all(a <= 0, axis=0))), "rank": int(factors[name].rank),
                     "ablation_robustness": robustness(curve), "ablation_curve": [float(v) for v in curve]})
    abl = ablation_clusters(nets, k)
    for net, c in zip(nets, abl):
        net["ablation_cluster"] = int(c)
    values = {**structure(dist, lr_groups, k), "all_reached_target": all(bool(n["target_reached"]) for n in nets),
              "apart_ratio": apart_ratio(dist, clusters),
              "ari_cca_vs_ablation": float(adjusted_rand_score(clusters, abl)),
              "untrained": structure(udist, lr_groups, k), "mean_distance_untrained": float(udist[~np.eye(len(names), dtype=bool)].mean()),
              **{f"{m}": structure(d, lr_groups, k) for m, d in others.items()}}
    table = PairTable({(a, b): dist[i, j] for i, a in enumerate(names) for j, b in enumerate(names) if i < j})
    members = {lr: [n for n in names if lr_of[n] == lr] for lr in s.fig5_lrs}

    def gap(G):
        within = [table.mean(G[lr]) for lr in G]
        between = [table.mean(G[a], G[b]) for i, a in enumerate(G) for b in list(G)[i + 1:]]
        return float(np.mean(between) - np.mean(within))

    claims = [claim_records.decide("fig5.clusters_by_lr", values,
                                   interval=claim_records.group_bootstrap(members, gap,
                                                                          draws=claim_records.draws_for(DRAWS, s),
                                                                          unit="networks within their learning rate")),
              claim_records.decide("fig5.one_cluster_apart", values, note="no resampling interval: the statistic "
                                   "depends on a partition found on these networks"),
              claim_records.decide("fig5.clusters_match_ablation", values, note="no resampling interval: an "
                                   "agreement between two partitions found on these networks")]
    rows = [{"a": a, "b": b, "layer": LAYER, "measure": "pwcca", "distance": float(dist[i, j]),
             "distance_untrained": float(udist[i, j]), **{m: float(d[i, j]) for m, d in others.items()}}
            for i, a in enumerate(names) for j, b in enumerate(names) if i < j]
    paths = write_outputs(ctx, FIGURE, rows, claims, {"networks": nets, "datapoints_per_neuron": ratios,
                                                      "ablation_fractions": list(FRACTIONS)})
    paths["png"] = ctx.root / FIGURE / f"{FIGURE}.png"
    plot(result, clusters, nets, values["ari_complete"], paths["png"], title=f"{ctx.split.name}, {len(names)} networks")
    return {"claims": claims, "paths": paths, "networks": nets}


def plot(result, clusters, nets, ari, path, title: str = "") -> None:
    from scipy.cluster import hierarchy
    from scipy.spatial.distance import squareform

    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(16, 5), dpi=110, gridspec_kw={"width_ratios": [1.25, 1, 1]})
    dist = np.clip(0.5 * (result.distance + result.distance.T), 0.0, None)
    np.fill_diagonal(dist, 0.0)
    order = hierarchy.leaves_list(hierarchy.linkage(squareform(dist, checks=False), method="complete"))
    from mpl_toolkits.axes_grid1 import make_axes_locatable

    off = ~np.eye(len(dist), dtype=bool)  # the colours span the off-diagonal range (the diagonal is 0)
    im = axes[0].imshow(dist[np.ix_(order, order)], cmap="magma_r", aspect="auto", vmin=float(dist[off].min()),
                        vmax=float(dist[off].max()))
    lrs = sorted({n["lr"] for n in nets})
    divider = make_axes_locatable(axes[0])
    left = divider.append_axes("left", size="5%", pad=0.03)
    top = divider.append_axes("top", size="5%", pad=0.03)
    bar = divider.append_axes("right", size="4%", pad=0.08)
    left.imshow(np.array([lrs.index(nets[i]["lr"]) for i in order])[:, None], cmap="viridis", aspect="auto",
                vmin=0, vmax=max(1, len(lrs) - 1))
    top.imshow(np.array([clusters[i] - 1 for i in order])[None, :], cmap="tab10", aspect="auto", vmin=0, vmax=9)
    for ax in (left, top, axes[0]):
        ax.set_xticks([])
        ax.set_yticks([])
    left.set_ylabel("learning rate: " + ", ".join(f"{lr:g}" for lr in lrs) + " (dark to light)", fontsize=9)
    axes[0].set_xlabel("networks in complete-linkage order; top strip: CCA cluster", fontsize=9)
    fig.colorbar(im, cax=bar, label=f"PWCCA distance at {LAYER}")
    top.set_title(f"(a) distance matrix; ARI of the clusters with learning rates = {ari:.2f}", fontsize=10)
    cmap = plt.get_cmap("tab10")
    for net in nets:
        axes[1].scatter(net["generalisation_error"], net["ablation_robustness"], color=cmap((net["cluster"] - 1) % 10),
                        s=20, label=f"cluster {net['cluster']}")
    handles, labs = axes[1].get_legend_handles_labels()
    uniq = dict(zip(labs, handles))
    axes[1].legend(uniq.values(), uniq.keys(), fontsize=9)
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
    axes[2].legend(uniq.values(), uniq.keys(), fontsize=9)
    axes[2].set_xlabel(f"fraction of {LAYER} units zeroed")
    axes[2].set_ylabel("test accuracy")
    axes[2].set_title("(c) ablation curves by learning rate", fontsize=9)
    axes[2].grid(alpha=0.3)
    fig.suptitle(f"Figure 5: learning rates and clusters of solutions ({title})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
