r"""The first pass of streaming: what is kept of row chunks of column groups (sources, or a
model's layers), in float64, numpy arrays on the CPU and torch tensors on their own device.

Every measure that streams depends on the data only through inner products of centred
columns, so it is the same on a small matrix :math:`Z` with :math:`Z^T Z = X_c^T X_c`.
:class:`GramSummary` (the default) accumulates the Gram matrix of :math:`[\mathbf 1 \mid X_1
- s_1 \mid \dots]` and checks each group's conditioning on its own block;
:class:`RowSummary` is a one-pass tall-skinny QR, backward stable whatever the conditioning.
Either way the small matrix handed to the measures is :math:`[Z; -Z]/\sqrt 2` (zero column
means, the centred data's own inner products, scale included).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from .kept import Summary

__all__ = ["RowSummary", "Rows", "Summary", "is_torch"]


def is_torch(x) -> bool:
    return type(x).__module__.split(".")[0] == "torch"


class Rows:
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
        torch_chunk = is_torch(parts[0])
        if any(is_torch(p) != torch_chunk for p in parts):
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
        if is_torch(col_min):
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


class RowSummary(Rows):
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
        if is_torch(blocks[-1]):
            import torch

            self.r = torch.linalg.qr(torch.cat(blocks, dim=0), mode="r").R[:width]
        else:
            self.r = scipy.linalg.qr(np.concatenate(blocks, axis=0), mode="r", check_finite=False)[0][:width]
        self.buffer, self.buffered = [], 0

    def finish(self) -> Summary:
        """The small matrices, n and the varying columns per group (see the class docstring)."""
        self._merge()
        self._check_rows()
        r = self.r.cpu().numpy() if is_torch(self.r) else self.r
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
