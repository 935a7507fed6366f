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
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..core import _validate
from ..core import registry
from ..core.factor import Factor, _factorize_matrix

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


def _labels(reps, names, default_prefix: str) -> tuple[list, list[str]]:
    if isinstance(reps, dict):
        items = list(reps.items())
        values, labels = [v for _, v in items], [str(k) for k, _ in items]
    else:
        values = list(reps)
        labels = [str(r) if isinstance(r, (str, Path)) else f"{default_prefix}{i}" for i, r in enumerate(values)]
    if names is not None:
        if len(names) != len(values):
            raise ValueError(f"names has {len(names)} entries for {len(values)} representations.")
        labels = [str(n) for n in names]
    if len(set(labels)) != len(labels):
        raise ValueError(f"representation names must be unique; got {labels}.")
    return values, labels


def _factor(rep, name: str, rtol) -> Factor:
    """The factor of one representation (an array, a tensor or a store path)."""
    from ..store import load_array

    if isinstance(rep, Factor):
        raise TypeError(
            f"{name}: pass arrays, tensors or store paths to pairwise (it factorises each once "
            f"itself and fingerprints the data for resuming)."
        )
    if isinstance(rep, (str, Path)):
        rep = load_array(rep)
    arr = _validate.as_matrix(rep, name)
    return _factorize_matrix(arr, _validate.make_ops(arr, None), rtol, name)


def _swap_sides(info: dict) -> dict:
    """Per-side details (x_..., y_..., as svcca's x_components) seen from the other side."""
    out = dict(info)
    for k, v in info.items():
        if k.startswith("x_") and "y_" + k[2:] in info:
            out[k], out["y_" + k[2:]] = info["y_" + k[2:]], v
    return out


def _swap(info: dict) -> dict:
    """The details of a pair seen from the other side: ranks, per-side and per-direction
    columns swap."""
    info = _swap_sides(info)
    out = {k: v for k, v in info.items() if not k.endswith("_reverse")}
    for k, v in info.items():
        if k.endswith("_reverse"):
            plain = k[: -len("_reverse")]
            out[plain], out[k] = v, info.get(plain)
    out["ranks"] = list(info.get("ranks", [None, None]))[::-1]
    return out


class _Results:
    """SQLite results store: one committed row per finished pair (WAL, crash-safe).

    Pairs are keyed by the options and the two representations' content fingerprints, not
    by their names: a later run with more representations, or other names for the same
    data, reuses every pair already computed.
    """

    def __init__(self, path, options_key: str, prints: dict[str, str]):
        self.opts, self.prints = options_key, prints
        try:
            self.db = sqlite3.connect(str(path), timeout=60)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")  # a committed pair is on disk
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS pair_values (opts TEXT, fa TEXT, fb TEXT, value REAL, "
                "reverse REAL, info TEXT, PRIMARY KEY (opts, fa, fb))"
            )
            self.db.commit()
        except sqlite3.Error as err:
            raise ValueError(
                f"results={str(path)!r} cannot be used as a SQLite results file ({err}). Give the path "
                f"of a new file in an existing folder, or of an earlier run's results file."
            ) from None

    def done(self, wanted) -> dict[tuple[str, str], tuple[float, float, dict]]:
        cur = self.db.execute("SELECT fa, fb, value, reverse, info FROM pair_values WHERE opts = ?", (self.opts,))
        # a value stored as NULL (SQLite's NaN) is not a finished pair: compute it again
        rows = {(fa, fb): (v, r, json.loads(i)) for fa, fb, v, r, i in cur if v is not None and r is not None}
        out = {}
        for a, b in wanted:
            fa, fb = self.prints[a], self.prints[b]
            if (fa, fb) in rows:
                out[(a, b)] = rows[(fa, fb)]
            elif (fb, fa) in rows:
                v, r, info = rows[(fb, fa)]
                out[(a, b)] = (r, v, _swap(info))
        return out

    def add(self, a: str, b: str, value: float, reverse: float, info: dict) -> None:
        fa, fb = self.prints[a], self.prints[b]
        if fa > fb:  # stored in fingerprint order; values follow the orientation
            fa, fb, value, reverse = fb, fa, reverse, value
            info = _swap(info)
        with self.db:  # one transaction per pair
            self.db.execute(
                "INSERT OR REPLACE INTO pair_values VALUES (?, ?, ?, ?, ?, ?)",
                (self.opts, fa, fb, value, reverse, json.dumps(info)),
            )

    def close(self) -> None:
        self.db.close()


