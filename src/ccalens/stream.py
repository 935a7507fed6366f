r"""Out-of-core CCA: representations with more datapoints than memory holds.

One pass over row chunks computes a tall-skinny Householder QR (TSQR) of
:math:`[\mathbf 1 \mid X_1 \mid \dots \mid X_K]`. The trailing block :math:`T` of its R
factor is the R factor of the centred data, :math:`[X_{1c} \mid \dots \mid X_{Kc}] = Q T` with
orthonormal :math:`Q` (MATH.md). Every measure depends on the data only through inner
products of centred columns, so it is the same on the small matrix
:math:`Z = [T; -T]/\sqrt 2` (zero column means, :math:`Z^T Z = T^T T`: the centred
data's own inner products, scale included, which the shape metrics with
:math:`0 < \alpha < 1` need). Memory is O(chunk x D + D^2) with
D = the total number of neurons; no normal equations are formed.

* :func:`compress` turns sources into those small matrices (one per source);
* :func:`compare` and :func:`pairwise` run the measures on them, reporting the true
  number of datapoints (and warning about it as the in-memory path does).

Each source is shifted by its first chunk's column means before the QR (every measure
here ignores translations), so large offsets cost no accuracy.

Only the measures that depend on the centred data through its inner products alone are
available (:data:`MEASURES`: the CCA family, linear CKA, Procrustes, the shape metrics).
Debiased and RBF CKA, RSA, predictivity, the neighbour measures, the matched-neuron
controls, permutation nulls, bootstraps and canonical variates need the datapoints
themselves: run those in memory on a random subset of datapoints.

Sources are Zarr arrays, ``"store.zarr:name"`` paths, ``.npy`` files (memory-mapped),
numpy arrays, or iterables of row chunks (all with the same rows, in the same chunks).
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path
from typing import Iterable

import numpy as np
import scipy.linalg

from .core import validate, registry

__all__ = ["MEASURES", "RowSummary", "compare", "compress", "default_rtol", "pairwise", "why_not_streamable"]

#: Measures that streaming computes exactly: they see the centred data only through
#: inner products of its columns, which the small matrices keep.
MEASURES = registry.names(streamable=True)

#: Options the measures take that mean the same on the small matrices.
_OPTIONS = {"epsilon", "keep", "n_components", "symmetric", "rtol", "dtype", "alpha"}

#: Options that need the datapoints themselves, with when they are in use and why.
_NEEDS_DATAPOINTS = {
    "permutations": (lambda v: bool(v), "a permutation null shuffles datapoints"),
    "bootstrap": (lambda v: bool(v), "a bootstrap resamples datapoints"),
    "variates": (lambda v: bool(v), "canonical variates have one value per datapoint"),
    "debiased": (lambda v: bool(v), "debiased CKA needs each datapoint's norm"),
    "kernel": (lambda v: v != "linear", "RBF CKA needs the distances between datapoints"),
    "compat": (lambda v: bool(v), "the reference code's algorithm needs the raw activations"),
}
#: Options with no effect unless one of the above is in use.
_IDLE = {"confidence", "interval", "seed", "bandwidth", "layout"}


def _open(source):
    """An object with .shape and row slicing, or an iterator of chunks."""
    from .store import Source, StoreError, VerifiedRows

    if isinstance(source, (str, Path)):
        return Source(source).rows()
    if hasattr(source, "shape") and hasattr(source, "__getitem__"):
        if len(source.shape) != 2:
            raise ValueError(f"sources must be 2-D (datapoints, neurons); got shape {tuple(source.shape)}.")
        if type(source).__module__.startswith("zarr") and "content_sha256" in getattr(source, "attrs", {}):
            if not source.attrs.get("complete", False):
                raise StoreError(f"Zarr array {source.path!r} is incomplete (its writer was interrupted).")
            return VerifiedRows(source, f"array {source.path!r}")
        return source
    if isinstance(source, Iterable):
        return iter(source)
    raise TypeError(f"a source must be a Zarr array, a store path, an array or an iterable of chunks; got {type(source).__name__}.")


def _chunks(sources, chunk_rows: int):
    """Yield lists of aligned row chunks, one per source."""
    opened = [_open(s) for s in sources]
    sliceable = [hasattr(o, "shape") for o in opened]
    iterators_seen: dict[int, int] = {}
    for k, (o, s) in enumerate(zip(opened, sliceable)):
        if not s:
            if id(o) in iterators_seen:
                raise ValueError(
                    f"sources {iterators_seen[id(o)]} and {k} are the same iterator: each would see "
                    f"only every other chunk. Pass two iterators (or an array, which can be read twice).")
            iterators_seen[id(o)] = k
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
        for k, p in enumerate(parts):
            if p.ndim != 2:
                raise ValueError(f"source {k} gave a chunk of shape {p.shape}; chunks must be 2-D (rows, neurons).")
        if len({p.shape[0] for p in parts}) != 1:
            raise ValueError(
                f"chunks of different lengths arrived together: {[p.shape for p in parts]}; align the "
                f"sources' chunks (arrays and stores are read chunk_rows={chunk_rows} rows at a time: "
                f"set chunk_rows to the iterators' chunk length).")
        yield parts


def _sliced(arr, chunk_rows):
    verify = getattr(arr, "verify_stream", None)  # a store array: its content is checked as it streams
    digest, rows = (hashlib.sha256(), 0) if verify is not None else (None, 0)
    chunk = None
    for start in range(0, arr.shape[0], chunk_rows):
        chunk = arr[start : start + chunk_rows]
        if digest is not None:
            contiguous = np.ascontiguousarray(chunk)
            digest.update(memoryview(contiguous).cast("B"))
            rows += contiguous.shape[0]
        yield chunk
    if verify is not None and chunk is not None:
        verify(digest, chunk.dtype, rows, chunk.shape[1])


def compress(sources, *, chunk_rows: int = 32768, progress: bool = False) -> tuple[list[np.ndarray], int]:
    """One pass of TSQR over the sources; returns (one small matrix per source, n).

    Each returned matrix has 2 * D rows (D = all sources' neurons together) and the
    source's neurons as columns; any measure of :data:`MEASURES` between two of them equals
    the measure between the full sources (pass ``rtol=max(n, neurons) * eps`` for the
    in-memory default rank tolerance; :func:`compare` and :func:`pairwise` do).
    """
    summary = _compress(sources, chunk_rows, progress)
    return summary.matrices, summary.n


class _Summary:
    def __init__(self, matrices, n, varying, prints):
        self.matrices, self.n, self.varying, self.prints = matrices, n, varying, prints


def _is_torch(x) -> bool:
    return type(x).__module__.split(".")[0] == "torch"


class RowSummary:
    """The one-pass TSQR summary of column groups that arrive in row chunks.

    ``add(parts)`` takes one chunk: a list of 2-D arrays, one per group, with the same rows.
    numpy arrays are summarised in float64 on the CPU; torch tensors in float64 on their
    own device (``ccalens.compare_models`` feeds layer outputs straight from a model's
    hooks), and only the final R factor, (D + 1) x (D + 1) for D columns in all, is
    brought to the host. Chunks are buffered until they hold D + 1 rows, so the QR of
    [R; buffer] costs about 4 (D + 1)^2 flops per row however small the chunks are.
    ``finish()`` returns the small matrices (one per group, 2D rows, the centred data's
    inner products), the number of rows and each group's number of varying columns.

    ``names`` label the groups in error messages (default "source 0", "source 1", ...).
    """

    def __init__(self, names=None):
        self.names = None if names is None else list(names)
        self.r = None
        self.buffer: list = []
        self.buffered = 0
        self.n = 0
        self.widths = self.shift = self.col_min = self.col_max = None

    def _name(self, k: int) -> str:
        return self.names[k] if self.names is not None else f"source {k}"

    def add(self, parts) -> None:
        parts = list(parts)
        torch_chunk = _is_torch(parts[0])
        if torch_chunk:
            import torch

            parts = [p.detach().to(torch.float64) for p in parts]
        else:
            parts = [np.asarray(p, dtype=np.float64) for p in parts]
        for k, p in enumerate(parts):
            if p.ndim != 2:
                raise ValueError(f"{self._name(k)} gave a chunk of shape {tuple(p.shape)}; chunks must be 2-D "
                                 f"(rows, neurons).")
        if len({int(p.shape[0]) for p in parts}) != 1:
            raise ValueError(f"chunks of different lengths arrived together: {[tuple(p.shape) for p in parts]}; "
                             f"every group must hold the same rows.")
        rows = int(parts[0].shape[0])
        if rows == 0:
            return  # an empty chunk (all groups agree on its length) adds nothing
        for k, p in enumerate(parts):
            finite = torch.isfinite(p) if torch_chunk else np.isfinite(p)
            if not bool(finite.all()):
                bad = (torch.nonzero(~finite)[0].tolist() if torch_chunk else np.argwhere(~finite)[0].tolist())
                raise ValueError(f"{self._name(k)} has a non-finite value at datapoint {self.n + int(bad[0])}, "
                                 f"neuron {int(bad[1])}.")
        widths = [int(p.shape[1]) for p in parts]
        if self.widths is None:
            for k, w in enumerate(widths):
                if w == 0:
                    raise ValueError(f"{self._name(k)} has no neurons (its chunks are ({rows}, 0)).")
            self.widths = widths
            # every measure here ignores translations: shifting by the first chunk's means
            # keeps large offsets out of the QR's rounding
            self.shift = [p.mean(0) for p in parts]
        elif widths != self.widths:
            raise ValueError(f"a chunk changed the number of neurons: {widths} after {self.widths}.")
        cat = (lambda xs, axis: torch.cat(xs, dim=axis)) if torch_chunk else np.concatenate
        lo = cat([p.amin(0) if torch_chunk else p.min(axis=0) for p in parts], 0)  # for constant neurons
        hi = cat([p.amax(0) if torch_chunk else p.max(axis=0) for p in parts], 0)
        if self.col_min is None:
            self.col_min, self.col_max = lo, hi
        else:
            self.col_min = torch.minimum(self.col_min, lo) if torch_chunk else np.minimum(self.col_min, lo)
            self.col_max = torch.maximum(self.col_max, hi) if torch_chunk else np.maximum(self.col_max, hi)
        ones = (torch.ones((rows, 1), dtype=torch.float64, device=parts[0].device) if torch_chunk
                else np.ones((rows, 1)))
        self.buffer.append(cat([ones] + [p - m for p, m in zip(parts, self.shift)], 1))
        self.buffered += rows
        self.n += rows
        if self.buffered >= sum(self.widths) + 1:
            self._merge()

    def _merge(self) -> None:
        if not self.buffer:
            return
        blocks = self.buffer if self.r is None else [self.r, *self.buffer]
        width = int(blocks[-1].shape[1])
        if _is_torch(blocks[-1]):
            import torch

            self.r = torch.linalg.qr(torch.cat(blocks, dim=0), mode="r").R[:width]
        else:
            self.r = scipy.linalg.qr(np.concatenate(blocks, axis=0), mode="r", check_finite=False)[0][:width]
        self.buffer, self.buffered = [], 0

    def finish(self) -> _Summary:
        """The small matrices, n and the varying columns per group (see the class docstring)."""
        self._merge()
        if self.r is None:
            raise ValueError("the sources hold no datapoints.")
        if self.n < 2:
            raise ValueError(f"the sources hold {self.n} datapoint; at least 2 are needed.")
        r = self.r
        col_min, col_max = self.col_min, self.col_max
        if _is_torch(r):
            r, col_min, col_max = (t.cpu().numpy() for t in (r, col_min, col_max))
        width = sum(self.widths) + 1
        if r.shape[0] < width:  # fewer rows than columns so far: R is short; pad it with zero rows
            r = np.vstack([r, np.zeros((width - r.shape[0], width))])
        t = np.triu(r)[1:, 1:]  # the centred data's R factor
        # a constant (dead) neuron centres to rounding noise in T; make it exactly zero so that
        # the factorisation drops it, as it does in memory
        eps = np.finfo(np.float64).eps
        constant = (col_max - col_min) <= 4.0 * eps * np.maximum(np.abs(col_max), np.abs(col_min))
        t[:, constant] = 0.0
        z = np.concatenate([t, -t], axis=0) / np.sqrt(2.0)  # Z^T Z = T^T T: the centred data's own scale
        edges = np.cumsum([0] + self.widths)
        varying = []
        for k, (a, b) in enumerate(zip(edges[:-1], edges[1:])):
            varying.append(int(b - a - constant[a:b].sum()))
            if varying[-1] == 0:
                raise ValueError(
                    f"{self._name(k)} has no varying neuron: all {b - a} neuron(s) are constant over the {self.n} "
                    f"datapoints, so there is nothing to correlate. Check that the right layer was "
                    f"recorded and that the inputs differ.")
        return _Summary([np.ascontiguousarray(z[:, a:b]) for a, b in zip(edges[:-1], edges[1:])], self.n, varying,
                        None)


def _compress(sources, chunk_rows, progress, fingerprints: bool = False) -> _Summary:
    import hashlib

    if isinstance(sources, (str, Path)) or hasattr(sources, "shape"):
        sources = [sources]
    if not isinstance(sources, (list, tuple)):
        raise TypeError(
            f"sources must be a list of sources; got {type(sources).__name__}. Wrap one chunk "
            f"iterator in a list: compress([chunks]).")
    sources = list(sources)
    if not sources:
        raise ValueError("no sources given.")
    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, (int, np.integer)) or chunk_rows < 1:
        raise ValueError(f"chunk_rows must be a positive int; got {chunk_rows!r}.")
    summary = RowSummary()
    digests = [hashlib.sha256() for _ in sources] if fingerprints else None
    chunks = _chunks(sources, int(chunk_rows))
    if progress:
        from tqdm.auto import tqdm

        chunks = tqdm(chunks, desc="streaming", unit="chunk")
    for parts in chunks:
        summary.add(parts)
        if digests is not None and parts[0].shape[0]:
            for d, p in zip(digests, parts):
                d.update(np.ascontiguousarray(p).data)
    out = summary.finish()
    if digests is not None:
        out.prints = [hashlib.sha256(f"stream:{out.n}x{w}:{d.hexdigest()}".encode()).hexdigest()[:16]
                      for d, w in zip(digests, summary.widths)]
    return out


def _check_options(measure: str, options: dict) -> dict:
    """The options that mean the same on the small matrices; the others are refused with
    the reason (or dropped, where they do nothing without a refused one)."""
    out = {}
    for key, value in options.items():
        if key == "layout" and value != "datapoints_first":
            raise ValueError(
                f"layout={value!r} is not available when streaming: sources are read in row chunks "
                f"of (datapoints, neurons). Transpose the chunks, or store the arrays datapoints-first.")
        if key in _NEEDS_DATAPOINTS:
            active, why = _NEEDS_DATAPOINTS[key]
            if active(value):
                raise ValueError(
                    f"{key}={value!r} is not available when streaming: {why}, and streaming keeps "
                    f"only a small summary of the datapoints. Run it in memory on a random subset "
                    f"of datapoints.")
        elif key in _OPTIONS:
            out[key] = value
        elif key not in _IDLE:
            raise TypeError(f"unknown option {key}= for streaming {measure}; the options are {sorted(_OPTIONS)}.")
    return out


_WHY_NOT = {  # why a registered measure that is not streamable needs the datapoints, by its kind
    "factor": "it needs each datapoint's own values, not only the neurons' inner products",
    "kernel": "it compares n x n kernels between datapoints",
    "raw": "it works on the activations themselves (their distances, neighbours, regressions or matched neurons)",
}


def why_not_streamable(measure: str) -> str:
    """Why a registered measure cannot be computed from a streamed summary (its kind's reason)."""
    spec = registry.check_measure(measure) if not isinstance(measure, registry.MeasureSpec) else measure
    return f"{spec.name!r} ({spec.title}) cannot stream: {_WHY_NOT[spec.kind]}"


def _check_measure(measure: str) -> None:
    if measure in MEASURES:
        return
    why = (f"{why_not_streamable(measure)}, and streaming keeps only a small summary of the datapoints. Run it in "
           f"memory on a random subset of datapoints" if measure in registry.MEASURES
           else f"{measure!r} is not a measure")
    raise ValueError(f"{why}. The measures that stream are {', '.join(MEASURES)}.")


def default_rtol(options: dict, n: int, widths) -> float | None:
    """The in-memory default rank tolerance, max(n, neurons) * eps, for the true n (the
    small matrices have only 2D rows, which would give a far tighter one)."""
    if options.get("rtol") is not None:
        return options["rtol"]
    return max(n, *widths) * np.finfo(np.float64).eps


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", validate.SmallSampleWarning)
        return fn(*args, **kwargs)


def compare(x, y, measure: str = "pwcca", *, chunk_rows: int = 32768, progress: bool = False, **options):
    """A measure between two out-of-core sources (one streaming pass over both).

    ``measure`` is one of :data:`MEASURES`; ``options`` are those of the measure that do
    not need the datapoints themselves (epsilon, keep, n_components, symmetric, rtol, dtype).
    """
    _check_measure(measure)
    options = _check_options(measure, options)
    summary = _compress([x, y], chunk_rows, progress)
    (zx, zy), n = summary.matrices, summary.n
    options["rtol"] = default_rtol(options, n, (zx.shape[1], zy.shape[1]))
    result = _quiet(registry.MEASURES[measure].compute, zx, zy, **options)
    rx, ry = getattr(result, "x_rank", summary.varying[0]), getattr(result, "y_rank", summary.varying[1])
    validate.warn_small_sample(n, summary.varying[0], summary.varying[1], rx, ry, stacklevel=3)
    return _with_n(result, n)


def _with_n(result, n: int):
    import dataclasses

    if hasattr(result, "n_samples"):
        result = dataclasses.replace(result, n_samples=n)
    return result


def pairwise(sources, measure: str = "pwcca", *, others=None, names=None, other_names=None,
             chunk_rows: int = 32768, progress: bool = False, **options):
    """:func:`ccalens.pairwise` over out-of-core sources, after one streaming pass.

    ``measure`` is one of :data:`MEASURES`. Labels, ``others`` (a K x L matrix), ``symmetric``,
    ``results`` (resuming; pairs are keyed by the sources' content, hashed during the pass,
    so adding a source reuses every pair already done), ``block`` and ``scheduler`` are as
    in :func:`ccalens.pairwise`; permutations and bootstraps need the datapoints and are
    refused.
    """
    from .engine import labels as _labels
    from .engine import pairwise as in_memory

    _check_measure(measure)
    engine = {k: options.pop(k) for k in ("results", "block", "scheduler") if k in options}
    options = _check_options(measure, options)
    if "n_components" in options or options.get("dtype") is not None:
        raise ValueError("streamed pairwise takes epsilon, keep, symmetric and rtol; n_components and dtype "
                         "are single-pair options.")
    row_vals, row_labels = _labels(sources, names, "rep")
    if not row_vals:
        raise ValueError("sources is empty; pass at least one source.")
    col_vals, col_labels = ([], []) if others is None else _labels(others, other_names, "other")
    if set(row_labels) & set(col_labels):
        raise ValueError(f"the names {sorted(set(row_labels) & set(col_labels))} are used in both sources "
                         f"and others; names must be unique.")
    summary = _compress(row_vals + col_vals, chunk_rows, progress, fingerprints=engine.get("results") is not None)
    zs, n = summary.matrices, summary.n
    rtol = default_rtol(options, n, [z.shape[1] for z in zs])
    opts = {k: v for k, v in options.items() if k not in ("rtol", "dtype")}
    k = len(row_vals)
    prints = dict(zip(row_labels + col_labels, summary.prints)) if summary.prints else None
    result = _quiet(
        in_memory, dict(zip(row_labels, zs[:k])), measure,
        others=dict(zip(col_labels, zs[k:])) if others is not None else None,
        rtol=rtol, fingerprints=prints, **engine, **opts)
    for row in result.table:
        row["n"] = n
    return result
