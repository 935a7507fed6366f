"""The paper's Figure 3 (and A5, A9, A10): generalising networks converge to more similar solutions.

A group of networks trained on the true labels (generalising) and a group trained on one
fixed random permutation of the labels (memorising), with different seeds, are compared
layer by layer: pairwise PWCCA distance (symmetrised) within each group and between the
groups (Morcos, Raghu & Bengio 2018, Section 3.1). As in the paper, every network is
trained to (near) zero training loss: memorisers train until 99.5 % training accuracy
(each network's accuracy and loss are reported). Representations are taken on the
training images, and on test images for Figure A10. The softmax (of the logits) is its own
layer, as in the paper. The same architecture at initialisation is compared the same way,
as the baseline. Cosine and Euclidean distance (neuron by neuron, Figure A5), unweighted
mean CCA (Figure A9) and SVCCA are reported too, and PWCCA "with thresholding to remove
low variance noise" (the figure's caption: each side cut to the leading singular
directions holding 99 % of its variance, ``ccalens.pwcca(..., keep=0.99)``).

The claims are decided by the rules in :mod:`.rules` (``fig3.*``), on plain PWCCA and,
as a second record, on thresholded PWCCA; intervals come from a bootstrap over networks
within each group (:func:`.claims.group_bootstrap`).
"""

from __future__ import annotations

import numpy as np

from . import cnn
from . import claims as claim_records
from .claims import PairTable
from .common import Context, mean_sd, pair_rows, write_outputs
from ..plot import pyplot

FIGURE = "fig3"
MEASURES = ("pwcca", "mean_cca", "svcca", "cosine", "euclidean")
THRESHOLDED = "pwcca_svd99"  # PWCCA after an SVD truncation keeping 99% of each side's variance
KEEP = 0.99
LAYERS = cnn.LAYERS + ("softmax",)
COMPARISONS = ("true-true", "random-random", "true-random", "untrained")
DRAWS = 1000  # bootstrap resamples of the networks


def comparison_of(a: str, b: str) -> str:
    ga, gb = (name.rstrip("0123456789") for name in (a, b))
    if ga == gb == "untrained":
        return "untrained"
    return "-".join(sorted((ga, gb), key=("true", "random").index))


def networks(ctx: Context) -> dict[str, cnn.NetSpec]:
    s = ctx.scale
    specs = {f"true{k}": ctx.spec(seed=k) for k in range(s.group)}
    specs.update({f"random{k}": ctx.spec(seed=100 + k, labels="random", epochs=s.epochs_random,
                                         target_accuracy=s.random_target) for k in range(s.group)})
    return specs



def train(ctx: Context) -> dict:
    """Train every network of the figure; name -> record."""
    return {name: ctx.network(spec) for name, spec in networks(ctx).items()}

def with_softmax(reps: dict[str, object]) -> dict[str, object]:
    """The layers of one network plus ``softmax``: the softmax of its stored logits (float64)."""
    from scipy.special import softmax

    from ..store import load_array

    logits = reps["logits"] if isinstance(reps["logits"], np.ndarray) else load_array(reps["logits"])
    return {**reps, "softmax": softmax(np.asarray(logits, dtype=np.float64), axis=1)}


def thresholded_rows(reps: dict[str, dict[str, object]], layers, tag: dict) -> list[dict]:
    """Symmetrised PWCCA distance after SVD thresholding (``keep=KEEP``) for every pair."""
    from ..core import pwcca
    from ..store import load_array

    names = list(reps)
    rows = []
    for layer in layers:
        arrays = {n: reps[n][layer] if isinstance(reps[n][layer], np.ndarray) else load_array(reps[n][layer])
                  for n in names}
        for i in range(len(names)):
            for j in range(i + 1, len(names)):
                d = pwcca(arrays[names[i]], arrays[names[j]], keep=KEEP, symmetric=True).distance
                rows.append({**tag, "layer": layer, "measure": THRESHOLDED, "a": names[i], "b": names[j],
                             "distance": float(d)})
    return rows


