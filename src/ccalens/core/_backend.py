"""The few large array operations that run where the data lives.

Everything of size (datapoints x neurons) goes through one of these two small
classes: numpy arrays stay in numpy, torch tensors stay in torch on their own
device (GPU included). Everything of size (neurons x neurons) is moved to numpy
float64 on the CPU, where LAPACK does the small decompositions.

torch is imported only when the caller passed a tensor (``sys.modules`` is
consulted first), so ``import ccalens`` never imports torch.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np


def is_torch_tensor(obj: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.Tensor)


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

    def centred_copy(self, x):
        """(x - column mean) in the computation dtype, as a new array, and the mean.

        One pass to convert (when needed), one for the mean, one in-place
        subtraction: the input is never modified.
        """
        if x.dtype == self.dtype:
            out = np.array(x, dtype=self.dtype, order="C", copy=True)
        else:
            out = np.asarray(x, dtype=self.dtype, order="C")
            if np.shares_memory(out, x):  # pragma: no cover - defensive
                out = out.copy()
        mean = out.mean(axis=0)
        out -= mean
        return out, mean

    def column_spread(self, xc):
        """max - min of each centred column, and max |value| (for constancy tests)."""
        return self.to_numpy(xc.max(axis=0) - xc.min(axis=0)), self.to_numpy(np.abs(xc).max(axis=0))

    def select_columns(self, x, idx):
        if len(idx) == x.shape[1]:
            return x
        return np.ascontiguousarray(x[:, idx])

    def gram(self, x):
        # numpy routes x.T @ x to BLAS syrk: n*a^2 flops, not 2*n*a^2.
        return self.to_numpy(x.T @ x)

    def cross(self, x, y):
        return self.to_numpy(x.T @ y)

    def matmul_small(self, x, small):
        """(n x k) data times a small (k x r) numpy matrix, in the data's namespace."""
        return x @ np.asarray(small, dtype=self.dtype)

    def scale_columns_(self, x, scale):
        x /= np.asarray(scale, dtype=self.dtype)
        return x

    def qr(self, x):
        import scipy.linalg

        q, r = scipy.linalg.qr(x, mode="economic", overwrite_a=True, check_finite=False)
        return q, r

    def to_numpy(self, x):
        return np.asarray(x, dtype=np.float64)

    def from_numpy(self, x):
        return np.asarray(x)

    def take_rows(self, x, idx):
        return x[np.asarray(idx)]


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

    def centred_copy(self, x):
        out = x.detach().to(dtype=self.dtype, copy=True).contiguous()
        mean = out.mean(dim=0)
        out -= mean
        return out, mean

    def column_spread(self, xc):
        spread = xc.amax(dim=0) - xc.amin(dim=0)
        return self.to_numpy(spread), self.to_numpy(xc.abs().amax(dim=0))

    def select_columns(self, x, idx):
        if len(idx) == x.shape[1]:
            return x
        index = self.torch.as_tensor(np.asarray(idx), device=x.device, dtype=self.torch.long)
        return x.index_select(1, index).contiguous()

    def gram(self, x):
        return self.to_numpy(x.T @ x)

    def cross(self, x, y):
        return self.to_numpy(x.T @ y)

    def matmul_small(self, x, small):
        return x @ self.torch.as_tensor(np.asarray(small), dtype=self.dtype, device=x.device)

    def scale_columns_(self, x, scale):
        x /= self.torch.as_tensor(np.asarray(scale), dtype=self.dtype, device=x.device)
        return x

    def qr(self, x):
        return self.torch.linalg.qr(x, mode="reduced")

    def to_numpy(self, x):
        return x.detach().to("cpu", dtype=self.torch.float64).numpy()

    def from_numpy(self, x):
        return self.torch.as_tensor(np.asarray(x), device=self.device)

    def take_rows(self, x, idx):
        index = self.torch.as_tensor(np.asarray(idx), device=x.device, dtype=self.torch.long)
        return x.index_select(0, index)
