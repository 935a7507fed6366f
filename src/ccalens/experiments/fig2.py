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

The paper's outcome is decided by the rules ``fig2.*`` of :mod:`.rules`. The default number
of datapoints is 50 per neuron of the widest layer, so that the finite-sample bias of CCA
(which lifts every summary at few datapoints per neuron) cannot decide the SVCCA
ordering. Each part's interval is a delete-one jackknife t interval over the seeds, at the
rule's Bonferroni confidence 1 - 0.05 / parts (:func:`.claims.part_confidence`).

A second sweep shows the regime in which projection weighting is robust: the noise's
standard deviation is varied too, and PWCCA's drop from its value at the highest
signal:noise ratio is set against the noise's share of the total standard deviation mass,
k_n sigma_n / (k_s sigma_s) (k: dimensions, sigma: standard deviations); the boundary is the
largest mass at which PWCCA stays within 0.1 of its start. The L1 projection weights grow
with each noise dimension's standard deviation and with their number, so PWCCA follows
w_s rho_s + (1 - w_s) rho_noise with w_s = k_s sigma_s / (k_s sigma_s + k_n sigma_n).

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

from ..version import __version__
from ..core import factorize, mean_cca, pwcca, svcca

MEASURES = ("mean_cca", "svcca", "pwcca")


@dataclass(frozen=True)
class Fig2Config:
    n_samples: int | None = None  # None: n_per_neuron x the widest layer
    signal_dims: int = 20
    noise_dims: tuple[int, ...] = (2, 5, 10, 20, 40, 80, 160, 320)
    noise_scale: float = 0.25
    jitter: float = 0.1
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    svcca_keep: float = 0.99
    n_per_neuron: int = 50
    regime_scales: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5)  # noise sds of the regime sweep
    regime_seeds: tuple[int, ...] = (0, 1)

    @property
    def n(self) -> int:
        return self.n_samples or self.n_per_neuron * (self.signal_dims + max(self.noise_dims))


@dataclass
class Fig2Result:
    config: Fig2Config
    rows: list[dict] = field(default_factory=list)
    claims: list[dict] = field(default_factory=list)
    regime: list[dict] = field(default_factory=list)
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


def synthetic_pair(rng: np.random.Generator, cfg: Fig2Config, noise_dims: int, noise_scale: float | None = None):
    """Two (n x (signal_dims + noise_dims)) layers sharing the signal latents."""
    n, k = cfg.n, cfg.signal_dims
    shared = rng.standard_normal((n, k))
    layers = []
    for _ in range(2):
        signal = shared + cfg.jitter * rng.standard_normal((n, k))
        noise = (cfg.noise_scale if noise_scale is None else noise_scale) * rng.standard_normal((n, noise_dims))
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
            fx, fy = factorize(x), factorize(y)
            sv = svcca(fx, fy, keep=cfg.svcca_keep)
            result.rows.append(
                {
                    "seed": seed,
                    "signal_dims": cfg.signal_dims,
                    "noise_dims": d,
                    "ratio": cfg.signal_dims / d,
                    "neurons": cfg.signal_dims + d,
                    "mean_cca": mean_cca(fx, fy).similarity,
                    "svcca": sv.similarity,
                    "svcca_components": sv.x_components,
                    "pwcca": pwcca(fx, fy).similarity,
                }
            )
            done += 1
            if progress:
                progress(done, total)
    result.regime = regime_sweep(cfg)
    result.claims = evaluate_claims(result)
    result.seconds = time.perf_counter() - started
    return result


def regime_sweep(cfg: Fig2Config) -> list[dict]:
    """PWCCA against the noise's standard-deviation mass k_n sigma_n / (k_s sigma_s), for several sigma_n."""
    rows = []
    for scale in cfg.regime_scales:
        for seed in cfg.regime_seeds:
            rng = np.random.default_rng(10_000 + seed)
            start = None
            for d in cfg.noise_dims:
                x, y = synthetic_pair(rng, cfg, d, noise_scale=scale)
                pw = pwcca(x, y).similarity
                start = pw if start is None else start
                rows.append({"noise_scale": scale, "seed": seed, "noise_dims": d,
                             "noise_mass": d * scale / cfg.signal_dims, "pwcca": pw, "drop_from_start": start - pw})
    return rows


