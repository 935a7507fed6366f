r"""The datapoint route of :func:`~ccalens.compare_models`: layers with at least as many
neurons as there are datapoints (an early convolution flattened: 64 x 28 x 28 = 50,176
columns), where the neurons' D x D summary would be larger than the data itself.

Every datapoint's activations of every layer are held (:class:`HeldLayers`, in the
layer's own precision, in memory up to a budget and beyond it in a temporary folder that
is removed afterwards). A wide layer is then represented by the eigendecomposition of its
centred n x n Gram matrix :math:`G = X_c X_c^T = U \Lambda U^T`, accumulated over column
blocks in float64: :math:`Z = U_r \Lambda_r^{1/2}` (the r eigenvalues above the Gram's
rounding, :math:`n\,\epsilon\,\lambda_{max}`) has the same Gram matrix, so it is
:math:`X_c` up to an orthogonal map of the neurons (and the null directions it drops).
A narrow layer is its own centred activations. So:

* every measure that is invariant to orthogonal maps and translations of the neurons
  (:data:`ccalens.stream.options.DATAPOINT_MEASURES`: linear, debiased and RBF CKA, SVCCA,
  mean CCA, Procrustes, the shape metrics, Euclidean RSA, predictivity) is exact: it
  equals the in-memory measure on the activations;
* a measure that is not (PWCCA: its weights come from the individual neurons) sees a wide
  layer through its leading principal components, those that keep ``keep`` of its
  variance (default 0.99, SVCCA's step), which the n x n Gram gives exactly. On all of a
  wide layer's neurons every canonical correlation would be 1, whatever the other layer.

The limits: the Gram matrix resolves a wide layer's directions down to about
:math:`\sqrt{n\epsilon}` (1e-6) of its largest singular value; the measures through its
square roots (SVCCA, Procrustes, the shape metrics) drop weaker directions (measured in
``tests/test_stream_datapoints.py``). Memory: 8 n^2 bytes per wide layer (its
representation) plus six n x n working matrices, 8 n D per narrow layer,
and with RBF CKA one n x n kernel per layer (:func:`datapoint_bytes`).
"""

from __future__ import annotations

import math
import shutil
import tempfile
from pathlib import Path

import numpy as np
import scipy.linalg

from ..core.canonical import DEFAULT_KEEP, components_for
from ..core.factor import GRAM_MAX_ROUNDING, factorize_matrix
from ..core.pairs import from_components
from ..core.ops import NumpyOps
from .kept import Summary
from .summaries import is_torch

__all__ = ["HeldLayers", "datapoint_bytes", "datapoint_pairs", "largest_datapoints", "on_components"]

#: bytes of column block (float64) per Gram update
_BLOCK_BYTES = 2**26


def on_components(spec) -> bool:
    """Whether a wide layer enters ``spec`` through its leading principal components: the
    factor measures that are not invariant to orthogonal maps of the neurons (PWCCA)."""
    return spec.kind == "factor" and "orthogonal" not in spec.invariant_to


def datapoint_bytes(n: int, widths, *, kernels: bool = False, wide: int | None = None) -> int:
    """Bytes the datapoint route needs for ``n`` datapoints and layers of ``widths`` neurons
    (besides the held activations, which spill to disk): each wide layer's n x n
    representation and, with any, six n x n working matrices (the Gram matrix, its block
    products, its eigendecomposition; the cross products of a pair; measured in
    tests/test_stream_datapoints.py); each narrow layer's
    float64 activations; with ``kernels`` (RBF CKA), one n x n kernel per layer."""
    widths = [int(w) for w in widths]
    wide = sum(w >= n for w in widths) if wide is None else wide
    narrow = sum(w for w in widths if w < n)
    squares = wide + (6 if wide else 0) + (len(widths) if kernels else 0)
    return 8 * n * n * squares + 8 * n * narrow


def largest_datapoints(budget: float, widths, *, kernels: bool = False) -> int:
    """The largest n whose datapoint route fits ``budget`` bytes, counting every layer as wide
    (the bound that holds whatever n turns out to be)."""
    count = len(list(widths))
    return max(0, int(math.sqrt(budget / (8 * (count + 6 + (count if kernels else 0))))))


