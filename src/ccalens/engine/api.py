"""Many representations at once: factorise each once, batch the cross products, keep results.

``pairwise(reps)`` computes a measure between every pair of K representations (or K x L
against ``others``):

* each representation is factorised once (:func:`ccalens.factorize`) and its orthonormal
  basis formed once;
* the cross products Q_i^T Q_j of a whole block of pairs come from one large matrix
  product (BLAS syrk/GEMM, or the GPU for CUDA tensors) instead of K^2 small ones;
* PWCCA is directed (the weights come from the row's representation): both directions of a
  pair come from the same SVD; ``symmetric=True`` folds the matrix;
* with ``results="run.sqlite"`` every finished pair is committed to SQLite (WAL journal:
  a committed pair survives a kill -9 at any moment), and a rerun computes only the
  missing pairs; the final matrix is identical to an uninterrupted run.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..core import registry, validate
from ..core.cka import DEFAULT_BANDWIDTH, check_bandwidth
from ..core.factor import Factor
from ..core.pairs import factorize_each
from ..core.resampling import default_method
from ..core.canonical import DEFAULT_KEEP
from ..core.resampling import check_options
from ..store import Source
from .blocks import compute_local
from .database import Results, swap_sides
from .sources import describe, factor_of, labels, load
from .uncertainty import Uncertainty

__all__ = ["PairwiseResult", "pairwise"]


@dataclass(frozen=True, eq=False)
class PairwiseResult:
    """A (K x L) similarity matrix with its labels and one row per ordered pair."""

    measure: str
    rows: tuple[str, ...]
    columns: tuple[str, ...]
    similarity: np.ndarray
    table: list[dict] = field(repr=False)
    seconds: float = 0.0
    computed: int = 0
    reused: int = 0

    @property
    def distance(self) -> np.ndarray:
        """Each measure's own distance (1 - similarity for most; see the registry)."""
        return registry.distance(self.measure, self.similarity)

    def to_pandas(self):
        import pandas as pd

        return pd.DataFrame(self.table)

    def __repr__(self) -> str:
        return (
            f"PairwiseResult(measure={self.measure!r}, shape={self.similarity.shape}, "
            f"computed={self.computed}, reused={self.reused}, seconds={self.seconds:.2f})"
        )


