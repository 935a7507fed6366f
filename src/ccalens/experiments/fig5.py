"""The paper's Figure 5: networks trained with different learning rates form clusters.

Many networks of one architecture, trained on the true labels with several learning rates
(SGD with momentum 0.9) and seeds (a different seed for every network), are compared
pairwise at a late layer (fc1, PWCCA distance, symmetrised, on the training images)
(Morcos, Raghu & Bengio 2018, Section 3.3). The paper's premise is that "these networks all
achieved similar train loss": every network trains until its training loss reaches the
scale's target (``fig5_target_loss``), at most ``fig5_epochs`` epochs, and whether it did
is recorded.

The deciding design is a **common rank**: CCA counts only min(rank) correlations, so a
network with dead fc1 units (a low-rank layer) would look close to every other. Each
network's fc1 representation is centred and reduced to its leading ``k_common`` principal
components (the columns of U S of its SVD), ``k_common`` the smallest fc1 rank over all
networks, and the deciding distances are the symmetric PWCCA distances between these
reductions. Full-rank PWCCA, SVCCA with a fixed number of directions and linear CKA are
reported beside (values ``full_rank``, ``cka``, ``svcca_k16``; the CSV's ``distance`` is
full-rank PWCCA, ``distance_common_rank`` the deciding one), as are each network's dead
units and rank.

The claims (``fig5.*`` in :mod:`.rules`) are decided by parts, each part's interval at the
rule's Bonferroni confidence (:func:`.claims.part_confidence`):

* ``clusters_by_lr``: the permutation test of mean between-rate minus mean within-rate
  distance (rates shuffled over networks; the Monte Carlo interval of its p-value);
  complete-linkage clusters (as many as rates) against the rates by the adjusted Rand
  index, tested by permutation (the rates shuffled over networks: a clustering index is not
  a smooth function of the networks, and its delete-one jackknife interval left ARI's
  range); 1-nearest-neighbour recovery minus its chance rate (seeds - 1) / (networks - 1)
  (a Wilson interval over networks). Average and Ward linkage are reported too.
* ``one_cluster_apart``: over the learning-rate groups (each holds every seed of its rate,
  so each has ``fig5_seeds`` networks), each group's mean distance to the other groups minus
  the mean distance between the other groups (:func:`group_excess`); the farthest group is
  the one with the largest excess, and its interval is its delete-one network jackknife
  interval at the Bonferroni confidence over the candidate groups (simultaneous intervals,
  so choosing the group from the data does not break the interval's level). An earlier
  design (complete-linkage clusters and a null that permuted distances over pairs) was
  replaced before its first run: permuting distances destroys their metric structure, and
  on random Gaussian networks that null rejected in 68 % of 60 trials at p <= 0.05
  (``results/REVISIONS.md``).
* ``clusters_match_ablation``: as in the paper's Figure 5b, each network's robustness to
  cumulative ablation is set against its generalisation error: fc1's units are zeroed in one
  fixed random order, 0% to 100% in steps of 10%, and the test accuracy recorded.
  Robustness is the area under that curve divided by the unablated accuracy; generalisation
  error is training accuracy minus test accuracy. The networks are clustered in that
  (standardised) plane by Ward linkage, and compared with the CCA clusters by the adjusted
  Rand index (its permutation p-value, the ablation clusters shuffled over networks). Its premise adds ``p_ablation_structure``:
  the permutation test of between- minus within-rate Euclidean distance of the ablation
  curves against the rates.

Every claim passes the seeds per learning rate as its replicates. The same networks at
initialisation are compared (full rank) and reported, as the baseline.
"""

from __future__ import annotations

import numpy as np

from . import claims as claim_records
from . import cnn
from .common import Context, write_outputs
from ..plot import pyplot

FIGURE = "fig5"
LAYER = "fc1"
FRACTIONS = tuple(np.round(np.linspace(0.0, 1.0, 11), 2))
PERMUTATIONS = 10_000
SVCCA_K = 16


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


def leading_components(a: np.ndarray, k: int) -> np.ndarray:
    """The scores (U S, n x k) of a representation's leading k principal components."""
    from ..core.linalg import centred_columns

    u, sv, _ = np.linalg.svd(centred_columns(np.asarray(a, dtype=np.float64)), full_matrices=False)
    return u[:, :k] * sv[:k]


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


