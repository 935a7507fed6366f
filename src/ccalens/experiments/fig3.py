"""The paper's Figure 3 (and A10): generalising networks converge to more similar solutions.

A group of networks trained on the true labels (generalising) and a group trained on one
fixed random permutation of the labels (memorising), with different seeds, are compared
layer by layer: pairwise PWCCA distance within each group and between the groups
(Morcos, Raghu & Bengio 2018, Section 3.1). Representations are taken on the training
images, and on test images for the output-layer variant of the paper's Figure A10. The
same architecture at initialisation is compared the same way, as the baseline. Cosine and
Euclidean distance (neuron by neuron) and unweighted mean CCA are reported too.

Claims and the rules that decide them (fixed before the first run; PWCCA distance,
symmetrised, means over pairs; tt = within the generalising group, rr = within the
memorising group, tr = between the groups):

* ``early_layers_equal``: at conv1, |tt - rr| <= 0.05;
* ``later_layers_generalisers_closer``: tt < rr at conv3 and at fc1, and rr - tt >= 0.05
  at fc1;
* ``memorisers_as_close_to_generalisers``: at fc1, |rr - tr| <= 0.05;
* ``softmax_converges_on_train``: at the logits on training images, tt <= 0.1 and rr <= 0.1;
* ``test_output_only_generalisers`` (Figure A10): at the logits on test images,
  rr - tt >= 0.1;
* ``pwcca_separates_best``: at fc1, the separation (rr - tt) / (sd_rr + sd_tt) is larger
  for PWCCA than for unweighted mean CCA, cosine and Euclidean distance.
"""

from __future__ import annotations

import numpy as np

from . import cnn
from .common import Context, claim, mean_sd, pair_rows, pyplot, write_outputs

FIGURE = "fig3"
MEASURES = ("pwcca", "mean_cca", "svcca", "cosine", "euclidean")
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

def run(ctx: Context) -> dict:
    ctx.log(f"{FIGURE}: {ctx.scale.group} networks on true labels, {ctx.scale.group} on permuted labels "
            f"({ctx.split.name}, {len(ctx.split.x_train)} training images)")
    specs = networks(ctx)
    records = {name: ctx.network(spec) for name, spec in specs.items()}
    widths = cnn.layer_widths(ctx.scale.width, ctx.split.classes)
    ratios = [ctx.check_ratio(widths, "train"), ctx.check_ratio(widths, "test")]

    train = {name: ctx.activations(FIGURE, spec) for name, spec in specs.items()}
    test = {name: ctx.activations(FIGURE, spec, data="test") for name, spec in specs.items()}
    untrained = {f"untrained{k}": ctx.activations(FIGURE, specs[f"true{k}"], epoch=0) for k in range(ctx.scale.group)}

    rows = pair_rows(ctx, FIGURE, train, cnn.LAYERS, MEASURES, {"data": "train"})
    rows += pair_rows(ctx, FIGURE, untrained, cnn.LAYERS, MEASURES, {"data": "train"})
    rows += pair_rows(ctx, FIGURE, test, cnn.LAYERS, ("pwcca", "mean_cca"), {"data": "test"})
    for row in rows:
        row["comparison"] = comparison_of(row["a"], row["b"])
    summary = summarise(rows)
    claims = evaluate_claims(summary)
    nets = [{"network": name, **{k: records[name][k] for k in ("epochs", "train_accuracy", "test_accuracy")},
             "labels": specs[name].labels, "seed": specs[name].seed} for name in specs]
    paths = write_outputs(ctx, FIGURE, rows, claims, {"networks": nets, "datapoints_per_neuron": ratios,
                                                      "summary": _jsonable(summary)})
    paths["png"] = ctx.root / FIGURE / f"{FIGURE}.png"
    plot(summary, paths["png"], title=f"{ctx.split.name}, {ctx.scale.group} networks per group")
    return {"claims": claims, "paths": paths, "summary": summary, "networks": nets}


def summarise(rows: list[dict]) -> dict:
    """(data, measure, comparison, layer) -> (mean, sd) over pairs."""
    out: dict = {}
    keys = {(r["data"], r["measure"], r["comparison"], r["layer"]) for r in rows}
    for key in keys:
        out[key] = mean_sd(r["distance"] for r in rows if (r["data"], r["measure"], r["comparison"], r["layer"]) == key)
    return out


def _jsonable(summary: dict) -> list[dict]:
    return [{"data": d, "measure": m, "comparison": c, "layer": layer, "mean": v[0], "sd": v[1]}
            for (d, m, c, layer), v in sorted(summary.items())]


