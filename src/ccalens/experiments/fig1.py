"""The paper's Figure 1: CCA separates the stable (signal) and unstable (noise) parts of a layer.

Several networks (``fig1_seeds`` replicates, independently initialised and shuffled) are
trained with a checkpoint after every epoch (Morcos, Raghu & Bengio 2018, Section 2.1); each
is analysed on its own and the claims read the mean over replicates, with delete-one
jackknife intervals over the networks. The paper's premise is a layer that keeps changing after performance has
converged, so T (the end of the analysed training) is chosen by a criterion fixed before
the run: the last epoch, at most the epochs trained and at least ``MIN_T``, at which every
analysed layer still changes over (T/2, T] (mean canonical correlation of L at T/2 with L
at T below 0.9). The checkpoints up to T are exactly those of the same network trained
for T epochs (Adam at a constant learning rate). For a layer L:

* (a) the sorted canonical correlations of L at every checkpoint t against L at T, from
  the first checkpoint t0 whose test accuracy is within one point of that at T;
* (b) CCA between L at t_early (a tenth of T) and L at T/2; the canonical variates of L at
  T/2 with the highest correlations form S (signal), those with the lowest form B (noise),
  k of each, a quarter of the canonical pairs (the paper takes 100 of a wider layer); R,
  the control, is k random orthonormal directions of L at T/2 (mean over 10 draws); then
  the mean CCA similarity of S, B and R with L at every checkpoint after t_early, on both
  sides of T/2; and B's shuffled-datapoints null at each checkpoint (``NULL_DRAWS`` row
  permutations of L at t): its 95th percentile is the similarity that uncorrelated
  directions reach by chance.

Both S and B lie in L at T/2, so both reach similarity 1 there (the paper's spike). The
claims (``fig1.*`` in :mod:`.rules`) are decided per layer, by their parts.
"""

from __future__ import annotations

import numpy as np

from . import claims as claim_records
from . import cnn
from .common import Context, write_outputs
from ..plot import pyplot

FIGURE = "fig1"
LAYERS = ("conv3", "fc1")
MIN_T = 6
STILL_CHANGING = 0.9  # mean rho(L(T/2), L(T)) below this: the layer still changes over (T/2, T]
CONTROL_DRAWS = 10
NULL_DRAWS = 10
SEEDS = tuple(range(7, 7 + 16))  # replicate seeds (the first ``fig1_seeds``); 7 was the single network's


def specs(ctx: Context) -> dict[int, object]:
    return {seed: ctx.spec(seed=seed, epochs=ctx.scale.fig1_epochs) for seed in SEEDS[: ctx.scale.fig1_seeds]}


def train(ctx: Context) -> dict:
    """Train the figure's networks (a checkpoint after every epoch); seed -> record."""
    T = ctx.scale.fig1_epochs
    return {seed: ctx.network(spec, keep=tuple(range(T + 1))) for seed, spec in specs(ctx).items()}