class HeldLayers:
    """Every datapoint's activations of each layer, in the layer's own precision: in memory
    while they fit ``budget`` bytes, then in files in a temporary folder (removed by
    :meth:`close`). With ``rows`` (the number of datapoints, when the data says it) each
    layer's array is allocated once, in memory or as a file, and filled batch by batch;
    otherwise batches are appended. Column sums are kept in float64 for exact centring."""

    def __init__(self, widths, names, budget: float | None, *, rows: int | None = None,
                 max_rows: int | None = None, refuse=None):
        self.widths, self.names = [int(w) for w in widths], list(names)
        self.budget, self.max_rows, self.refuse = budget, max_rows, refuse
        self.capacity = rows
        self.full: list | None = None  # the preallocated arrays (or maps), with ``rows``
        self.parts: list[list[np.ndarray]] = [[] for _ in self.widths]
        self.sums = [np.zeros(w) for w in self.widths]
        self.low = [np.full(w, np.inf) for w in self.widths]
        self.high = [np.full(w, -np.inf) for w in self.widths]
        self.n, self.held_bytes = 0, 0
        self.folder: Path | None = None
        self.files: list | None = None
        self.dtypes: list = [None] * len(self.widths)

    @property
    def spilled(self) -> bool:
        return self.folder is not None

    def add(self, parts) -> None:
        arrays = [np.ascontiguousarray(p.detach().cpu().numpy() if is_torch(p) else np.asarray(p)) for p in parts]
        rows = int(arrays[0].shape[0])
        if self.max_rows is not None and self.n + rows > self.max_rows:
            raise MemoryError(self.refuse(self.n + rows))
        for k, a in enumerate(arrays):
            if self.dtypes[k] is None:
                self.dtypes[k] = a.dtype if np.issubdtype(a.dtype, np.floating) else np.dtype(np.float64)
            a = a.astype(self.dtypes[k], copy=False)
            if not np.all(np.isfinite(a)):
                raise ValueError(f"{self.names[k]} gave non-finite activations (NaN or inf) in the batch at rows "
                                 f"{self.n}..{self.n + rows - 1}; check the model and its inputs.")
            self.sums[k] += a.sum(axis=0, dtype=np.float64)
            if rows:
                np.minimum(self.low[k], a.min(axis=0), out=self.low[k])
                np.maximum(self.high[k], a.max(axis=0), out=self.high[k])
            arrays[k] = a
        if self.capacity is not None:
            self._fill(arrays, rows)
            return
        self.n += rows
        size = sum(a.nbytes for a in arrays)
        if not self.spilled and self.budget is not None and self.held_bytes + size > self.budget:
            self._spill()
        for k, a in enumerate(arrays):
            if self.spilled:
                self.files[k].write(a.tobytes())
            else:
                self.parts[k].append(a)
        self.held_bytes += size

    def _fill(self, arrays, rows) -> None:
        if self.full is None:
            total = sum(self.capacity * w * d.itemsize for w, d in zip(self.widths, self.dtypes))
            if self.budget is None or total <= self.budget:
                self.full = [np.empty((self.capacity, w), dtype=d) for w, d in zip(self.widths, self.dtypes)]
            else:
                self.folder = Path(tempfile.mkdtemp(prefix="ccalens-held-"))
                self.full = [np.memmap(self.folder / f"layer{k}.bin", dtype=d, mode="w+", shape=(self.capacity, w))
                             for k, (w, d) in enumerate(zip(self.widths, self.dtypes))]
        if self.n + rows > self.capacity:
            raise ValueError(f"the data gave more than the {self.capacity} datapoints its length says; give data "
                             f"whose len() is its number of inputs, or an iterable without one.")
        for k, a in enumerate(arrays):
            self.full[k][self.n:self.n + rows] = a
        self.n += rows
        self.held_bytes += sum(a.nbytes for a in arrays)

    def _spill(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="ccalens-held-"))
        self.files = [open(self.folder / f"layer{k}.bin", "wb") for k in range(len(self.widths))]
        for k, parts in enumerate(self.parts):
            for a in parts:
                self.files[k].write(a.tobytes())
        self.parts = [[] for _ in self.widths]

    def matrix(self, k: int) -> np.ndarray:
        """Layer k's activations, (n, width): in memory, or a map of its file."""
        if self.full is not None:
            return self.full[k][: self.n]
        if self.spilled:
            self.files[k].flush()
            if self.n == 0:
                return np.zeros((0, self.widths[k]), dtype=self.dtypes[k])
            return np.memmap(self.folder / f"layer{k}.bin", dtype=self.dtypes[k], mode="r",
                             shape=(self.n, self.widths[k]))
        if len(self.parts[k]) != 1:
            self.parts[k] = [np.concatenate(self.parts[k], axis=0)]
        return self.parts[k][0]

    def varying(self, k: int) -> int:
        """Layer k's number of non-constant neurons."""
        return int(np.count_nonzero(self.high[k] > self.low[k]))

    def mean(self, k: int) -> np.ndarray:
        return self.sums[k] / max(self.n, 1)

    def centred(self, k: int, columns=slice(None), out=None) -> np.ndarray:
        """Layer k's centred activations of ``columns``, in float64 (converted and centred in
        one pass, into ``out`` when given)."""
        x = self.matrix(k)[:, columns]
        return np.subtract(x, self.mean(k)[columns], out=np.empty(x.shape) if out is None else out)

    def _blocks(self, k: int, step: int):
        width = self.widths[k]
        buffer = np.empty((self.n, min(step, width)))
        for a in range(0, width, step):
            b = min(width, a + step)
            yield self.centred(k, slice(a, b), out=buffer if b - a == buffer.shape[1] else buffer[:, : b - a])

    def gram(self, k: int, tick=None) -> np.ndarray:
        """The centred n x n Gram matrix of layer k, accumulated over blocks of columns
        (``tick(columns)`` after each block, for a progress bar)."""
        g, product = np.zeros((self.n, self.n)), np.empty((self.n, self.n))
        for block in self._blocks(k, max(1, _BLOCK_BYTES // (8 * max(self.n, 1)))):
            g += np.matmul(block, block.T, out=product)  # numpy routes this to syrk
            if tick is not None:
                tick(block.shape[1])
        return g

    def triangle(self, k: int) -> np.ndarray:
        """L (n x n, lower triangular) with L L^T = the centred Gram matrix of layer k, by
        Householder QR of the transposed data over blocks of columns (a tall-skinny QR of
        X_c^T): accurate where the Gram matrix's eigenvalues are not."""
        n = self.n
        r = np.zeros((0, n))
        for block in self._blocks(k, max(n, _BLOCK_BYTES // (8 * max(n, 1)))):
            stacked = np.concatenate([r, block.T], axis=0)
            r = scipy.linalg.qr(stacked, mode="r", check_finite=False)[0][: min(n, stacked.shape[0])]
        return r.T

    def close(self) -> None:
        if self.files is not None:
            for f in self.files:
                f.close()
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
        self.parts, self.full = [[] for _ in self.widths], None

    def __enter__(self) -> "HeldLayers":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _resolved(lam: np.ndarray, expected: int) -> bool:
    """Whether the Gram matrix's eigenvalues resolve every one of the layer's ``expected``
    directions as the Gram route's bound requires (eps kappa^2 <= GRAM_MAX_ROUNDING)."""
    if expected == 0:
        return True
    top, low = float(lam[0]), float(lam[expected - 1])
    return top > 0 and low > 0 and np.finfo(np.float64).eps * top / low <= GRAM_MAX_ROUNDING


class _Components:
    """A wide layer through the eigendecomposition of its centred n x n Gram matrix: its
    principal components U diag(sigma), sigma = sqrt(lam), the eigenvalues above the Gram's
    rounding (n eps lam_max), as a factor (:func:`ccalens.core.pairs.from_components`, no
    factorisation again) or as the n x n array Z = [U diag(sigma) | 0] (Z Z^T = the Gram
    matrix; zero columns up to n = min(n, D), which measures that scale by it, such as
    predictivity's penalty grid, see)."""

    def __init__(self, lam: np.ndarray, vec: np.ndarray):
        n = vec.shape[0]
        top = float(lam[0]) if lam.size else 0.0
        rank = int(np.sum(lam > n * np.finfo(np.float64).eps * top)) if top > 0 else 0
        self.n, self.sigma, self.vec = n, np.sqrt(lam[:rank]), vec[:, :rank]

    def leading(self, keep: float) -> "_Components":
        """The leading components that keep ``keep`` of the variance (SVCCA's rule)."""
        _, k, _ = components_for(self.factor(), keep, None, "the layer")
        out = object.__new__(_Components)
        out.n, out.sigma, out.vec = self.n, self.sigma[:k], self.vec[:, :k]
        out.padded = False
        return out

    padded = True

    def factor(self):
        return from_components(self.vec, self.sigma, self.n if self.padded else self.sigma.size)

    def array(self) -> np.ndarray:
        z = np.zeros((self.n, self.n if self.padded else self.sigma.size))
        z[:, : self.sigma.size] = self.vec * self.sigma[None, :]
        return z


def _leading_of(tri: np.ndarray, keep: float, rtol) -> np.ndarray:
    """The leading principal components (scores) of the data whose Gram matrix is L L^T."""
    f = factorize_matrix(tri, NumpyOps(), rtol, "the layer")
    u, k, _ = components_for(f, keep, None, "the layer")
    return f.basis() @ (u[:, :k] * f.pca[1][:k][None, :])


def datapoint_pairs(held: HeldLayers, specs: list, *, rtol, epsilon: float = 0.0, keep: float | None = None,
                    progress: bool = False) -> tuple[dict, Summary, list]:
    """Every spec for every pair of held layers, as :func:`~ccalens.stream.compute.all_pairs`
    returns them ({(i, j): {measure: (value with i's weights, value with j's)}}, i <= j),
    with a :class:`~ccalens.stream.kept.Summary` of the route (n, varying neurons, routes)
    and the notes the result must carry."""
    from ..engine.api import pairwise
    from .compute import all_pairs

    n, count = held.n, len(held.widths)
    wide = [w >= n for w in held.widths]
    keep_pcs = DEFAULT_KEEP if keep is None else keep
    want_pcs = any(on_components(s) for s in specs)
    full, pcs, varying, routes = [], [], [], []
    bar = None
    if progress and any(wide):
        from tqdm.auto import tqdm

        bar = tqdm(total=sum(held.widths[k] for k in range(count) if wide[k]), desc="n x n Gram matrices",
                   unit="neuron")
    tick = None if bar is None else bar.update
    for k in range(count):
        varying.append(held.varying(k))
        routes.append("datapoint")
        if not wide[k]:
            full.append(held.centred(k))
            pcs.append(full[-1])
            continue
        lam, vec = scipy.linalg.eigh(held.gram(k, tick), check_finite=False, overwrite_a=True)
        lam, vec = lam[::-1], vec[:, ::-1]
        if _resolved(lam, min(n - 1, varying[k])):
            full.append(_Components(lam, vec))
            pcs.append(full[-1].leading(keep_pcs) if want_pcs else None)
        else:  # weak directions the Gram matrix cannot resolve: Householder on the held data
            del lam, vec
            tri = held.triangle(k)
            routes[k] = "datapoint-tsqr"
            full.append(tri)
            pcs.append(_leading_of(tri, keep_pcs, rtol) if want_pcs else None)
    if bar is not None:
        bar.close()
    out = {(i, j): {} for i in range(count) for j in range(i, count)}

    def fill(mats, chosen):
        streamable = [s for s in chosen if s.streamable]
        if streamable:
            summary = Summary([m.factor() if isinstance(m, _Components) else m for m in mats], n, varying, None,
                              routes)
            for key, values in all_pairs(summary, streamable, rtol=rtol, epsilon=epsilon, keep=keep,
                                         progress=progress).items():
                out[key].update(values)
        for s in chosen:
            if s.streamable:
                continue
            arrays = [m.array() if isinstance(m, _Components) else m for m in mats]
            res = pairwise(arrays, s.name, keep=DEFAULT_KEEP if keep is None else keep, epsilon=epsilon, rtol=rtol,
                           progress=progress)
            for i in range(count):
                for j in range(i, count):
                    if i == j and s.identical is not None:
                        out[(i, j)][s.name] = (float(s.identical),) * 2
                    else:
                        out[(i, j)][s.name] = (float(res.similarity[i, j]), float(res.similarity[j, i]))

    fill(full, [s for s in specs if not (on_components(s) and any(wide))])
    fill(pcs, [s for s in specs if on_components(s) and any(wide)])
    notes = []
    if any(wide) and any(on_components(s) for s in specs):
        names = ", ".join(held.names[k] for k in range(count) if wide[k])
        which = ", ".join(s.name for s in specs if on_components(s))
        notes.append(f"{which} of the layers with at least as many neurons as datapoints ({names}) is computed on "
                     f"their leading principal components that keep {keep_pcs:g} of the variance (on all their "
                     f"neurons every canonical correlation would be 1).")
    return out, Summary([], n, varying, None, routes), notes

