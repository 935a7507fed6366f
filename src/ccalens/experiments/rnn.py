"""The paper's RNN findings through training time: Figure 6 (and A8), and Figure 1's RNN panels.

A shallow and a deeper LSTM language model (:mod:`.lstm`) are trained on Penn Treebank to
a validation-perplexity plateau (the paper's premise: performance has converged), with a
checkpoint at every evaluation. Every layer's hidden state on the probe set (every
position of every probe window is a datapoint) is recorded at each checkpoint with
:func:`ccalens.extract.extract` into a store, and compared with its final state
(Morcos, Raghu & Bengio 2018, Section 4.1).

**fig6.** For each layer, the similarity to the final representation at every checkpoint,
with PWCCA (directed: weights from the checkpoint's side and from the final side, both
reported; the claims use their mean), and the controls of Figure A8: unweighted mean CCA,
cosine similarity and Euclidean distance of the raw activations. Layers are already ordered
at initialisation, so each curve is also normalised by its start: progress
p(t) = (s(t) - s(0)) / (s(T) - s(0)) (for Euclidean distance, (d(0) - d(t)) / d(0)).

* convergence time t90: the first checkpoint (as a fraction of training) with p >= 0.9;
* crossing time: the same, linearly interpolated between checkpoints (continuous);
* ordering score: the mean over interior checkpoints and adjacent layer pairs (l, l+1) of
  sign(p_l(t) - p_{l+1}(t)): +1 when lower layers are always further along, -1 when
  always behind;
* clarity of the bottom-up ordering, per measure: the mean over adjacent layers of the gap
  in crossing time (upper minus lower), divided by that gap's standard deviation over a
  bootstrap of the probe windows (``DRAWS`` resamples), averaged over both models. A
  clearer measure shows the ordering further above its own sampling noise.

**fig1-rnn.** Figure 1's analysis (:mod:`.fig1`) on each layer of the shallow model, with
checkpoints in place of epochs and validation perplexity in place of test accuracy
(converged: within 2 % of the perplexity at T). T is chosen by the same criterion as for
the CNN (:func:`.fig1.choose_T`), and t_early is the first checkpoint after the initial
unigram plateau: the first whose validation perplexity is below 0.9 x that of the
training split's unigram model (add-one smoothed).

Claims: ``fig6.*`` and ``fig1rnn.*`` in :mod:`.rules`; intervals from a bootstrap over probe
windows.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import claims as claim_records
from . import lstm
from .cnn import _device
from .common import naive_distance, write_outputs
from ..plot import pyplot
from .pipeline import Pipeline

FIGURE = "fig6"
FIG1 = "fig1-rnn"
CLARITY_MEASURES = ("pwcca", "mean_cca", "cosine", "euclidean")


@dataclass
class RNNContext:
    scale: lstm.RNNScale
    root: Path
    log: object = print
    progress: bool = False
    corpus: object = None
    pipe: Pipeline = None
    command: str | None = None
    started: float = field(default_factory=time.perf_counter)

    def __post_init__(self):
        self.root = Path(self.root)
        if self.corpus is None:
            self.corpus = lstm.load_corpus(self.scale)
        if self.pipe is None:
            self.pipe = Pipeline(self.root, log=self.log)
        self.data_print = lstm.corpus_fingerprint(self.corpus)
        self.split = type("CorpusInfo", (), {"name": "penn-treebank"})()  # for write_outputs

    def spec(self, layers: int, seed: int = 0) -> lstm.LMSpec:
        s = self.scale
        return lstm.LMSpec(layers=layers, hidden=s.hidden, embedding=s.embedding, seed=seed, epochs=s.epochs,
                           lr=s.lr, batch_size=s.batch_size, bptt=s.bptt, evals_per_epoch=s.evals_per_epoch,
                           post_plateau_evals=s.post_plateau_evals, escape_unigram=s.escape_unigram)

    def model(self, spec: lstm.LMSpec) -> dict:
        folder = lstm.lm_folder(self.root, spec, self.corpus)

        def run():
            lstm.train_lm(spec, self.corpus, self.root, device=self.scale.device, log=self.log,
                          progress=self.progress)

        record_path = folder / "record.json"
        outputs = [record_path, folder]  # the checkpoints kept are known only when training has ended
        self.pipe.step(f"networks/{folder.name}", config={"spec": asdict(spec), "data": self.data_print},
                       outputs=outputs, run=run)
        return json.loads(record_path.read_text())

    def probe(self, kind: str = "train-time") -> np.ndarray:
        s = self.scale
        if kind == "train-time":
            return lstm.probe_windows(self.corpus.valid, s.probe_sequences, s.probe_length)
        return lstm.probe_windows(self.corpus.valid, s.seq_sequences, s.seq_length)

    def activations(self, figure: str, spec: lstm.LMSpec, step: int, *, sequence="all",
                    kind: str = "train-time") -> dict[str, str]:
        """Every LSTM layer's hidden state on the probe windows, in a store; name -> "path:name"."""
        from ..extract import extract
        from ..store import ActivationStore, list_arrays

        folder = lstm.lm_folder(self.root, spec, self.corpus)
        path = self.root / figure / "activations" / folder.name / f"{kind}-step{step}.zarr"
        weights = folder / f"step{step}.pt"
        names = [f"lstm{i + 1}" for i in range(spec.layers)]

        def run():
            import shutil

            import torch

            if path.exists():
                shutil.rmtree(path)
            model = lstm.load_lm(spec, self.corpus, self.root, step)
            windows = torch.from_numpy(self.probe(kind))
            with ActivationStore(path).writer(network=spec.name, step=step, probe=kind) as sink:
                extract(model, windows, names, sequence=sequence, store=sink, batch_size=256,
                        device=_device(self.scale.device))

        self.pipe.step(f"{figure}/activations/{folder.name}/{kind}-step{step}",
                       config={"sequence": sequence, "kind": kind, "data": self.data_print,
                               "probe": self.probe(kind).shape},
                       inputs=[weights], outputs=[path], run=run)
        return {name: f"{path}:{name}" for name in list_arrays(path)}

    def check_ratio(self, datapoints: int, neurons: int, what: str) -> dict:
        ratio = datapoints / neurons
        ok = ratio >= 10
        self.log(f"  {what}: {datapoints} datapoints, {neurons} neurons per layer ({ratio:.0f} datapoints per "
                 f"neuron; {'at least' if ok else 'BELOW'} the 10x these comparisons aim for)")
        return {"data": what, "datapoints": datapoints, "neurons": neurons, "min_ratio": round(ratio, 1),
                "meets_10x": ok}


