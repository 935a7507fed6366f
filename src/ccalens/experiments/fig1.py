"""The paper's Figure 1: CCA separates the stable (signal) and unstable (noise) parts of a layer.

One network is trained with a checkpoint after every epoch (Morcos, Raghu & Bengio 2018,
Section 2.1). For a layer L:

* (a) the sorted canonical correlations of L at every checkpoint t against L at the final
  checkpoint T, from the first checkpoint t0 whose test accuracy is within one point of
  the final one (performance has converged) to T;
* (b) CCA between L at t_early (a tenth of training) and L at T/2; the canonical variates
  of L at T/2 with the highest correlations form S (signal), those with the lowest form B
  (noise), k of each, where k is a quarter of the number of canonical pairs (the paper
  takes 100 of a wider layer); then the mean CCA similarity of S and of B with L at every
  checkpoint after t_early.

Both S and B lie in L at T/2, so both reach similarity 1 there (the paper's spike).

Claims and rules, per layer (fixed before the first run):

* ``unconverged_after_performance``: at t0 < T, at least a quarter of the coefficients
  against T are below 0.9;
* ``signal_stable_noise_decorrelates``: over the checkpoints after T/2, S's similarity never
  falls below 0.8, and its mean exceeds B's by at least 0.2.
"""

from __future__ import annotations

import numpy as np

from . import cnn
from .common import Context, claim, pyplot, write_outputs

FIGURE = "fig1"
LAYERS = ("conv3", "fc1")


def train(ctx: Context) -> dict:
    """Train the figure's network (a checkpoint after every epoch); its record."""
    T = ctx.scale.fig1_epochs
    return ctx.network(ctx.spec(seed=7, epochs=T), keep=tuple(range(T + 1)))


def run(ctx: Context) -> dict:
    import torch

    from ..store import load_array

    s = ctx.scale
    T = s.fig1_epochs
    spec = ctx.spec(seed=7, epochs=T)
    ctx.log(f"{FIGURE}: one network, a checkpoint after each of {T} epochs ({ctx.split.name})")
    record = train(ctx)
    ratios = [ctx.check_ratio({k: v for k, v in cnn.layer_widths(s.width, ctx.split.classes).items() if k in LAYERS})]
    xt, yt = torch.from_numpy(ctx.split.x_test), torch.from_numpy(ctx.split.y_test)
    device = cnn._device(s.device)
    test_acc = [cnn.accuracy(cnn.load_network(spec, ctx.split, ctx.root, e).to(device), xt, yt) for e in range(T + 1)]
    acts = {e: ctx.activations(FIGURE, spec, epoch=e, layers=LAYERS) for e in range(T + 1)}

    t0 = next(e for e in range(T + 1) if test_acc[e] >= test_acc[T] - 0.01)
    t_early, t_half = max(1, round(T / 10)), T // 2
    rows, claims, panels = [], [], {}
    for layer in LAYERS:
        L = {e: load_array(acts[e][layer]) for e in range(T + 1)}
        rho_vs_final, sim, k = signal_noise(L, T, t_early, t_half)
        for e in range(T + 1):
            rows.append({"layer": layer, "epoch": e, "test_accuracy": test_acc[e],
                         "mean_rho_vs_final": float(rho_vs_final[e].mean()),
                         "S_similarity": sim["S"].get(e, np.nan), "B_similarity": sim["B"].get(e, np.nan),
                         "rho_vs_final": " ".join(f"{v:.6f}" for v in rho_vs_final[e])})
        claims += decide(layer, t0, T, t_half, test_acc, rho_vs_final[t0], sim, k)
        panels[layer] = (rho_vs_final, sim, k)
    paths = write_outputs(ctx, FIGURE, rows, claims, {
        "network": {"name": spec.name, **{k: record[k] for k in ("epochs", "train_accuracy", "test_accuracy")}},
        "datapoints_per_neuron": ratios, "t0": t0, "t_early": t_early, "t_half": t_half, "test_accuracy": test_acc})
    paths["png"] = ctx.root / FIGURE / f"{FIGURE}.png"
    plot(panels, test_acc, t0, t_early, t_half, T, paths["png"], title=f"{ctx.split.name}, {spec.name}")
    return {"claims": claims, "paths": paths}


def signal_noise(L: dict, T, t_early, t_half):
    """The analysis of one layer, given its representation at every checkpoint ``L[t]``.

    Returns (rho_vs_final: {t: sorted coefficients of L[t] against L[T]},
    sim: {"S"|"B": {t: mean CCA similarity with L[t]} for t > t_early}, k).
    """
    import ccalens

    checkpoints = sorted(L)
    rho_vs_final = {e: np.asarray(ccalens.cca(L[e], L[T]).rho) for e in checkpoints}
    split = ccalens.cca(L[t_early], L[t_half], variates=True)
    c = len(split.rho)
    k = max(1, c // 4)
    parts = {"S": split.y_variates[:, :k], "B": split.y_variates[:, c - k:]}
    sim = {name: {e: ccalens.mean_cca(part, L[e]).similarity for e in checkpoints if e > t_early}
           for name, part in parts.items()}
    return rho_vs_final, sim, k


def decide(layer: str, t0: int, T: int, t_half: int, performance, rho_t0, sim: dict, k: int,
           metric: str = "test_accuracy") -> list[dict]:
    """The two claims of the module docstring for one layer.

    ``rho_t0``: the coefficients of the layer at t0 against T; ``sim``: {"S": {epoch: s},
    "B": {epoch: s}} for the checkpoints after t_early; ``performance[t]``: the ``metric`` at t.
    """
    below = float(np.mean(np.asarray(rho_t0) < 0.9))
    late = [e for e in sorted(sim["S"]) if e > t_half]
    s_late, b_late = np.array([sim["S"][e] for e in late]), np.array([sim["B"][e] for e in late])
    return [
        claim(f"unconverged_after_performance[{layer}]",
              "Many CCA coefficients keep changing after test performance has converged.",
              {"t0": t0, "T": T, f"{metric}_t0": performance[t0], f"{metric}_T": performance[T],
               "fraction_below_0.9_at_t0": below},
              "t0 < T and at least 25% of the coefficients at t0 are below 0.9", t0 < T and below >= 0.25),
        claim(f"signal_stable_noise_decorrelates[{layer}]",
              "The most converged CCA directions (S) stay stable; the least converged (B) decorrelate.",
              {"k": k, "min_S_after_half": float(s_late.min()), "mean_S_after_half": float(s_late.mean()),
               "mean_B_after_half": float(b_late.mean())},
              "after T/2: min S >= 0.8 and mean S - mean B >= 0.2",
              s_late.min() >= 0.8 and s_late.mean() - b_late.mean() >= 0.2),
    ]


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
        ax.set_xlabel("CCA coefficient index (sorted)")
        ax.set_ylabel("ρ (layer at t vs at T)")
        ax.set_title(f"(a) {layer}: t = {t0}..{T - 1} (yellow = later)", fontsize=9)
        ax.grid(alpha=0.3)
        ax = axes[2 + 2 * i]
        for name, colour in (("S", "tab:blue"), ("B", "tab:red")):
            es = sorted(sim[name])
            ax.plot(es, [sim[name][e] for e in es], marker=".", color=colour,
                    label=f"{'stable' if name == 'S' else 'unstable'} {name} ({k} directions)")
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
