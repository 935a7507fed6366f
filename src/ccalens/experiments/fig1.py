"""The paper's Figure 1: CCA separates the stable (signal) and unstable (noise) parts of a layer.

One network is trained with a checkpoint after every epoch (Morcos, Raghu & Bengio 2018,
Section 2.1). The paper's premise is a layer that keeps changing after performance has
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
  sides of T/2.

Both S and B lie in L at T/2, so both reach similarity 1 there (the paper's spike). The
claims (``fig1.*`` in :mod:`.rules`) are decided per layer; intervals come from a bootstrap
over datapoints.
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
DRAWS = 200


def train(ctx: Context) -> dict:
    """Train the figure's network (a checkpoint after every epoch); its record."""
    T = ctx.scale.fig1_epochs
    return ctx.network(ctx.spec(seed=7, epochs=T), keep=tuple(range(T + 1)))


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
    spec = ctx.spec(seed=7, epochs=T_max)
    ctx.log(f"{FIGURE}: one network, a checkpoint after each of {T_max} epochs ({ctx.split.name})")
    record = train(ctx)
    ratios = [ctx.check_ratio({k: v for k, v in cnn.layer_widths(s.width, ctx.split.classes).items() if k in LAYERS})]
    xt, yt = torch.from_numpy(ctx.split.x_test), torch.from_numpy(ctx.split.y_test)
    device = cnn._device(s.device)
    test_acc = [cnn.accuracy(cnn.load_network(spec, ctx.split, ctx.root, e).to(device), xt, yt) for e in range(T_max + 1)]
    acts = {e: ctx.activations(FIGURE, spec, epoch=e, layers=LAYERS) for e in range(T_max + 1)}
    layers = {layer: {e: load_array(acts[e][layer]) for e in range(T_max + 1)} for layer in LAYERS}
    T, _ = choose_T(layers, T_max)
    t0 = first_converged(test_acc[: T + 1], lambda v, final: v >= final - 0.01)
    t_early, t_half = max(1, round(T / 10)), T // 2
    ctx.log(f"  T = {T} (last epoch where every layer still changes over (T/2, T]); t0 = {t0}")
    rows, claims, panels = [], [], {}
    for layer in LAYERS:
        L = {e: layers[layer][e] for e in range(T + 1)}
        analysis = analyse_layer(L, T, t0, t_early, t_half, performance={"test_accuracy": test_acc},
                                 draws=claim_records.draws_for(DRAWS, s))
        rows += analysis["rows"]
        claims += decide_layer("fig1", layer, analysis, premise={})
        panels[layer] = (analysis["rho_vs_final"], analysis["sim"], analysis["k"])
    paths = write_outputs(ctx, FIGURE, rows, claims, {
        "network": {"name": spec.name, **{k: record.get(k) for k in ("epochs", "train_accuracy", "test_accuracy")}},
        "datapoints_per_neuron": ratios, "T": T, "T_max": T_max, "t0": t0, "t_early": t_early, "t_half": t_half,
        "test_accuracy": test_acc})
    paths["png"] = ctx.root / FIGURE / f"{FIGURE}.png"
    plot(panels, test_acc[: T + 1], t0, t_early, t_half, T, paths["png"], title=f"{ctx.split.name}, {spec.name}, T = {T}")
    return {"claims": claims, "paths": paths}


def first_converged(performance, close) -> int:
    """The first checkpoint t whose performance is ``close(performance[t], performance[-1])``."""
    final = performance[-1]
    return next(t for t in range(len(performance)) if close(performance[t], final))