def progress_curve(values: np.ndarray, distance: bool = False) -> np.ndarray:
    """Normalised progress towards the final representation; see the module docstring."""
    values = np.asarray(values, dtype=float)
    if distance:
        return (values[0] - values) / values[0] if values[0] > 0 else np.zeros_like(values)
    span = values[-1] - values[0]
    return (values - values[0]) / span if abs(span) > 1e-12 else np.ones_like(values)


def t90(fractions: np.ndarray, progress: np.ndarray) -> float:
    hit = np.nonzero(progress >= 0.9)[0]
    return float(fractions[hit[0]]) if hit.size else float("nan")


def ordering_score(progress: np.ndarray) -> float:
    """progress: (layers, checkpoints); mean sign of lower-minus-upper over interior checkpoints."""
    progress = np.asarray(progress, dtype=float)
    if progress.shape[0] < 2 or progress.shape[1] < 3:
        return float("nan")
    diffs = progress[:-1, 1:-1] - progress[1:, 1:-1]
    return float(np.mean(np.sign(diffs)))


def bottom_up(t90s: list[float], score: float) -> bool:
    arr = np.asarray(t90s, dtype=float)
    return bool(np.all(np.isfinite(arr)) and np.all(np.diff(arr) >= 0) and score > 0)


MEASURES = ("pwcca", "pwcca_from_t", "pwcca_from_final", "mean_cca", "cosine", "euclidean")


def crossing(fractions: np.ndarray, progress: np.ndarray, level: float = 0.9) -> float:
    """The first fraction of training where progress reaches ``level``, interpolated linearly."""
    progress = np.asarray(progress, dtype=float)
    hit = np.nonzero(progress >= level)[0]
    if not hit.size:
        return float("nan")
    i = int(hit[0])
    if i == 0:
        return float(fractions[0])
    p0, p1 = progress[i - 1], progress[i]
    return float(fractions[i - 1] + (level - p0) / (p1 - p0) * (fractions[i] - fractions[i - 1]))


def similarity_to_final(L: dict[int, np.ndarray], final: int, rows: np.ndarray | None = None) -> dict[str, list[float]]:
    """Each measure between the layer at every checkpoint and at ``final`` (in checkpoint order),
    on the datapoints ``rows`` (all by default)."""
    from ..core import pwcca

    out = {m: [] for m in MEASURES}
    b = L[final] if rows is None else L[final][rows]
    for step in sorted(L):
        a = L[step] if rows is None else L[step][rows]
        r = pwcca(a, b, symmetric=True)
        out["pwcca_from_t"].append(r.forward)
        out["pwcca_from_final"].append(r.reverse)
        out["pwcca"].append(r.similarity)
        out["mean_cca"].append(float(np.mean(np.asarray(r.rho))))
        out["cosine"].append(1.0 - naive_distance(a, b, "cosine"))
        out["euclidean"].append(naive_distance(a, b, "euclidean"))
    return out