def _values(fx: Factor, fy: Factor, m: np.ndarray, measure: str, epsilon: float, keep: float):
    """(value with fx's weights, value with fy's weights, details) for one pair."""
    return registry.from_cross(measure, fx, fy, m, epsilon=epsilon, keep=keep)


@dataclass(frozen=True)
class _Uncertainty:
    """What pairwise adds to each pair: a permutation null and/or a bootstrap interval."""

    permutations: int = 0
    bootstrap: int = 0
    confidence: float = 0.95
    symmetric: bool = False
    seeds: dict = field(default_factory=dict)  # (a, b) -> seed, from the data fingerprints
    method: str = "percentile"  # the bootstrap interval's method

    def __bool__(self) -> bool:
        return bool(self.permutations or self.bootstrap)

    def add(self, info: dict, forward, reverse, measure: str, v_ab: float, v_ba: float) -> None:
        """Summaries of both directions' null and bootstrap values into ``info``."""
        from ..core.resampling import summarise_bootstrap, summarise_null

        if self.symmetric:  # the folded value's null and interval: both directions averaged per draw
            forward = reverse = {kind: 0.5 * (forward[kind] + reverse[kind]) for kind in forward}
            v_ab = v_ba = 0.5 * (v_ab + v_ba)
        for key, values, observed in (("", forward, v_ab), ("_reverse", reverse, v_ba)):
            if self.permutations and "null" in values:
                nr = summarise_null(measure, observed, values["null"])
                info.update({f"null_mean{key}": nr.mean, f"null_sd{key}": nr.sd, f"p_value{key}": nr.p_value,
                             f"corrected{key}": nr.corrected})
            if self.bootstrap and "boot" in values:
                ci = summarise_bootstrap(observed, values["boot"], self.confidence, self.method,
                                         jackknife=values.get("jack"))
                info.update({f"ci_low{key}": ci.low, f"ci_high{key}": ci.high, f"ci_bias{key}": ci.bias})

    def factor_pair(self, info, a, b, fa, fb, measure, epsilon, keep, v_ab, v_ba) -> None:
        from ..core.resampling import factor_bootstrap_both, factor_jackknife_both, factor_null_both

        rng = np.random.default_rng(self.seeds.get((a, b), 0))
        opts = {"epsilon": epsilon, "keep": keep}
        fwd, rev = {}, {}
        if self.permutations:
            fwd["null"], rev["null"] = factor_null_both(measure, fa, fb, opts, self.permutations, rng)
        if self.bootstrap:
            fwd["boot"], rev["boot"] = factor_bootstrap_both(measure, fa, fb, opts, self.bootstrap, rng)
            if self.method == "bca":
                fwd["jack"], rev["jack"] = factor_jackknife_both(measure, fa, fb, opts, rng)
        self.add(info, fwd, rev, measure, v_ab, v_ba)


