"""Pages generated at build time (mkdocs-gen-files) from the code and from ``results/``:
the API reference, the reproductions, the sanity tables and the invariance table. Nothing
here is written by hand twice: the registry, the claim records and the sanity runs are the
sources."""

from __future__ import annotations

import json
from pathlib import Path

import mkdocs_gen_files

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results"

# ---- API reference ------------------------------------------------------------------------
REFERENCE = [
    ("The CCA family", ["ccalens.cca", "ccalens.mean_cca", "ccalens.svcca", "ccalens.pwcca", "ccalens.factorize",
                        "ccalens.Factor"]),
    ("The other measures", ["ccalens.core.cka.cka", "ccalens.MinibatchCKA", "ccalens.procrustes", "ccalens.shape_metric",
                            "ccalens.core.rsa.rsa", "ccalens.core.predictivity.predictivity", "ccalens.mutual_knn", "ccalens.cknna",
                            "ccalens.cosine", "ccalens.euclidean", "ccalens.dft_cca"]),
    ("Many representations, whole models", ["ccalens.pairwise", "ccalens.PairwiseResult", "ccalens.compare_models",
                                            "ccalens.ModelComparison"]),
    ("Out of core", ["ccalens.stream.compare", "ccalens.stream.pairwise", "ccalens.stream.compress",
                     "ccalens.stream.RowSummary"]),
    ("Recording activations", ["ccalens.extract.core.extract", "ccalens.extract.core.layer_names"]),
    ("Uncertainty", ["ccalens.stats", "ccalens.core.intervals", "ccalens.core.regimes"]),
    ("Which is closer? Paired differences", ["ccalens.paired_difference", "ccalens.paired_differences",
                                              "ccalens.PairedDifference", "ccalens.paired_row"]),
    ("Results", ["ccalens.CCAResult", "ccalens.PWCCAResult", "ccalens.SVCCAResult", "ccalens.MeanCCAResult",
                 "ccalens.CKAResult", "ccalens.ProcrustesResult", "ccalens.ShapeResult", "ccalens.RSAResult",
                 "ccalens.PredictivityResult", "ccalens.NeighbourResult", "ccalens.MatchedResult",
                 "ccalens.NullResult", "ccalens.BootstrapResult"]),
    ("The measure registry", ["ccalens.core.registry.MeasureSpec", "ccalens.core.registry.register"]),
]

with mkdocs_gen_files.open("reference.md", "w") as f:
    f.write("# Reference\n\nEvery public function and class, from its docstring. Arrays are "
            "(datapoints, neurons) everywhere.\n\n")
    for title, names in REFERENCE:
        f.write(f"## {title}\n\n")
        for name in names:
            f.write(f"::: {name}\n    options:\n      heading_level: 3\n\n")

# ---- reproductions ---------------------------------------------------------------------------
ORDER = ["fig1", "fig1-rnn", "fig2", "fig3", "fig4", "fig5", "fig6", "seq"]


def interval_text(interval) -> str:
    if not interval or interval.get("low") is None:
        return "—"
    return f"[{interval['low']:.3g}, {interval['high']:.3g}] ({interval.get('method', '')})"


