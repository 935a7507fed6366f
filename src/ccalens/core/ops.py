"""The few large array operations that run where the data lives (see
:mod:`ccalens.core._backend`): :class:`NumpyOps` for numpy arrays on the CPU (BLAS) and
:class:`TorchOps` for torch tensors on their own device, GPU included."""

from __future__ import annotations

import numpy as np

from ._backend import _run_on_row_blocks

__all__ = ["NumpyOps", "TorchOps"]


class NumpyOps:
    """Large-array operations on numpy arrays (CPU, BLAS)."""

    name = "numpy"

    def __init__(self, dtype=np.float64):
        self.dtype = np.dtype(dtype)

    @property
    def eps(self) -> float:
        return float(np.finfo(self.dtype).eps)

    def nonfinite(self, x):
        """Count of non-finite entries and the (row, col) of the first one."""
        bad = ~np.isfinite(x)
        count = int(np.count_nonzero(bad))
        if count == 0:
            return 0, None
        flat = int(np.argmax(bad.reshape(-1)))
        return count, tuple(int(i) for i in np.unravel_index(flat, x.shape))

    def column_mean(self, x):
        """Column means; an overflow gives inf (reported by the caller), not a warning."""
        shift, residual = self.column_mean_parts(x)
        with np.errstate(over="ignore", invalid="ignore"):
            return shift + residual

    def column_mean_parts(self, x):
        """Column means as (shift, residual): the first row and the mean of the rows minus it.

        numpy sums a C-ordered array's columns row by row, which loses about n * eps * |offset|:
        with an offset of 1e10 and a spread of 1e-3, 6,000 rows gave a mean off by 9e-5, a
        tenth of the spread. The rows are summed after subtracting the first one, in blocks of
        a few thousand rows, so the error scales with the spread, not the offset; and
        :meth:`centred` subtracts the two parts in turn, since their sum, rounded at the
        offset's magnitude, would leave up to half its last bit in every centred value.
        """
        shift = np.asarray(x[0], dtype=self.dtype)
        step = max(1, (1 << 18) // max(1, x.shape[1]))  # temporaries of about 2 MB

        def block_sum(rows):
            total = np.zeros(x.shape[1], dtype=self.dtype)
            tmp = np.empty((min(step, rows.stop - rows.start), x.shape[1]), dtype=self.dtype)
            with np.errstate(over="ignore", invalid="ignore"):
                for start in range(rows.start, rows.stop, step):
                    part = tmp[: min(step, rows.stop - start)]
                    np.subtract(x[start : start + part.shape[0]], shift, out=part, casting="unsafe")
                    total += part.sum(axis=0)
            return total

        with np.errstate(over="ignore", invalid="ignore"):
            residual = np.sum(_run_on_row_blocks(block_sum, x), axis=0) / x.shape[0]
            if not np.all(np.isfinite(residual)) and np.all(np.isfinite(shift)):
                # finite values whose differences overflow (about +-1e308): the plain sum decides
                mean = np.sum(_run_on_row_blocks(lambda rows: x[rows].sum(axis=0, dtype=self.dtype), x),
                              axis=0) / x.shape[0]
                return mean, np.zeros_like(mean)
        return shift, residual

    def empty(self, shape):
        return np.empty(shape, dtype=self.dtype)

    def centred(self, x, mean, out=None):
        """x - mean in the computation dtype, into a new array (or ``out``); x untouched.

        ``mean`` is an array, or :meth:`column_mean_parts`'s (shift, residual), subtracted in
        turn. One fused convert-and-subtract pass, split over row blocks on the available
        cores (numpy releases the GIL in ufunc loops).
        """
        if out is None:
            out = np.empty(x.shape, dtype=self.dtype)
        shift, residual = mean if isinstance(mean, tuple) else (mean, None)

        def block(rows):
            np.subtract(x[rows], shift, out=out[rows], dtype=self.dtype, casting="unsafe")
            if residual is not None:
                out[rows] -= residual

        _run_on_row_blocks(block, x)
        return out

    def column_spread(self, x, idx):
        """max - min of the given columns of the raw input (a few columns only)."""
        cols = np.asarray(x[:, idx], dtype=self.dtype)
        return cols.max(axis=0) - cols.min(axis=0)

    def select_columns(self, x, idx):
        if len(idx) == x.shape[1]:
            return x
        return np.ascontiguousarray(x[:, idx])

    def gram(self, x):
        # numpy routes x.T @ x to BLAS syrk: n*a^2 flops, not 2*n*a^2. Overflow of extreme
        # values is detected on the result (and the columns rescaled), not warned about.
        with np.errstate(over="ignore", under="ignore", invalid="ignore"):
            return self.to_numpy(x.T @ x)

    def cross(self, x, y):
        return self.to_numpy(x.T @ y)

    def gram_native(self, x):
        return self.gram(x)

    def cross_native(self, x, y):
        return self.cross(x, y)

    def matmul_small(self, x, small):
        """(n x k) data times a small (k x r) numpy matrix, in the data's namespace."""
        return x @ np.asarray(small, dtype=self.dtype)

    def scale_columns_(self, x, scale):
        x /= np.asarray(scale, dtype=self.dtype)
        return x

    def column_absmax(self, x):
        return self.to_numpy(np.maximum(np.abs(x.max(axis=0)), np.abs(x.min(axis=0))))

    def recentre_(self, x):
        x -= x.mean(axis=0)
        return x

    def right_multiply_(self, x, small):
        """x @ small written back into x, by row blocks (no second n x a array)."""
        small = np.asarray(small, dtype=self.dtype)
        step = max(1, (1 << 22) // max(1, x.shape[1]))
        for start in range(0, x.shape[0], step):
            x[start : start + step] = x[start : start + step] @ small
        return x

    def qr(self, x):
        import scipy.linalg

        q, r = scipy.linalg.qr(x, mode="economic", overwrite_a=True, check_finite=False)
        return q, r

    def to_numpy(self, x):
        return np.asarray(x, dtype=np.float64)

    def from_numpy(self, x):
        return np.asarray(x)


class TorchOps:
    """The same operations on torch tensors, on the tensor's device."""

    name = "torch"

    def __init__(self, device, dtype=None):
        import torch

        self.torch = torch
        self.device = device
        self.dtype = torch.float64 if dtype is None else dtype

    @property
    def eps(self) -> float:
        return float(self.torch.finfo(self.dtype).eps)

    def nonfinite(self, x):
        torch = self.torch
        bad = ~torch.isfinite(x)
        count = int(bad.sum().item())
        if count == 0:
            return 0, None
        flat = int(torch.argmax(bad.reshape(-1).to(torch.uint8)).item())
        return count, (flat // x.shape[1], flat % x.shape[1])

    def column_mean_parts(self, x):
        """(first row, mean of the rows minus it), as :meth:`NumpyOps.column_mean_parts`: a
        large common offset costs nothing. Row blocks keep the temporaries small."""
        x = x.detach()
        shift = x[0].to(self.dtype)
        step = max(1, (1 << 20) // max(1, x.shape[1]))
        total = self.torch.zeros(x.shape[1], dtype=self.dtype, device=x.device)
        for start in range(0, x.shape[0], step):
            total += (x[start : start + step].to(self.dtype) - shift).sum(dim=0)
        residual = total / x.shape[0]
        if not bool(self.torch.isfinite(residual).all()) and bool(self.torch.isfinite(shift).all()):
            return self.column_mean(x), None  # finite values whose differences overflow: the plain mean decides
        return shift, residual

    def column_mean(self, x):
        x = x.detach()
        return x.mean(dim=0, dtype=self.dtype) if x.is_floating_point() else x.to(self.dtype).mean(dim=0)

    def empty(self, shape):
        return self.torch.empty(shape, dtype=self.dtype, device=self.device)

    def centred(self, x, mean, out=None):
        shift, residual = mean if isinstance(mean, tuple) else (mean, None)
        if out is None:
            out = x.detach().to(self.dtype) - shift
        else:
            self.torch.sub(x.detach().to(self.dtype), shift, out=out)
        if residual is not None:
            out -= residual
        return out

    def column_spread(self, x, idx):
        index = self.torch.as_tensor(np.asarray(idx), device=x.device, dtype=self.torch.long)
        cols = x.detach().index_select(1, index).to(self.dtype)
        return self.to_numpy(cols.amax(dim=0) - cols.amin(dim=0))

    def select_columns(self, x, idx):
        if len(idx) == x.shape[1]:
            return x
        index = self.torch.as_tensor(np.asarray(idx), device=x.device, dtype=self.torch.long)
        return x.index_select(1, index).contiguous()

    def gram(self, x):
        return self.to_numpy(x.T @ x)

    def cross(self, x, y):
        return self.to_numpy(x.T @ y)

    def gram_native(self, x):  # stays on the device
        return x.T @ x

    def cross_native(self, x, y):
        return x.T @ y

    def matmul_small(self, x, small):
        return x @ self.torch.as_tensor(np.asarray(small), dtype=self.dtype, device=x.device)

    def scale_columns_(self, x, scale):
        x /= self.torch.as_tensor(np.asarray(scale), dtype=self.dtype, device=x.device)
        return x

    def column_absmax(self, x):
        return self.to_numpy(self.torch.maximum(x.amax(dim=0).abs(), x.amin(dim=0).abs()))

    def recentre_(self, x):
        x -= x.mean(dim=0)
        return x

    def right_multiply_(self, x, small):
        small = self.torch.as_tensor(np.asarray(small), dtype=self.dtype, device=x.device)
        step = max(1, (1 << 22) // max(1, x.shape[1]))
        for start in range(0, x.shape[0], step):
            x[start : start + step] = x[start : start + step] @ small
        return x

    def qr(self, x):
        return self.torch.linalg.qr(x, mode="reduced")

    def to_numpy(self, x):
        return x.detach().to("cpu", dtype=self.torch.float64).numpy()

    def from_numpy(self, x):
        return self.torch.as_tensor(np.asarray(x), device=self.device)