def permutation_gap(dist: np.ndarray, labels, permutations: int = PERMUTATIONS,
                    seed: int = 0) -> tuple[float, float, int]:
    """(gap, one-sided permutation p-value, exceed): labels shuffled over networks;
    exceed = #{gap* >= gap}, p = (1 + exceed) / (1 + permutations)."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    gap = within_between_gap(dist, labels)
    hits = int(sum(within_between_gap(dist, rng.permutation(labels)) >= gap - 1e-12 for _ in range(permutations)))
    return gap, (1 + hits) / (1 + permutations), hits


def ari_permutation(a, b, permutations: int = PERMUTATIONS, seed: int = 0) -> tuple[float, float, int]:
    """(ARI of labellings ``a`` and ``b``, one-sided permutation p-value, exceed): ``a`` shuffled
    over networks; exceed = #{ARI* >= ARI}, p = (1 + exceed) / (1 + permutations)."""
    from sklearn.metrics import adjusted_rand_score

    rng = np.random.default_rng(seed)
    a, b = np.asarray(a), np.asarray(b)
    ari = float(adjusted_rand_score(a, b))
    hits = int(sum(adjusted_rand_score(rng.permutation(a), b) >= ari - 1e-12 for _ in range(permutations)))
    return ari, (1 + hits) / (1 + permutations), hits


def nn_recovery(dist: np.ndarray, labels) -> float:
    """The share of networks whose nearest other network has their label (ties: the first)."""
    labels = np.asarray(labels)
    d = dist.astype(float).copy()
    np.fill_diagonal(d, np.inf)
    return float(np.mean(labels[np.argmin(d, axis=1)] == labels))


def group_excess(dist: np.ndarray, groups) -> dict[int, float]:
    """For each group g of ``groups`` (labels): its mean distance to the other groups minus the
    mean distance between the other groups (needs 3 or more groups; else empty)."""
    groups = np.asarray(groups)
    ids = sorted(set(groups.tolist()))
    if len(ids) < 3:
        return {}
    between = {(a, b): float(dist[np.ix_(groups == a, groups == b)].mean()) for a in ids for b in ids if a != b}
    return {g: float(np.mean([between[(g, o)] for o in ids if o != g])
                     - np.mean([between[(a, b)] for i, a in enumerate(ids) for b in ids[i + 1:] if g not in (a, b)]))
            for g in ids}


def apart_ratio(dist: np.ndarray, groups) -> float:
    """The farthest group's mean distance to the others over theirs among themselves (reported)."""
    groups = np.asarray(groups)
    excess = group_excess(dist, groups)
    if not excess:
        return float("nan")
    far = max(excess, key=excess.get)
    ids = sorted(excess)
    to_rest = np.mean([dist[np.ix_(groups == far, groups == o)].mean() for o in ids if o != far])
    rest = [c for c in ids if c != far]
    among = np.mean([dist[np.ix_(groups == a, groups == b)].mean() for i, a in enumerate(rest) for b in rest[i + 1:]])
    return float(to_rest / among) if among > 0 else float("nan")


def one_cluster_apart(dist: np.ndarray, groups, confidence: float, unit: str = "networks within their "
                      "learning rate") -> tuple[dict, dict | None]:
    """The values of ``fig5.one_cluster_apart`` on ``dist`` with group labels ``groups``, and the
    farthest group's interval: a delete-one jackknife over the networks within their groups,
    at 1 - (1 - ``confidence``) / groups (Bonferroni over the candidate groups, so the
    intervals hold simultaneously and the data's choice of the farthest group keeps the
    level). None (no interval) with fewer than 3 groups."""
    groups = np.asarray(groups)
    ids = sorted(set(groups.tolist()))
    excess = group_excess(dist, groups)
    values = {"excess_farthest": float("nan"), "farthest_group": None, "excess_by_group": excess,
              "apart_ratio": apart_ratio(dist, groups)}
    if not excess:
        return values, None
    far = max(excess, key=excess.get)
    values.update(excess_farthest=excess[far], farthest_group=far)
    members = {g: [int(i) for i in np.flatnonzero(groups == g)] for g in ids}

    def kept(G):
        idx = [i for g in G for i in G[g]]
        return {"excess": group_excess(dist[np.ix_(idx, idx)], groups[idx]).get(far, float("nan"))}

    iv = claim_records.network_jackknife(members, kept, ["excess"], confidence=1 - (1 - confidence) / len(ids),
                                         unit=unit)["excess"]
    return values, iv