def run(ctx: Context) -> dict:
    ctx.log(f"{FIGURE}: {ctx.scale.group} networks on true labels, {ctx.scale.group} on permuted labels "
            f"({ctx.split.name}, {len(ctx.split.x_train)} training images)")
    specs = networks(ctx)
    records = train(ctx)
    widths = {**cnn.layer_widths(ctx.scale.width, ctx.split.classes), "softmax": ctx.split.classes}
    ratios = [ctx.check_ratio(widths, "train"), ctx.check_ratio(widths, "test")]

    train_reps = {name: with_softmax(ctx.activations(FIGURE, spec)) for name, spec in specs.items()}
    test_reps = {name: with_softmax(ctx.activations(FIGURE, spec, data="test")) for name, spec in specs.items()}
    untrained = {f"untrained{k}": with_softmax(ctx.activations(FIGURE, specs[f"true{k}"], epoch=0))
                 for k in range(ctx.scale.group)}

    rows = pair_rows(ctx, FIGURE, train_reps, LAYERS, MEASURES, {"data": "train"})
    rows += thresholded_rows(train_reps, LAYERS, {"data": "train"})
    rows += pair_rows(ctx, FIGURE, untrained, LAYERS, MEASURES, {"data": "train"})
    rows += pair_rows(ctx, FIGURE, test_reps, LAYERS, ("pwcca", "mean_cca"), {"data": "test"})
    for row in rows:
        row["comparison"] = comparison_of(row["a"], row["b"])
    summary = summarise(rows)
    groups = {"true": [n for n in specs if n.startswith("true")], "random": [n for n in specs if n.startswith("random")]}
    min_acc = min(records[n]["train_accuracy"] for n in specs)
    claims = evaluate_claims(rows, groups, min_acc, draws=claim_records.draws_for(DRAWS, ctx.scale))
    nets = [{"network": name, "labels": specs[name].labels, "seed": specs[name].seed,
             **{k: records[name].get(k) for k in ("epochs", "max_epochs", "target_reached", "train_accuracy",
                                                  "train_loss", "test_accuracy", "test_loss")}} for name in specs]
    paths = write_outputs(ctx, FIGURE, rows, claims, {"networks": nets, "datapoints_per_neuron": ratios,
                                                      "summary": _jsonable(summary)})
    paths["png"] = ctx.root / FIGURE / f"{FIGURE}.png"
    plot(summary, paths["png"], title=f"{ctx.split.name}, {ctx.scale.group} networks per group")
    return {"claims": claims, "paths": paths, "summary": summary, "networks": nets}


def summarise(rows: list[dict]) -> dict:
    """(data, measure, comparison, layer) -> (mean, sd) over pairs."""
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["data"], r["measure"], r["comparison"], r["layer"]), []).append(r["distance"])
    return {key: mean_sd(values) for key, values in groups.items()}


def _jsonable(summary: dict) -> list[dict]:
    return [{"data": d, "measure": m, "comparison": c, "layer": layer, "mean": v[0], "sd": v[1]}
            for (d, m, c, layer), v in sorted(summary.items())]


def separation(table: PairTable, T, R) -> float:
    """(rr - tt) / (sd_rr + sd_tt) over the pairs within each group.

    NaN (an undefined resample, counted as such by the bootstrap) unless each group holds
    at least two distinct pairs of networks: a resample whose group holds one network pair,
    repeated, has a spread of rounding error, and dividing by it gave draws of 1e13.
    """
    def within(names):
        return [((names[i], names[j]) if names[i] < names[j] else (names[j], names[i]), table.d[(names[i], names[j])])
                for i in range(len(names)) for j in range(i + 1, len(names)) if names[i] != names[j]]

    tt, rr = within(T), within(R)
    if len({pair for pair, _ in tt}) < 2 or len({pair for pair, _ in rr}) < 2:
        return float("nan")
    tt, rr = [v for _, v in tt], [v for _, v in rr]
    spread = float(np.std(tt) + np.std(rr))
    return float(np.mean(rr) - np.mean(tt)) / spread if spread > 0 else float("nan")


def claim_values(tables: dict, G: dict, measure: str, min_train_accuracy: float) -> dict:
    """Every value the fig3 rules read, for one measure, on (possibly resampled) groups ``G``."""
    T, R = G["true"], G["random"]
    values = {"min_train_accuracy": min_train_accuracy}
    for layer in LAYERS:
        t = tables[("train", measure, layer)]
        values[f"tt_{layer}"], values[f"rr_{layer}"], values[f"tr_{layer}"] = t.mean(T), t.mean(R), t.mean(T, R)
    values["rr_minus_tt_conv1"] = values["rr_conv1"] - values["tt_conv1"]
    values["rr_minus_tt_fc1"] = values["rr_fc1"] - values["tt_fc1"]
    values["max_abs_rr_minus_tr"] = max(abs(values[f"rr_{layer}"] - values[f"tr_{layer}"])
                                        for layer in ("conv2", "conv3", "fc1"))
    values["max_within_softmax"] = max(values["tt_softmax"], values["rr_softmax"])
    if ("test", measure, "softmax") in tables:
        t = tables[("test", measure, "softmax")]
        values["tt_softmax_test"], values["rr_softmax_test"] = t.mean(T), t.mean(R)
        values["rr_minus_tt_softmax_test"] = values["rr_softmax_test"] - values["tt_softmax_test"]
    if measure == "pwcca":
        drops = {}
        for m in ("pwcca", "mean_cca"):
            tt = {layer: tables[("train", m, layer)].mean(T) for layer in ("conv3", "fc1", "logits")}
            drops[m] = tt["conv3"] - 0.5 * (tt["fc1"] + tt["logits"])
        values["late_drop_pwcca"], values["late_drop_mean_cca"] = drops["pwcca"], drops["mean_cca"]
        values["late_drop_pwcca_minus_mean_cca"] = drops["pwcca"] - drops["mean_cca"]
        for m in ("pwcca", "mean_cca", "cosine", "euclidean"):
            values[f"sep_{m}"] = separation(tables[("train", m, "fc1")], T, R)
        values["sep_margin"] = values["sep_pwcca"] - max(values["sep_cosine"], values["sep_euclidean"])
    return values


