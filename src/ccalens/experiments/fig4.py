"""The paper's Figure 4: wider networks converge to more similar solutions.

Groups of networks of increasing width (conv1 filters; the other layers scale with it),
each trained on the true labels from different seeds, are compared pairwise within each
group (Morcos, Raghu & Bengio 2018, Section 3.2). As in the paper (its footnote 8), the
claims are decided at the final conv layer (conv3) on random subsets of a fixed size, the
same for every width, so that comparisons of different sizes are not confounded with
width: the size is a quarter of the widest group's layer (a small subset of a wide layer
adds distance that grows with width, which works against the claim), and each pair's
distance (PWCCA, symmetrised) is the mean over ``SUBSETS`` independent random subsets of
both networks. SVCCA with the same number of kept directions for every width is reported
beside it, and every layer's full-width PWCCA for the figure. Across all pairs, the
distance is set against the pair's mean test accuracy; the paper reports a correlation of
-0.96.

The same networks at initialisation are compared the same way, as the untrained baseline:
its correlation with width is reported next to the trained one. Claims: ``fig4.*`` in
:mod:`.rules`, decided by parts with intervals from a delete-one jackknife over the
networks within each width.
"""

from __future__ import annotations

import numpy as np

from . import claims as claim_records
from . import cnn
from .claims import PairTable
from .common import Context, mean_sd, pair_rows, write_outputs
from ..plot import pyplot

FIGURE = "fig4"
LAYER = "conv3"  # the final conv layer
SUBSETS = 20


def networks(ctx: Context) -> dict[int, dict[str, cnn.NetSpec]]:
    return {w: {f"w{w}-{k}": ctx.spec(width=w, seed=k) for k in range(ctx.scale.group)} for w in ctx.scale.widths}


def train(ctx: Context) -> dict:
    """Train every network of the figure; name -> record."""
    return {name: ctx.network(spec) for g in networks(ctx).values() for name, spec in g.items()}


def unit_subset(units: int, size: int, seed: int = 0) -> np.ndarray:
    """One random subset of ``size`` of ``units`` unit indices (sorted)."""
    if not 0 < size <= units:
        raise ValueError(f"subset size must be in [1, {units}]; got {size}.")
    return np.sort(np.random.default_rng(seed).choice(units, size, replace=False))


