"""The paper's Appendix A.3: how an LSTM's hidden state changes over sequence timesteps.

Within the trained shallow language model of :mod:`.rnn` (trained to a validation plateau),
the hidden state of each layer at timestep t1 is compared with that at t2 over the probe
windows (one datapoint per window, every window run from a zero state, at least 50 windows
per neuron): a timestep x timestep matrix with PWCCA (symmetrised, through
:func:`ccalens.pairwise`), with the cosine similarity of the raw hidden states and with the
cosine similarity of the centred hidden states (Morcos, Raghu & Bengio 2018, Appendix A.3).

Unrelated representations of this size are not at similarity 0 for any of these measures,
so each is compared with its chance level: the same measure with the windows shuffled on
one side (``NULL_DRAWS`` shuffles, a null per timestep pair), and reported as the
beyond-chance similarity (s - null) / (1 - null): 0 at chance, 1 for identical states.
Claims: ``seq.*`` in :mod:`.rules` per layer; intervals from a grouped jackknife over
windows (:func:`.claims.jackknife_interval`): each replicate deletes a group of windows from
the data and from the same shuffled pairings as the estimate's null, so no window repeats
(a bootstrap's repeated windows raise the similarity but not a shuffled null).
"""

from __future__ import annotations

import numpy as np

from . import claims as claim_records
from .common import naive_distance, write_outputs
from ..plot import pyplot
from .rnn import RNNContext

FIGURE = "seq"
MEASURES = ("pwcca", "cosine", "cosine_centred")
NULL_DRAWS = 3
JACKKNIFE_GROUPS = 25


def cosine_matrix(raw: list[np.ndarray], rows=None, centred: bool = False) -> np.ndarray:
    """Cosine similarity between every pair of timesteps' (windows x units) states."""
    arrays = [a if rows is None else a[rows] for a in raw]
    if centred:
        arrays = [a - a.mean(axis=0) for a in arrays]
    T = len(arrays)
    out = np.eye(T)
    for i in range(T):
        for j in range(i + 1, T):
            out[i, j] = out[j, i] = 1.0 - naive_distance(arrays[i], arrays[j], "cosine")
    return out


def pwcca_matrix(raw: list[np.ndarray], rows=None, others=None) -> np.ndarray:
    """Symmetrised PWCCA similarity between timesteps (against ``others`` when given: K x K, not symmetric)."""
    from ..engine import pairwise

    reps = {f"t{t}": (a if rows is None else a[rows]) for t, a in enumerate(raw)}
    if others is None:
        return pairwise(reps, "pwcca", symmetric=True).similarity
    return pairwise(reps, "pwcca", symmetric=True, others={f"s{t}": o for t, o in enumerate(others)}).similarity


def matrices(raw: list[np.ndarray], rows=None) -> dict[str, np.ndarray]:
    """PWCCA, raw and centred cosine between every pair of timesteps, on ``rows`` (all by default)."""
    return {"pwcca": pwcca_matrix(raw, rows), "cosine": cosine_matrix(raw, rows),
            "cosine_centred": cosine_matrix(raw, rows, centred=True)}


def null_matrices(raw: list[np.ndarray], draws: int = NULL_DRAWS, seed: int = 0, rows=None) -> dict[str, np.ndarray]:
    """Each measure with the windows of the second timestep shuffled: chance level per timestep pair.

    The shuffles (one per timestep) are drawn for all windows from ``seed``; with ``rows``
    the shuffled pairs (window i, window perm[i]) for i in ``rows`` are kept, so a jackknife
    replicate deletes the pairs of the deleted windows from the same pairings as the
    estimate's null instead of drawing new ones (a deleted window can still be another kept
    window's shuffled partner: the replicate deletes pairs, as the unshuffled side does).
    """
    rng = np.random.default_rng(seed)
    T = len(raw)
    keep = np.arange(len(raw[0])) if rows is None else np.asarray(rows)
    acc = {m: np.zeros((T, T)) for m in MEASURES}
    left = raw if rows is None else [a[keep] for a in raw]
    for _ in range(draws):
        perms = [rng.permutation(len(a)) for a in raw]  # one shuffle per timestep, as the estimate's null
        shuffled = [a[perm[keep]] for a, perm in zip(raw, perms)]
        acc["pwcca"] += pwcca_matrix(left, others=shuffled)
        for m, centred in (("cosine", False), ("cosine_centred", True)):
            a = [x - x.mean(axis=0) for x in left] if centred else left
            b = [x - x.mean(axis=0) for x in shuffled] if centred else shuffled
            acc[m] += np.array([[1.0 - naive_distance(a[i], b[j], "cosine") for j in range(T)] for i in range(T)])
    return {m: 0.5 * (v + v.T) / draws for m, v in acc.items()}


def corrected(similarity: np.ndarray, null: np.ndarray) -> np.ndarray:
    """(s - null) / (1 - null): beyond-chance similarity, 0 at chance and 1 for identical states."""
    return (similarity - null) / np.where(1.0 - null > 0, 1.0 - null, np.nan)