def regime_boundary(regime: list[dict], tolerance: float = 0.1) -> float:
    """The largest noise mass at which the seed-mean PWCCA drop stays within ``tolerance`` (all below it too)."""
    cells = {}
    for r in regime:
        cells.setdefault((r["noise_scale"], r["noise_dims"]), []).append(r)
    points = sorted((np.mean([r["noise_mass"] for r in v]), np.mean([r["drop_from_start"] for r in v]))
                    for v in cells.values())
    boundary = float("nan")
    for mass, drop in points:
        if drop > tolerance:
            break
        boundary = mass
    return boundary


def claim_values(rows: list[dict], cfg: Fig2Config, seeds=None) -> dict:
    """What the fig2 rules read, from the rows of the given (possibly resampled) ``seeds``."""
    from scipy import stats

    seeds = list(dict.fromkeys(r["seed"] for r in rows)) if seeds is None else list(seeds)
    by = {(r["seed"], r["ratio"]): r for r in rows}
    ratios = sorted({r["ratio"] for r in rows}, reverse=True)

    def mean(m, ratio):
        return float(np.mean([by[(s, ratio)][m] for s in seeds]))

    hi, lo = ratios[0], ratios[-1]
    values = {"mean_cca_drop": mean("mean_cca", hi) - mean("mean_cca", lo),
              "pwcca_drop": mean("pwcca", hi) - mean("pwcca", lo)}
    values["drop_gap"] = values["mean_cca_drop"] - values["pwcca_drop"]
    values["drop_ratio"] = values["pwcca_drop"] / values["mean_cca_drop"] if values["mean_cca_drop"] else float("nan")
    violations, gaps, tests = 0, {"svcca": [], "pwcca": []}, {}
    for ratio in ratios:
        for low, high in (("mean_cca", "svcca"), ("svcca", "pwcca")):
            diff = np.array([by[(s, ratio)][high] - by[(s, ratio)][low] for s in seeds])
            gaps[high].append(float(diff.mean()))
            if len(diff) > 1 and np.ptp(diff) > 1e-12:
                p = float(stats.ttest_1samp(diff, 0.0, alternative="less").pvalue)
            else:  # every seed the same difference (e.g. SVCCA keeps every direction: equal to mean CCA)
                p = 0.0 if diff.mean() < -1e-12 else 1.0
            tests[f"{cfg.signal_dims}:{round(cfg.signal_dims / ratio)} {high}-{low}"] = {"mean": float(diff.mean()),
                                                                                          "p_below_0": p}
            violations += p < 0.05
    values.update({"min_svcca_minus_mean": min(gaps["svcca"]), "min_pwcca_minus_svcca": min(gaps["pwcca"]),
                   "violations": int(violations), "min_gap": min(gaps["svcca"] + gaps["pwcca"]), "paired_tests": tests,
                   "n_per_neuron": cfg.n / (cfg.signal_dims + max(cfg.noise_dims))})
    return values


def evaluate_claims(result: Fig2Result) -> list[dict]:
    """The fig2 rules' records: each part's interval a delete-one jackknife over the seeds."""
    from . import claims as claim_records
    from .rules import RULES

    cfg = result.config
    seeds = list(dict.fromkeys(r["seed"] for r in result.rows))
    values = {**claim_values(result.rows, cfg, seeds), "pwcca_robust_up_to_noise_mass": regime_boundary(result.regime)}
    out = []
    for rule_id in ("fig2.mean_underestimates", "fig2.pwcca_robust", "fig2.svcca_between"):
        keys = [part.name for part in RULES[rule_id].parts]
        note = None
        if len(seeds) >= 2:
            intervals = claim_records.network_jackknife(
                seeds, lambda kept: claim_values(result.rows, cfg, kept["all"]), keys,
                confidence=claim_records.part_confidence(rule_id), unit="seeds")
        else:  # a jackknife needs two seeds
            intervals, note = {key: None for key in keys}, "one seed: no interval over seeds"
        out.append(claim_records.decide(rule_id, values, intervals=intervals, note=note, replicates=len(seeds)))
    return out


