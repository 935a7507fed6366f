"""The few large array operations that run where the data lives.

Everything of size (datapoints x neurons) goes through one of these two small
classes: numpy arrays stay in numpy, torch tensors stay in torch on their own
device (GPU included). Everything of size (neurons x neurons) is moved to numpy
float64 on the CPU, where LAPACK does the small decompositions.

torch is imported only when the caller passed a tensor (``sys.modules`` is
consulted first), so ``import ccalens`` never imports torch.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np


#: Arrays with fewer entries than this are handled by one thread.
_PARALLEL_MIN_SIZE = 1 << 20
_POOL = None


def _run_on_row_blocks(fn, x) -> list:
    """Run ``fn(slice)`` over contiguous row blocks of x, one per core (one block when x is
    small), and return the results."""
    n_rows = x.shape[0]
    workers = max(1, min(os.cpu_count() or 1, 8))
    if workers == 1 or x.size < _PARALLEL_MIN_SIZE or threading.current_thread().name.startswith(_PREFIX):
        # one block: too small to split, or already inside one of the pool's workers (a task
        # of blas_parallel_map), which must not wait on the pool it occupies
        return [fn(slice(0, n_rows))]
    edges = np.linspace(0, n_rows, workers + 1).astype(int)
    blocks = [slice(int(lo), int(hi)) for lo, hi in zip(edges[:-1], edges[1:]) if hi > lo]
    return list(_pool(workers).map(fn, blocks))


_PREFIX = "ccalens-worker"


def _pool(workers: int) -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=_PREFIX)
    return _POOL


def _blas_threads() -> int:
    """Threads the BLAS under numpy uses (1 when threadpoolctl cannot tell)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:  # pragma: no cover - threadpoolctl is a dependency
        return 1
    counts = [int(i.get("num_threads") or 1) for i in threadpool_info() if i.get("user_api") == "blas"]
    return max(counts, default=1)


def blas_parallel_map(fn, items: list) -> list:
    """``[fn(item) for item in items]`` with one Python thread per BLAS thread, each running
    a single-threaded BLAS.

    For many small LAPACK calls (SVDs of neurons x neurons matrices): one small call keeps
    a multithreaded BLAS mostly idle, while numpy releases the GIL in its linalg loops, so
    the calls themselves run side by side. The results are those of the plain loop. The
    single-thread limit is the same counted one as :func:`small_lapack`'s, so concurrent
    callers never leave the process at one thread.
    """
    workers = min(_ONE_THREAD.threads(), os.cpu_count() or 1, 8, len(items))
    if workers <= 1:
        return [fn(item) for item in items]
    if threading.current_thread() is not threading.main_thread():
        # another thread (a Dask worker's task): setting the process's BLAS thread count from
        # several threads can leave it at one for good (seen here), so the calls run in turn
        return [fn(item) for item in items]
    with _ONE_THREAD:
        return list(_pool(workers).map(fn, items))


#: LAPACK calls on matrices up to this size (neurons x neurons) run with one BLAS thread
SMALL_LAPACK = 1024