def pairwise(
    reps,
    measure: str = "pwcca",
    *,
    others=None,
    names: Sequence[str] | None = None,
    other_names: Sequence[str] | None = None,
    symmetric: bool = False,
    epsilon: float = 0.0,
    keep: float = 0.99,
    bandwidth: float = 0.8,
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
    _prints: dict[str, str] | None = None,
) -> PairwiseResult:
    """Similarity of every pair of representations.

    Parameters
    ----------
    reps : list or dict of arrays, torch tensors or store paths ("store.zarr:name")
        K representations of the same datapoints, each (datapoints, neurons).
    measure : {"pwcca", "svcca", "mean_cca", "cca", "cka", "cka_debiased", "cka_rbf", "procrustes", "cosine", "euclidean"}
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
        :data:`ccalens.core.resampling.DEFAULT_METHOD`), computed from the cached factors
        and kept in ``results`` with the pair.
    seed : int
        Seeds each pair's permutations and resamples (with the data's fingerprints), so
        a resumed run gives the same numbers.

    Returns
    -------
    PairwiseResult
    """
    started = time.perf_counter()
    spec = registry.check_measure(measure)
    if not isinstance(symmetric, (bool, np.bool_)):
        raise TypeError(f"symmetric must be True or False; got {symmetric!r}.")
    if symmetric and not spec.directed:
        raise ValueError("symmetric=True folds PWCCA's directed matrix; the other measures are symmetric already.")
    epsilon = _validate.check_epsilon(epsilon)
    rtol = _validate.check_rtol(rtol)
    rtol = None if rtol is None else float(rtol)
    keep = _validate.check_keep(keep)
    if block is not None and (isinstance(block, bool) or not isinstance(block, (int, np.integer)) or block < 1):
        raise ValueError(f"block must be None (bases of about 1 GB per block) or a positive int; got {block!r}.")
    from ..core.cka import _check_bandwidth
    from ..core.resampling import check_options

    bandwidth = _check_bandwidth(bandwidth)
    check_options(permutations, bootstrap, confidence, interval)
    from ..core.resampling import DEFAULT_METHOD

    interval = interval or DEFAULT_METHOD
    confidence = float(confidence)
    if other_names is not None and others is None:
        raise ValueError("other_names names the columns of others; pass others too (or use names= for reps).")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an int; got {seed!r}.")
    row_vals, row_labels = _labels(reps, names, "rep")
    if not row_vals:
        raise ValueError("reps is empty; pass at least one representation.")
    square = others is None
    col_vals, col_labels = (row_vals, row_labels) if square else _labels(others, other_names, "other")

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
        from ..store import _is_zarr_dir, _split_spec, load_array

        for label, value in sources.items():
            if isinstance(value, (str, Path)) and not _is_zarr_dir(_split_spec(value)[0]):
                value = load_array(value)  # read a file once, for both uses below
            factors[label] = _load(value, label) if direct else _factor(value, label, rtol)
            if results is not None or permutations or bootstrap:  # keys and seeds need them
                prints[label] = _describe(value, label)[1]
        shapes = {k: (tuple(f.shape) if direct else (f.n_samples, f.n_neurons)) for k, f in factors.items()}
        backends = {("torch" if hasattr(f, "detach") else "numpy") if direct else f.ops.name for f in factors.values()}
    else:  # the workers factorise; here only shapes and fingerprints, without reading store data
        described = {label: _describe(value, label) for label, value in sources.items()}
        shapes = {k: d[0] for k, d in described.items()}
        prints = {k: d[1] for k, d in described.items()}
        backends = {d[2] for d in described.values()}
    if _prints is not None:  # content fingerprints from the caller (streaming hashes the sources)
        prints = dict(_prints)
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
    for r in row_labels:
        for c in col_labels:
            if r == c:
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
    store = _Results(results, options_key, prints) if results is not None else None
    done = store.done(wanted) if store else {}
    todo = [p for p in wanted if p not in done]
    seeds = {(a, b): int(hashlib.sha256(f"{seed}:{prints[a]}:{prints[b]}".encode()).hexdigest()[:15], 16)
             for a, b in todo} if (permutations or bootstrap) else {}
    extra = _Uncertainty(permutations, bootstrap, confidence, symmetric, seeds, interval)
    params = {"epsilon": epsilon, "keep": keep, "bandwidth": bandwidth, "rtol": rtol}
    computed = 0
    try:
        if scheduler is None:
            computed = _compute(todo, factors, measure, params, block, store, done, progress, extra, direct)
        else:
            computed = _compute_dask(scheduler, todo, shapes, sources, measure, params, block, store, done, extra)
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
            if r == c:
                value, info = registry.MEASURES[measure].identical, {"c": ranks.get(r)}
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
        out = _swap_sides(out)
        for k, v in info.items():
            if k.endswith("_reverse"):
                out[k[: -len("_reverse")]] = v
    return out