def ordering_stats(curves: dict[str, dict[str, list[float]]], fractions: np.ndarray, measure: str) -> dict:
    """t90, crossing times, ordering score and the mean adjacent-layer gap for one model and measure."""
    layers = list(curves)
    prog = np.array([progress_curve(curves[layer][measure], distance=measure == "euclidean") for layer in layers])
    times = [crossing(fractions, p) for p in prog]
    gaps = np.diff(times)
    return {"t90": [t90(fractions, p) for p in prog], "crossing": times, "ordering_score": ordering_score(prog),
            "gap": float(np.mean(gaps)) if len(gaps) else float("nan"),
            "at_init": [curves[layer][measure][0] for layer in layers]}


def replicate_specs(ctx: RNNContext) -> dict[str, dict[int, lstm.LMSpec]]:
    """The models of every depth: "2-layer" -> {seed: spec} (``scale.seeds`` seeds each)."""
    return {f"{d}-layer": {seed: ctx.spec(d, seed) for seed in range(ctx.scale.seeds)} for d in ctx.scale.depths}


def train(ctx: RNNContext) -> dict:
    """Train every replicate of the shallow and the deeper model; (name, seed) -> record."""
    specs = replicate_specs(ctx)
    return {(name, seed): ctx.model(specs[name][seed]) for seed in range(ctx.scale.seeds) for name in specs}


def run(ctx: RNNContext) -> dict:
    from ..store import load_array

    s = ctx.scale
    ctx.log(f"{FIGURE}: LSTM language models of depth {s.depths[0]} and {s.depths[1]}, {s.seeds} of each, "
            f"{s.hidden} units, {len(ctx.corpus.train):,} training tokens")
    specs = replicate_specs(ctx)
    records = train(ctx)
    ratios = [ctx.check_ratio(s.probe_sequences * s.probe_length, s.hidden, "probe positions")]
    rows, curves, stats = [], {}, {}
    for name, seeds in specs.items():
        for seed, spec in seeds.items():
            rec = records[(name, seed)]
            steps = rec["checkpoints"]
            final = steps[-1]
            fractions = np.array(steps) / final
            acts = {step: ctx.activations(FIGURE, spec, step) for step in steps}
            layer_names = [f"lstm{i + 1}" for i in range(spec.layers)]
            arrays = {layer: {step: load_array(acts[step][layer]) for step in steps} for layer in layer_names}
            curve = {layer: similarity_to_final(arrays[layer], final) for layer in layer_names}
            for layer in layer_names:
                for i, step in enumerate(steps):
                    rows.append({"model": name, "seed": seed, "layer": layer, "step": step,
                                 "fraction": float(fractions[i]),
                                 "validation_perplexity": rec["validation_perplexity"][str(step)],
                                 **{m: curve[layer][m][i] for m in MEASURES}})
            stats[(name, seed)] = {m: ordering_stats(curve, fractions, m) for m in MEASURES}
            if seed == min(seeds):
                curves[name] = curve
    premise = {"plateau_reached": all(bool(r["plateau_reached"]) for r in records.values()),
               "post_plateau_evals": min(int(r.get("post_plateau_evals", 0)) for r in records.values())}
    claims = decide_fig6(stats, {name: list(seeds) for name, seeds in specs.items()}, premise)
    models = [{"model": n, "seed": seed, "spec": asdict(specs[n][seed]), "steps": records[(n, seed)]["steps"],
               **{k: records[(n, seed)].get(k) for k in ("epochs_trained", "plateau_reached", "plateau_step",
                                                          "post_plateau_evals", "validation_perplexity")}}
              for n in specs for seed in specs[n]]
    first = {n: records[(n, min(seeds))] for n, seeds in specs.items()}
    first_stats = {n: stats[(n, min(seeds))] for n, seeds in specs.items()}
    paths = write_outputs(ctx, FIGURE, rows, claims, {
        "models": models, "datapoints_per_neuron": ratios, "dataset_tokens": len(ctx.corpus.train),
        "statistics": {f"{n} seed {seed}": st for (n, seed), st in stats.items()}})
    paths["png"] = ctx.root / FIGURE / f"{FIGURE}.png"
    plot(curves, first, first_stats, paths["png"], title=f"Penn Treebank, {s.hidden} units, seed 0 of {s.seeds}")
    return {"claims": claims, "paths": paths, "statistics": stats}