def subset_size(widths) -> int:
    """A quarter of the widest group's conv3, which must fit the narrowest group's conv3."""
    size = max(1, cnn.layer_widths(max(widths), 10)[LAYER] // 4)
    narrowest = cnn.layer_widths(min(widths), 10)[LAYER]
    if size > narrowest:
        raise ValueError(f"widths {list(widths)}: a quarter of the widest {LAYER} ({size} units) does not fit the "
                         f"narrowest ({narrowest}); use widths within a factor 4 of each other.")
    return size


def subset_distance(a: np.ndarray, b: np.ndarray, size: int, seeds) -> float:
    """Symmetrised PWCCA distance averaged over random unit subsets of both sides (one per seed)."""
    from ..core import pwcca

    values = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        ia = np.sort(rng.choice(a.shape[1], size, replace=False))
        ib = np.sort(rng.choice(b.shape[1], size, replace=False))
        values.append(pwcca(a[:, ia], b[:, ib], symmetric=True).distance)
    return float(np.mean(values))


def run(ctx: Context) -> dict:
    from ..core import svcca
    from ..store import load_array

    s = ctx.scale
    ctx.log(f"{FIGURE}: {s.group} networks at each width {list(s.widths)} ({ctx.split.name})")
    groups = networks(ctx)
    records = train(ctx)
    ratios = [ctx.check_ratio(cnn.layer_widths(max(s.widths), ctx.split.classes), "train")]
    size = subset_size(s.widths)
    k_fixed = max(1, size // 2)
    rows = []
    for width, specs in groups.items():
        for state, epoch in (("trained", None), ("untrained", 0)):  # untrained: the same networks at init
            reps = {name: ctx.activations(FIGURE, spec, epoch=epoch) for name, spec in specs.items()}
            group_rows = pair_rows(ctx, FIGURE, reps, cnn.LAYERS, ("pwcca",), {"width": width, "state": state})
            arrays = {name: np.asarray(load_array(reps[name][LAYER]), dtype=np.float64) for name in reps}
            names = list(arrays)
            for i in range(len(names)):
                for j in range(i + 1, len(names)):
                    a, b = arrays[names[i]], arrays[names[j]]
                    pair_seed = 1000 * i + j
                    group_rows.append({"width": width, "state": state, "layer": f"{LAYER}-subsets",
                                       "measure": "pwcca", "a": names[i], "b": names[j],
                                       "distance": subset_distance(a, b, size, range(pair_seed * SUBSETS,
                                                                                     (pair_seed + 1) * SUBSETS))})
                    group_rows.append({"width": width, "state": state, "layer": LAYER, "measure": f"svcca_k{k_fixed}",
                                       "a": names[i], "b": names[j],
                                       "distance": svcca(a, b, n_components=k_fixed).distance})
            for row in group_rows:
                row["mean_test_accuracy"] = float(np.mean([records[row["a"]]["test_accuracy"],
                                                           records[row["b"]]["test_accuracy"]]))
            rows += group_rows
    keys = sorted({(r["layer"], r["measure"]) for r in rows})
    summary = {(state, w, layer, m): mean_sd(r["distance"] for r in rows if r["state"] == state and r["width"] == w
                                              and r["layer"] == layer and r["measure"] == m)
               for state in ("trained", "untrained") for w in s.widths for layer, m in keys}
    members = {w: list(specs) for w, specs in groups.items()}
    accuracy = {name: records[name]["test_accuracy"] for name in records}
    claims = evaluate_claims(rows, members, accuracy, k_fixed)
    nets = [{"network": name, "width": spec.width, "seed": spec.seed,
             **{k: records[name].get(k) for k in ("epochs", "train_accuracy", "train_loss", "test_accuracy")}}
            for g in groups.values() for name, spec in g.items()]
    paths = write_outputs(ctx, FIGURE, rows, claims, {
        "networks": nets, "datapoints_per_neuron": ratios,
        "subsets": {"layer": LAYER, "units": size, "subsets_per_pair": SUBSETS, "svcca_components": k_fixed},
        "summary": [{"state": st, "width": w, "layer": layer, "measure": m, "mean": v[0], "sd": v[1]}
                    for (st, w, layer, m), v in summary.items()]})
    paths["png"] = ctx.root / FIGURE / f"{FIGURE}.png"
    plot(rows, summary, list(s.widths), paths["png"], claims, title=f"{ctx.split.name}, {s.group} networks per width",
         k_fixed=k_fixed, size=size)
    return {"claims": claims, "paths": paths, "summary": summary, "networks": nets}


PAPER_R = -0.96  # the paper's correlation between pair distance and test accuracy (Section 3.2)


def claim_values(tables: dict, G: dict, accuracy: dict, k_fixed: int) -> dict:
    """Every value the fig4 rules read, on the width groups ``G`` ({width: [networks]}; a
    jackknife passes them with one network left out).

    ``slope``: least-squares slope of the width groups' mean pair distance (conv3, subset
    averaged) on log2(width), each width weighted equally. ``pearson``: Pearson correlation,
    pooled over every within-width pair, of the pair's distance with its mean test accuracy;
    ``pearson_untrained``: the same with the distances of the same networks at initialisation
    (what the architecture alone gives), and ``pearson_minus_untrained`` their difference.
    ``within_width_pearson``: the mean over widths of the correlation inside one width (where a
    width has at least 3 pairs); it separates the accuracy effect from the width effect.
    """
    widths = sorted(G)
    x = np.log2(np.asarray(widths, dtype=float))

    def slope(table):
        means = np.array([table.mean(G[w]) for w in widths])
        if len(widths) < 2 or not np.all(np.isfinite(means)):
            return float("nan"), means.tolist()
        return float(np.polyfit(x, means, 1)[0]), means.tolist()

    def pairs(table, ws):
        d, acc = [], []
        for w in ws:
            names = G[w]
            for i in range(len(names)):
                for j in range(i + 1, len(names)):
                    d.append(table.d[(names[i], names[j])])
                    acc.append(0.5 * (accuracy[names[i]] + accuracy[names[j]]))
        return np.array(d), np.array(acc)

    def pearson(d, acc):
        ok = len(d) > 2 and d.std() > 0 and acc.std() > 0
        return float(np.corrcoef(d, acc)[0, 1]) if ok else float("nan")

    subsets = (f"{LAYER}-subsets", "pwcca")
    trained, untrained = tables[("trained", *subsets)], tables[("untrained", *subsets)]
    values = {"widths": widths, "paper_r": PAPER_R}
    values["slope"], values["group_means"] = slope(trained)
    values["slope_untrained"], values["group_means_untrained"] = slope(untrained)
    values["slope_svcca_fixed_k"], values["group_means_svcca_fixed_k"] = slope(tables[("trained", LAYER,
                                                                                        f"svcca_k{k_fixed}")])
    values["pearson"] = pearson(*pairs(trained, widths))
    values["pearson_untrained"] = pearson(*pairs(untrained, widths))
    values["pearson_minus_untrained"] = values["pearson"] - values["pearson_untrained"]
    values["pearson_svcca_fixed_k"] = pearson(*pairs(tables[("trained", LAYER, f"svcca_k{k_fixed}")], widths))
    within = [pearson(*pairs(trained, [w])) for w in widths]
    within = [r for r in within if np.isfinite(r)]
    values["within_width_pearson"] = float(np.mean(within)) if within else float("nan")
    values["within_width_pearson_widths"] = len(within)
    return values


def evaluate_claims(rows: list[dict], members: dict, accuracy: dict, k_fixed: int) -> list[dict]:
    """The fig4 claim records: the rules of :mod:`.rules` by parts; intervals from a delete-one
    jackknife over the networks within their widths (:func:`.claims.network_jackknife`)."""
    from .rules import RULES

    tables = {}
    for r in rows:
        tables.setdefault((r["state"], r["layer"], r["measure"]), {})[(r["a"], r["b"])] = r["distance"]
    tables = {k: PairTable(v) for k, v in tables.items()}
    groups = {w: list(m) for w, m in members.items()}
    stats = lambda G: claim_values(tables, G, accuracy, k_fixed)  # noqa: E731
    values = stats(groups)
    replicates = min(len(m) for m in groups.values())
    out = []
    for rule_id in ("fig4.wider_closer", "fig4.distance_predicts_accuracy"):
        rule = RULES[rule_id]
        intervals = claim_records.network_jackknife(groups, stats, [p.name for p in rule.parts],
                                                    confidence=claim_records.part_confidence(rule_id),
                                                    unit="networks within their width", correlations=("pearson",))
        note = None
        if rule_id == "fig4.distance_predicts_accuracy":
            note = (f"within-width correlation {values['within_width_pearson']:.3f} (mean over "
                    f"{values['within_width_pearson_widths']} widths); untrained {values['pearson_untrained']:.3f}; "
                    f"the paper's r = {PAPER_R}")
        out.append(claim_records.decide(rule_id, values, intervals=intervals, replicates=replicates, note=note))
    return out


def plot(rows, summary, widths, path, claims, title: str = "", k_fixed: int = 8, size: int = 16) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), dpi=110)
    cmap = plt.get_cmap("viridis")
    colour = {w: cmap(i / max(1, len(widths) - 1)) for i, w in enumerate(widths)}
    layers = list(cnn.LAYERS)
    xs = np.arange(len(layers))
    for w in widths:
        vals = np.array([summary[("trained", w, layer, "pwcca")] for layer in layers])
        axes[0].errorbar(xs, vals[:, 0], yerr=vals[:, 1], marker="o", capsize=3, color=colour[w], label=f"width {w}")
        axes[0].plot(xs, [summary[("untrained", w, layer, "pwcca")][0] for layer in layers], ls="--", lw=1,
                     alpha=0.7, color=colour[w], label="untrained (dashed)" if w == widths[0] else None)
    axes[0].set_xticks(xs, layers, rotation=20)
    axes[0].set_ylabel("PWCCA distance within group (mean ± sd)")
    axes[0].set_title("(a) every layer, full width", fontsize=10)
    axes[0].legend(fontsize=8)
    axes[0].grid(alpha=0.3)
    for key, label, style in ((("trained", f"{LAYER}-subsets", "pwcca"), f"PWCCA, {size}-unit subsets", "-o"),
                              (("untrained", f"{LAYER}-subsets", "pwcca"), "same, untrained", "--o"),
                              (("trained", LAYER, f"svcca_k{k_fixed}"), f"SVCCA, k = {k_fixed}", "-s")):
        vals = np.array([summary[(key[0], w, key[1], key[2])] for w in widths])
        axes[1].errorbar(widths, vals[:, 0], yerr=vals[:, 1], fmt=style, capsize=3, label=label)
    axes[1].set_xscale("log", base=2)
    axes[1].set_xticks(widths, [str(w) for w in widths])
    axes[1].set_xlabel("width (conv1 filters)")
    axes[1].set_ylabel(f"{LAYER} distance within group")
    slope = next(c for c in claims if c["id"] == "fig4.wider_closer")["value"]
    axes[1].set_title(f"(a') {LAYER}, equal-size comparisons: slope {slope:.3f} per doubling", fontsize=10)
    axes[1].legend(fontsize=8)
    axes[1].grid(alpha=0.3)
    for w in widths:
        pts = [(r["distance"], r["mean_test_accuracy"]) for r in rows
               if r["layer"] == f"{LAYER}-subsets" and r["width"] == w and r["state"] == "trained"]
        d, a = zip(*pts)
        axes[2].scatter(d, a, color=colour[w], label=f"width {w}", s=18)
    r = next(c for c in claims if c["id"] == "fig4.distance_predicts_accuracy")["statistic"]["values"]["pearson"]
    axes[2].set_xlabel(f"PWCCA distance at {LAYER} ({size}-unit subsets)")
    axes[2].set_ylabel("mean test accuracy of the pair")
    axes[2].set_title(f"(b) distance vs test accuracy: r = {r:.2f} (paper: -0.96)", fontsize=10)
    axes[2].legend(fontsize=8)
    axes[2].grid(alpha=0.3)
    fig.suptitle(f"Figure 4: width ({title})", fontsize=11)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