def signal_noise(L: dict, T, t_early, t_half, *, control_draws: int = CONTROL_DRAWS, seed: int = 0,
                 against_final: bool = True):
    """The analysis of one layer, given its representation at every checkpoint ``L[t]``.

    Returns (rho_vs_final: {t: sorted coefficients of L[t] against L[T]},
    sim: {"S"|"B"|"R": {t: mean CCA similarity with L[t]} for t > t_early}, k). R (the random
    control) is left out when ``control_draws`` is 0, rho_vs_final without ``against_final``.
    """
    from ..core import cca, mean_cca

    checkpoints = sorted(L)
    rho_vs_final = {e: np.asarray(cca(L[e], L[T]).rho) for e in checkpoints} if against_final else {}
    split = cca(L[t_early], L[t_half], variates=True)
    variates = np.asarray(split.y_variates)
    c = variates.shape[1]
    k = max(1, c // 4)
    parts = {"S": variates[:, :k], "B": variates[:, c - k:]}
    later = [e for e in checkpoints if e > t_early]
    sim = {name: {e: mean_cca(part, L[e]).similarity for e in later} for name, part in parts.items()}
    if control_draws:
        rng = np.random.default_rng(seed)
        rotations = [np.linalg.qr(rng.standard_normal((c, k)))[0] for _ in range(control_draws)]
        sim["R"] = {e: float(np.mean([mean_cca(variates @ q, L[e]).similarity for q in rotations]))
                    for e in later}
    return rho_vs_final, sim, k


def summarise_sets(sim: dict, t_half: int) -> dict:
    """S, B and R summarised after T/2 (t > T/2) and before it (t_early < t < T/2)."""
    out = {}
    for side, keep in (("after", lambda e: e > t_half), ("before", lambda e: e < t_half)):
        for name in ("S", "B", "R"):
            vals = [v for e, v in sim.get(name, {}).items() if keep(e)]
            out[f"{name}_mean_{side}"] = float(np.mean(vals)) if vals else float("nan")
        vals = [v for e, v in sim["S"].items() if keep(e)]
        out[f"S_min_{side}"] = float(np.min(vals)) if vals else float("nan")
        out[f"gap_{side}"] = out[f"S_mean_{side}"] - out[f"B_mean_{side}"]
    return out


def analyse_layer(L: dict, T: int, t0: int, t_early: int, t_half: int, *, performance: dict,
                  groups: np.ndarray | None = None, draws: int = DRAWS, unit: str = "datapoints") -> dict:
    """Everything the fig1 claims read for one layer, with bootstrap intervals over rows (or row ``groups``)."""
    from ..core import cca

    rho_vs_final, sim, k = signal_noise(L, T, t_early, t_half)
    values = {"T": T, "t0": t0, "t_early": t_early, "t_half": t_half, "k": k,
              "fraction_below_0_9": float(np.mean(rho_vs_final[t0] < 0.9)),
              "rho_half_vs_final": float(np.mean(rho_vs_final[t_half])), **summarise_sets(sim, t_half)}
    n = len(L[T])

    def fraction(idx):
        return float(np.mean(np.asarray(cca(L[t0][idx], L[T][idx]).rho) < 0.9))

    def gap(idx):
        _, s, _ = signal_noise({e: L[e][idx] for e in L if e >= t_early}, T, t_early, t_half, control_draws=0,
                               against_final=False)
        return summarise_sets(s, t_half)["gap_after"]

    intervals = {"fraction_below_0_9": claim_records.row_bootstrap(n, fraction, draws=draws, groups=groups, unit=unit),
                 "gap_after": claim_records.row_bootstrap(n, gap, draws=draws, groups=groups, unit=unit)}
    rows = []
    for e in sorted(L):
        rows.append({"t": e, **{name: values[e] for name, values in performance.items()},
                     "mean_rho_vs_final": float(rho_vs_final[e].mean()),
                     **{f"{name}_similarity": sim[name].get(e, np.nan) for name in ("S", "B", "R")},
                     "rho_vs_final": " ".join(f"{v:.6f}" for v in rho_vs_final[e])})
    return {"values": values, "intervals": intervals, "rows": rows, "rho_vs_final": rho_vs_final, "sim": sim, "k": k}


def decide_layer(prefix: str, layer: str, analysis: dict, premise: dict) -> list[dict]:
    """The two claim records of one layer (``prefix`` fig1 or fig1rnn; ``premise``: extra values)."""
    values = {**analysis["values"], **premise}
    for row in analysis["rows"]:
        row["layer"] = layer
    return [claim_records.decide(f"{prefix}.{name}", values, interval=analysis["intervals"][key], scope=layer)
            for name, key in (("unconverged", "fraction_below_0_9"),
                              ("signal_stable_noise_decorrelates", "gap_after"))]


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