def ablation_clusters(nets: list[dict], k: int) -> np.ndarray:
    """Ward clusters of the networks in the standardised (generalisation error, robustness) plane."""
    from scipy.cluster import hierarchy

    pts = np.array([[n["generalisation_error"], n["ablation_robustness"]] for n in nets], dtype=float)
    sd = pts.std(axis=0)
    pts = (pts - pts.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    return hierarchy.fcluster(hierarchy.linkage(pts, method="ward"), t=k, criterion="maxclust")


def structure(dist: np.ndarray, lr_groups, k: int, seed: int = 0, permutations: int = PERMUTATIONS) -> dict:
    """How a distance matrix follows the learning rates: gap, p-value, ARIs, 1-NN recovery."""
    from sklearn.metrics import adjusted_rand_score

    gap, p, exceed = permutation_gap(dist, lr_groups, permutations=permutations, seed=seed)
    out = {"gap": gap, "p_permutation": p, "exceed": exceed, "permutations": permutations,
           "nn_recovery": nn_recovery(dist, lr_groups)}
    for method in ("complete", "average", "ward"):
        out[f"ari_{method}"] = float(adjusted_rand_score(lr_groups, cluster_labels(dist, k, method)))
    _, out["p_ari_complete"], out["ari_exceed"] = ari_permutation(lr_groups, cluster_labels(dist, k, "complete"),
                                                                  permutations=permutations, seed=seed + 7)
    return out


def run(ctx: Context) -> dict:
    import torch

    from ..core import factorize, svcca

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
    n, k = len(names), len(s.fig5_lrs)
    lr_of = {name: specs[name].lr for name in names}
    lr_groups = np.array([s.fig5_lrs.index(lr_of[nm]) for nm in names])
    full = 0.5 * (result.distance + result.distance.T)
    arrays = {name: np.asarray(load_array(reps[name]), dtype=np.float64) for name in names}
    factors = {name: factorize(arrays[name]) for name in names}
    k_common = min(int(factors[name].rank) for name in names)
    ctx.log(f"{FIGURE}: common rank k = {k_common} (fc1 ranks {sorted(int(f.rank) for f in factors.values())})")
    reduced = pairwise({name: leading_components(arrays[name], max(k_common, 1)) for name in names}, "pwcca",
                       symmetric=True, progress=ctx.progress)
    dist = 0.5 * (reduced.distance + reduced.distance.T)  # the deciding distances
    clusters = cluster_labels(dist, k, "complete")
    others = {"full_rank": full, "cka": pairwise(reps, "cka", results=results, progress=ctx.progress).distance}
    fixed_k = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            kk = min(SVCCA_K, factors[names[i]].rank, factors[names[j]].rank)
            fixed_k[i, j] = fixed_k[j, i] = svcca(factors[names[i]], factors[names[j]], n_components=kk).distance
    others[f"svcca_k{SVCCA_K}"] = fixed_k
    untrained = pairwise({name: ctx.activations(FIGURE, spec, epoch=0, layers=(LAYER,))[LAYER]
                          for name, spec in specs.items()}, "pwcca", symmetric=True, results=results,
                         progress=ctx.progress)
    udist = 0.5 * (untrained.distance + untrained.distance.T)

    xt, yt = torch.from_numpy(ctx.split.x_test), torch.from_numpy(ctx.split.y_test)
    nets = []
    for name, cluster, cfull in zip(names, clusters, cluster_labels(full, k, "complete")):
        model = cnn.load_network(specs[name], ctx.split, ctx.root).to(cnn._device(s.device))
        curve = cnn.ablation_curve(model, xt, yt, LAYER, FRACTIONS, seed=0)
        rec = records[name]
        nets.append({"network": name, "lr": lr_of[name], "seed": specs[name].seed, "cluster": int(cluster),
                     "cluster_full_rank": int(cfull),
                     **{key: rec.get(key) for key in ("epochs", "target_reached", "train_loss", "train_accuracy",
                                                       "test_accuracy")},
                     "generalisation_error": rec["train_accuracy"] - rec["test_accuracy"],
                     "dead_units": int(np.sum(np.all(arrays[name] <= 0, axis=0))), "rank": int(factors[name].rank),
                     "ablation_robustness": robustness(curve), "ablation_curve": [float(v) for v in curve]})
    for net, c in zip(nets, abl := ablation_clusters(nets, k)):
        net["ablation_cluster"] = int(c)
    perms = claim_records.draws_for(PERMUTATIONS, s)
    curves = np.array([net["ablation_curve"] for net in nets])
    curve_dist = np.linalg.norm(curves[:, None] - curves[None], axis=-1)
    abl_gap, p_abl, _ = permutation_gap(curve_dist, lr_groups, permutations=perms, seed=1)
    apart, apart_iv = one_cluster_apart(dist, lr_groups, claim_records.part_confidence("fig5.one_cluster_apart"))
    far = apart.pop("farthest_group")
    apart["farthest_lr"] = s.fig5_lrs[far] if far is not None else None
    apart["excess_by_lr"] = {str(s.fig5_lrs[g]): v for g, v in apart.pop("excess_by_group").items()}
    chance = (s.fig5_seeds - 1) / (n - 1)
    ari_abl, p_ari_abl, ari_abl_exceed = ari_permutation(abl, clusters, permutations=perms, seed=3)
    base = structure(dist, lr_groups, k, permutations=perms)
    values = {**base, "k_common": k_common, "all_reached_target": all(bool(nt["target_reached"]) for nt in nets),
              "nn_recovery_chance": chance, "nn_recovery_minus_chance": base["nn_recovery"] - chance,
              **apart, "ari_cca_vs_ablation": ari_abl, "p_ari_cca_vs_ablation": p_ari_abl,
              "ablation_gap": abl_gap, "p_ablation_structure": p_abl,
              "untrained": structure(udist, lr_groups, k, permutations=perms),
              "mean_distance_untrained": float(udist[~np.eye(n, dtype=bool)].mean()),
              **{m: structure(d, lr_groups, k, permutations=perms) for m, d in others.items()}}
    conf = claim_records.part_confidence
    by_lr = "fig5.clusters_by_lr"
    intervals = {by_lr: {
        "p_permutation": claim_records.p_value_interval(base["exceed"], perms, confidence=conf(by_lr)),
        "p_ari_complete": claim_records.p_value_interval(base["ari_exceed"], perms, confidence=conf(by_lr)),
        "nn_recovery_minus_chance": claim_records.proportion_interval(
            int(round(base["nn_recovery"] * n)), n, confidence=conf(by_lr), shift=chance)},
        "fig5.one_cluster_apart": {"excess_farthest": apart_iv},
        "fig5.clusters_match_ablation": {"p_ari_cca_vs_ablation": claim_records.p_value_interval(
            ari_abl_exceed, perms, confidence=conf("fig5.clusters_match_ablation"))}}
    notes = {"fig5.one_cluster_apart": (f"farthest group: learning rate {apart['farthest_lr']}; its interval is "
                                        f"at confidence 1 - alpha / {k} (simultaneous over the {k} groups)")
             if far is not None else "fewer than 3 learning rates: the statistic is undefined"}
    claims = [claim_records.decide(rid, values, intervals=iv, note=notes.get(rid), replicates=s.fig5_seeds)
              for rid, iv in intervals.items()]
    rows = [{"a": a, "b": b, "layer": LAYER, "measure": "pwcca", "distance": float(full[i, j]),
             "distance_common_rank": float(dist[i, j]), "distance_untrained": float(udist[i, j]),
             **{m: float(d[i, j]) for m, d in others.items() if m != "full_rank"}}
            for i, a in enumerate(names) for j, b in enumerate(names) if i < j]
    paths = write_outputs(ctx, FIGURE, rows, claims, {"networks": nets, "datapoints_per_neuron": ratios,
                                                      "ablation_fractions": list(FRACTIONS), "k_common": k_common})
    paths["png"] = ctx.root / FIGURE / f"{FIGURE}.png"
    plot(dist, clusters, nets, values["ari_complete"], paths["png"],
         title=f"{ctx.split.name}, {len(names)} networks", label=f"PWCCA distance at {LAYER}, leading {k_common} PCs")
    return {"claims": claims, "paths": paths, "networks": nets}


def plot(dist, clusters, nets, ari, path, title: str = "", label: str = f"PWCCA distance at {LAYER}") -> None:
    from scipy.cluster import hierarchy
    from scipy.spatial.distance import squareform

    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(16, 5), dpi=110, gridspec_kw={"width_ratios": [1.25, 1, 1]})
    dist = np.clip(0.5 * (dist + dist.T), 0.0, None)
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
    fig.colorbar(im, cax=bar, label=label)
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
