"""The paper's Appendix A.3: how an LSTM's hidden state changes over sequence timesteps.

Within each replicate of the trained shallow language model of :mod:`.rnn` (trained to a
validation plateau and past it),
the hidden state of each layer at timestep t1 is compared with that at t2 over the probe
windows (one datapoint per window, every window run from a zero state, at least 50 windows
per neuron): a timestep x timestep matrix with PWCCA (symmetrised, through
:func:`ccalens.pairwise`), with the cosine similarity of the raw hidden states and with the
cosine similarity of the centred hidden states (Morcos, Raghu & Bengio 2018, Appendix A.3).

Unrelated representations of this size are not at similarity 0 for any of these measures,
so each is compared with its chance level: the same measure with the windows shuffled on
one side (``NULL_DRAWS`` shuffles, a null per timestep pair), and reported as the
beyond-chance similarity (s - null) / (1 - null): 0 at chance, 1 for identical states.
The claims (``seq.*`` in :mod:`.rules`, per layer) read lag bands: the adjacent band
(|t1 - t2| = 1) and the far band (|t1 - t2| >= T/2); averaging all timestep pairs would let
the far pairs, which are most of them, decide a point the paper makes about nearby
timesteps. Values are means over the replicate models, intervals a delete-one jackknife over
them (:func:`.claims.network_jackknife`).
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
PART_KEYS = ("adjacent_gap", "far_minus_adjacent")


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
    """What the seq rules read, from the similarity matrices and their nulls (one model, one layer)."""
    T = len(mats["pwcca"])
    off = ~np.eye(T, dtype=bool)
    lag = np.abs(np.subtract.outer(np.arange(T), np.arange(T)))
    bands = {"adjacent": lag == 1, "far": lag >= max(1, T // 2)}
    c = {m: corrected(mats[m], nulls[m]) for m in MEASURES}
    out = {f"mean_offdiag_{m}_corrected": float(np.nanmean(c[m][off])) for m in MEASURES}
    for band, mask in bands.items():
        out.update({f"{band}_{m}_corrected": float(np.nanmean(c[m][mask])) for m in MEASURES})
        out.update({f"{band}_{m}_null": float(nulls[m][mask].mean()) for m in MEASURES})
    out["far_lag"] = int(max(1, T // 2))
    out["adjacent_gap"] = out["adjacent_pwcca_corrected"] - max(out["adjacent_cosine_corrected"],
                                                                out["adjacent_cosine_centred_corrected"])
    out["far_gap"] = out["far_pwcca_corrected"] - max(out["far_cosine_corrected"], out["far_cosine_centred_corrected"])
    out["far_minus_adjacent"] = out["far_pwcca_corrected"] - out["adjacent_pwcca_corrected"]
    return out


def decide(layer: str, per_model: dict[str, dict], premise: dict) -> list[dict]:
    """The claim records for one layer from every replicate model's values ({model: values_for(...)})."""
    models = list(per_model)
    keys = list(next(iter(per_model.values())))
    values = {k: float(np.mean([per_model[m][k] for m in models])) for k in keys}
    values.update({f"{k}_each": [per_model[m][k] for m in models] for k in PART_KEYS})
    values.update({"models": models, **premise})
    out = []
    for rule_id in ("seq.cca_beyond_cosine", "seq.nonlinear_over_time"):
        intervals = claim_records.network_jackknife(
            models, lambda kept: {k: float(np.mean([per_model[m][k] for m in kept["all"]])) for k in PART_KEYS},
            PART_KEYS, confidence=claim_records.part_confidence(rule_id), unit="models")
        out.append(claim_records.decide(rule_id, values, intervals=intervals, scope=layer, replicates=len(models)))
    return out


def run(ctx: RNNContext) -> dict:
    from ..store import load_array
    from .rnn import replicate_specs

    s = ctx.scale
    specs = replicate_specs(ctx)[f"{s.depths[0]}-layer"]
    ctx.log(f"{FIGURE}: {len(specs)} models of depth {s.depths[0]}, hidden state at each of {s.seq_length} "
            f"timesteps over {s.seq_sequences} windows")
    ratios = [ctx.check_ratio(s.seq_sequences, s.hidden, "probe windows per timestep")]
    rows, per_layer, mats, records = [], {}, {}, {}
    for seed, spec in specs.items():
        rec = records[spec.name] = ctx.model(spec)
        final = rec["checkpoints"][-1]
        arrays = ctx.activations(FIGURE, spec, final, sequence="each", kind="sequence-time")
        for layer in [f"lstm{i + 1}" for i in range(spec.layers)]:
            raw = [np.asarray(load_array(arrays[f"{layer}@t{t}"]), dtype=np.float64) for t in range(s.seq_length)]
            m, nulls = matrices(raw), null_matrices(raw)
            per_layer.setdefault(layer, {})[spec.name] = values_for(m, nulls)
            corr = {f"{k}_corrected": corrected(m[k], nulls[k]) for k in MEASURES}
            if seed == min(specs):
                mats[layer] = {**m, **corr}
            for i in range(s.seq_length):
                for j in range(s.seq_length):
                    rows.append({"model": spec.name, "layer": layer, "t1": i, "t2": j,
                                 **{k: float(v[i, j]) for k, v in m.items()},
                                 **{f"{k}_null": float(nulls[k][i, j]) for k in MEASURES},
                                 **{k: float(v[i, j]) for k, v in corr.items()}})
    premise = {"plateau_reached": all(bool(r["plateau_reached"]) for r in records.values()),
               "post_plateau_evals": min(int(r.get("post_plateau_evals", 0)) for r in records.values()),
               "windows_per_neuron": s.seq_sequences / s.hidden}
    claims = []
    for layer, per_model in per_layer.items():
        claims += decide(layer, per_model, premise)
    first = specs[min(specs)]
    paths = write_outputs(ctx, FIGURE, rows, claims, {"models": list(records), "datapoints_per_neuron": ratios,
                                                      "steps": {n: r["checkpoints"][-1] for n, r in records.items()}})
    paths["png"] = ctx.root / FIGURE / f"{FIGURE}.png"
    plot(mats, paths["png"], title=f"Penn Treebank, {first.name} (1 of {len(specs)}), {s.seq_sequences} windows")
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