def value_text(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


with mkdocs_gen_files.open("reproductions.md", "w") as f:
    small = RESULTS / "small"
    f.write("# The paper's findings, reproduced\n\n"
            "Every figure of Morcos, Raghu & Bengio (2018) rerun at `--scale small` on 2 CPU cores "
            "(`make results`; CNN figures on Fashion-MNIST, RNN figures on the Penn Treebank), each claim decided "
            "by a rule committed before the run (`src/ccalens/experiments/rules.py`), with its bootstrap interval "
            "and its status: held, not held, or premise not met. Generated from `results/small/`.\n\n")
    f.write("| figure | claim | scope | value | 95 % interval | status |\n|---|---|---|---|---|---|\n")
    docs = {}
    for figure in ORDER:
        path = small / figure / "claims.json"
        if not path.exists():
            continue
        docs[figure] = json.loads(path.read_text())
        for c in docs[figure].get("claims", []):
            status = f"**{c['status']}**" if c["status"] == "held" else c["status"]
            f.write(f"| {figure} | `{c['id']}` | {c.get('scope') or ''} | {value_text(c.get('value'))} | "
                    f"{interval_text(c.get('interval'))} | {status} |\n")
    f.write("\n" + (Path(__file__).parent / "reproductions.in.md").read_text() + "\n")
    for figure, doc in docs.items():
        f.write(f"\n## {figure}\n\n")
        f.write(f"`{doc.get('command', '')}`\n\n")
        for png in sorted((small / figure).glob("*.png")):
            target = f"assets/reproductions/{figure}-{png.name}"
            with mkdocs_gen_files.open(target, "wb") as out:
                out.write(png.read_bytes())
            f.write(f"![{figure}]({target})\n\n")
        for c in doc.get("claims", []):
            scope = f" ({c['scope']})" if c.get("scope") else ""
            f.write(f"**`{c['id']}`{scope}: {c['status']}.** *{c['claim']}*  \n"
                    f"Rule: {c['rule']['decision']}; premise: {c['rule']['premise']}. "
                    f"Value {value_text(c.get('value'))}, interval {interval_text(c.get('interval'))}; "
                    f"rule commit `{str(c.get('rule_commit', ''))[:10]}`.\n\n")
    revisions = RESULTS / "REVISIONS.md"
    if revisions.exists():
        text = revisions.read_text().replace("\n# ", "\n## ")
        f.write("\n---\n\n" + text.replace("# Revisions", "## Revisions", 1) + "\n")

# ---- the sanity tables -------------------------------------------------------------------------
from ccalens.core import registry  # noqa: E402  (after the pages that need no import)
from ccalens.experiments.sanity import format_rows  # noqa: E402


def sanity_table(path: Path) -> str:
    result = json.loads(path.read_text())
    head = ["measure", "specificity", "sensitivity", *registry.TRANSFORMS, "docs agree"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in format_rows({"table": [{k: (float("nan") if v is None and k in ("specificity", "sensitivity") else v)
                                      for k, v in r.items()} for r in result["table"]]}):
        lines.append("| " + " | ".join(row) + " |")
    cfg = result.get("config", {})
    where = (f"{result.get('source')}: {result.get('networks')} networks, {result.get('datapoints')} datapoints, "
             f"{cfg.get('epochs')} epochs, {result.get('seconds')} s")
    return where + "\n\n" + "\n".join(lines)


with mkdocs_gen_files.open("how-to/choose-a-measure.md", "w") as f:
    f.write((Path(__file__).parent / "how-to" / "choose-a-measure.in.md").read_text())
    for name, folder in (("Digits", "sanity"), ("Fashion-MNIST", "sanity-fashion-mnist")):
        path = RESULTS / folder / "sanity.json"
        if path.exists():
            f.write(f"\n## {name} (`results/{folder}/`)\n\n{sanity_table(path)}\n")
    with mkdocs_gen_files.open("assets/sanity.png", "wb") as out:
        out.write((RESULTS / "sanity" / "sanity.png").read_bytes())
    f.write("\n![the sanity suite on digits](../assets/sanity.png)\n")

# ---- invariances, from the registry ------------------------------------------------------------
with mkdocs_gen_files.open("explanation/invariances.md", "w") as f:
    f.write((Path(__file__).parent / "explanation" / "invariances.in.md").read_text())
    head = ["measure", "what", *registry.TRANSFORMS, "directed", "streams"]
    f.write("\n| " + " | ".join(head) + " |\n|" + "---|" * len(head) + "\n")
    for spec in registry.MEASURES.values():
        if spec.alias_of:
            continue
        cells = [f"`{spec.name}`", spec.title] + ["yes" if t in spec.invariant_to else "no"
                                                  for t in registry.TRANSFORMS]
        cells += ["yes" if spec.directed else "no", "yes" if spec.streamable else "no"]
        f.write("| " + " | ".join(cells) + " |\n")

# ---- intervals and nulls, from the committed benchmark outputs -------------------------------
BENCH = ROOT / "benchmarks" / "results"


def coverage_tables(result: dict) -> str:
    """Per family, each method's worst coverage and misses at >= 30 datapoints per neuron
    (the decision), then the default's coverage in every cell of the grid."""
    design, families = result["design"], result["decision"]["families"]
    out = [f"{design['samples']} samples per cell, {design['draws']} draws each, nominal "
           f"{100 * design['confidence']:g} %; a miss is a coverage below {design['target_at_S']:.3f} (0.90 within "
           f"Monte Carlo error). The default of each family is in bold.\n",
           "| family | " + " | ".join(m for m in next(iter(families.values()))["scores"]) + " |",
           "|---|" + "---|" * len(next(iter(families.values()))["scores"])]
    for family, d in families.items():
        cells = []
        for method, s in d["scores"].items():
            text = f"{s['worst']:.2f} ({s['misses']}/{s['cells']} missed)"
            cells.append(f"**{text}**" if method == d["default"] else text)
        out.append(f"| {family} | " + " | ".join(cells) + " |")
    out.append("\nThe default's coverage in each cell (population x datapoints per neuron); the measures of "
               "n x n matrices ran at 10 and 30 per neuron only:\n")
    ratios = design["ratios"]
    out += ["| measure | population | " + " | ".join(f"{r}/neuron" for r in ratios) + " |",
            "|---|---|" + "---|" * len(ratios)]
    by = {(r["measure"], r["pop"], r["ratio"], r["method"]): r["coverage"] for r in result["decision"]["rows"]}
    for family, d in families.items():
        for measure in dict.fromkeys(r["measure"] for r in result["decision"]["rows"] if r["family"] == family):
            for pop in design["populations"]:
                vals = [by.get((measure, pop, r, d["default"])) for r in ratios]
                if all(v is None for v in vals):
                    continue
                out.append(f"| `{measure}` ({d['default']}) | {pop} | "
                           + " | ".join("" if v is None else f"{v:.2f}" for v in vals) + " |")
    return "\n".join(out) + "\n"


def paired_tables(result: dict) -> str:
    design, families = result["design"], result["decision"]
    methods = list(next(iter(families.values()))["scores"])
    out = [f"n = {design['n']} ({design['ratio']} datapoints per neuron); {design['samples']['null']} null and "
           f"{design['samples']['alternative']} alternative samples per population ({', '.join(design['populations'])}); "
           f"a miss is a null coverage of 0 below {design['null_target_at_S']:.3f}. Each cell: worst null coverage, "
           f"misses, and the mean power (interval wholly above 0 when Z's correlations are {design['shrink']} x Y's). "
           f"The default is in bold.\n",
           "| family | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]
    for family, d in families.items():
        cells = []
        for method in methods:
            s = d["scores"][method]
            text = f"{s['worst_null_coverage']:.2f} ({s['misses']}/{s['cells']}), power {s['power']:.2f}"
            cells.append(f"**{text}**" if method == d["default"] else text)
        out.append(f"| {family} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def null_tables(result: dict) -> str:
    design = result["design"]
    out = [f"{design['samples']} samples per cell, {design['permutations']} permutations each; liberal above "
           f"{design['liberal_above']:.3f}, conservative below {design['conservative_below']:.3f}.\n",
           "| measure | " + " | ".join(f"{c['pop']}, {c['n']}" for c in result["cells"]) + " |",
           "|---|" + "---|" * len(result["cells"])]
    for measure in result["cells"][0]["rate"]:
        out.append(f"| `{measure}` | " + " | ".join(f"{c['rate'].get(measure, float('nan')):.3f}"
                                                   for c in result["cells"]) + " |")
    liberal = ", ".join(f"`{c['measure']}` ({c['pop']}, {c['ratio']}/neuron: {c['rate']:.3f})"
                        for c in result["liberal"]) or "none"
    text = "\n".join(out) + f"\n\nLiberal cells: {liberal}.\n"
    rep = result.get("replication")
    if rep:
        again = ", ".join(f"`{c['measure']}` ({c['pop']}, {c['ratio']}/neuron: {c['rate']:.3f})"
                          for c in rep["liberal"]) or "none"
        rates = "; ".join(f"`{m}` ({c['pop']}, {c['ratio']}/neuron) {r:.3f}" for c in rep["cells"]
                          for m, r in c["rate"].items())
        text += (f"\nEach liberal cell rerun on {rep['samples']} fresh samples (liberal above "
                 f"{rep['liberal_above']:.4f}): {rates}. Liberal again: {again}.\n")
    for c in result.get("diagnosis", {}).get("cells", []):
        text += (f"\n`{c['measure']}` ({c['pop']}, {c['ratio']}/neuron) on {c['samples']} more samples, looking for a "
                 f"fault: p <= 0.05 in {c['rate_05']:.3f}, p <= 0.10 in {c['rate_10']:.3f}, p <= 0.50 in "
                 f"{c['rate_50']:.3f}, mean p {c['mean_p']:.3f} (an exact test: 0.05, 0.10, 0.50 and 0.505). This "
                 f"look was added after the replication, without a pass rule committed before it.\n")
    return text


with mkdocs_gen_files.open("explanation/bias-and-nulls.md", "w") as f:
    f.write((Path(__file__).parent / "explanation" / "bias-and-nulls.in.md").read_text())
    for title, name, table in (("Coverage of every interval method", "interval_coverage", coverage_tables),
                               ("Paired differences: calibration and power", "paired_calibration", paired_tables),
                               ("Permutation nulls under independence", "null_calibration", null_tables)):
        path = BENCH / f"{name}.json"
        if path.exists():
            f.write(f"\n## {title} (`benchmarks/{name}.py`)\n\n{table(json.loads(path.read_text()))}")
