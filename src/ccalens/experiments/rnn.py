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
DRAWS = 100  # bootstrap resamples of the probe windows
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
                           lr=s.lr, batch_size=s.batch_size, bptt=s.bptt, evals_per_epoch=s.evals_per_epoch)

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


def train(ctx: RNNContext) -> dict:
    """Train the shallow and the deeper language model; name -> record."""
    return {f"{d}-layer": ctx.model(ctx.spec(d)) for d in ctx.scale.depths}


def window_groups(ctx: RNNContext) -> np.ndarray:
    """The probe window of every datapoint (rows are window-major: window, then position)."""
    return np.repeat(np.arange(ctx.scale.probe_sequences), ctx.scale.probe_length)


def run(ctx: RNNContext) -> dict:
    from ..store import load_array

    s = ctx.scale
    ctx.log(f"{FIGURE}: LSTM language models of depth {s.depths[0]} and {s.depths[1]}, {s.hidden} units, "
            f"{len(ctx.corpus.train):,} training tokens")
    specs = {f"{d}-layer": ctx.spec(d) for d in s.depths}
    records = train(ctx)
    ratios = [ctx.check_ratio(s.probe_sequences * s.probe_length, s.hidden, "probe positions")]
    groups = window_groups(ctx)
    labels = np.unique(groups)
    rng = np.random.default_rng(0)
    resamples = [np.concatenate([np.flatnonzero(groups == g) for g in rng.choice(labels, len(labels))])
                 for _ in range(claim_records.draws_for(DRAWS, s))]
    rows, curves, stats, draws = [], {}, {}, {}
    for name, spec in specs.items():
        rec = records[name]
        steps = rec["checkpoints"]
        final = steps[-1]
        fractions = np.array(steps) / final
        acts = {step: ctx.activations(FIGURE, spec, step) for step in steps}
        layer_names = [f"lstm{i + 1}" for i in range(spec.layers)]
        arrays = {layer: {step: load_array(acts[step][layer]) for step in steps} for layer in layer_names}
        curves[name] = {layer: similarity_to_final(arrays[layer], final) for layer in layer_names}
        for layer in layer_names:
            for i, step in enumerate(steps):
                rows.append({"model": name, "layer": layer, "step": step, "fraction": float(fractions[i]),
                             "validation_perplexity": rec["validation_perplexity"][str(step)],
                             **{m: curves[name][layer][m][i] for m in MEASURES}})
        stats[name] = {m: ordering_stats(curves[name], fractions, m) for m in MEASURES}
        ctx.log(f"  {name}: bootstrap over probe windows ({len(resamples)} resamples)")
        boot = [{layer: similarity_to_final(arrays[layer], final, idx) for layer in layer_names} for idx in resamples]
        draws[name] = {m: [ordering_stats(b, fractions, m) for b in boot] for m in MEASURES}
    claims = decide_fig6(stats, draws, {n: records[n]["plateau_reached"] for n in specs})
    models = [{"model": n, "spec": asdict(specs[n]), "steps": records[n]["steps"],
               "epochs_trained": records[n].get("epochs_trained"), "plateau_reached": records[n].get("plateau_reached"),
               "validation_perplexity": records[n]["validation_perplexity"]} for n in specs]
    paths = write_outputs(ctx, FIGURE, rows, claims, {"models": models, "datapoints_per_neuron": ratios,
                                                      "statistics": stats, "dataset_tokens": len(ctx.corpus.train)})
    paths["png"] = ctx.root / FIGURE / f"{FIGURE}.png"
    plot(curves, records, stats, paths["png"], title=f"Penn Treebank, {s.hidden} units")
    return {"claims": claims, "paths": paths, "statistics": stats}


def clarity(estimate: float, draws) -> float:
    """An ordering gap over its bootstrap standard deviation (0 when both are 0)."""
    arr = np.asarray(draws, dtype=float)
    arr = arr[np.isfinite(arr)]
    sd = float(arr.std()) if arr.size > 1 else float("nan")
    if not np.isfinite(estimate) or not np.isfinite(sd):
        return float("nan")
    if sd == 0:
        return 0.0 if estimate == 0 else float(np.sign(estimate)) * float("inf")
    return estimate / sd