CLAIMS = {  # claim id -> the measures it is decided on (the first is the paper's plain PWCCA)
    "fig3.early_equal": ("pwcca", THRESHOLDED),
    "fig3.late_generalisers_closer": ("pwcca", THRESHOLDED),
    "fig3.memorisers_as_close": ("pwcca", THRESHOLDED),
    "fig3.softmax_converges_train": ("pwcca", THRESHOLDED),
    "fig3.softmax_test_only_generalisers": ("pwcca",),
    "fig3.unweighted_blurs": ("pwcca",),
    "fig3.cosine_euclid_miss": ("pwcca",),
}


def evaluate_claims(rows: list[dict], groups: dict[str, list[str]], min_train_accuracy: float,
                    draws: int = DRAWS) -> list[dict]:
    """The fig3 claim records: the rules of :mod:`.rules`, intervals from a network bootstrap."""
    from .rules import RULES

    tables = {}
    for r in rows:
        if r["comparison"] != "untrained":
            tables.setdefault((r["data"], r["measure"], r["layer"]), {})[(r["a"], r["b"])] = r["distance"]
    tables = {k: PairTable(v) for k, v in tables.items()}
    out = []
    for measure in (m for m in ("pwcca", THRESHOLDED) if any(m in ms for ms in CLAIMS.values())):
        rule_ids = [rule_id for rule_id, measures in CLAIMS.items() if measure in measures]
        values = claim_values(tables, groups, measure, min_train_accuracy)
        keys = list(dict.fromkeys(RULES[rule_id].value for rule_id in rule_ids))
        intervals = claim_records.group_bootstrap_many(  # one resample feeds every claim of the measure
            groups, lambda G, m=measure: claim_values(tables, G, m, min_train_accuracy), keys, draws=draws)
        scope = "PWCCA" if measure == "pwcca" else f"PWCCA after SVD thresholding ({KEEP:.0%} of the variance)"
        out += [(rule_id, measure, claim_records.decide(rule_id, values, interval=intervals[RULES[rule_id].value],
                                                        scope=scope)) for rule_id in rule_ids]
    order = {(rule_id, m): i for i, (rule_id, ms) in enumerate(CLAIMS.items()) for m in ms}
    return [record for *_, record in sorted(out, key=lambda r: order[(r[0], r[1])])]


def plot(summary: dict, path, title: str = "") -> None:
    plt = pyplot()
    panels = [("train", "pwcca", "PWCCA distance, training images"),
              ("train", THRESHOLDED, f"PWCCA after SVD ({KEEP:.0%}), training images"),
              ("test", "pwcca", "PWCCA distance, test images (A10)"),
              ("train", "mean_cca", "unweighted mean CCA distance (A9)"),
              ("train", "cosine", "cosine distance (neuron by neuron, A5)")]
    colours = {"true-true": "tab:blue", "random-random": "tab:red", "true-random": "tab:purple", "untrained": "0.5"}
    labels = {"true-true": "generalising", "random-random": "memorising", "true-random": "inter", "untrained": "untrained"}
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4.0), dpi=110)
    xs = np.arange(len(LAYERS))
    for ax, (data, measure, heading) in zip(axes, panels):
        for comp, colour in colours.items():
            if (data, measure, comp, LAYERS[0]) not in summary:
                continue
            vals = np.array([summary[(data, measure, comp, layer)] for layer in LAYERS])
            ax.errorbar(xs, vals[:, 0], yerr=vals[:, 1], marker="o", capsize=3, color=colour, label=labels[comp],
                        linestyle="--" if comp == "untrained" else "-")
        ax.set_xticks(xs, LAYERS, rotation=30, fontsize=9)
        ax.set_title(heading, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("distance (mean ± sd over pairs)")
    axes[0].legend(fontsize=9)
    fig.suptitle(f"Figure 3: generalising vs memorising networks ({title})", fontsize=11)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
