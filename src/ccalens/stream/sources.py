"""Reading sources for streaming: Zarr arrays, ``"store.zarr:name"`` paths, ``.npy`` files
(memory-mapped), numpy arrays, or iterables of row chunks, all with the same rows in the
same chunks. Each is opened once; the chunks of all sources arrive aligned and checked,
read side by side where that is safe (numpy, Zarr and store arrays, one thread each) and a
chunk ahead in a background thread, beside the arithmetic; store arrays are verified against
their recorded hash as they stream."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Iterable

import numpy as np

__all__ = ["aligned_chunks", "feed", "open_all", "prefetched"]


def _open(source):
    """An object with .shape and row slicing, or an iterator of chunks."""
    from ..store import Source, StoreError, VerifiedRows

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


def open_all(sources):
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
    from ..store import VerifiedRows

    return isinstance(source, (np.ndarray, VerifiedRows)) or type(source).__module__.split(".")[0] == "zarr"


def aligned_chunks(opened, chunk_rows: int):
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


def prefetched(iterator, depth: int = 2):
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


def feed(summary, opened, chunk_rows, progress, digests, what: str) -> None:
    """Feed every chunk to ``summary.add``. When every source is one :func:`_ours` reads, a
    background thread reads ahead; the reader is stopped and its threads joined as soon as
    this returns or raises (an exception kept by the caller holds nothing open)."""
    source = _hashed(aligned_chunks(opened, int(chunk_rows)), digests)
    if all(hasattr(o, "shape") and _ours(o) for o in opened):
        source = prefetched(source)
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