def decide_fig6(stats: dict, draws: dict, plateau: dict) -> list[dict]:
    """The fig6 claim records from each model's statistics and their bootstrap draws."""
    claims = []
    for name in stats:
        st = stats[name]["pwcca"]
        t90s = np.asarray(st["t90"], dtype=float)
        values = {"t90": st["t90"], "crossing": st["crossing"], "ordering_score": st["ordering_score"],
                  "t90_nondecreasing": bool(np.all(np.isfinite(t90s)) and np.all(np.diff(t90s) >= 0)),
                  "pwcca_at_init": st["at_init"], "plateau_reached": bool(plateau[name])}
        interval = claim_records.bootstrap_interval([d["ordering_score"] for d in draws[name]["pwcca"]],
                                                     st["ordering_score"], unit="probe windows")
        claims.append(claim_records.decide("fig6.bottom_up", values, interval=interval, scope=name))
    models = list(stats)
    sds = {(n, m): np.nanstd([d["gap"] for d in draws[n][m]]) for n in models for m in CLARITY_MEASURES}
    values = {"plateau_reached": all(bool(plateau[n]) for n in models)}
    for m in CLARITY_MEASURES:
        values[f"gap_{m}"] = [stats[n][m]["gap"] for n in models]
        values[f"clarity_{m}"] = float(np.mean([clarity(stats[n][m]["gap"], [d["gap"] for d in draws[n][m]])
                                                for n in models]))

    def standardised(m, b):
        return np.mean([draws[n][m][b]["gap"] / sds[(n, m)] if sds[(n, m)] > 0 else np.nan for n in models])

    nb = min(len(draws[n]["pwcca"]) for n in models)
    values["clarity_pwcca_minus_mean_cca"] = values["clarity_pwcca"] - values["clarity_mean_cca"]
    values["clarity_margin"] = values["clarity_pwcca"] - max(values["clarity_cosine"], values["clarity_euclidean"])
    diff = [standardised("pwcca", b) - standardised("mean_cca", b) for b in range(nb)]
    margin = [standardised("pwcca", b) - max(standardised("cosine", b), standardised("euclidean", b))
              for b in range(nb)]
    claims.append(claim_records.decide("fig6.pwcca_clearer_than_mean", values, interval=claim_records.bootstrap_interval(
        diff, values["clarity_pwcca_minus_mean_cca"], unit="probe windows (gaps standardised by their bootstrap sd)")))
    claims.append(claim_records.decide("fig6.cca_clearer_than_cosine_euclid", values,
                                       interval=claim_records.bootstrap_interval(
                                           margin, values["clarity_margin"],
                                           unit="probe windows (gaps standardised by their bootstrap sd)")))
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


def unigram_perplexity(corpus) -> float:
    """Validation perplexity of the training split's add-one-smoothed unigram model."""
    counts = np.bincount(np.asarray(corpus.train), minlength=len(corpus.vocab)).astype(float) + 1.0
    logp = np.log(counts / counts.sum())
    return float(np.exp(-np.mean(logp[np.asarray(corpus.valid)])))


def run_fig1(ctx: RNNContext) -> dict:
    """Figure 1's signal/noise analysis on the shallow model's layers (checkpoint indices as time)."""
    from ..store import load_array
    from . import fig1

    s = ctx.scale
    spec = ctx.spec(s.depths[0])
    rec = ctx.model(spec)
    steps = rec["checkpoints"]
    ppl = [rec["validation_perplexity"][str(step)] for step in steps]
    ctx.log(f"{FIG1}: {spec.name}, {len(steps) - 1} checkpoints after initialisation")
    ratios = [ctx.check_ratio(s.probe_sequences * s.probe_length, s.hidden, "probe positions")]
    acts = {i: ctx.activations(FIGURE, spec, step) for i, step in enumerate(steps)}
    layer_names = [f"lstm{i + 1}" for i in range(spec.layers)]
    layers = {layer: {i: load_array(acts[i][layer]) for i in range(len(steps))} for layer in layer_names}
    T, _ = fig1.choose_T(layers, len(steps) - 1)
    t0 = fig1.first_converged(ppl[: T + 1], lambda v, final: v <= 1.02 * final)
    unigram = unigram_perplexity(ctx.corpus)
    t_half = T // 2
    past_unigram = next((i for i, v in enumerate(ppl) if v < 0.9 * unigram), 1)
    t_early = min(max(1, past_unigram), max(1, t_half - 1))
    ctx.log(f"  T = checkpoint {T}; t0 = {t0}; t_early = {t_early} (unigram perplexity {unigram:.0f})")
    rows, claims, panels = [], [], {}
    for layer in layer_names:
        L = {i: layers[layer][i] for i in range(T + 1)}
        analysis = fig1.analyse_layer(L, T, t0, t_early, t_half, performance={"validation_perplexity": ppl},
                                      groups=window_groups(ctx), unit="probe windows",
                                      draws=claim_records.draws_for(fig1.DRAWS, s))
        for row in analysis["rows"]:
            row["step"] = steps[row["t"]]
        rows += analysis["rows"]
        claims += fig1.decide_layer("fig1rnn", layer, analysis,
                                    premise={"plateau_reached": bool(rec["plateau_reached"])})
        panels[layer] = (analysis["rho_vs_final"], analysis["sim"], analysis["k"])
    paths = write_outputs(ctx, FIG1, rows, claims, {"model": spec.name, "steps": steps, "T": T, "t0": t0,
                                                    "t_early": t_early, "t_half": t_half,
                                                    "unigram_perplexity": unigram,
                                                    "plateau_reached": rec["plateau_reached"],
                                                    "datapoints_per_neuron": ratios})
    paths["png"] = ctx.root / FIG1 / f"{FIG1}.png"
    fig1.plot(panels, ppl[: T + 1], t0, t_early, t_half, T, paths["png"], title=f"Penn Treebank, {spec.name}",
              performance="validation perplexity", time="checkpoint")
    return {"claims": claims, "paths": paths}