def _load(value, label: str):
    """A representation's array itself (for the measures that need the activations)."""
    from ..store import load_array

    if isinstance(value, (str, Path)):
        value = load_array(value)
    if isinstance(value, Factor):
        raise TypeError(f"{label}: pass arrays, tensors or store paths to pairwise.")
    arr = _validate.as_matrix(value, label)
    _validate.check_finite(_validate.make_ops(arr, None), arr, label)
    return arr


def _direct_values(arrays: dict, pairs, measure: str, params: dict, extra: "_Uncertainty", kernels=None):
    """Pairs of the measures computed from the activations (matched neurons, RBF CKA).

    ``kernels`` caches each representation's centred RBF kernel across calls, so K
    representations cost K kernels, not one per pair.
    """
    from ..core.alignment import matched_value
    from ..core.cka import KernelPair, _centre_kernel, _rbf_kernel, hsic_biased
    from ..core.resampling import bootstrap_values, jackknife_values, null_distribution

    kernels = {} if kernels is None else kernels
    spec = registry.MEASURES[measure]

    def kernel(name):
        if name not in kernels:
            k = _centre_kernel(_rbf_kernel(arrays[name], params["bandwidth"], name))
            kernels[name] = (k, hsic_biased(k, k))
        return kernels[name]

    out = []
    for a, b in pairs:
        pair = KernelPair.from_centred(*kernel(a), *kernel(b)) if spec.kind == "kernel" else None
        try:
            value = pair.value()[0] if pair else matched_value(measure, arrays[a], arrays[b])
        except ValueError as err:  # name the representations behind "X" and "Y"
            raise ValueError(f"{a} (X) against {b} (Y): {err}") from None
        info: dict = {}
        if extra:
            rng = np.random.default_rng(extra.seeds.get((a, b), 0))
            data, opts = (arrays[a], arrays[b]), {"bandwidth": params["bandwidth"]}
            vals = {}
            if extra.permutations:
                vals["null"] = null_distribution(measure, data, opts, extra.permutations, rng, kernels=pair)
            if extra.bootstrap:
                vals["boot"] = bootstrap_values(measure, data, opts, extra.bootstrap, rng)
                if extra.method == "bca":
                    vals["jack"] = jackknife_values(measure, data, opts, rng)
            extra.add(info, vals, vals, measure, float(value), float(value))
        out.append((a, b, float(value), float(value), info))
    return out


