"""The paper's Figure 2: PWCCA vs SVCCA vs unweighted mean CCA on synthetic layers.

Two synthetic representations share a signal subspace of fixed dimension and each carries
its own, uncommon noise dimensions. Sweeping the ratio of signal to noise dimensions shows
how each summary of the canonical correlations tracks the shared structure
(Morcos, Raghu & Bengio 2018, section 2.2 and Figure 2).

The generative model (the paper does not give its own; this one states its premise, that
the shared signal accounts for more of the neurons' activity than the noise):

* ``S``: n x ``signal_dims`` shared latents, standard normal;
* each side sees ``S`` through its own small measurement noise (``jitter``), so the
  signal correlations are high but below 1;
* each side adds ``noise_dims`` private latents with standard deviation ``noise_scale``
  (below the signal's 1);
* the latents are mixed into ``signal_dims + noise_dims`` neurons by a random orthogonal
  matrix per side, and offset by random neuron means.

The paper's outcome, decided by rules fixed before running:

* ``mean_underestimates``: as noise grows, unweighted mean CCA falls well below its value
  at the highest signal:noise ratio (a drop of more than 0.25);
* ``pwcca_robust``: PWCCA loses less than half of what the unweighted mean loses across
  the sweep;
* ``svcca_between``: at every ratio where noise dimensions outnumber signal dimensions,
  the seed-averaged SVCCA lies strictly between the unweighted mean and PWCCA.

Run ``python -m ccalens.experiments.fig2 --out runs/fig2``.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

import ccalens

MEASURES = ("mean_cca", "svcca", "pwcca")


@dataclass(frozen=True)
class Fig2Config:
    n_samples: int = 5000
    signal_dims: int = 20
    noise_dims: tuple[int, ...] = (2, 5, 10, 20, 40, 80, 160, 320)
    noise_scale: float = 0.25
    jitter: float = 0.1
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    svcca_keep: float = 0.99


@dataclass
class Fig2Result:
    config: Fig2Config
    rows: list[dict] = field(default_factory=list)
    claims: list[dict] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> dict[str, dict[float, tuple[float, float]]]:
        """measure -> ratio -> (mean over seeds, sd over seeds)."""
        out: dict[str, dict[float, tuple[float, float]]] = {}
        for m in MEASURES:
            out[m] = {}
            for ratio in sorted({r["ratio"] for r in self.rows}, reverse=True):
                vals = [r[m] for r in self.rows if r["ratio"] == ratio]
                out[m][ratio] = (float(np.mean(vals)), float(np.std(vals)))
        return out


def synthetic_pair(rng: np.random.Generator, cfg: Fig2Config, noise_dims: int):
    """Two (n x (signal_dims + noise_dims)) layers sharing the signal latents."""
    n, k = cfg.n_samples, cfg.signal_dims
    shared = rng.standard_normal((n, k))
    layers = []
    for _ in range(2):
        signal = shared + cfg.jitter * rng.standard_normal((n, k))
        noise = cfg.noise_scale * rng.standard_normal((n, noise_dims))
        width = k + noise_dims
        rotation, _ = np.linalg.qr(rng.standard_normal((width, width)))
        layers.append(np.c_[signal, noise] @ rotation + rng.standard_normal(width))
    return layers


def run(cfg: Fig2Config = Fig2Config(), progress=None) -> Fig2Result:
    """Compute the sweep; ``progress`` is called with (done, total) after each pair."""
    started = time.perf_counter()
    result = Fig2Result(cfg)
    total = len(cfg.seeds) * len(cfg.noise_dims)
    done = 0
    for seed in cfg.seeds:
        rng = np.random.default_rng(seed)
        for d in cfg.noise_dims:
            x, y = synthetic_pair(rng, cfg, d)
            fx, fy = ccalens.factorize(x), ccalens.factorize(y)
            sv = ccalens.svcca(fx, fy, keep=cfg.svcca_keep)
            result.rows.append(
                {
                    "seed": seed,
                    "signal_dims": cfg.signal_dims,
                    "noise_dims": d,
                    "ratio": cfg.signal_dims / d,
                    "neurons": cfg.signal_dims + d,
                    "mean_cca": ccalens.mean_cca(fx, fy).similarity,
                    "svcca": sv.similarity,
                    "svcca_components": sv.x_components,
                    "pwcca": ccalens.pwcca(fx, fy).similarity,
                }
            )
            done += 1
            if progress:
                progress(done, total)
    result.claims = evaluate_claims(result)
    result.seconds = time.perf_counter() - started
    return result


def evaluate_claims(result: Fig2Result) -> list[dict]:
    summ = result.summary()
    ratios = sorted(summ["mean_cca"], reverse=True)
    hi, lo = ratios[0], ratios[-1]
    drop = {m: summ[m][hi][0] - summ[m][lo][0] for m in MEASURES}
    noisy = [r for r in ratios if r < 1]
    between = {
        r: summ["mean_cca"][r][0] < summ["svcca"][r][0] < summ["pwcca"][r][0] for r in noisy
    }
    return [
        {
            "name": "mean CCA falls",
            "claim": "As the signal-to-noise ratio decreases, the unweighted mean CCA underestimates the shared structure.",
            "statistic": {"mean_cca_at_highest_ratio": summ["mean_cca"][hi][0], "mean_cca_at_lowest_ratio": summ["mean_cca"][lo][0], "drop": drop["mean_cca"]},
            "rule": "mean CCA drops by more than 0.25 from the highest to the lowest signal:noise ratio",
            "held": bool(drop["mean_cca"] > 0.25),
        },
        {
            "name": "PWCCA robust",
            "claim": "The projection-weighted mean (PWCCA) remains largely robust.",
            "statistic": {"pwcca_drop": drop["pwcca"], "mean_cca_drop": drop["mean_cca"], "ratio_of_drops": drop["pwcca"] / drop["mean_cca"]},
            "rule": "PWCCA's drop across the sweep is less than half of mean CCA's drop",
            "held": bool(drop["pwcca"] < 0.5 * drop["mean_cca"]),
        },
        {
            "name": "SVCCA between",
            "claim": "SVCCA performs better than the unweighted mean but less well than projection weighting.",
            "statistic": {str(r): {m: summ[m][r][0] for m in MEASURES} for r in noisy},
            "rule": "mean CCA < SVCCA < PWCCA (seed averages) at every ratio below 1",
            "held": bool(noisy) and all(between.values()),
        },
    ]


def write_outputs(result: Fig2Result, out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out / "fig2.csv", "claims": out / "claims.json", "png": out / "fig2.png"}
    with paths["csv"].open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(result.rows[0]))
        writer.writeheader()
        writer.writerows(result.rows)
    meta = {
        "figure": "fig2",
        "config": asdict(result.config),
        "seconds": round(result.seconds, 3),
        "machine": f"{platform.machine()} {platform.system()}, Python {platform.python_version()}, numpy {np.__version__}",
        "ccalens": ccalens.__version__,
        "claims": result.claims,
    }
    paths["claims"].write_text(json.dumps(meta, indent=2))
    plot(result, paths["png"])
    return paths


def plot(result: Fig2Result, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the Figure 2 plot needs matplotlib: pip install 'ccalens[plot]'"
        ) from err
    summ = result.summary()
    styles = {
        "mean_cca": ("unweighted mean CCA", "tab:blue", "o"),
        "svcca": (f"SVCCA (keep {result.config.svcca_keep:.0%} variance)", "tab:green", "s"),
        "pwcca": ("projection-weighted CCA", "tab:red", "^"),
    }
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    for m, (label, colour, marker) in styles.items():
        ratios = sorted(summ[m])
        mean = np.array([summ[m][r][0] for r in ratios])
        sd = np.array([summ[m][r][1] for r in ratios])
        ax.plot(ratios, mean, marker=marker, color=colour, label=label)
        ax.fill_between(ratios, mean - sd, mean + sd, color=colour, alpha=0.2)
    cfg = result.config
    ax.set_xscale("log", base=2)
    ticks = sorted(summ["mean_cca"])
    ax.set_xticks(ticks, [f"{cfg.signal_dims}:{round(cfg.signal_dims / r)}" for r in ticks], fontsize=7)
    ax.minorticks_off()
    ax.invert_xaxis()
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("signal : noise dimensions (noise grows to the right)")
    ax.set_ylabel("similarity (1 - distance)")
    ax.set_title(
        f"Figure 2: {cfg.signal_dims} shared signal dims, noise sd {cfg.noise_scale}, "
        f"n={cfg.n_samples}, {len(cfg.seeds)} seeds",
        fontsize=9,
    )
    held = "   ".join(f"{c['name']}: {'held' if c['held'] else 'NOT held'}" for c in result.claims)
    ax.text(0.01, 0.02, "paper's claims: " + held, transform=ax.transAxes, fontsize=7, color="0.25")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", bbox_to_anchor=(0.0, 0.06), fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def format_report(result: Fig2Result) -> str:
    summ = result.summary()
    lines = ["signal:noise  neurons   mean CCA        SVCCA           PWCCA"]
    for ratio in sorted(summ["mean_cca"], reverse=True):
        neurons = next(r["neurons"] for r in result.rows if r["ratio"] == ratio)
        cells = "  ".join(f"{summ[m][ratio][0]:.3f} ± {summ[m][ratio][1]:.3f}" for m in MEASURES)
        lines.append(f"{ratio:>12.4g}  {neurons:>7d}   {cells}")
    lines.append("")
    for c in result.claims:
        lines.append(f"[{'held' if c['held'] else 'NOT held'}] {c['claim']}  (rule: {c['rule']})")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Reproduce the paper's Figure 2 on synthetic layers.")
    parser.add_argument("--out", default="runs/fig2", help="output folder (default runs/fig2)")
    parser.add_argument("--seeds", type=int, default=5, help="number of seeds (default 5)")
    parser.add_argument("--n", type=int, default=Fig2Config.n_samples, help="datapoints per layer")
    parser.add_argument("--noise-scale", type=float, default=Fig2Config.noise_scale)
    args = parser.parse_args(argv)
    cfg = Fig2Config(n_samples=args.n, seeds=tuple(range(args.seeds)), noise_scale=args.noise_scale)

    def progress(done, total):
        if done == total or done % max(1, total // 10) == 0:
            print(f"  pairs compared: {done}/{total}", flush=True)

    print(f"Figure 2: {len(cfg.seeds)} seeds x {len(cfg.noise_dims)} signal:noise ratios")
    result = run(cfg, progress=progress)
    print()
    paths = write_outputs(result, Path(args.out))
    print(format_report(result))
    print(f"\nwrote {paths['png']}, {paths['csv']}, {paths['claims']} in {result.seconds:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
