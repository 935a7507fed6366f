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
as a second record, on thresholded PWCCA (the four claims about training images). Each
rule names its parts, each one statistic measured here (:func:`claim_values`: e.g.
``conv1_diff_minus_spread``, ``rr_minus_tt_fc1``, ``tt_softmax_minus_untrained``,
``fc1_fall_pwcca_minus_mean_cca``, ``sep_cosine``) and decided by its interval against
its threshold: ``held`` when every part's interval lies on its held side, ``not held``
when one lies wholly on the other side, else ``inconclusive``
(:func:`.claims.decide`). The intervals are delete-one jackknife t intervals over the
networks of both groups (:func:`.claims.network_jackknife`, each network left out of its
group in turn), at the rule's Bonferroni confidence 1 - 0.05 / parts
(:func:`.claims.part_confidence`). The untrained networks (the generalisers'
initialisations), the control of the softmax claims, are fixed and not resampled.
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
    untrained_test = {f"untrained{k}": with_softmax(ctx.activations(FIGURE, specs[f"true{k}"], epoch=0, data="test"))
                      for k in range(ctx.scale.group)}

    rows = pair_rows(ctx, FIGURE, train_reps, LAYERS, MEASURES, {"data": "train"})
    rows += thresholded_rows(train_reps, LAYERS, {"data": "train"})
    rows += pair_rows(ctx, FIGURE, untrained, LAYERS, MEASURES, {"data": "train"})
    rows += thresholded_rows(untrained, LAYERS, {"data": "train"})  # the softmax claim's control, thresholded
    rows += pair_rows(ctx, FIGURE, test_reps, LAYERS, ("pwcca", "mean_cca"), {"data": "test"})
    rows += pair_rows(ctx, FIGURE, untrained_test, LAYERS, ("pwcca", "mean_cca"), {"data": "test"})
    for row in rows:
        row["comparison"] = comparison_of(row["a"], row["b"])
    summary = summarise(rows)
    groups = {"true": [n for n in specs if n.startswith("true")], "random": [n for n in specs if n.startswith("random")]}
    min_acc = min(records[n]["train_accuracy"] for n in specs)
    claims = evaluate_claims(rows, groups, min_acc)
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


def _pairs(table: PairTable, A, B=None) -> list[float]:
    """The distances over pairs of distinct networks within ``A``, or between ``A`` and ``B``."""
    if B is None:
        return [table.d[(A[i], A[j])] for i in range(len(A)) for j in range(i + 1, len(A)) if A[i] != A[j]]
    return [table.d[(a, b)] for a in A for b in B if a != b]


def separation(table: PairTable, T, R) -> float:
    """(rr - tt) / (sd_rr + sd_tt) over the pairs within each group.

    NaN (an undefined statistic, whose interval is then undefined) unless each group holds
    at least two distinct pairs of networks: one pair has no spread, and a spread of
    rounding error gave values of 1e13.
    """
    tt, rr = _pairs(table, sorted(set(T))), _pairs(table, sorted(set(R)))
    if len(tt) < 2 or len(rr) < 2:
        return float("nan")
    spread = float(np.std(tt) + np.std(rr))
    return float(np.mean(rr) - np.mean(tt)) / spread if spread > 0 else float("nan")


def _fall(top: float, low: float) -> float:
    """The relative fall (top - low) / top; NaN when top is not positive."""
    return (top - low) / top if np.isfinite(top) and top > 0 else float("nan")