def write_outputs(result: Fig2Result, out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out / "fig2.csv", "claims": out / "claims.json", "png": out / "fig2.png"}
    with paths["csv"].open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(result.rows[0]))
        writer.writeheader()
        writer.writerows(result.rows)
    meta = {
        "figure": "fig2",
        "config": {**asdict(result.config), "n": result.config.n},
        "scale": "synthetic",
        "dataset": "synthetic layers (Figure 2's generative model)",
        "command": "ccalens reproduce fig2",
        "regime": result.regime,
        "pwcca_robust_up_to_noise_mass": regime_boundary(result.regime),
        "seconds": round(result.seconds, 3),
        "machine": f"{platform.machine()} {platform.system()}, Python {platform.python_version()}, numpy {np.__version__}",
        "ccalens": __version__,
        "claims": result.claims,
    }
    paths["claims"].write_text(json.dumps(meta, indent=2))
    plot(result, paths["png"])
    return paths


def plot(result: Fig2Result, path: Path) -> None:
    from ..plot import pyplot

    plt = pyplot()
    summ = result.summary()
    styles = {
        "mean_cca": ("unweighted mean CCA", "tab:blue", "o"),
        "svcca": (f"SVCCA (keep {result.config.svcca_keep:.0%} variance)", "tab:green", "s"),
        "pwcca": ("projection-weighted CCA", "tab:red", "^"),
    }
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12.5, 4.6), dpi=120)
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
        f"n={cfg.n}, {len(cfg.seeds)} seeds",
        fontsize=9,
    )
    held = "   ".join(f"{c['id'].split('.')[1]}: {c['status']}" for c in result.claims)
    ax.text(0.01, 0.02, "paper's claims: " + held, transform=ax.transAxes, fontsize=7, color="0.25")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", bbox_to_anchor=(0.0, 0.06), fontsize=8)
    cells: dict = {}
    for r in result.regime:
        cells.setdefault(r["noise_scale"], {}).setdefault(r["noise_mass"], []).append(r["drop_from_start"])
    for scale, by_mass in sorted(cells.items()):
        masses = sorted(by_mass)
        ax2.plot(masses, [np.mean(by_mass[m]) for m in masses], marker="o", label=f"noise sd {scale:g}")
    boundary = regime_boundary(result.regime)
    ax2.axhline(0.1, color="0.5", ls=":", label="drop 0.1")
    if np.isfinite(boundary):
        ax2.axvline(boundary, color="tab:red", ls="--", label=f"robust up to mass {boundary:.2g}")
    ax2.set_xscale("log")
    ax2.set_xlabel("noise standard-deviation mass  k_n sd_n / (k_s sd_s)")
    ax2.set_ylabel("PWCCA drop from its value at 20:2")
    ax2.set_title("where projection weighting stays robust", fontsize=9)
    ax2.grid(alpha=0.3)
    ax2.legend(fontsize=8)
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
        lines.append(f"[{c['status']}] {c['claim']}  (rule: {c['rule']['decision']})")
    return "\n".join(lines)


def reproduce(out, *, seeds: int = 5, n: int | None = None, noise_scale: float = Fig2Config.noise_scale,
              log=print) -> dict:
    """Run Figure 2 and write its figure, numbers and claims to ``out``; returns the paths."""
    cfg = Fig2Config(n_samples=n, seeds=tuple(range(seeds)), noise_scale=noise_scale)

    def progress(done, total):
        if done == total or done % max(1, total // 10) == 0:
            log(f"  pairs compared: {done}/{total}")

    log(f"Figure 2: {len(cfg.seeds)} seeds x {len(cfg.noise_dims)} signal:noise ratios")
    result = run(cfg, progress=progress)
    log("")
    paths = write_outputs(result, Path(out))
    log(format_report(result))
    log(f"\nwrote {paths['png']}, {paths['csv']}, {paths['claims']} in {result.seconds:.1f} s")
    return paths


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Reproduce the paper's Figure 2 on synthetic layers.")
    parser.add_argument("--out", default="runs/fig2", help="output folder (default runs/fig2)")
    parser.add_argument("--seeds", type=int, default=5, help="number of seeds (default 5)")
    parser.add_argument("--n", type=int, default=None, help="datapoints per layer (default: 50 per neuron of the "
                        "widest layer)")
    parser.add_argument("--noise-scale", type=float, default=Fig2Config.noise_scale)
    args = parser.parse_args(argv)
    reproduce(args.out, seeds=args.seeds, n=args.n, noise_scale=args.noise_scale,
              log=lambda text: print(text, flush=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
