"""The paper's RNN findings through training time: Figure 6 (and A8), and Figure 1's RNN panels.

A shallow and a deeper LSTM language model (:mod:`.lstm`) are trained on Penn Treebank with
checkpoints throughout. Every layer's hidden state on the probe set (every position of
every probe window is a datapoint) is recorded at each checkpoint with
:func:`ccalens.extract.extract` into a store, and compared with its final state
(Morcos, Raghu & Bengio 2018, Section 4.1).

**fig6.** For each layer, the similarity to the final representation at every checkpoint,
with PWCCA (directed: weights from the checkpoint's side and from the final side, both
reported; the claims use their mean), and the controls of Figure A8: unweighted mean CCA,
cosine similarity and Euclidean distance of the raw activations. Layers are already ordered
at initialisation, so each curve is also normalised by its start: progress
p(t) = (s(t) - s(0)) / (s(T) - s(0)) (for Euclidean distance, (d(0) - d(t)) / d(0)).

* convergence time t90: the first checkpoint (as a fraction of training) with p >= 0.9;
* ordering score: the mean over interior checkpoints and adjacent layer pairs (l, l+1) of
  sign(p_l(t) - p_{l+1}(t)): +1 when lower layers are always further along, -1 when
  always behind.

Claims and rules (fixed before the first run):

* ``bottom_up[<model>]``, for the shallow and the deeper model: with PWCCA, t90 does not
  decrease from one layer to the next, and the ordering score is > 0;
* ``pwcca_clearer_than_mean_cca``: the ordering score, averaged over both models, is
  larger with PWCCA than with unweighted mean CCA.

**fig1-rnn.** Figure 1's analysis (:func:`.fig1.signal_noise`) on each layer of the shallow
model, with checkpoints in place of epochs and validation perplexity in place of test
accuracy (converged: within 2 % of the final perplexity).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import lstm
from .cnn import _device
from .common import claim, naive_distance, pyplot, write_outputs
from .pipeline import Pipeline

FIGURE = "fig6"
FIG1 = "fig1-rnn"


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


def similarity_to_final(L: dict[int, np.ndarray], final: int) -> dict[str, list[float]]:
    """Each measure between the layer at every checkpoint and at ``final`` (in checkpoint order)."""
    import ccalens

    out = {m: [] for m in MEASURES}
    for step in sorted(L):
        a, b = L[step], L[final]
        from_t, from_final = ccalens.pwcca(a, b).similarity, ccalens.pwcca(b, a).similarity
        out["pwcca_from_t"].append(from_t)
        out["pwcca_from_final"].append(from_final)
        out["pwcca"].append(0.5 * (from_t + from_final))
        out["mean_cca"].append(ccalens.mean_cca(a, b).similarity)
        out["cosine"].append(1.0 - naive_distance(a, b, "cosine"))
        out["euclidean"].append(naive_distance(a, b, "euclidean"))
    return out


def train(ctx: RNNContext) -> dict:
    """Train the shallow and the deeper language model; name -> record."""
    return {f"{d}-layer": ctx.model(ctx.spec(d)) for d in ctx.scale.depths}


def run(ctx: RNNContext) -> dict:
    from ..store import load_array

    s = ctx.scale
    ctx.log(f"{FIGURE}: LSTM language models of depth {s.depths[0]} and {s.depths[1]}, {s.hidden} units, "
            f"{len(ctx.corpus.train):,} training tokens")
    specs = {f"{d}-layer": ctx.spec(d) for d in s.depths}
    records = {name: ctx.model(spec) for name, spec in specs.items()}
    ratios = [ctx.check_ratio(s.probe_sequences * s.probe_length, s.hidden, "probe positions")]
    rows, curves, claims, stats = [], {}, [], {}
    for name, spec in specs.items():
        rec = records[name]
        steps = rec["checkpoints"]
        final = steps[-1]
        fractions = np.array(steps) / final
        acts = {step: ctx.activations(FIGURE, spec, step) for step in steps}
        layer_names = [f"lstm{i + 1}" for i in range(spec.layers)]
        curves[name] = {}
        for layer in layer_names:
            L = {step: load_array(acts[step][layer]) for step in steps}
            sims = similarity_to_final(L, final)
            curves[name][layer] = sims
            for i, step in enumerate(steps):
                rows.append({"model": name, "layer": layer, "step": step, "fraction": float(fractions[i]),
                             "validation_perplexity": rec["validation_perplexity"][str(step)],
                             **{m: sims[m][i] for m in MEASURES}})
        stats[name] = {}
        for m in ("pwcca", "pwcca_from_t", "pwcca_from_final", "mean_cca", "cosine", "euclidean"):
            prog = np.array([progress_curve(curves[name][layer][m], distance=m == "euclidean") for layer in layer_names])
            stats[name][m] = {"t90": [t90(fractions, p) for p in prog], "ordering_score": ordering_score(prog),
                              "at_init": [curves[name][layer][m][0] for layer in layer_names]}
        st = stats[name]["pwcca"]
        claims.append(claim(f"bottom_up[{name}]", "Layers converge bottom-up: lower layers reach their final "
                            "representation earlier in training.",
                            {"t90": st["t90"], "ordering_score": st["ordering_score"], "pwcca_at_init": st["at_init"]},
                            "PWCCA t90 non-decreasing with layer index, and ordering score > 0",
                            bottom_up(st["t90"], st["ordering_score"])))
    score = {m: float(np.mean([stats[n][m]["ordering_score"] for n in specs])) for m in ("pwcca", "mean_cca")}
    claims.append(claim("pwcca_clearer_than_mean_cca", "PWCCA shows the bottom-up ordering more clearly than the "
                        "unweighted mean CCA (Figure A8).", {"ordering_score": score},
                        "mean ordering score over both models: PWCCA > mean CCA", score["pwcca"] > score["mean_cca"]))
    models = [{"model": n, "spec": asdict(specs[n]), "steps": records[n]["steps"],
               "validation_perplexity": records[n]["validation_perplexity"]} for n in specs]
    paths = write_outputs(ctx, FIGURE, rows, claims, {"models": models, "datapoints_per_neuron": ratios,
                                                      "statistics": stats, "dataset_tokens": len(ctx.corpus.train)})
    paths["png"] = ctx.root / FIGURE / f"{FIGURE}.png"
    plot(curves, records, stats, paths["png"], title=f"Penn Treebank, {s.hidden} units")
    return {"claims": claims, "paths": paths, "statistics": stats}


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
            ax.legend(fontsize=6)
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
    """Figure 1's signal/noise analysis on the shallow model's layers (checkpoint indices as time)."""
    from ..store import load_array
    from . import fig1

    s = ctx.scale
    spec = ctx.spec(s.depths[0])
    rec = ctx.model(spec)
    steps = rec["checkpoints"]
    T = len(steps) - 1
    ppl = [rec["validation_perplexity"][str(step)] for step in steps]
    ctx.log(f"{FIG1}: {spec.name}, {T} checkpoints after initialisation")
    ratios = [ctx.check_ratio(s.probe_sequences * s.probe_length, s.hidden, "probe positions")]
    acts = {i: ctx.activations(FIGURE, spec, step) for i, step in enumerate(steps)}
    t0 = next(i for i in range(T + 1) if ppl[i] <= 1.02 * ppl[T])
    t_early, t_half = max(1, round(T / 10)), T // 2
    rows, claims, panels = [], [], {}
    for layer in [f"lstm{i + 1}" for i in range(spec.layers)]:
        L = {i: load_array(acts[i][layer]) for i in range(T + 1)}
        rho, sim, k = fig1.signal_noise(L, T, t_early, t_half)
        for i in range(T + 1):
            rows.append({"layer": layer, "checkpoint": i, "step": steps[i], "validation_perplexity": ppl[i],
                         "mean_rho_vs_final": float(rho[i].mean()), "S_similarity": sim["S"].get(i, np.nan),
                         "B_similarity": sim["B"].get(i, np.nan), "rho_vs_final": " ".join(f"{v:.6f}" for v in rho[i])})
        claims += fig1.decide(layer, t0, T, t_half, ppl, rho[t0], sim, k, metric="validation_perplexity")
        panels[layer] = (rho, sim, k)
    paths = write_outputs(ctx, FIG1, rows, claims, {"model": spec.name, "steps": steps, "t0": t0,
                                                    "t_early": t_early, "t_half": t_half,
                                                    "datapoints_per_neuron": ratios})
    paths["png"] = ctx.root / FIG1 / f"{FIG1}.png"
    fig1.plot(panels, ppl, t0, t_early, t_half, T, paths["png"], title=f"Penn Treebank, {spec.name}",
              performance="validation perplexity", time="checkpoint")
    return {"claims": claims, "paths": paths}