def pairwise(
    reps,
    measure: str = "pwcca",
    *,
    others=None,
    names: Sequence[str] | None = None,
    other_names: Sequence[str] | None = None,
    symmetric: bool = False,
    epsilon: float = 0.0,
    keep: float = DEFAULT_KEEP,
    bandwidth: float = DEFAULT_BANDWIDTH,
    rtol: float | None = None,
    results=None,
    block: int | None = None,
    progress: bool = False,
    scheduler=None,
    permutations: int = 0,
    bootstrap: int = 0,
    confidence: float = 0.95,
    interval: str | None = None,
    seed: int = 0,
    fingerprints: dict[str, str] | None = None,
) -> PairwiseResult:
    """Similarity of every pair of representations.

    Parameters
    ----------
    reps : list or dict of arrays, torch tensors or store paths ("store.zarr:name")
        K representations of the same datapoints, each (datapoints, neurons).
    measure : str or MeasureSpec, one of {"pwcca", "svcca", "mean_cca", "cca", "cka", "cka_debiased", "cka_rbf", "procrustes", "cosine", "euclidean"}
        "cca" is the mean canonical correlation, as in :func:`ccalens.cca`. The
        factor-based measures (all but cka_rbf, cosine and euclidean) reuse one
        factorisation per representation; cka_rbf holds one n x n kernel per
        representation; cosine and euclidean compare matched neurons and need equal widths.
    others : list or dict, optional
        L representations for a K x L matrix; by default K x K against ``reps``.
    symmetric : bool
        PWCCA only: average both directions (the matrix is directed otherwise:
        entry (i, j) uses the weights of representation i).
    epsilon, keep, bandwidth, rtol
        As in the single-pair measures.
    results : path, optional
        SQLite file that keeps every finished pair; rerunning with the same inputs and
        options computes only the missing pairs.
    block : int, optional
        Representations per block of the batched cross product (default: as many as fit
        in about 1 GB of bases). Pairs are committed to ``results`` one by one as their
        block finishes (with permutations or bootstraps, as each pair finishes), so a
        kill loses at most the block in progress: smaller blocks checkpoint more often
        (at K = 40 x 10,000 x 128, blocks of 16 cost about 8% against one block).
    progress : bool
        Show a progress bar.
    scheduler : dask.distributed.Client, scheduler address, or "local", optional
        Run the blocks as Dask tasks: each task reads its representations (from the
        store, for store paths), factorises them and returns the block's values; the
        client writes them to ``results`` as they arrive.
    permutations, bootstrap, confidence, interval : int, int, float, str
        Per pair, a shuffled-datapoints null (columns null_mean, null_sd, p_value,
        corrected) and a bootstrap interval (ci_low, ci_high, and the bootstrap's bias
        estimate ci_bias) by the method ``interval`` (None:
        the measure family's, :func:`ccalens.core.resampling.default_method`), computed from the cached factors
        and kept in ``results`` with the pair.
    seed : int
        Seeds each pair's permutations and resamples (with the data's fingerprints), so
        a resumed run gives the same numbers.
    fingerprints : dict, optional
        Content fingerprints of the representations by label, when the caller has them
        already (:func:`ccalens.stream.pairwise` hashes its sources as they stream);
        by default each is read from the store's recorded hash or hashed here.

    Returns
    -------
    PairwiseResult
    """
    started = time.perf_counter()
    spec = registry.check_measure(measure)  # a name or a spec: the engine carries the spec from here
    measure = spec.name
    if not isinstance(symmetric, (bool, np.bool_)):
        raise TypeError(f"symmetric must be True or False; got {symmetric!r}.")
    if symmetric and not spec.directed:
        raise ValueError("symmetric=True folds PWCCA's directed matrix; the other measures are symmetric already.")
    epsilon = validate.check_epsilon(epsilon)
    rtol = validate.check_rtol(rtol)
    rtol = None if rtol is None else float(rtol)
    keep = validate.check_keep(keep)
    if block is not None and (isinstance(block, bool) or not isinstance(block, (int, np.integer)) or block < 1):
        raise ValueError(f"block must be None (bases of about 1 GB per block) or a positive int; got {block!r}.")
    bandwidth = check_bandwidth(bandwidth)
    check_options(permutations, bootstrap, confidence, interval)
    interval = interval or default_method(measure)
    confidence = float(confidence)
    if other_names is not None and others is None:
        raise ValueError("other_names names the columns of others; pass others too (or use names= for reps).")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an int; got {seed!r}.")
    row_vals, row_labels = labels(reps, names, "rep")
    if not row_vals:
        raise ValueError("reps is empty; pass at least one representation.")
    square = others is None
    col_vals, col_labels = (row_vals, row_labels) if square else labels(others, other_names, "other")

    sources: dict[str, Any] = {}
    for value, label in list(zip(row_vals, row_labels)) + ([] if square else list(zip(col_vals, col_labels))):
        if label in sources:
            if not square:
                raise ValueError(f"the name {label!r} is used in both reps and others; names must be unique.")
            continue
        sources[label] = value
    factors: dict[str, Factor] = {}
    prints: dict[str, str] = {}
    direct = spec.kind != "factor"
    if scheduler is None:  # factorise (or, for the direct measures, load) here, once each
        values = {}
        for label, value in sources.items():
            if isinstance(value, (str, Path)):  # parsed and opened once, for both uses below
                value = Source(value)
                if not value.is_store:
                    value = value.read()  # a file: read once
            values[label] = value
        if direct:
            factors = {label: load(value, label) for label, value in values.items()}
        elif any(hasattr(value, "detach") for value in values.values()):  # torch: in turn, on the device
            factors = {label: factor_of(value, label, rtol) for label, value in values.items()}
        else:  # numpy: side by side, one BLAS thread each
            made = factorize_each(lambda item: factor_of(item[1], item[0], rtol), list(values.items()))
            factors = dict(zip(values, made))
        if results is not None or permutations or bootstrap:  # keys and seeds need them
            prints = {label: describe(value, label)[1] for label, value in values.items()}
        shapes = {k: (tuple(f.shape) if direct else (f.n_samples, f.n_neurons)) for k, f in factors.items()}
        backends = {("torch" if hasattr(f, "detach") else "numpy") if direct else f.ops.name for f in factors.values()}
    else:  # the workers factorise; here only shapes and fingerprints, without reading store data
        described = {label: describe(value, label) for label, value in sources.items()}
        shapes = {k: d[0] for k, d in described.items()}
        prints = {k: d[1] for k, d in described.items()}
        backends = {d[2] for d in described.values()}
    if fingerprints is not None:  # content fingerprints from the caller (streaming hashes the sources)
        prints = dict(fingerprints)
    if len({shape[0] for shape in shapes.values()}) != 1:
        raise ValueError(f"every representation needs the same datapoints; got shapes {shapes}.")
    if len(backends) != 1:
        raise TypeError("mixing numpy arrays and torch tensors in one pairwise call is not supported; convert them to one kind.")
    n_samples = next(iter(shapes.values()))[0]
    if spec.same_width and len({shape[1] for shape in shapes.values()}) != 1:
        raise ValueError(
            f"{measure} compares neuron j with neuron j, so every representation needs the same "
            f"width; got shapes {shapes}. Use a measure that allows different widths (cca, pwcca, "
            f"cka, procrustes)."
        )
    if spec.kind == "kernel":
        from ..core.cka import MAX_KERNEL_BYTES

        if 8 * n_samples * n_samples * len(shapes) > 4 * MAX_KERNEL_BYTES:
            raise ValueError(
                f"cka_rbf keeps one n x n kernel per representation: {len(shapes)} x {n_samples:,}^2 "
                f"float64 is {8 * n_samples**2 * len(shapes) / 2**30:.1f} GiB. Use fewer datapoints "
                f"(a random subset) or linear CKA."
            )

    seeded = bool(permutations or bootstrap)

    def order(r: str, c: str) -> tuple[str, str]:
        """A pair's computing orientation: by label, or by content fingerprint when the pair
        is seeded, so that a run under other names permutes and resamples each pair the
        same way (its seed comes from the fingerprints in this order)."""
        return tuple(sorted((r, c), key=lambda label: (prints[label] if seeded else "", label)))

    # unordered pairs to compute, each once (both PWCCA directions come from one SVD)
    wanted: list[tuple[str, str]] = []
    seen = set()
    computes_self = spec.identical is None  # e.g. predictivity: a representation does not predict itself perfectly
    for r in row_labels:
        for c in col_labels:
            if r == c and not computes_self:
                continue
            key = order(r, c)
            if key not in seen:
                seen.add(key)
                wanted.append(key)

    options = {"measure": measure, "epsilon": epsilon, "keep": keep, "rtol": rtol}
    if spec.kind == "kernel":
        options["bandwidth"] = bandwidth
    if permutations or bootstrap:
        options.update(permutations=permutations, bootstrap=bootstrap, confidence=confidence, seed=int(seed),
                       symmetric=symmetric)
        if bootstrap and interval != "percentile":  # results files from before the methods hold percentile ones
            options["interval"] = interval
    options_key = hashlib.sha256(json.dumps(options).encode()).hexdigest()[:20]
    store = Results(results, options_key, prints) if results is not None else None
    done = store.done(wanted) if store else {}
    todo = [p for p in wanted if p not in done]
    seeds = {(a, b): int(hashlib.sha256(f"{seed}:{prints[a]}:{prints[b]}".encode()).hexdigest()[:15], 16)
             for a, b in todo} if (permutations or bootstrap) else {}
    extra = Uncertainty(permutations, bootstrap, confidence, symmetric, seeds, interval)
    params = {"epsilon": epsilon, "keep": keep, "bandwidth": bandwidth, "rtol": rtol}
    computed = 0
    try:
        if scheduler is None:
            computed = compute_local(todo, factors, spec, params, block, store, done, progress, extra, direct)
        else:
            from .distributed import compute_dask

            computed = compute_dask(scheduler, todo, shapes, sources, spec, params, block, store, done, extra)
    finally:
        if store:
            store.close()

    ranks = {} if direct else {k: f.rank for k, f in factors.items()}
    for (a, b), (_, _, info) in done.items():
        ranks.setdefault(a, info.get("ranks", [None, None])[0])
        ranks.setdefault(b, info.get("ranks", [None, None])[1])
    sim = np.empty((len(row_labels), len(col_labels)))
    table = []
    for i, r in enumerate(row_labels):
        for j, c in enumerate(col_labels):
            if r == c and not computes_self:
                value, info = spec.identical, {"c": ranks.get(r)}
            else:
                a, b = order(r, c)
                v_ab, v_ba, info = done[(a, b)]
                value = v_ab if r == a else v_ba
                if symmetric:
                    value = 0.5 * (v_ab + v_ba)
                info = _orient(info, r == a)
            sim[i, j] = value
            info = {k: v for k, v in info.items() if k != "ranks"}
            table.append({"row": r, "column": c, "measure": measure, "similarity": value,
                          "distance": float(registry.distance(measure, value)), "row_rank": ranks.get(r),
                          "column_rank": ranks.get(c), "n": n_samples, **info})
    return PairwiseResult(measure, tuple(row_labels), tuple(col_labels), sim, table,
                          time.perf_counter() - started, computed, len(wanted) - computed)


def _orient(info: dict, forward: bool) -> dict:
    """Per-direction columns (null, interval) of the row's direction, under plain names."""
    out = {k: v for k, v in info.items() if not k.endswith("_reverse")}
    if not forward:
        out = swap_sides(out)
        for k, v in info.items():
            if k.endswith("_reverse"):
                out[k[: -len("_reverse")]] = v
    return out