class _OneThread:
    """One BLAS thread while any small LAPACK call runs, restored when the last one ends.

    Eigendecompositions, Cholesky factors, triangular inverses and SVDs of neuron-sized
    matrices are mostly level-2 work: a second BLAS thread gains little on a quiet machine
    (0.04 s for eigvalsh at 512 either way), and when other jobs oversubscribe the cores,
    OpenBLAS's threads spin and wait at every synchronisation (the same call took 3.9 s
    with two threads and 0.04 s with one beside a heavy mix). The count is process-wide
    while a call runs, so every caller (these calls and :func:`blas_parallel_map`) shares
    one counted limit: the first sets it and remembers the count it found, the last
    restores that count, and the large products, outside, keep every thread.
    """

    def __init__(self):
        self.lock = threading.Lock()
        self.active = 0
        self.context = None
        self.controller = None
        self.original = None

    def _controller(self):
        if self.controller is None:
            from threadpoolctl import ThreadpoolController

            self.controller = ThreadpoolController()
        return self.controller

    def threads(self) -> int:
        """The BLAS's own thread count: the remembered one while the limit holds."""
        with self.lock:
            if self.active and self.original is not None:
                return self.original
        return _blas_threads()

    def __enter__(self):
        with self.lock:
            if self.active == 0:
                controller = self._controller()
                self.original = max([int(lib.num_threads or 1) for lib in controller.lib_controllers
                                     if lib.user_api == "blas"], default=1)
                self.context = controller.limit(limits=1, user_api="blas")
            self.active += 1
        return self

    def __exit__(self, *exc):
        with self.lock:
            self.active -= 1
            if self.active == 0 and self.context is not None:
                self.context.restore_original_limits()
                self.context = None
                self.original = None
        return False


_ONE_THREAD = _OneThread()


def small_lapack(*arrays):
    """A context for LAPACK calls on ``arrays``: one BLAS thread when every matrix is at most
    :data:`SMALL_LAPACK` on a side (neuron-sized), nothing otherwise.

    Only the main thread sets the limit. OpenBLAS's thread count is one global setting, and
    with callers in several threads setting and restoring it, a run here ended with the
    process left at one thread; calls from other threads (a Dask worker's tasks) keep the
    BLAS as it is.
    """
    if (threading.current_thread() is threading.main_thread()
            and all(max(np.shape(a)[-2:], default=0) <= SMALL_LAPACK for a in arrays)):
        return _ONE_THREAD
    return contextlib.nullcontext()


def _chunks(size: int, parts: int) -> list[tuple[int, int]]:
    edges = np.linspace(0, size, max(1, min(parts, size)) + 1).astype(int)
    return [(int(lo), int(hi)) for lo, hi in zip(edges[:-1], edges[1:])]


def svd(m: np.ndarray, full_matrices: bool = False, compute_uv: bool = True):
    """``np.linalg.svd``, falling back to LAPACK's gesvd where its divide-and-conquer gesdd fails.

    gesdd can fail to converge on matrices whose singular values are tightly clustered (a
    layer against itself gives Q^T Q = I up to rounding; seen with a single-threaded
    OpenBLAS on a 128 x 128 case); gesvd, the slower QR iteration, converges there. Stacks
    of matrices fall back one matrix at a time.
    """
    try:
        with small_lapack(m):
            return np.linalg.svd(m, full_matrices=full_matrices, compute_uv=compute_uv)
    except np.linalg.LinAlgError:
        if not np.all(np.isfinite(m)):
            raise
    import scipy.linalg

    def one(a):
        return scipy.linalg.svd(a, full_matrices=full_matrices, compute_uv=compute_uv, lapack_driver="gesvd",
                                check_finite=False)

    if m.ndim == 2:
        return one(m)
    parts = [one(a) for a in m]
    if not compute_uv:
        return np.stack(parts)
    return tuple(np.stack([p[k] for p in parts]) for k in range(3))


def batched_svd(m: np.ndarray, compute_uv: bool = True):
    """:func:`svd` (``full_matrices=False``) of a stack of small matrices (p, r, c),
    split over the BLAS's threads by :func:`blas_parallel_map`."""
    if m.shape[0] < 2 or m[0].size < 256:
        return svd(m, full_matrices=False, compute_uv=compute_uv)
    parts = blas_parallel_map(
        lambda lo_hi: svd(m[lo_hi[0]:lo_hi[1]], full_matrices=False, compute_uv=compute_uv),
        _chunks(m.shape[0], min(os.cpu_count() or 1, 8)))  # blas_parallel_map caps the threads
    if not compute_uv:
        return np.concatenate(parts)
    return tuple(np.concatenate([p[k] for p in parts]) for k in range(3))


def is_torch_tensor(obj: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.Tensor)