def clarity(gaps) -> float:
    """The mean of replicate models' ordering gaps over their standard deviation (ddof 1)."""
    arr = np.asarray(gaps, dtype=float)
    arr = arr[np.isfinite(arr)]
    if arr.size < 2:
        return float("nan")
    sd = float(arr.std(ddof=1))
    if sd == 0:
        return 0.0 if arr.mean() == 0 else float(np.sign(arr.mean())) * float("inf")
    return float(arr.mean() / sd)


def fig6_statistics(stats: dict, kept: dict[str, list]) -> dict:
    """Every fig6 part on the models ``kept`` ({depth name: [seeds]}): per depth means, and the
    clarity differences averaged over depths."""
    out = {}
    for name, seeds in kept.items():
        st = [stats[(name, seed)]["pwcca"] for seed in seeds]
        out[f"{name}/ordering_score"] = float(np.mean([x["ordering_score"] for x in st]))
        out[f"{name}/crossing_gap"] = float(np.mean([x["gap"] for x in st]))
    for m in CLARITY_MEASURES:
        out[f"clarity_{m}"] = float(np.mean([clarity([stats[(n, seed)][m]["gap"] for seed in seeds])
                                             for n, seeds in kept.items()]))
    for m in ("mean_cca", "cosine", "euclidean"):
        out[f"clarity_pwcca_minus_{m}"] = out["clarity_pwcca"] - out[f"clarity_{m}"]
    return out


def decide_fig6(stats: dict, seeds: dict[str, list], premise: dict) -> list[dict]:
    """The fig6 claim records from every replicate model's statistics ({(depth name, seed): ...})."""
    values_all = fig6_statistics(stats, seeds)
    keys = list(values_all)
    replicates = min(len(v) for v in seeds.values())
    claims = []
    for name in seeds:
        rule_id = "fig6.bottom_up"
        depth_keys = [f"{name}/ordering_score", f"{name}/crossing_gap"]
        iv = claim_records.network_jackknife({name: seeds[name]}, lambda kept: fig6_statistics(stats, kept),
                                             depth_keys, confidence=claim_records.part_confidence(rule_id),
                                             unit="models")
        values = {"ordering_score": values_all[f"{name}/ordering_score"],
                  "crossing_gap": values_all[f"{name}/crossing_gap"],
                  "t90_each": [stats[(name, seed)]["pwcca"]["t90"] for seed in seeds[name]],
                  "crossing_each": [stats[(name, seed)]["pwcca"]["crossing"] for seed in seeds[name]], **premise}
        intervals = {"ordering_score": iv[f"{name}/ordering_score"], "crossing_gap": iv[f"{name}/crossing_gap"]}
        claims.append(claim_records.decide(rule_id, values, intervals=intervals, scope=name, replicates=replicates,
                                           note="intervals: delete-one jackknife over this depth's models"))
    for rule_id in ("fig6.pwcca_clearer_than_mean", "fig6.cca_clearer_than_cosine_euclid"):
        iv = claim_records.network_jackknife(seeds, lambda kept: fig6_statistics(stats, kept), keys,
                                             confidence=claim_records.part_confidence(rule_id), unit="models")
        values = {**{k: v for k, v in values_all.items() if k.startswith("clarity")},
                  **{f"gap_{m}_each": {f"{n} seed {seed}": stats[(n, seed)][m]["gap"] for n in seeds
                                       for seed in seeds[n]} for m in CLARITY_MEASURES}, **premise}
        claims.append(claim_records.decide(rule_id, values, intervals=iv, replicates=replicates))
    return claims