def evaluate_claims(summary: dict) -> list[dict]:
    """The rules of the module docstring, applied to the summary."""
    def mean(measure, comp, layer, data="train"):
        return summary[(data, measure, comp, layer)][0]

    def sd(measure, comp, layer, data="train"):
        return summary[(data, measure, comp, layer)][1]

    tt = {layer: mean("pwcca", "true-true", layer) for layer in cnn.LAYERS}
    rr = {layer: mean("pwcca", "random-random", layer) for layer in cnn.LAYERS}
    tr = {layer: mean("pwcca", "true-random", layer) for layer in cnn.LAYERS}
    claims = [
        claim("early_layers_equal",
              "Early layers are equally similar among generalising and among memorising networks.",
              {"tt_conv1": tt["conv1"], "rr_conv1": rr["conv1"]}, "|tt - rr| <= 0.05 at conv1",
              abs(tt["conv1"] - rr["conv1"]) <= 0.05),
        claim("later_layers_generalisers_closer",
              "In later layers, generalising networks are more similar to each other than memorising ones.",
              {"tt_conv3": tt["conv3"], "rr_conv3": rr["conv3"], "tt_fc1": tt["fc1"], "rr_fc1": rr["fc1"]},
              "tt < rr at conv3 and fc1, and rr - tt >= 0.05 at fc1",
              tt["conv3"] < rr["conv3"] and tt["fc1"] < rr["fc1"] and rr["fc1"] - tt["fc1"] >= 0.05),
        claim("memorisers_as_close_to_generalisers",
              "Memorising networks are as similar to each other as they are to generalising networks.",
              {"rr_fc1": rr["fc1"], "tr_fc1": tr["fc1"]}, "|rr - tr| <= 0.05 at fc1",
              abs(rr["fc1"] - tr["fc1"]) <= 0.05),
        claim("softmax_converges_on_train",
              "On training data, both groups converge to nearly identical outputs (near-zero training loss).",
              {"tt_logits": tt["logits"], "rr_logits": rr["logits"]}, "tt <= 0.1 and rr <= 0.1 at the logits",
              tt["logits"] <= 0.1 and rr["logits"] <= 0.1),
    ]
    tt_test, rr_test = mean("pwcca", "true-true", "logits", "test"), mean("pwcca", "random-random", "logits", "test")
    claims.append(claim("test_output_only_generalisers",
                        "On test data, only the generalising networks converge at the output (Figure A10).",
                        {"tt_logits_test": tt_test, "rr_logits_test": rr_test}, "rr - tt >= 0.1 at the logits, test images",
                        rr_test - tt_test >= 0.1))
    separation = {}
    for m in ("pwcca", "mean_cca", "cosine", "euclidean"):
        gap = mean(m, "random-random", "fc1") - mean(m, "true-true", "fc1")
        spread = sd(m, "random-random", "fc1") + sd(m, "true-true", "fc1")
        separation[m] = float(gap / spread) if spread > 0 else float("inf") * np.sign(gap)
    claims.append(claim("pwcca_separates_best",
                        "Cosine, Euclidean distance and unweighted mean CCA miss or blur the effect that PWCCA shows.",
                        {"separation_fc1": separation},
                        "(rr - tt) / (sd_rr + sd_tt) at fc1 is largest for PWCCA",
                        all(separation["pwcca"] > v for k, v in separation.items() if k != "pwcca")))
    return claims


def plot(summary: dict, path, title: str = "") -> None:
    plt = pyplot()
    panels = [("train", "pwcca", "PWCCA distance, training images"),
              ("test", "pwcca", "PWCCA distance, test images (A10)"),
              ("train", "mean_cca", "unweighted mean CCA distance"),
              ("train", "cosine", "cosine distance (neuron by neuron)")]
    colours = {"true-true": "tab:blue", "random-random": "tab:red", "true-random": "tab:purple", "untrained": "0.5"}
    labels = {"true-true": "generalising", "random-random": "memorising", "true-random": "inter", "untrained": "untrained"}
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.8), dpi=110)
    xs = np.arange(len(cnn.LAYERS))
    for ax, (data, measure, heading) in zip(axes, panels):
        for comp, colour in colours.items():
            if (data, measure, comp, cnn.LAYERS[0]) not in summary:
                continue
            vals = np.array([summary[(data, measure, comp, layer)] for layer in cnn.LAYERS])
            ax.errorbar(xs, vals[:, 0], yerr=vals[:, 1], marker="o", capsize=3, color=colour, label=labels[comp],
                        linestyle="--" if comp == "untrained" else "-")
        ax.set_xticks(xs, cnn.LAYERS)
        ax.set_title(heading, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("distance (mean ± sd over pairs)")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"Figure 3: generalising vs memorising networks ({title})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)