def values_for(mats: dict, nulls: dict) -> dict:
    """What the seq rules read, from the similarity matrices and their nulls."""
    T = len(mats["pwcca"])
    off = ~np.eye(T, dtype=bool)
    lag = np.abs(np.subtract.outer(np.arange(T), np.arange(T)))
    far = lag >= max(1, T // 2)
    c = {m: corrected(mats[m], nulls[m]) for m in MEASURES}
    out = {f"mean_offdiag_{m}": float(mats[m][off].mean()) for m in MEASURES}
    out.update({f"mean_offdiag_{m}_null": float(nulls[m][off].mean()) for m in MEASURES})
    out.update({f"mean_offdiag_{m}_corrected": float(np.nanmean(c[m][off])) for m in MEASURES})
    out["far_pwcca_corrected"] = float(np.nanmean(c["pwcca"][far]))
    out["far_lag"] = int(max(1, T // 2))
    out["gap"] = out["mean_offdiag_pwcca_corrected"] - max(out["mean_offdiag_cosine_corrected"],
                                                           out["mean_offdiag_cosine_centred_corrected"])
    return out


def decide(layer: str, values: dict, intervals: dict | None = None) -> list[dict]:
    """The claim records for one layer (``values`` from :func:`values_for` plus the premise's)."""
    intervals = intervals or {}
    return [claim_records.decide("seq.cca_beyond_cosine", values, interval=intervals.get("gap"), scope=layer),
            claim_records.decide("seq.nonlinear_over_time", values, interval=intervals.get("far_pwcca_corrected"),
                                 scope=layer)]


def run(ctx: RNNContext) -> dict:
    from ..store import load_array

    s = ctx.scale
    spec = ctx.spec(s.depths[0])
    rec = ctx.model(spec)
    final = rec["checkpoints"][-1]
    ctx.log(f"{FIGURE}: {spec.name}, hidden state at each of {s.seq_length} timesteps over {s.seq_sequences} windows")
    ratios = [ctx.check_ratio(s.seq_sequences, s.hidden, "probe windows per timestep")]
    arrays = ctx.activations(FIGURE, spec, final, sequence="each", kind="sequence-time")
    rows, claims, mats = [], [], {}
    premise = {"plateau_reached": bool(rec["plateau_reached"]), "windows_per_neuron": s.seq_sequences / s.hidden}
    for layer in [f"lstm{i + 1}" for i in range(spec.layers)]:
        raw = [np.asarray(load_array(arrays[f"{layer}@t{t}"]), dtype=np.float64) for t in range(s.seq_length)]
        m, nulls = matrices(raw), null_matrices(raw)
        values = {**values_for(m, nulls), **premise}
        cache: dict = {}

        def replicate(rows, raw=raw):
            key = rows.tobytes()
            if key not in cache:  # one replicate feeds both statistics
                cache[key] = values_for(matrices(raw, rows), null_matrices(raw, rows=rows))
            return cache[key]

        groups = max(5, int(round(JACKKNIFE_GROUPS * min(1.0, getattr(s, "bootstrap", 1.0) * 2))))
        intervals = {key: claim_records.jackknife_interval(
            len(raw[0]), lambda rows, key=key: replicate(rows)[key] if len(rows) < len(raw[0]) else values[key],
            groups=groups, seed=1, unit="probe windows") for key in ("gap", "far_pwcca_corrected")}
        mats[layer] = {**m, **{f"{k}_corrected": corrected(m[k], nulls[k]) for k in MEASURES}}
        for i in range(s.seq_length):
            for j in range(s.seq_length):
                rows.append({"layer": layer, "t1": i, "t2": j, **{k: float(v[i, j]) for k, v in m.items()},
                             **{f"{k}_null": float(nulls[k][i, j]) for k in MEASURES},
                             **{f"{k}_corrected": float(mats[layer][f"{k}_corrected"][i, j]) for k in MEASURES}})
        claims += decide(layer, values, intervals)
    paths = write_outputs(ctx, FIGURE, rows, claims, {"model": spec.name, "step": final,
                                                      "datapoints_per_neuron": ratios})
    paths["png"] = ctx.root / FIGURE / f"{FIGURE}.png"
    plot(mats, paths["png"], title=f"Penn Treebank, {spec.name}, {s.seq_sequences} windows")
    return {"claims": claims, "paths": paths}


def plot(mats: dict, path, title: str = "") -> None:
    plt = pyplot()
    panels = (("pwcca", "PWCCA similarity"), ("pwcca_corrected", "PWCCA, beyond chance"),
              ("cosine_corrected", "raw cosine, beyond chance"), ("cosine_centred_corrected", "centred cosine, beyond chance"))
    fig, axes = plt.subplots(len(mats), len(panels), figsize=(4.3 * len(panels), 3.8 * len(mats)), dpi=100,
                             squeeze=False)
    for r, (layer, layer_mats) in enumerate(mats.items()):
        for c, (key, name) in enumerate(panels):
            mat = layer_mats[key]
            im = axes[r, c].imshow(mat, vmin=min(0.0, float(np.nanmin(mat))), vmax=1.0, cmap="viridis")
            axes[r, c].set_title(f"{layer}: {name}", fontsize=10)
            axes[r, c].set_xlabel("timestep t2")
            axes[r, c].set_ylabel("timestep t1")
            fig.colorbar(im, ax=axes[r, c])
    fig.suptitle(f"Sequence timesteps (Appendix A.3): {title}", fontsize=11)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