def plot(curves, records, stats, path, title: str = "") -> None:
    plt = pyplot()
    panels = [("pwcca", "PWCCA similarity to final (mean of both directions)"), ("mean_cca", "mean CCA similarity"),
              ("cosine", "cosine similarity (raw)"), ("euclidean", "Euclidean distance (raw)")]
    models = list(curves)
    fig, axes = plt.subplots(len(models), len(panels) + 1, figsize=(4 * (len(panels) + 1), 3.4 * len(models)),
                             dpi=100, squeeze=False)
    for r, name in enumerate(models):
        rec = records[name]
        steps = rec["checkpoints"]
        frac = np.array(steps) / steps[-1]
        layers = list(curves[name])
        cmap = plt.get_cmap("plasma")
        for c, (m, heading) in enumerate(panels):
            ax = axes[r, c]
            for i, layer in enumerate(layers):
                ax.plot(frac, curves[name][layer][m], marker=".", color=cmap(i / max(1, len(layers))),
                        label=f"{layer} (t90 {stats[name][m]['t90'][i]:.2f})")
            ax.set_title(f"{name}: {heading}", fontsize=8)
            ax.set_xlabel("fraction of training")
            ax.legend(fontsize=8)
            ax.grid(alpha=0.3)
        ax = axes[r, -1]
        ax.plot(frac, [rec["validation_perplexity"][str(s)] for s in steps], marker=".", color="k")
        ax.set_yscale("log")
        ax.set_title(f"{name}: validation perplexity", fontsize=8)
        ax.set_xlabel("fraction of training")
        ax.grid(alpha=0.3)
    fig.suptitle(f"Figure 6: learning dynamics of LSTM layers ({title}); ordering score with PWCCA: "
                 + ", ".join(f"{n} {stats[n]['pwcca']['ordering_score']:+.2f}" for n in models), fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def run_fig1(ctx: RNNContext) -> dict:
    """Figure 1's signal/noise analysis on the shallow model's replicates (checkpoint indices as time)."""
    from ..store import load_array
    from . import fig1

    s = ctx.scale
    specs = replicate_specs(ctx)[f"{s.depths[0]}-layer"]
    ctx.log(f"{FIG1}: {len(specs)} models of depth {s.depths[0]}")
    ratios = [ctx.check_ratio(s.probe_sequences * s.probe_length, s.hidden, "probe positions")]
    unigram = lstm.unigram_perplexity(ctx.corpus)
    rows, analyses, panels, times, records = [], {}, {}, {}, {}
    for seed, spec in specs.items():
        rec = records[seed] = ctx.model(spec)
        steps = rec["checkpoints"]
        ppl = [rec["validation_perplexity"][str(step)] for step in steps]
        acts = {i: ctx.activations(FIGURE, spec, step) for i, step in enumerate(steps)}
        layer_names = [f"lstm{i + 1}" for i in range(spec.layers)]
        layers = {layer: {i: load_array(acts[i][layer]) for i in range(len(steps))} for layer in layer_names}
        T, _ = fig1.choose_T(layers, len(steps) - 1)
        t0 = fig1.first_converged(ppl[: T + 1], lambda v, final: v <= 1.02 * final)
        t_half = T // 2
        past_unigram = next((i for i, v in enumerate(ppl) if v < 0.9 * unigram), 1)
        t_early = min(max(1, past_unigram), max(1, t_half - 1))
        times[seed] = {"model": spec.name, "T": T, "t0": t0, "t_early": t_early, "t_half": t_half,
                       "plateau_step": rec.get("plateau_step"), "post_plateau_evals": rec.get("post_plateau_evals")}
        ctx.log(f"  {spec.name}: T = checkpoint {T}; t0 = {t0}; t_early = {t_early} (unigram perplexity "
                f"{unigram:.0f})")
        for layer in layer_names:
            a = fig1.analyse_layer({i: layers[layer][i] for i in range(T + 1)}, T, t0, t_early, t_half,
                                   performance={"validation_perplexity": ppl})
            for row in a["rows"]:
                row.update(step=steps[row["t"]], layer=layer, seed=seed)
            rows += a["rows"]
            analyses.setdefault(layer, {})[seed] = a
            if seed == min(specs):
                panels[layer] = (a["rho_vs_final"], a["sim"], a["k"])
                times["plot"] = (ppl[: T + 1], t0, t_early, t_half, T, spec.name)
    premise = {"plateau_reached": all(bool(r["plateau_reached"]) for r in records.values()),
               "post_plateau_evals": min(int(r.get("post_plateau_evals", 0)) for r in records.values())}
    claims = []
    for layer, per_seed in analyses.items():
        claims += fig1.decide_layer("fig1rnn", layer, per_seed, premise=premise)
    ppl0, t0, t_early, t_half, T, name = times.pop("plot")
    paths = write_outputs(ctx, FIG1, rows, claims, {"models": times, "unigram_perplexity": unigram,
                                                    "datapoints_per_neuron": ratios})
    paths["png"] = ctx.root / FIG1 / f"{FIG1}.png"
    fig1.plot(panels, ppl0, t0, t_early, t_half, T, paths["png"], title=f"Penn Treebank, {name} (1 of {len(specs)})",
              performance="validation perplexity", time="checkpoint")
    return {"claims": claims, "paths": paths}
