r"""Out-of-core CCA: representations with more datapoints than memory holds.

One pass over row chunks computes a tall-skinny Householder QR (TSQR) of
:math:`[\mathbf 1 \mid X_1 \mid \dots \mid X_K]`. The trailing block :math:`T` of its R
factor is the R factor of the centred data, :math:`[X_{1c} \mid \dots \mid X_{Kc}] = Q T` with
orthonormal :math:`Q` (MATH.md). Every measure depends on the data only through inner
products of centred columns, so it is the same on the small matrix
:math:`Z = [T; -T]` (zero column means, :math:`Z^T Z = 2 T^T T`, a uniform factor that
CCA and PWCCA's normalised weights ignore). Memory is O(chunk x D + D^2) with
D = the total number of neurons; no normal equations are formed.

* :func:`compress` turns sources into those small matrices (one per source);
* :func:`compare` and :func:`pairwise` run the measures on them, reporting the true
  number of datapoints (and warning about it as the in-memory path does).

Sources are Zarr arrays, ``"store.zarr:name"`` paths, numpy arrays, or iterables of
row chunks (all with the same rows, in the same chunks).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Iterable

import numpy as np
import scipy.linalg

from .core import _validate

__all__ = ["compare", "compress", "pairwise"]


def _open(source):
    """An object with .shape and row slicing, or an iterator of chunks."""
    if isinstance(source, (str, Path)):
        from .store import ActivationStore, StoreError, _pick, _split_spec

        path, key = _split_spec(source)
        store = ActivationStore(path, mode="r")
        key = _pick(store.arrays(), key, path)
        arr = store._array(key)
        if not arr.attrs.get("complete", False):
            raise StoreError(f"array {key!r} in {path} is incomplete (its writer was interrupted).")
        return arr
    if hasattr(source, "shape") and hasattr(source, "__getitem__"):
        if len(source.shape) != 2:
            raise ValueError(f"sources must be 2-D (datapoints, neurons); got shape {tuple(source.shape)}.")
        return source
    if isinstance(source, Iterable):
        return iter(source)
    raise TypeError(f"a source must be a Zarr array, a store path, an array or an iterable of chunks; got {type(source).__name__}.")


def _chunks(sources, chunk_rows: int):
    """Yield lists of aligned row chunks, one per source."""
    opened = [_open(s) for s in sources]
    sliceable = [hasattr(o, "shape") for o in opened]
    if all(sliceable):
        rows = {int(o.shape[0]) for o in opened}
        if len(rows) != 1:
            raise ValueError(f"every source needs the same datapoints; got {[tuple(o.shape) for o in opened]}.")
    iterators = [_sliced(o, chunk_rows) if s else o for o, s in zip(opened, sliceable)]
    sentinel = object()
    while True:
        parts = [next(it, sentinel) for it in iterators]
        if all(p is sentinel for p in parts):
            return
        if any(p is sentinel for p in parts):
            raise ValueError("the sources ran out of chunks at different points: they must hold the same rows.")
        parts = [np.asarray(p, dtype=np.float64) for p in parts]
        if len({p.shape[0] for p in parts}) != 1:
            raise ValueError(f"chunks of different lengths arrived together: {[p.shape for p in parts]}; align the sources' chunks.")
        yield parts


def _sliced(arr, chunk_rows):
    for start in range(0, arr.shape[0], chunk_rows):
        yield arr[start : start + chunk_rows]


def compress(sources, *, chunk_rows: int = 32768, progress: bool = False) -> tuple[list[np.ndarray], int]:
    """One pass of TSQR over the sources; returns (one small matrix per source, n).

    Each returned matrix has 2 * D rows (D = all sources' neurons together) and the
    source's neurons as columns; any ccalens measure between two of them equals the
    measure between the full sources.
    """
    if isinstance(sources, (str, Path)) or hasattr(sources, "shape"):
        sources = [sources]
    sources = list(sources)
    if not sources:
        raise ValueError("no sources given.")
    r = None
    widths = None
    n = 0
    col_min = col_max = None
    chunks = _chunks(sources, chunk_rows)
    if progress:
        from tqdm.auto import tqdm

        chunks = tqdm(chunks, desc="streaming", unit="chunk")
    for parts in chunks:
        for k, p in enumerate(parts):
            if p.ndim != 2:
                raise ValueError(f"source {k} gave a chunk of shape {p.shape}; chunks must be (rows, neurons).")
            if not np.all(np.isfinite(p)):
                bad = np.argwhere(~np.isfinite(p))[0]
                raise ValueError(f"source {k} has a non-finite value at datapoint {n + int(bad[0])}, neuron {int(bad[1])}.")
        if widths is None:
            widths = [p.shape[1] for p in parts]
        elif [p.shape[1] for p in parts] != widths:
            raise ValueError(f"a chunk changed the number of neurons: {[p.shape[1] for p in parts]} after {widths}.")
        block = np.concatenate([np.ones((parts[0].shape[0], 1))] + parts, axis=1)
        lo, hi = block[:, 1:].min(axis=0), block[:, 1:].max(axis=0)  # for constant neurons
        col_min = lo if col_min is None else np.minimum(col_min, lo)
        col_max = hi if col_max is None else np.maximum(col_max, hi)
        stacked = block if r is None else np.concatenate([r, block], axis=0)
        r = scipy.linalg.qr(stacked, mode="r", check_finite=False)[0][: block.shape[1]]
        n += parts[0].shape[0]
    if r is None:
        raise ValueError("the sources hold no datapoints.")
    if n < 2:
        raise ValueError(f"the sources hold {n} datapoint; at least 2 are needed.")
    t = np.triu(r)[1:, 1:]  # the centred data's R factor
    # a constant (dead) neuron centres to rounding noise in T; make it exactly zero so that
    # the factorisation drops it, as it does in memory
    eps = np.finfo(np.float64).eps
    constant = (col_max - col_min) <= 4.0 * eps * np.maximum(np.abs(col_max), np.abs(col_min))
    t[:, constant] = 0.0
    z = np.concatenate([t, -t], axis=0)
    edges = np.cumsum([0] + widths)
    return [np.ascontiguousarray(z[:, a:b]) for a, b in zip(edges[:-1], edges[1:])], n


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", _validate.SmallSampleWarning)
        return fn(*args, **kwargs)


def compare(x, y, measure: str = "pwcca", *, chunk_rows: int = 32768, progress: bool = False, **options):
    """A measure between two out-of-core sources (one streaming pass over both)."""
    import ccalens

    fns = {"pwcca": ccalens.pwcca, "svcca": ccalens.svcca, "mean_cca": ccalens.mean_cca, "cca": ccalens.cca}
    if measure not in fns:
        raise ValueError(f"measure must be one of {tuple(fns)}; got {measure!r}.")
    if options.get("compat"):
        raise ValueError("compat='svcca' needs the raw activations; it is not available when streaming.")
    (zx, zy), n = compress([x, y], chunk_rows=chunk_rows, progress=progress)
    result = _quiet(fns[measure], zx, zy, **options)
    _validate.warn_small_sample(n, zx.shape[1], zy.shape[1], zx.shape[1], zy.shape[1], stacklevel=3)
    return _with_n(result, n)


def _with_n(result, n: int):
    import dataclasses

    if hasattr(result, "n_samples"):
        result = dataclasses.replace(result, n_samples=n)
    return result


def pairwise(sources, measure: str = "pwcca", *, names=None, chunk_rows: int = 32768, progress: bool = False, **options):
    """:func:`ccalens.pairwise` over out-of-core sources, after one streaming pass."""
    from .pairwise import pairwise as in_memory

    if isinstance(sources, dict):
        names = list(sources) if names is None else names
        sources = list(sources.values())
    zs, n = compress(list(sources), chunk_rows=chunk_rows, progress=progress)
    result = _quiet(in_memory, zs, measure, names=names, **options)
    for row in result.table:
        row["n"] = n
    return result