def choose_T(layers: dict[str, dict[int, np.ndarray]], T_max: int, min_T: int = MIN_T) -> tuple[int, dict]:
    """The last T in [min_T, T_max] where every layer's mean rho(L[T // 2], L[T]) < STILL_CHANGING.

    Returns (T, {layer: mean rho at that T}); T_max when no T qualifies (the premise then fails).
    """
    from ..core import mean_cca

    def moved(T):
        return {name: mean_cca(L[T // 2], L[T]).similarity for name, L in layers.items()}

    for T in range(T_max, min_T - 1, -1):
        rho = moved(T)
        if all(v < STILL_CHANGING for v in rho.values()):
            return T, rho
    return T_max, moved(T_max)


def run(ctx: Context) -> dict:
    import torch

    from ..store import load_array

    s = ctx.scale
    T_max = s.fig1_epochs
    ctx.log(f"{FIGURE}: {s.fig1_seeds} networks, a checkpoint after each of {T_max} epochs ({ctx.split.name})")
    records = train(ctx)
    ratios = [ctx.check_ratio({k: v for k, v in cnn.layer_widths(s.width, ctx.split.classes).items() if k in LAYERS})]
    xt, yt = torch.from_numpy(ctx.split.x_test), torch.from_numpy(ctx.split.y_test)
    device = cnn._device(s.device)
    analyses, times, rows, panels = {layer: {} for layer in LAYERS}, {}, [], {}
    for seed, spec in specs(ctx).items():
        test_acc = [cnn.accuracy(cnn.load_network(spec, ctx.split, ctx.root, e).to(device), xt, yt)
                    for e in range(T_max + 1)]
        acts = {e: ctx.activations(FIGURE, spec, epoch=e, layers=LAYERS) for e in range(T_max + 1)}
        layers = {layer: {e: load_array(acts[e][layer]) for e in range(T_max + 1)} for layer in LAYERS}
        T, _ = choose_T(layers, T_max)
        t0 = first_converged(test_acc[: T + 1], lambda v, final: v >= final - 0.01)
        t_early, t_half = max(1, round(T / 10)), T // 2
        times[seed] = {"T": T, "t0": t0, "t_early": t_early, "t_half": t_half, "test_accuracy": test_acc}
        ctx.log(f"  seed {seed}: T = {T} (last epoch where every layer still changes over (T/2, T]); t0 = {t0}")
        for layer in LAYERS:
            a = analyse_layer({e: layers[layer][e] for e in range(T + 1)}, T, t0, t_early, t_half,
                              performance={"test_accuracy": test_acc})
            for row in a["rows"]:
                row.update(layer=layer, seed=seed)
            rows += a["rows"]
            analyses[layer][seed] = a
            if seed == SEEDS[0]:
                panels[layer] = (a["rho_vs_final"], a["sim"], a["k"])
    claims = []
    for layer in LAYERS:
        claims += decide_layer("fig1", layer, analyses[layer], premise={})
    first = times[SEEDS[0]]
    paths = write_outputs(ctx, FIGURE, rows, claims, {
        "networks": {str(seed): {"name": specs(ctx)[seed].name, **{k: records[seed].get(k) for k in
                                                                  ("epochs", "train_accuracy", "test_accuracy")},
                                 **times[seed]} for seed in records},
        "datapoints_per_neuron": ratios, "T_max": T_max})
    paths["png"] = ctx.root / FIGURE / f"{FIGURE}.png"
    plot(panels, first["test_accuracy"][: first["T"] + 1], first["t0"], first["t_early"], first["t_half"], first["T"],
         paths["png"], title=f"{ctx.split.name}, seed {SEEDS[0]} of {s.fig1_seeds}, T = {first['T']}")
    return {"claims": claims, "paths": paths}


def first_converged(performance, close) -> int:
    """The first checkpoint t whose performance is ``close(performance[t], performance[-1])``."""
    final = performance[-1]
    return next(t for t in range(len(performance)) if close(performance[t], final))


def split_variates(L: dict, t_early: int, t_half: int) -> tuple[np.ndarray, int]:
    """L(T/2)'s canonical variates from CCA with L(t_early), best converged first, and k (a quarter)."""
    from ..core import cca

    variates = np.asarray(cca(L[t_early], L[t_half], variates=True).y_variates)
    return variates, max(1, variates.shape[1] // 4)


def signal_noise(L: dict, T, t_early, t_half, *, control_draws: int = CONTROL_DRAWS, seed: int = 0,
                 against_final: bool = True, split=None):
    """The analysis of one layer, given its representation at every checkpoint ``L[t]``.

    Returns (rho_vs_final: {t: sorted coefficients of L[t] against L[T]},
    sim: {"S"|"B"|"R": {t: mean CCA similarity with L[t]} for t > t_early}, k). R (the random
    control) is left out when ``control_draws`` is 0, rho_vs_final without ``against_final``;
    ``split``: :func:`split_variates`'s result, when the caller has it already.
    """
    from ..core import cca, mean_cca

    checkpoints = sorted(L)
    rho_vs_final = {e: np.asarray(cca(L[e], L[T]).rho) for e in checkpoints} if against_final else {}
    variates, k = split if split is not None else split_variates(L, t_early, t_half)
    c = variates.shape[1]
    parts = {"S": variates[:, :k], "B": variates[:, c - k:]}
    later = [e for e in checkpoints if e > t_early]
    sim = {name: {e: mean_cca(part, L[e]).similarity for e in later} for name, part in parts.items()}
    if control_draws:
        rng = np.random.default_rng(seed)
        rotations = [np.linalg.qr(rng.standard_normal((c, k)))[0] for _ in range(control_draws)]
        sim["R"] = {e: float(np.mean([mean_cca(variates @ q, L[e]).similarity for q in rotations]))
                    for e in later}
    return rho_vs_final, sim, k


def shuffled_null(part: np.ndarray, L: dict, checkpoints, *, draws: int = NULL_DRAWS, seed: int = 1) -> dict:
    """{t: 95th percentile of mean CCA similarity of ``part`` with L[t] with L[t]'s rows permuted}."""
    from ..core import mean_cca

    rng = np.random.default_rng(seed)
    out = {}
    for e in checkpoints:
        sims = [mean_cca(part, L[e][rng.permutation(len(L[e]))]).similarity for _ in range(draws)]
        out[e] = float(np.quantile(sims, 0.95))
    return out


def analyse_layer(L: dict, T: int, t0: int, t_early: int, t_half: int, *, performance: dict) -> dict:
    """Everything the fig1 claims read for one layer of one network (see the module docstring)."""
    variates, k = split = split_variates(L, t_early, t_half)
    rho_vs_final, sim, _ = signal_noise(L, T, t_early, t_half, split=split)
    after = [e for e in sorted(sim["S"]) if e > t_half]
    null = shuffled_null(variates[:, variates.shape[1] - k:], L, after)
    t_mid = (t0 + T) // 2

    def mean_after(name):
        return float(np.mean([sim[name][e] for e in after])) if after else float("nan")

    values = {"T": T, "t0": t0, "t_mid": t_mid, "t_early": t_early, "t_half": t_half, "k": k,
              "fraction_below_0_9": float(np.mean(rho_vs_final[t0] < 0.9)),
              "distance_t0": 1.0 - float(np.mean(rho_vs_final[t0])),
              "distance_mid": 1.0 - float(np.mean(rho_vs_final[t_mid])),
              "rho_half_vs_final": float(np.mean(rho_vs_final[t_half])),
              **{f"{name}_after": mean_after(name) for name in ("S", "B", "R")},
              "null95_after": float(np.mean([null[e] for e in after])) if after else float("nan")}
    values["still_changing"] = values["distance_t0"] - values["distance_mid"]
    values["S_minus_R_after"] = values["S_after"] - values["R_after"]
    values["R_minus_B_after"] = values["R_after"] - values["B_after"]
    values["B_minus_null95_after"] = float(np.mean([sim["B"][e] - null[e] for e in after])) if after else float("nan")
    rows = []
    for e in sorted(L):
        rows.append({"t": e, **{name: values[e] for name, values in performance.items()},
                     "mean_rho_vs_final": float(rho_vs_final[e].mean()),
                     **{f"{name}_similarity": sim[name].get(e, np.nan) for name in ("S", "B", "R")},
                     "B_null95": null.get(e, np.nan),
                     "rho_vs_final": " ".join(f"{v:.6f}" for v in rho_vs_final[e])})
    return {"values": values, "rows": rows, "rho_vs_final": rho_vs_final, "sim": sim, "k": k}


PART_KEYS = ("distance_t0", "still_changing", "S_minus_R_after", "R_minus_B_after", "B_minus_null95_after",
             "fraction_below_0_9", "S_after", "B_after", "R_after", "null95_after")


def decide_layer(prefix: str, layer: str, analyses: dict, premise: dict) -> list[dict]:
    """The two claim records of one layer from its replicates' analyses ({network: analysis}; ``prefix``
    fig1 or fig1rnn; ``premise``: extra values). The values are means over the networks; t0, T
    and rho_half_vs_final are the worst replicate's (the premise must hold in every one)."""
    nets = list(analyses)
    each = {key: {n: analyses[n]["values"][key] for n in nets} for key in PART_KEYS}
    worst = min(nets, key=lambda n: analyses[n]["values"]["T"] - analyses[n]["values"]["t0"])
    values = {key: float(np.mean(list(each[key].values()))) for key in PART_KEYS}
    values.update({f"{key}_each": list(each[key].values()) for key in PART_KEYS[:5]})
    values.update({"T": analyses[worst]["values"]["T"], "t0": analyses[worst]["values"]["t0"],
                   "rho_half_vs_final": max(a["values"]["rho_half_vs_final"] for a in analyses.values()),
                   "networks": [str(n) for n in nets], **premise})
    out = []
    for name in ("unconverged", "signal_stable_noise_decorrelates"):
        rule_id = f"{prefix}.{name}"
        intervals = claim_records.network_jackknife(
            nets, lambda kept: {k: float(np.mean([each[k][n] for n in kept["all"]])) for k in PART_KEYS[:5]},
            PART_KEYS[:5], confidence=claim_records.part_confidence(rule_id))
        out.append(claim_records.decide(rule_id, values, intervals=intervals, scope=layer, replicates=len(nets)))
    return out


def plot(panels, test_acc, t0, t_early, t_half, T, path, title: str = "", performance: str = "test accuracy",
         time: str = "epoch") -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 1 + 2 * len(panels), figsize=(4.2 * (1 + 2 * len(panels)), 3.8), dpi=110)
    axes[0].plot(range(T + 1), test_acc, marker=".", color="k")
    axes[0].axvline(t0, color="tab:green", ls="--", label=f"t0 = {t0} (converged)")
    axes[0].set_xlabel(time)
    axes[0].set_ylabel(performance)
    axes[0].legend(fontsize=7)
    axes[0].set_title(f"{performance} over training", fontsize=9)
    cmap = plt.get_cmap("viridis")
    for i, (layer, (rho, sim, k)) in enumerate(panels.items()):
        ax = axes[1 + 2 * i]
        for e in range(t0, T):
            ax.plot(rho[e], color=cmap((e - t0) / max(1, T - 1 - t0)), lw=1)
        if t0 >= T:
            ax.text(0.5, 0.5, f"performance did not converge\nbefore T = {T}: nothing to show", ha="center",
                    va="center", transform=ax.transAxes, fontsize=9)
        ax.set_xlabel("CCA coefficient index (sorted)")
        ax.set_ylabel("ρ (layer at t vs at T)")
        ax.set_title(f"(a) {layer}: t = {t0}..{T - 1} (yellow = later)" if t0 < T else f"(a) {layer}", fontsize=9)
        ax.grid(alpha=0.3)
        ax = axes[2 + 2 * i]
        for name, colour, what in (("S", "tab:blue", "stable"), ("B", "tab:red", "unstable"),
                                   ("R", "0.5", "random control")):
            es = sorted(sim.get(name, {}))
            ax.plot(es, [sim[name][e] for e in es], marker=".", color=colour, ls="--" if name == "R" else "-",
                    label=f"{what} {name} ({k} directions)")
        ax.axvline(t_half, color="0.5", ls=":", label=f"T/2 = {t_half}")
        ax.set_xlabel(f"{time} t (from t_early = {t_early})")
        ax.set_ylabel("mean CCA similarity with the layer at t")
        ax.set_title(f"(b) {layer}: signal vs noise directions", fontsize=9)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.suptitle(f"Figure 1: stable and unstable parts of a representation ({title})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
