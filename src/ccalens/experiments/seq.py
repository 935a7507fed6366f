"""The paper's Appendix A.3: how an LSTM's hidden state changes over sequence timesteps.

Within the trained shallow language model of :mod:`.rnn`, the hidden state of each layer at
timestep t1 is compared with that at t2 over the probe windows (one datapoint per window,
every window run from a zero state): a timestep x timestep matrix with PWCCA (symmetrised,
through :func:`ccalens.pairwise`) and with the cosine similarity of the raw hidden states
(Morcos, Raghu & Bengio 2018, Appendix A.3).

Claims and rules, per layer (fixed before the first run):

* ``cca_beyond_cosine[<layer>]``: CCA finds similarity across timesteps that cosine misses:
  the mean off-diagonal PWCCA similarity exceeds the mean off-diagonal cosine similarity by
  at least 0.1;
* ``nonlinear_over_time[<layer>]``: yet CCA often fails to find it (the hidden state varies
  nonlinearly over a sequence): the mean PWCCA similarity between timesteps at least half
  the window apart is below 0.8.
"""

from __future__ import annotations

import numpy as np

from .common import claim, naive_distance, pyplot, write_outputs
from .rnn import RNNContext

FIGURE = "seq"


def decide(layer: str, pw: np.ndarray, cos: np.ndarray) -> list[dict]:
    """The claims for one layer from its (T x T) PWCCA and cosine similarity matrices."""
    T = len(pw)
    off = ~np.eye(T, dtype=bool)
    lag = np.abs(np.subtract.outer(np.arange(T), np.arange(T)))
    far = lag >= max(1, T // 2)
    pw_off, cos_off, pw_far = float(pw[off].mean()), float(cos[off].mean()), float(pw[far].mean())
    return [
        claim(f"cca_beyond_cosine[{layer}]", "CCA finds similarity across timesteps that cosine similarity misses.",
              {"mean_offdiagonal_pwcca": pw_off, "mean_offdiagonal_cosine": cos_off},
              "mean off-diagonal PWCCA - mean off-diagonal cosine >= 0.1", pw_off - cos_off >= 0.1),
        claim(f"nonlinear_over_time[{layer}]", "Yet CCA often fails to find similarity across timesteps: the "
              "hidden state varies nonlinearly over a sequence.",
              {"mean_pwcca_lag_at_least_half": pw_far, "lag": max(1, T // 2)},
              "mean PWCCA similarity at lags >= T/2 < 0.8", pw_far < 0.8),
    ]


def run(ctx: RNNContext) -> dict:
    from ..pairwise import pairwise
    from ..store import load_array

    s = ctx.scale
    spec = ctx.spec(s.depths[0])
    rec = ctx.model(spec)
    final = rec["checkpoints"][-1]
    ctx.log(f"{FIGURE}: {spec.name}, hidden state at each of {s.seq_length} timesteps over {s.seq_sequences} windows")
    ratios = [ctx.check_ratio(s.seq_sequences, s.hidden, "probe windows per timestep")]
    arrays = ctx.activations(FIGURE, spec, final, sequence="each", kind="sequence-time")
    rows, claims, mats = [], [], {}
    for layer in [f"lstm{i + 1}" for i in range(spec.layers)]:
        names = [f"{layer}@t{t}" for t in range(s.seq_length)]
        result = pairwise({n: arrays[n] for n in names}, "pwcca", symmetric=True,
                          results=ctx.root / FIGURE / "pairs.sqlite", progress=ctx.progress)
        raw = {n: load_array(arrays[n]) for n in names}
        cos = np.array([[1.0 - naive_distance(raw[a], raw[b], "cosine") for b in names] for a in names])
        pw = result.similarity
        mats[layer] = (pw, cos)
        for i in range(len(names)):
            for j in range(len(names)):
                rows.append({"layer": layer, "t1": i, "t2": j, "pwcca": float(pw[i, j]), "cosine": float(cos[i, j])})
        claims += decide(layer, pw, cos)
    paths = write_outputs(ctx, FIGURE, rows, claims, {"model": spec.name, "step": final,
                                                      "datapoints_per_neuron": ratios})
    paths["png"] = ctx.root / FIGURE / f"{FIGURE}.png"
    plot(mats, paths["png"], title=f"Penn Treebank, {spec.name}, {s.seq_sequences} windows")
    return {"claims": claims, "paths": paths}


def plot(mats: dict, path, title: str = "") -> None:
    plt = pyplot()
    fig, axes = plt.subplots(len(mats), 2, figsize=(8.5, 3.8 * len(mats)), dpi=100, squeeze=False)
    for r, (layer, (pw, cos)) in enumerate(mats.items()):
        for c, (mat, name) in enumerate(((pw, "PWCCA similarity"), (cos, "cosine similarity (raw)"))):
            im = axes[r, c].imshow(mat, vmin=min(0.0, float(mat.min())), vmax=1.0, cmap="viridis")
            axes[r, c].set_title(f"{layer}: {name}", fontsize=9)
            axes[r, c].set_xlabel("timestep t2")
            axes[r, c].set_ylabel("timestep t1")
            fig.colorbar(im, ax=axes[r, c])
    fig.suptitle(f"Sequence timesteps (Appendix A.3): {title}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