def claim_values(tables: dict, G: dict, measure: str, min_train_accuracy: float, untrained=()) -> dict:
    """Every value the fig3 rules read, for one measure, on the groups ``G`` (a jackknife's kept networks).

    ``untrained``: the untrained networks' names, the fixed control of the softmax claims
    (their mean pair distance at the softmax, the same for both groups); the values that
    need it are NaN (so their parts are inconclusive) where the tables hold no such pair.
    """
    T, R = G["true"], G["random"]
    values = {"min_train_accuracy": min_train_accuracy}
    sd = {}
    for layer in LAYERS:
        t = tables[("train", measure, layer)]
        for key, pairs in (("tt", _pairs(t, T)), ("rr", _pairs(t, R)), ("tr", _pairs(t, T, R))):
            values[f"{key}_{layer}"], sd[f"{key}_{layer}"] = mean_sd(pairs)
    for key in ("tt_conv1", "rr_conv1"):
        values[f"sd_{key}"] = sd[key]
    values["rr_minus_tt_conv1"] = values["rr_conv1"] - values["tt_conv1"]
    values["conv1_spread"] = 0.5 * (sd["tt_conv1"] + sd["rr_conv1"])
    # equivalence (two one-sided parts): -spread < rr - tt < +spread; the signed difference has a
    # smooth jackknife, where |rr - tt| near 0 does not (its intervals straddled 0 on equal groups)
    values["conv1_diff_minus_spread"] = values["rr_minus_tt_conv1"] - values["conv1_spread"]
    values["conv1_diff_plus_spread"] = values["rr_minus_tt_conv1"] + values["conv1_spread"]
    for layer in ("conv3", "fc1"):
        values[f"rr_minus_tt_{layer}"] = values[f"rr_{layer}"] - values[f"tt_{layer}"]
    for layer in ("conv2", "conv3", "fc1"):
        spread = 0.5 * (sd[f"rr_{layer}"] + sd[f"tr_{layer}"])
        values[f"{layer}_rr_tr_spread"] = spread
        values[f"{layer}_rr_tr_minus_spread"] = values[f"rr_{layer}"] - values[f"tr_{layer}"] - spread
        values[f"{layer}_rr_tr_plus_spread"] = values[f"rr_{layer}"] - values[f"tr_{layer}"] + spread
    values["max_abs_rr_minus_tr"] = max(abs(values[f"rr_{layer}"] - values[f"tr_{layer}"])
                                        for layer in ("conv2", "conv3", "fc1"))
    values["max_within_softmax"] = max(values["tt_softmax"], values["rr_softmax"])
    for data, tail in (("train", ""), ("test", "_test")):
        table = tables.get((data, measure, "softmax"))
        if table is None:
            continue
        u = mean_sd(_pairs(table, list(untrained)))[0] if all(
            (a, b) in table.d for i, a in enumerate(untrained) for b in untrained[i + 1:]) else float("nan")
        values[f"untrained_softmax{tail}"] = u
        if tail:
            values["tt_softmax_test"], values["rr_softmax_test"] = table.mean(T), table.mean(R)
            values["rr_minus_tt_softmax_test"] = values["rr_softmax_test"] - values["tt_softmax_test"]
        for g in ("tt", "rr"):
            values[f"{g}_softmax{tail}_minus_untrained"] = values[f"{g}_softmax{tail}"] - u
    if measure == "pwcca":
        tt = {m: {layer: tables[("train", m, layer)].mean(T) for layer in ("conv3", "fc1", "logits")}
              for m in ("pwcca", "mean_cca")}
        for m in ("pwcca", "mean_cca"):
            values[f"late_drop_{m}"] = tt[m]["conv3"] - 0.5 * (tt[m]["fc1"] + tt[m]["logits"])
            for layer in ("fc1", "logits"):
                values[f"{layer}_fall_{m}"] = _fall(tt[m]["conv3"], tt[m][layer])
        values["late_drop_pwcca_minus_mean_cca"] = values["late_drop_pwcca"] - values["late_drop_mean_cca"]
        for layer in ("fc1", "logits"):
            values[f"{layer}_fall_pwcca_minus_mean_cca"] = values[f"{layer}_fall_pwcca"] - values[f"{layer}_fall_mean_cca"]
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
_UNTRAINED_CONTROL = ("fig3.softmax_converges_train", "fig3.softmax_test_only_generalisers")


def _note(rule, values: dict, intervals: dict, untrained: list[str]) -> str | None:
    notes = []
    if rule.id in _UNTRAINED_CONTROL:
        notes.append(f"the control is the mean distance between the {len(untrained)} untrained networks (the "
                     "generalisers' initialisations), the same for both groups, fixed: not resampled by the jackknife")
        missing = [p.name for p in rule.parts if "untrained" in p.name and not np.isfinite(values[p.name])]
        if missing:
            notes.append("no untrained pairs on these images: " + ", ".join(missing) + " NaN (inconclusive)")
    for part in rule.parts:
        iv = intervals[part.name]
        if iv is not None and iv.get("low") is None:
            notes.append(f"{part.name}: no interval ({iv.get('reason')})")
    return "; ".join(notes) or None


def evaluate_claims(rows: list[dict], groups: dict[str, list[str]], min_train_accuracy: float) -> list[dict]:
    """The fig3 claim records: the rules of :mod:`.rules` by parts, intervals from a network jackknife."""
    from .rules import RULES

    tables = {}
    for r in rows:  # the untrained networks' pairs are kept: the softmax claims' control
        tables.setdefault((r["data"], r["measure"], r["layer"]), {})[(r["a"], r["b"])] = r["distance"]
    tables = {k: PairTable(v) for k, v in tables.items()}
    untrained = sorted({n for r in rows if r.get("comparison") == "untrained" for n in (r["a"], r["b"])})
    groups = {"true": list(groups["true"]), "random": list(groups["random"])}
    replicates = min(len(groups["true"]), len(groups["random"]))
    out = []
    for measure in (m for m in ("pwcca", THRESHOLDED) if any(m in ms for ms in CLAIMS.values())):
        rule_ids = [rule_id for rule_id, measures in CLAIMS.items() if measure in measures]
        stats = lambda G, m=measure: claim_values(tables, G, m, min_train_accuracy, untrained)  # noqa: E731
        values = stats(groups)
        intervals = {}
        for level in sorted({claim_records.part_confidence(rule_id) for rule_id in rule_ids}):
            keys = list(dict.fromkeys(p.name for rule_id in rule_ids for p in RULES[rule_id].parts
                                      if claim_records.part_confidence(rule_id) == level))
            intervals[level] = claim_records.network_jackknife(groups, stats, keys, confidence=level)
        scope = "PWCCA" if measure == "pwcca" else f"PWCCA after SVD thresholding ({KEEP:.0%} of the variance)"
        for rule_id in rule_ids:
            rule = RULES[rule_id]
            part_intervals = {p.name: intervals[claim_records.part_confidence(rule_id)][p.name] for p in rule.parts}
            out.append((rule_id, measure, claim_records.decide(
                rule_id, values, intervals=part_intervals, scope=scope, replicates=replicates,
                note=_note(rule, values, part_intervals, untrained))))
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