def _groups(widths: dict[str, int], n_samples: int, block: int | None) -> list[list[str]]:
    """Blocks of representations, fixed by all of them (not by what is left to do), so a
    resumed run forms each block's product from the same matrices as an uninterrupted one."""
    labels = list(widths)
    if block is None:  # bases of about 1 GB per block
        block = max(1, int(1e9 // (8 * n_samples * max(widths.values()))))
    return [labels[i : i + block] for i in range(0, len(labels), block)]


def _block_jobs(todo, groups):
    """(group_a, group_b, pairs of that block) for every block with pairs left to do."""
    pending = {frozenset(pair): pair for pair in todo}  # each pair in its computing orientation
    for gi, group_a in enumerate(groups):
        for group_b in groups[gi:]:
            keys = {frozenset((a, b)) for a in group_a for b in group_b if a != b} & pending.keys()
            pairs = sorted(pending.pop(key) for key in keys)
            if pairs:
                yield group_a, group_b, pairs


def _block_values(fa: dict[str, Factor], fb: dict[str, Factor], same: bool, pairs, measure, params,
                  extra: "_Uncertainty | None" = None):
    """Values of the given pairs from one batched product of the two groups' bases."""
    epsilon, keep = params["epsilon"], params["keep"]
    group_a, group_b = list(fa), list(fb)
    ops = fa[group_a[0]].ops
    offs_a = np.cumsum([0] + [fa[x].rank for x in group_a])
    stacked_a = _stack_bases(ops, [fa[x] for x in group_a])
    if same:
        gram, offs_b = ops.gram_native(stacked_a), offs_a
    else:
        offs_b = np.cumsum([0] + [fb[x].rank for x in group_b])
        gram = ops.cross_native(stacked_a, _stack_bases(ops, [fb[x] for x in group_b]))
    del stacked_a
    index_a = {x: k for k, x in enumerate(group_a)}
    index_b = {x: k for k, x in enumerate(group_b)}
    factors = {**fa, **fb}
    located = []
    for a, b in pairs:
        if a in index_a and b in index_b:
            located.append((a, b, index_a[a], index_b[b], False))
        else:  # b in group_a, a in group_b
            located.append((a, b, index_a[b], index_b[a], True))
    ranks = {factors[x].rank for x in factors}
    batched = registry.MEASURES[measure].batched
    if batched is not None and not epsilon and len(ranks) == 1:
        out = _batched_values(ops, gram, located, factors, batched, ranks.pop())
    else:
        gram = ops.to_numpy(gram)
        out = []
        for a, b, ia, ib, flip in located:
            m = gram[offs_a[ia] : offs_a[ia + 1], offs_b[ib] : offs_b[ib + 1]]
            m = np.ascontiguousarray(m.T if flip else m)
            out.append((a, b, *_values(factors[a], factors[b], m, measure, epsilon, keep)))
    for a, b, v_ab, v_ba, info in out:  # kept with each pair, so a resumed run knows them
        info["ranks"] = [factors[a].rank, factors[b].rank]
        if extra:
            extra.factor_pair(info, a, b, factors[a], factors[b], measure, epsilon, keep, v_ab, v_ba)
        # one pair at a time: with permutations or bootstraps (the costly part), each pair is
        # committed as soon as it is finished, not when its whole block is
        yield a, b, v_ab, v_ba, info


def _batched_values(ops, gram, located, factors, batched, r):
    """All pairs of a block at once, where every representation has rank r.

    The (r x r) cross blocks are gathered into one (pairs, r, r) array, which the measure's
    batched kernel decomposes at once (one batched SVD, on the GPU when the data are CUDA
    tensors; see ``MeasureSpec.batched``).
    """
    rows, cols = gram.shape[0] // r, gram.shape[1] // r
    blocks = gram.reshape(rows, r, cols, r)
    blocks = blocks.permute(0, 2, 1, 3) if ops.name == "torch" else blocks.transpose(0, 2, 1, 3)
    ia = [loc[2] for loc in located]
    ib = [loc[3] for loc in located]
    m = blocks[ia, ib]  # (pairs, r, r): rows from the group_a side
    flip = np.array([loc[4] for loc in located])
    if flip.any():
        index = ops.torch.as_tensor(np.flatnonzero(flip), device=m.device) if ops.name == "torch" else np.flatnonzero(flip)
        m[index] = m[index].mT
    values = batched(ops, m, [factors[loc[0]].projections for loc in located],
                     [factors[loc[1]].projections for loc in located])
    return [(a, b, *v) for (a, b, *_), v in zip(located, values)]


def _record(results, store, done, bar) -> int:
    """Keep (and commit) each pair as it arrives; returns how many arrived."""
    count = 0
    for a, b, v_ab, v_ba, info in results:
        done[(a, b)] = (v_ab, v_ba, info)
        if store:
            store.add(a, b, v_ab, v_ba, info)
        if bar:
            bar.update(1)
        count += 1
    return count


def _compute(todo, factors, measure, params, block, store, done, progress, extra, direct) -> int:
    """Compute the pairs in ``todo`` block by block; returns how many were computed."""
    if not todo:
        return 0
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), desc="pairs", unit="pair")
    computed = 0
    if direct:  # one pair at a time, each committed as it finishes
        kernels: dict = {}
        for pair in todo:
            computed += _record(_direct_values(factors, [pair], measure, params, extra, kernels), store, done, bar)
        if bar:
            bar.close()
        return computed
    first = next(iter(factors.values()))
    groups = _groups({k: f.rank for k, f in factors.items()}, first.n_samples, block)
    for group_a, group_b, pairs in _block_jobs(todo, groups):
        fa = {x: factors[x] for x in group_a}
        fb = fa if group_b is group_a else {x: factors[x] for x in group_b}
        computed += _record(_block_values(fa, fb, group_b is group_a, pairs, measure, params, extra), store, done, bar)
    if bar:
        bar.close()
    return computed


