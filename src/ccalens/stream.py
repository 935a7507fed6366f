r"""Out-of-core CCA: representations with more datapoints than memory holds.

Every measure here depends on the data only through inner products of centred columns,
so it is the same on a small matrix :math:`Z` with :math:`Z^T Z = X_c^T X_c` for
:math:`X_c = [X_{1c} \mid \dots \mid X_{Kc}]`, all sources' centred neurons side by side.
Streaming builds that :math:`Z`, one block of columns per source, in one or two passes
over row chunks (memory O(chunk x D + D^2), D = the total number of neurons):

* **the Gram route** (the default, :class:`GramSummary`): one pass accumulates the Gram
  matrix of :math:`[\mathbf 1 \mid X_1 \mid \dots]` with BLAS syrk (about D^2 flops per
  row), and :math:`Z` is a pivoted Cholesky factor of the centred Gram matrix. Forming
  a Gram matrix squares the condition number, so each source is checked on its own block,
  with :func:`ccalens.factorize`'s thresholds: for moderately ill-conditioned sources a
  second pass sums the exact inner products of their few weak eigen-directions, and the
  ill-conditioned ones
  (near-duplicate neurons, rank deficiency) are triangularised by Householder reflections
  in that pass, with the other sources' columns carried along;
* **the TSQR route** (``route="tsqr"``, and for one-pass iterators, which cannot be read
  twice): one pass of a tall-skinny Householder QR of :math:`[\mathbf 1 \mid X_1 \mid
  \dots]` (:class:`RowSummary`). The trailing block :math:`T` of its R factor is the R
  factor of the centred data (MATH.md), and :math:`Z = T`. Backward stable whatever the
  conditioning, at about four times the flops and a fraction of the BLAS's rate.

Either way the small matrix handed to the measures is :math:`[Z; -Z]/\sqrt 2` (zero
column means, the centred data's own inner products, scale included, which the shape
metrics with :math:`0 < \alpha < 1` need).

* :func:`compress` turns sources into those small matrices (one per source);
* :func:`compare` and :func:`pairwise` run the measures on them, reporting the true
  number of datapoints (and warning about it as the in-memory path does).

Each source is shifted by its first chunk's column means (every measure here ignores
translations), so large offsets cost no accuracy; the Gram route checks the cancellation
that an unrepresentative first chunk would leave. Reading and decompressing the next
chunks runs in a background thread, beside the arithmetic.

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
from .core.linalg import psd_root

__all__ = ["MEASURES", "ROUTES", "GramSummary", "RowSummary", "Summary", "compare", "compress", "default_rtol", "pairwise",
           "complete", "summarise", "why_not_streamable"]

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


def _open_all(sources):
    """Open every source; refuse one iterator passed twice (each would see every other chunk)."""
    opened = [_open(s) for s in sources]
    iterators_seen: dict[int, int] = {}
    for k, o in enumerate(opened):
        if not hasattr(o, "shape"):
            if id(o) in iterators_seen:
                raise ValueError(
                    f"sources {iterators_seen[id(o)]} and {k} are the same iterator: each would see "
                    f"only every other chunk. Pass two iterators (or an array, which can be read twice).")
            iterators_seen[id(o)] = k
    if all(hasattr(o, "shape") for o in opened):
        rows = {int(o.shape[0]) for o in opened}
        if len(rows) != 1:
            raise ValueError(f"every source needs the same datapoints; got {[tuple(o.shape) for o in opened]}.")
    return opened


def _ours(source) -> bool:
    """A source whose reads are safe from any thread and side by side: numpy arrays (memory
    maps included), store arrays and Zarr arrays. A caller's iterators and other array-likes
    (which may share a file handle, or be tied to their thread: a SQLite cursor, a torch
    generator under the caller's no_grad) are read in the caller's thread, in turn."""
    from .store import VerifiedRows

    return isinstance(source, (np.ndarray, VerifiedRows)) or type(source).__module__.split(".")[0] == "zarr"


def _chunks(opened, chunk_rows: int):
    """Yield lists of aligned row chunks (numpy arrays in their own dtype), one per source.

    The sources :func:`_ours` reads are read side by side, one thread each (decompression
    and the content hash release the GIL); the others are advanced in turn.
    """
    from concurrent.futures import ThreadPoolExecutor

    iterators = [_sliced(o, chunk_rows) if hasattr(o, "shape") else o for o in opened]
    sliceable = [k for k, o in enumerate(opened) if hasattr(o, "shape") and _ours(o)]
    sentinel = object()
    pool = ThreadPoolExecutor(max_workers=min(len(sliceable), 8)) if len(sliceable) > 1 else None
    try:
        while True:
            parts = [None] * len(iterators)
            if pool is not None:
                for k, part in zip(sliceable, pool.map(lambda k: next(iterators[k], sentinel), sliceable)):
                    parts[k] = part
            for k, it in enumerate(iterators):
                if pool is None or k not in sliceable:
                    parts[k] = next(it, sentinel)
            done = _aligned(parts, sentinel, chunk_rows)
            if done is None:
                return
            yield done
    finally:
        if pool is not None:
            pool.shutdown(wait=True)


def _aligned(parts, sentinel, chunk_rows):
    """One chunk per source, checked (None at the end of every source)."""
    if all(p is sentinel for p in parts):
        return None
    if any(p is sentinel for p in parts):
        raise ValueError("the sources ran out of chunks at different points: they must hold the same rows.")
    parts = [p if isinstance(p, np.ndarray) else np.asarray(p) for p in parts]
    for k, p in enumerate(parts):
        if p.ndim != 2:
            raise ValueError(f"source {k} gave a chunk of shape {p.shape}; chunks must be 2-D (rows, neurons).")
    if len({p.shape[0] for p in parts}) != 1:
        raise ValueError(
            f"chunks of different lengths arrived together: {[p.shape for p in parts]}; align the "
            f"sources' chunks (arrays and stores are read chunk_rows={chunk_rows} rows at a time: "
            f"set chunk_rows to the iterators' chunk length).")
    return parts


def _prefetched(iterator, depth: int = 2):
    """The items of ``iterator``, read ``depth`` ahead in a background thread, so that reading
    and decompressing the next chunks overlaps the arithmetic on this one (numpy, Zarr's
    codecs and hashlib release the GIL). An exception in the reader is raised here, in order."""
    import queue
    import threading

    items: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def read():
        try:
            for item in iterator:
                while not stop.is_set():
                    try:
                        items.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            items.put((done, None))
        except BaseException as err:  # handed to the consumer, raised there
            items.put((done, err))

    def read_then_close():
        try:
            read()
        finally:  # a stopped reader closes what it was reading (its pools, its files), in its own thread
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    reader = threading.Thread(target=read_then_close, name="ccalens-stream-reader", daemon=True)
    reader.start()
    try:
        while True:
            item, err = items.get()
            if item is done:
                if err is not None:
                    raise err
                return
            yield item
    finally:
        stop.set()
        while reader.is_alive():  # unblock a reader waiting to put
            try:
                items.get(timeout=0.1)
            except queue.Empty:
                pass


def _row_chunk(arr) -> int | None:
    """Rows per stored chunk of a Zarr (or similar) array; None for arrays without chunks."""
    chunks = getattr(arr, "chunks", None)
    if isinstance(chunks, tuple) and chunks and isinstance(chunks[0], (int, np.integer)) and chunks[0] > 0:
        return int(chunks[0])
    return None


def _sliced(arr, chunk_rows):
    """Pieces of ``chunk_rows`` rows (the last one shorter). A chunked store is read whole
    stored chunks at a time, so each is decompressed once however ``chunk_rows`` falls
    across them (32,768-row slices of 65,536-row chunks read twice as slowly)."""
    verify = getattr(arr, "verify_stream", None)  # a store array: its content is checked as it streams
    digest, rows = (hashlib.sha256(), 0) if verify is not None else (None, 0)
    stored = _row_chunk(arr)
    # whole stored chunks, unless they are much larger than chunk_rows (memory stays bounded)
    read = chunk_rows if stored is None or stored > 4 * chunk_rows else stored * max(1, chunk_rows // stored)
    pending = None
    last = None
    for start in range(0, arr.shape[0], read):
        block = arr[start : start + read]
        last = block
        if digest is not None:
            contiguous = np.ascontiguousarray(block)
            digest.update(memoryview(contiguous).cast("B"))
            rows += contiguous.shape[0]
        if pending is not None:
            block = np.concatenate([pending, block], axis=0)
        lo = 0
        while block.shape[0] - lo >= chunk_rows:
            yield block[lo : lo + chunk_rows]
            lo += chunk_rows
        pending = block[lo:] if lo < block.shape[0] else None
    if pending is not None:
        yield pending
    if verify is not None and last is not None:
        verify(digest, last.dtype, rows, last.shape[1])


#: Streaming routes: "auto" (a Gram pass, with a Householder pass for the sources it cannot
#: summarise exactly enough) and "tsqr" (one Householder pass over everything).
ROUTES = ("auto", "tsqr")


def compress(sources, *, chunk_rows: int = 32768, progress: bool = False, route: str = "auto"
             ) -> tuple[list[np.ndarray], int]:
    """Summarise the sources; returns (one small matrix per source, n).

    Each returned matrix has at most 2 * D rows (D = all sources' neurons together) and the
    source's neurons as columns; any measure of :data:`MEASURES` between two of them equals
    the measure between the full sources (pass ``rtol=max(n, neurons) * eps`` for the
    in-memory default rank tolerance; :func:`compare` and :func:`pairwise` do).

    ``route="auto"`` (the default) accumulates the centred data's Gram matrix in one pass
    (about D^2 flops per row at the BLAS's full rate) and checks each source's conditioning
    on it; the sources too ill-conditioned for that (and any source that is a one-pass
    iterator, which cannot be read again) take a Householder pass. ``route="tsqr"``
    takes the Householder pass for everything. See :class:`GramSummary`.
    """
    summary = _compress(sources, chunk_rows, progress, route=route)
    return summary.matrices, summary.n


def summarise(sources, *, chunk_rows: int = 32768, progress: bool = False, route: str = "auto") -> "Summary":
    """:func:`compress` with what it found: a :class:`Summary` (the small matrices, n, each
    source's varying neurons and the route each source took)."""
    return _compress(sources, chunk_rows, progress, route=route)


class Summary:
    """What streaming keeps of the sources.

    Attributes
    ----------
    matrices : list of ndarray
        One small matrix per source (see :func:`compress`).
    n : int
        Number of datapoints streamed.
    varying : list of int
        Each source's number of non-constant neurons.
    routes : list of str
        Each source's route: "gram" (the first pass's Gram block), "gram2" (its weak
        eigen-directions summed again in a second pass) or "tsqr" (Householder); see :class:`GramSummary`.
    """

    def __init__(self, matrices, n, varying, prints, routes=None):
        self.matrices, self.n, self.varying, self.prints = matrices, n, varying, prints
        self.routes = routes

    def __repr__(self) -> str:
        return f"Summary(n={self.n}, sources={len(self.matrices)}, routes={self.routes})"




def _is_torch(x) -> bool:
    return type(x).__module__.split(".")[0] == "torch"


class _Rows:
    """What both summaries check and keep about the chunks: shapes, finiteness, the shift
    (the first chunk's column means), each column's range (for the constant neurons) and
    its sum after the shift. Each chunk becomes one float64 block [1 | X_1 - shift_1 | ...]."""

    def __init__(self, names=None, shift=None):
        self.names = None if names is None else list(names)
        self.n = 0
        self.widths = self.col_min = self.col_max = self.sums = self.squares = None
        self.shift = shift
        self.track_squares = False  # also sum each column's squares (a second pass checked to rounding)

    def _name(self, k: int) -> str:
        return self.names[k] if self.names is not None else f"source {k}"

    def _joint(self, parts, reuse: bool = False):
        """Check one chunk and return [1 | parts - shift] (rows x (1 + D), float64), or None
        for an empty chunk. With ``reuse`` (numpy), the block is written into one buffer kept
        across chunks: the caller must be done with it before the next chunk."""
        parts = list(parts)
        torch_chunk = _is_torch(parts[0])
        if any(_is_torch(p) != torch_chunk for p in parts):
            raise TypeError("a chunk mixes torch tensors and numpy arrays; give every group the same kind.")
        if torch_chunk:
            import torch

            parts = [p.detach().to(torch.float64) for p in parts]
        else:
            parts = [p if isinstance(p, np.ndarray) else np.asarray(p) for p in parts]
        for k, p in enumerate(parts):
            if p.ndim != 2:
                raise ValueError(f"{self._name(k)} gave a chunk of shape {tuple(p.shape)}; chunks must be 2-D "
                                 f"(rows, neurons).")
        if len({int(p.shape[0]) for p in parts}) != 1:
            raise ValueError(f"chunks of different lengths arrived together: {[tuple(p.shape) for p in parts]}; "
                             f"every group must hold the same rows.")
        rows = int(parts[0].shape[0])
        if rows == 0:
            return None  # an empty chunk (all groups agree on its length) adds nothing
        widths = [int(p.shape[1]) for p in parts]
        if self.widths is None:
            for k, w in enumerate(widths):
                if w == 0:
                    raise ValueError(f"{self._name(k)} has no neurons (its chunks are ({rows}, 0)).")
            self.widths = widths
        elif widths != self.widths:
            raise ValueError(f"a chunk changed the number of neurons: {widths} after {self.widths}.")
        if self.shift is None:
            # every measure here ignores translations: shifting by the first chunk's means
            # keeps large offsets out of the rounding
            self.shift = [p.mean(0) if torch_chunk else p.mean(0, dtype=np.float64) for p in parts]
        if torch_chunk:
            block = self._joint_torch(parts, rows)
        else:
            if reuse:  # one buffer, allocated once: no page faults on a fresh block each chunk
                buffer = getattr(self, "_buffer", None)
                if buffer is None or buffer.shape[0] < rows:
                    buffer = self._buffer = np.empty((rows, 1 + sum(widths)))
                block = buffer[:rows]
            else:
                block = np.empty((rows, 1 + sum(widths)))
            lo, hi, sums = self._fill(parts, block)
        if torch_chunk:
            sums = block.sum(0)
            lo = torch.cat([p.amin(0) for p in parts], 0)  # for constant neurons
            hi = torch.cat([p.amax(0) for p in parts], 0)
        self._check_finite(parts, sums, block, torch_chunk)
        if self.col_min is None:
            self.col_min, self.col_max = lo, hi
        else:
            self.col_min = torch.minimum(self.col_min, lo) if torch_chunk else np.minimum(self.col_min, lo)
            self.col_max = torch.maximum(self.col_max, hi) if torch_chunk else np.maximum(self.col_max, hi)
        self.n += rows
        return block

    def _fill(self, parts, block):
        """Write [1 | parts - shift] into ``block`` and return each column's minimum and
        maximum (of the parts) and the block's column sums: slabs of about 1 MB, each reduced
        while it is still in cache (the ranges and sums as separate passes over a chunk cost
        a third of its syrk here; in slabs, a sixth)."""
        block[:, 0] = 1.0
        edges = np.cumsum([1] + [p.shape[1] for p in parts])
        step = max(1, (1 << 17) // block.shape[1])
        lo = np.full(block.shape[1] - 1, np.inf, dtype=np.float64)
        hi = np.full(block.shape[1] - 1, -np.inf, dtype=np.float64)
        sums = np.zeros(block.shape[1])
        with np.errstate(over="ignore", invalid="ignore"):  # huge finite values: the routes see them
            for start in range(0, block.shape[0], step):
                rows = slice(start, start + step)
                for p, m, a, b in zip(parts, self.shift, edges[:-1], edges[1:]):
                    piece = p[rows]
                    np.subtract(piece, m, out=block[rows, a:b], casting="unsafe")
                    np.minimum(lo[a - 1 : b - 1], piece.min(axis=0), out=lo[a - 1 : b - 1])
                    np.maximum(hi[a - 1 : b - 1], piece.max(axis=0), out=hi[a - 1 : b - 1])
                sums += block[rows].sum(axis=0)
        return lo, hi, sums

    def _joint_torch(self, parts, rows):
        import torch

        ones = torch.ones((rows, 1), dtype=torch.float64, device=parts[0].device)
        return torch.cat([ones] + [p - m for p, m in zip(parts, self.shift)], 1)

    def _check_finite(self, parts, sums, block, torch_chunk) -> None:
        """Non-finite input names its datapoint and neuron. The chunk's column sums (kept, to
        check that a second pass reads the same data) find it without a second scan."""
        if torch_chunk:
            import torch
        with np.errstate(over="ignore", invalid="ignore"):  # huge finite values: the routes see them
            self.sums = sums if self.sums is None else self.sums + sums
            if self.track_squares:
                squares = (block * block).sum(0)
                self.squares = squares if self.squares is None else self.squares + squares
        ok = bool(torch.isfinite(sums).all()) if torch_chunk else bool(np.isfinite(sums).all())
        if ok:
            return
        for k, p in enumerate(parts):
            finite = torch.isfinite(p) if torch_chunk else np.isfinite(p)
            if not bool(finite.all()):
                bad = (torch.nonzero(~finite)[0].tolist() if torch_chunk else np.argwhere(~finite)[0].tolist())
                raise ValueError(f"{self._name(k)} has a non-finite value at datapoint {self.n + int(bad[0])}, "
                                 f"neuron {int(bad[1])}.")
        # finite values whose sums overflow: the Gram route sees that on its matrix and leaves them to the QR

    def _constant(self) -> np.ndarray:
        """Columns (of the D neurons) whose range is within rounding of their magnitude."""
        col_min, col_max = self.col_min, self.col_max
        if _is_torch(col_min):
            col_min, col_max = col_min.cpu().numpy(), col_max.cpu().numpy()
        eps = np.finfo(np.float64).eps
        return (col_max - col_min) <= 4.0 * eps * np.maximum(np.abs(col_max), np.abs(col_min))

    def _varying(self, constant) -> list[int]:
        edges = np.cumsum([0] + self.widths)
        varying = []
        for k, (a, b) in enumerate(zip(edges[:-1], edges[1:])):
            varying.append(int(b - a - constant[a:b].sum()))
            if varying[-1] == 0:
                raise ValueError(
                    f"{self._name(k)} has no varying neuron: all {b - a} neuron(s) are constant over the {self.n} "
                    f"datapoints, so there is nothing to correlate. Check that the right layer was "
                    f"recorded and that the inputs differ.")
        return varying

    def _check_rows(self) -> None:
        if self.widths is None:
            raise ValueError("the sources hold no datapoints.")
        if self.n < 2:
            raise ValueError(f"the sources hold {self.n} datapoint; at least 2 are needed.")

    def _split(self, z: np.ndarray) -> list[np.ndarray]:
        """One small matrix per source from the joint one (columns: the D neurons): [z; -z] / sqrt 2,
        whose columns have zero mean and Z^T Z = z^T z, the centred data's own inner products."""
        z = np.concatenate([z, -z], axis=0) / np.sqrt(2.0)
        edges = np.cumsum([0] + self.widths)
        return [np.ascontiguousarray(z[:, a:b]) for a, b in zip(edges[:-1], edges[1:])]


class RowSummary(_Rows):
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
        super().__init__(names)
        self.r = None
        self.buffer: list = []
        self.buffered = 0

    def add(self, parts) -> None:
        block = self._joint(parts)
        if block is None:
            return
        self.buffer.append(block)
        self.buffered += int(block.shape[0])
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

    def finish(self) -> Summary:
        """The small matrices, n and the varying columns per group (see the class docstring)."""
        self._merge()
        self._check_rows()
        r = self.r.cpu().numpy() if _is_torch(self.r) else self.r
        width = sum(self.widths) + 1
        if r.shape[0] < width:  # fewer rows than columns so far: R is short; pad it with zero rows
            r = np.vstack([r, np.zeros((width - r.shape[0], width))])
        t = np.triu(r)[1:, 1:]  # the centred data's R factor
        # a constant (dead) neuron centres to rounding noise in T; make it exactly zero so that
        # the factorisation drops it, as it does in memory
        constant = self._constant()
        t[:, constant] = 0.0
        varying = self._varying(constant)
        return Summary(self._split(t), self.n, varying, None, ["tsqr"] * len(self.widths))


class GramSummary(_Rows):
    r"""The one-pass Gram summary of column groups that arrive in row chunks, in float64:
    numpy arrays on the CPU, torch tensors on their own device (only the (D + 1) x (D + 1)
    matrix comes to the host).

    ``add(parts)`` accumulates :math:`A^T A` for :math:`A = [\mathbf 1 \mid X_1 - s_1 \mid
    \dots]` (one BLAS syrk per chunk, about D^2 flops per row), with each group shifted by
    its first chunk's means :math:`s_k`; the centred Gram matrix is then
    :math:`C = G - g g^T / n` from the shifted column sums :math:`g`, with little
    cancellation because the shift is close to the mean.

    Forming a Gram matrix squares the condition number, so each group is checked on its
    own block, with the thresholds :func:`ccalens.factorize` uses in memory. With
    :math:`\kappa` the condition number of the group's equilibrated centred data and
    :math:`f \ge 1` the largest ratio of a column's shifted to its centred sum of squares
    (the cancellation left by an unrepresentative first chunk), :meth:`routes` gives each
    group one of:

    ``"gram"``
        :math:`\epsilon f \kappa^2 \le` :data:`~ccalens.core.factor.GRAM_MAX_ROUNDING`:
        this pass is enough. A cross block :math:`C_{ij}` enters the canonical
        correlations with at most :math:`\epsilon \kappa_i \kappa_j`, within that bound too.
    ``"gram2"``
        :math:`\epsilon f \kappa^2 \le` :data:`~ccalens.core.factor.GRAM2_MAX_ROUNDING`
        and :math:`f \le 10^3`: in this pass's eigendecomposition of the group's block,
        only the directions whose eigenvalue (relative to the largest) is below the
        one-pass bound are inexact; a second pass projects the data onto those few
        directions and sums their exact inner products with every column
        (:class:`_SecondPass`), where CholeskyQR2 would whiten and sum everything again.
    ``"tsqr"``
        otherwise (near-duplicate or dead-but-not-constant neurons, rank deficiency, no more
        rows than varying columns, magnitudes whose squares overflow): the second pass
        triangularises :math:`[\mathbf 1 \mid X_k]` by Householder reflections and carries
        the other groups' columns along (:class:`_SecondPass`).
    """

    def __init__(self, names=None):
        super().__init__(names)
        self.acc = None
        self._gram = None

    def add(self, parts) -> None:
        block = self._joint(parts, reuse=True)
        if block is None:
            return
        with np.errstate(over="ignore", invalid="ignore"):  # overflowed squares send their group to the QR
            g = block.T @ block  # numpy routes this to syrk
            self.acc = g if self.acc is None else self.acc + g
        self._gram = None

    @property
    def gram(self) -> np.ndarray:
        """The accumulated Gram matrix of [1 | shifted columns], on the host."""
        if self._gram is None:
            self._gram = self.acc.cpu().numpy() if _is_torch(self.acc) else self.acc
        return self._gram

    def centred(self) -> np.ndarray:
        """The centred data's Gram matrix (D x D), constant columns zeroed."""
        return _centred(self.gram, self._constant())

    def _kept(self, k: int) -> np.ndarray:
        """Indices (among the D neurons) of group k's varying neurons."""
        a = int(np.sum(self.widths[:k]))
        return a + np.flatnonzero(~self._constant()[a : a + self.widths[k]])

    def routes(self, rtol: float | None = None) -> list[str]:
        """Each group's route (see the class docstring)."""
        from .core.factor import GRAM2_MAX_ROUNDING, GRAM_MAX_ROUNDING
        from .core.linalg import correlation_eigh

        self._check_rows()
        eps, info = np.finfo(np.float64).eps, np.finfo(np.float64)
        c = self.centred()
        raw = np.diag(self.gram)[1:]
        out = []
        self._eig = {}
        for k in range(len(self.widths)):
            keep = self._kept(k)
            block = c[np.ix_(keep, keep)]
            d = np.diag(block)
            if keep.size == 0:
                out.append("gram")  # no varying neuron: finish() says so
                continue
            if (keep.size >= self.n or not np.all(np.isfinite(block)) or not np.all(np.isfinite(raw[keep]))
                    or np.any(d <= info.tiny * 1e8) or np.any(raw[keep] > info.max * 1e-8)):
                out.append("tsqr")
                continue
            cancel = float(np.max(raw[keep] / d))
            lam, vec, scale = correlation_eigh(block)
            rcond2 = max(lam[0], 0.0) / lam[-1]
            floor2 = (rtol or 0.0) ** 2
            if eps * cancel <= GRAM_MAX_ROUNDING * rcond2 and rcond2 >= floor2:
                out.append("gram")
            elif eps * cancel <= GRAM2_MAX_ROUNDING * rcond2 and rcond2 >= floor2 and cancel <= 1e3:
                out.append("gram2")
                self._eig[k] = (lam, vec, scale, cancel)
            else:
                out.append("tsqr")
        return out

    def split(self, k: int):
        """(kept, W, kw, M) for a "gram2" group: the coordinates Y = X_c[:, kept] W are its
        whitened eigen-directions, the kw weak ones (eigenvalue below the one-pass bound,
        relative to the largest) first; X_c[:, kept] = Y M (M = W^-1)."""
        from .core.factor import GRAM_MAX_ROUNDING

        lam, vec, scale, cancel = self._eig[k]
        weak = int(np.count_nonzero(lam / lam[-1] * GRAM_MAX_ROUNDING < np.finfo(np.float64).eps * cancel))
        w = (vec / np.sqrt(lam)[None, :]) / scale[:, None]
        m = (np.sqrt(lam)[:, None] * vec.T) * scale[None, :]
        return self._kept(k), w, max(weak, 1), m

    def finish(self) -> Summary:
        """The small matrices when every group takes the "gram" route (see :meth:`routes`)."""
        self._check_rows()
        varying = self._varying(self._constant())
        return Summary(self._split(psd_root(self.centred())), self.n, varying, None, ["gram"] * len(self.widths))


def _centred(gram: np.ndarray, constant=None) -> np.ndarray:
    """The centred Gram matrix from that of [1 | shifted columns], constant columns zeroed."""
    sums = gram[0, 1:]
    with np.errstate(over="ignore", invalid="ignore"):
        c = gram[1:, 1:] - np.outer(sums, sums) / gram[0, 0]
    if constant is not None:
        c[constant, :] = 0.0
        c[:, constant] = 0.0
    return c


class _SecondPass(_Rows):
    r"""The second pass of the Gram route, for the groups the first could not finish.

    A "gram2" group needs more than the first pass's Gram matrix only along its *weak*
    eigen-directions: those whose eigenvalue, relative to the largest, is below the
    one-pass bound (a few, typically). Along the others the first pass's rounding enters
    the whitened coordinates with at most the one-pass bound, as in a "gram" group. So
    this pass projects each such group onto its weak directions,
    :math:`P = X_c V_w \Lambda_w^{-1/2}` (nearly orthonormal columns), and accumulates
    their exact inner products with every column, :math:`[\mathbf 1 \mid P]^T [\mathbf 1
    \mid P \mid X]`: about k D flops per row for k weak directions in all, where a full
    second Gram pass (CholeskyQR2) would cost D^2 plus the whitening.

    A "tsqr" group is triangularised by a TSQR of :math:`[\mathbf 1 \mid X_T]` that carries
    every other column along (the other groups' own columns and the projections P), giving
    its R factor and :math:`S = Q_T^T K`, the carried columns' coordinates on its basis.
    """

    def __init__(self, shift, routes: list[str], widths, splits: dict):
        """``splits`` maps each "gram2" group to :meth:`GramSummary.split`'s (kept, W, kw, M)."""
        super().__init__(None, shift)
        self.routes, self.splits, self.group_widths = routes, splits, list(widths)
        edges = np.cumsum([0] + list(widths)) + 1  # columns of [1 | shifted data]
        cols = lambda ks: (np.concatenate([np.arange(edges[k], edges[k + 1]) for k in ks])  # noqa: E731
                           if ks else np.arange(0, dtype=int))
        self.tri = np.r_[0, cols([k for k, r in enumerate(routes) if r == "tsqr"])].astype(int)
        self.other = cols([k for k, r in enumerate(routes) if r != "tsqr"]).astype(int)
        # each gram2 group's weak directions as a map from all its columns (a slice of the
        # block: selecting its varying columns by index copied them, 5x the product's time),
        # with zero rows for its constant columns
        self.weak = []
        for k in sorted(splits):
            kept, w, kw, _ = splits[k]
            full = np.zeros((int(widths[k]), kw))
            full[kept - (edges[k] - 1)] = w[:, :kw]
            self.weak.append((k, slice(int(edges[k]), int(edges[k + 1])), full))
        self.kp = sum(w.shape[1] for _, _, w in self.weak)
        self.pp = self.px = None
        self._device: dict = {}
        self.rs = None
        self.buffer: list = []
        self.buffered = 0

    def _on(self, key, array, like):
        """A host array in ``like``'s array type and device (cached)."""
        if not _is_torch(like):
            return array
        key = (key, str(like.device))
        if key not in self._device:
            import torch

            self._device[key] = torch.as_tensor(np.asarray(array), device=like.device,
                                                dtype=torch.float64 if np.asarray(array).dtype.kind == "f" else None)
        return self._device[key]

    def add(self, parts) -> None:
        block = self._joint(parts, reuse=True)  # only copies of it are kept (the QR's columns are gathered)
        if block is None:
            return
        rows = int(block.shape[0])
        if _is_torch(block):
            import torch

            left = torch.empty((rows, 1 + self.kp), dtype=torch.float64, device=block.device)
            cat = lambda xs: torch.cat(xs, dim=1)  # noqa: E731
        else:
            left = np.empty((rows, 1 + self.kp))
            cat = lambda xs: np.concatenate(xs, axis=1)  # noqa: E731
        left[:, 0] = 1.0
        lo = 1
        for k, cols, w in self.weak:
            left[:, lo : lo + w.shape[1]] = block[:, cols] @ self._on(("w", k), w, block)
            lo += w.shape[1]
        with np.errstate(over="ignore", invalid="ignore"):
            pp, px = left.T @ left, left.T @ block[:, 1:]
            self.pp = pp if self.pp is None else self.pp + pp
            self.px = px if self.px is None else self.px + px
        if self.tri.size > 1:
            carried = cat([block[:, self._on("other", self.other, block)], left[:, 1:]])
            self.buffer.append((block[:, self._on("tri", self.tri, block)], carried))
            self.buffered += rows
            if self.buffered >= 4 * self.tri.size:
                self._merge()

    def _merge(self) -> None:
        if not self.buffer:
            return
        torch_chunk = _is_torch(self.buffer[0][0])
        if torch_chunk:
            import torch

            cat = lambda xs: torch.cat(xs, dim=0)  # noqa: E731
            zeros = lambda shape: torch.zeros(shape, dtype=torch.float64, device=self.buffer[0][0].device)  # noqa: E731
        else:
            cat = lambda xs: np.concatenate(xs, axis=0)  # noqa: E731
            zeros = np.zeros
        a = cat(([self.rs[0]] if self.rs is not None else []) + [b[0] for b in self.buffer])
        c = cat(([self.rs[1]] if self.rs is not None else []) + [b[1] for b in self.buffer])
        width = self.tri.size
        top_r, top_s = zeros((width, width)), zeros((width, int(c.shape[1])))
        if torch_chunk:  # Q explicitly (reduced), then Q^T C
            q, r = torch.linalg.qr(a)
            rows = min(width, int(r.shape[0]))
            top_r[:rows] = torch.triu(r[:rows])
            top_s[:rows] = (q.T @ c)[:rows]
        else:  # the reflectors applied to C without forming Q
            sq, r = scipy.linalg.qr_multiply(a, c.T, mode="right")
            rows = min(width, r.shape[0])
            top_r[:rows] = np.triu(r[:rows])
            top_s[:rows] = sq.T[:rows]
        self.rs = (top_r, top_s)
        self.buffer, self.buffered = [], 0

    def small(self, first_centred: np.ndarray, constant: np.ndarray) -> np.ndarray:
        """The joint small matrix (rows x D).

        In coordinates Y (each "gram" group's own neurons; each "gram2" group's whitened
        directions, weak then strong, Y_k = X_k W_k), the Gram matrix G_Y is the first
        pass's, B^T C B, with the weak directions' rows and columns replaced by this pass's
        exact ones. With the "tsqr" groups' R factor T and S (in Y), the joint matrix is
        [[T, S], [0, W]] with W^T W = G_Y - S^T S; a "gram2" group's columns are mapped
        back to its neurons by M = W_k^-1.
        """
        host = lambda a: a.cpu().numpy() if _is_torch(a) else a  # noqa: E731
        d = first_centred.shape[0]
        n = float(self.n)
        # coordinates of the groups that are not triangularised: their neurons (``rest``, of
        # the D) and the block-diagonal map from those neurons to Y. Only their rows and
        # columns of the first pass's matrix are read: a "tsqr" group's may hold inf (squares
        # that overflowed), which a product with zero rows would turn into NaN everywhere
        rest = np.flatnonzero(np.isin(np.arange(d), self.other - 1))
        where = {int(v): i for i, v in enumerate(rest)}
        spans, lo = {}, 0
        edges = np.cumsum([0] + self.group_widths)
        blocks = []
        for k, r in enumerate(self.routes):
            if r == "tsqr":
                continue
            if r == "gram":
                b = np.zeros((rest.size, self.group_widths[k]))
                rows = [where[int(i)] for i in range(edges[k], edges[k + 1])]
                b[rows] = np.eye(self.group_widths[k])
            else:
                kept, w, _, _ = self.splits[k]
                b = np.zeros((rest.size, w.shape[1]))
                b[[where[int(i)] for i in kept]] = w
            spans[k] = (lo, lo + b.shape[1])
            lo += b.shape[1]
            blocks.append(b)
        basis = np.concatenate(blocks, axis=1)
        g_y = basis.T @ first_centred[np.ix_(rest, rest)] @ basis
        # the weak directions' exact inner products (centred), from this pass
        pp, px = host(self.pp), host(self.px)
        sums_p, sums_x = pp[0, 1:], px[0]
        pp_c = pp[1:, 1:] - np.outer(sums_p, sums_p) / n
        px_c = px[1:] - np.outer(sums_p, sums_x) / n
        px_c[:, constant] = 0.0
        px_c = px_c[:, rest]
        weak_y, lo_p = [], 0
        p_index = {}
        for k, _, w in self.weak:
            p_index[k] = (lo_p, lo_p + w.shape[1])
            weak_y.extend(range(spans[k][0], spans[k][0] + w.shape[1]))
            lo_p += w.shape[1]
        if self.kp:
            rows_w = px_c @ basis  # against every coordinate; the weak-weak entries are replaced below
            for k, (a, b) in p_index.items():
                rows_w[:, spans[k][0] : spans[k][0] + (b - a)] = pp_c[:, a:b]
            g_y[weak_y, :] = rows_w
            g_y[:, weak_y] = rows_w.T
        # the triangularised groups
        if self.tri.size > 1:
            self._merge()
            top_r, top_s = host(self.rs[0]), host(self.rs[1])
            t = top_r[1:, 1:]
            s_raw = top_s[1:]
            s_rest = np.zeros((t.shape[0], rest.size))
            s_rest[:, [where[int(i)] for i in self.other - 1]] = s_raw[:, : self.other.size]
            s_rest[:, constant[rest]] = 0.0
            s_y = s_rest @ basis
            for k, (a, b) in p_index.items():
                s_y[:, spans[k][0] : spans[k][0] + (b - a)] = s_raw[:, self.other.size + a : self.other.size + b]
        else:
            t, s_y = np.zeros((0, 0)), np.zeros((0, g_y.shape[0]))
        z_y = np.concatenate([s_y, psd_root(g_y - s_y.T @ s_y)], axis=0)
        joint = np.zeros((z_y.shape[0], d))
        tri_neurons = self.tri[1:] - 1
        joint[: t.shape[0], tri_neurons] = t
        for k, (a, b) in spans.items():
            if self.routes[k] == "gram":
                joint[:, edges[k] : edges[k + 1]] = z_y[:, a:b]
            else:
                kept, _, _, m = self.splits[k]
                joint[:, kept] = z_y[:, a:b] @ m
        joint[:, constant] = 0.0
        return joint


def complete(first: GramSummary, rerun, rtol: float | None = None, exact: bool = True) -> Summary:
    """The :class:`Summary` of a finished first (Gram) pass, with the second pass where a
    group needs one.

    ``rerun(summary, what)`` feeds every chunk again, in the same order of groups, to
    ``summary.add`` (``what`` names the pass, for a progress bar). The second pass must see
    the same data: with ``exact=True`` its column sums, ranges and row count must equal the
    first pass's bit for bit (a file read twice); with ``exact=False`` (a model run twice,
    whose kernels or data order may differ in rounding) to within 1e-9 of n times each
    column's magnitude for the sums and 1e-5 for the ranges.
    """
    routes = first.routes(rtol)
    if all(r == "gram" for r in routes):
        return first.finish()
    constant = first._constant()
    varying = first._varying(constant)
    ill = sum(r != "gram" for r in routes)
    what = f"second pass ({ill} of {len(routes)} {'group' if ill == 1 else 'groups'})"
    if all(r == "tsqr" for r in routes):  # nothing to carry along: a plain TSQR pass
        second = RowSummary(first.names)
        second.shift = first.shift
        second.track_squares = not exact
        rerun(second, what)
        _same_pass(first, second, exact)
        return second.finish()
    splits = {k: first.split(k) for k, r in enumerate(routes) if r == "gram2"}
    second = _SecondPass(first.shift, routes, first.widths, splits)
    second.names = first.names
    second.track_squares = not exact
    rerun(second, what)
    _same_pass(first, second, exact)
    return Summary(first._split(second.small(first.centred(), constant)), first.n, varying, None, routes)


def _compress(sources, chunk_rows, progress, fingerprints: bool = False, route: str = "auto",
              rtol: float | None = None) -> Summary:
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
    if route not in ROUTES:
        raise ValueError(f"route must be one of {', '.join(map(repr, ROUTES))}; got {route!r}.")
    opened = _open_all(sources)
    # a second pass needs sources that can be read again: arrays, files and stores, not iterators
    rereadable = all(hasattr(o, "shape") for o in opened)
    first = GramSummary() if route == "auto" and rereadable else RowSummary()
    digests = [hashlib.sha256() for _ in sources] if fingerprints else None
    _stream(first, opened, chunk_rows, progress, digests, "streaming")
    if isinstance(first, GramSummary):
        out = complete(first, lambda summary, what: _stream(summary, _open_all(sources), chunk_rows, progress, None,
                                                            what), rtol)
    else:
        out = first.finish()
    if digests is not None:
        out.prints = [hashlib.sha256(f"stream:{out.n}x{w}:{d.hexdigest()}".encode()).hexdigest()[:16]
                      for d, w in zip(digests, first.widths)]
    return out


def _stream(summary, opened, chunk_rows, progress, digests, what: str) -> None:
    """Feed every chunk to ``summary.add``. When every source is one :func:`_ours` reads, a
    background thread reads ahead; the reader is stopped and its threads joined as soon as
    this returns or raises (an exception kept by the caller holds nothing open)."""
    source = _hashed(_chunks(opened, int(chunk_rows)), digests)
    if all(hasattr(o, "shape") and _ours(o) for o in opened):
        source = _prefetched(source)
    chunks = source
    if progress:
        from tqdm.auto import tqdm

        chunks = tqdm(source, desc=what, unit="chunk")
    try:
        for parts in chunks:
            summary.add(parts)
    finally:
        if chunks is not source:
            chunks.close()
        source.close()


def _hashed(chunks, digests):
    """The chunks, each source's content hashed on the way (as float64, in the reader thread)."""
    for parts in chunks:
        if digests is not None and parts[0].shape[0]:
            for d, p in zip(digests, parts):
                d.update(np.ascontiguousarray(p, dtype=np.float64).data)
        yield parts


def _same_pass(first: _Rows, second: _Rows, exact: bool = True) -> None:
    """Refuse a second pass that read other data than the first (see :func:`complete`)."""
    if second.n != first.n:
        raise ValueError(
            f"the second pass of the Gram route read {second.n:,} datapoints, the first {first.n:,}: the data "
            f"cannot be read twice alike (a one-shot iterable, a loader that drops a different last batch each "
            f"time, a file rewritten in between). Pass route='tsqr' (one pass), or data that can be read again.")
    host = lambda a: a.cpu().numpy() if _is_torch(a) else np.asarray(a, dtype=np.float64)  # noqa: E731
    sums1, sums2 = host(first.sums), host(second.sums)
    lo1, lo2, hi1, hi2 = host(first.col_min), host(second.col_min), host(first.col_max), host(second.col_max)
    if exact:
        same = np.array_equal(sums1, sums2) and np.array_equal(lo1, lo2) and np.array_equal(hi1, hi2)
    else:  # to rounding: float32 kernels that add in another order differ by about 1e-6 per value
        size = np.r_[1.0, np.maximum(np.abs(lo1), np.abs(hi1))]  # the ones column, then each neuron
        squares1 = np.diag(first.gram) if isinstance(first, GramSummary) else host(first.squares)
        squares2 = host(second.squares)
        same = (np.all(np.abs(sums1 - sums2) <= 1e-5 * first.n * size)
                and np.all(np.abs(squares1 - squares2) <= 1e-5 * squares1 + 1e-300)
                and np.all(np.abs(lo1 - lo2) <= 1e-5 * size[1:]) and np.all(np.abs(hi1 - hi2) <= 1e-5 * size[1:]))
    if not same:
        how = ("their sums, ranges" if exact else "their sums, sums of squares or ranges, beyond rounding,")
        raise ValueError(
            f"the sources changed between the two passes of the Gram route ({how} differ): a file or store "
            f"was rewritten while it was read, or the data are augmented differently each time (shuffling "
            f"is fine). Rerun once the data are final, or pass route='tsqr' (one pass).")


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


def compare(x, y, measure: str = "pwcca", *, chunk_rows: int = 32768, progress: bool = False, route: str = "auto",
            **options):
    """A measure between two out-of-core sources (one streaming pass over both, and a second
    for a source too ill-conditioned for the Gram route: see :func:`compress`).

    ``measure`` is one of :data:`MEASURES`; ``options`` are those of the measure that do
    not need the datapoints themselves (epsilon, keep, n_components, symmetric, rtol, dtype).
    """
    _check_measure(measure)
    options = _check_options(measure, options)
    summary = _compress([x, y], chunk_rows, progress, route=route, rtol=options.get("rtol"))
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
             chunk_rows: int = 32768, progress: bool = False, route: str = "auto", **options):
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
    summary = _compress(row_vals + col_vals, chunk_rows, progress, fingerprints=engine.get("results") is not None,
                        route=route, rtol=options.get("rtol"))
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