def _remote_block(sources_a: dict, sources_b: dict, same: bool, pairs, measure, params, extra):
    """A Dask task: read (from the store, for store paths) and factorise, then one block."""
    if registry.MEASURES[measure].kind != "factor":
        arrays = {k: _load(v, k) for k, v in {**sources_a, **sources_b}.items()}
        return _direct_values(arrays, pairs, measure, params, extra)
    fa = {k: _factor(v, k, params["rtol"]) for k, v in sources_a.items()}
    fb = fa if same else {k: _factor(v, k, params["rtol"]) for k, v in sources_b.items()}
    return list(_block_values(fa, fb, same, pairs, measure, params, extra))


def _client(scheduler):
    from dask.distributed import Client, LocalCluster

    if isinstance(scheduler, Client):
        return scheduler, None
    if scheduler == "local":
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
        return Client(cluster), cluster
    return Client(scheduler), None


def _compute_dask(scheduler, todo, shapes, sources, measure, params, block, store, done, extra) -> int:
    """The same blocks as Dask tasks; results are committed as each task finishes."""
    if not todo:
        return 0
    from dask.distributed import as_completed

    client, cluster = _client(scheduler)
    try:
        # arrays go to the workers once; store paths travel as text and are read there
        shipped = {k: (v if isinstance(v, (str, Path)) else client.scatter(_host_array(v))) for k, v in sources.items()}
        n_samples = next(iter(shapes.values()))[0]
        # neuron counts stand in for ranks here: the blocks are fixed before anything is read
        groups = _groups({k: shape[1] for k, shape in shapes.items()}, n_samples, block)
        futures = []
        for group_a, group_b, pairs in _block_jobs(todo, groups):
            same = group_b is group_a
            futures.append(client.submit(
                _remote_block, {x: shipped[x] for x in group_a}, {x: shipped[x] for x in group_b},
                same, pairs, measure, params, extra, pure=False,
            ))
        computed = 0
        for future in as_completed(futures):
            computed += _record(future.result(), store, done, None)
        return computed
    finally:
        if cluster is not None:
            client.close()
            cluster.close()


def _host_array(value):
    return value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)


def _describe(value, label: str):
    """(shape, fingerprint, backend) without reading a store array's data."""
    from ..store import ActivationStore, _is_zarr_dir, _pick, _split_spec, fingerprint, load_array

    if isinstance(value, (str, Path)):
        path, key = _split_spec(value)
        if _is_zarr_dir(path):
            st = ActivationStore(path, mode="r")
            key = _pick(st.arrays(), key, path)
            arr = st._array(key)
            if not arr.attrs.get("complete", False):
                raise ValueError(f"{label}: array {key!r} in {path} is incomplete (its writer was interrupted).")
            shape = tuple(int(v) for v in arr.shape)
            content = arr.attrs.get("content_sha256")  # recorded by the writer over every batch
            if content is None:  # written by other tools: hash the data
                return shape, fingerprint(st.read(key)), "numpy"
            return shape, content[:16], "numpy"
        value = load_array(value)
    arr = _validate.as_matrix(value, label)
    backend = "torch" if hasattr(arr, "detach") else "numpy"
    return tuple(int(v) for v in arr.shape), fingerprint(_host_array(arr)), backend


def _stack_bases(ops, factors: list[Factor]):
    """The factors' orthonormal bases side by side, (n_samples x sum of ranks).

    With numpy each basis is written straight into its rows of one (sum of ranks x n)
    buffer, returned as its transposed view: no per-representation copies, and BLAS reads
    the view as a transposed operand (x.T @ x of it is still one syrk).
    """
    if ops.name == "torch":
        return ops.torch.cat([f.basis() for f in factors], dim=1)
    total = sum(f.rank for f in factors)
    out = np.empty((total, factors[0].n_samples), dtype=ops.dtype)
    lo = 0
    for f in factors:
        coef = np.asarray(f.basis_coef, dtype=ops.dtype)
        np.matmul(coef.T, f.basis_data.T, out=out[lo : lo + f.rank])
        lo += f.rank
    return out.T
