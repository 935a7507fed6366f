"""Input checks and their messages, in one place.

Every message says what was wrong, with the caller's shapes, and how to fix it.
"""

from __future__ import annotations

import numbers
import warnings
from typing import Any

import numpy as np

from ._backend import is_torch_tensor
from .ops import NumpyOps, TorchOps

LAYOUTS = ("datapoints_first", "neurons_first")

#: Below this many datapoints per neuron, canonical correlations of unrelated
#: data are far from 0 (a MANOVA/Wachter law); the reference tutorials advise 5-10x.
MIN_DATAPOINTS_PER_NEURON = 5


class SmallSampleWarning(UserWarning):
    """Too few datapoints for the number of neurons: correlations are biased upward."""


def check_layout(layout: str) -> None:
    if layout not in LAYOUTS:
        raise ValueError(
            f"layout must be 'datapoints_first' (rows are datapoints, the default) or "
            f"'neurons_first' (google/svcca's (neurons, datapoints) arrays); got {layout!r}."
        )


def check_keep(keep: Any) -> float:
    """SVCCA's share of variance kept on each side."""
    if isinstance(keep, bool) or not isinstance(keep, numbers.Real) or not (0.0 < keep <= 1.0):
        raise ValueError(f"keep must be a share of variance in (0, 1]; got {keep!r}.")
    return float(keep)


def check_epsilon(epsilon: Any) -> float:
    if isinstance(epsilon, bool) or not isinstance(epsilon, numbers.Real):
        raise TypeError(f"epsilon must be a real number >= 0; got {type(epsilon).__name__} {epsilon!r}.")
    epsilon = float(epsilon)
    if not np.isfinite(epsilon) or epsilon < 0:
        raise ValueError(f"epsilon must be a finite number >= 0 (0 means no ridge); got {epsilon!r}.")
    return epsilon


def check_rtol(rtol: Any) -> float | None:
    if rtol is None:
        return None
    if isinstance(rtol, bool) or not isinstance(rtol, numbers.Real) or not (0 <= float(rtol) < 1):
        raise ValueError(
            f"rtol must be None (the default, max(datapoints, neurons) * machine epsilon) "
            f"or a number in [0, 1); got {rtol!r}."
        )
    return float(rtol)


def _resolve_numpy_dtype(dtype: Any) -> np.dtype:
    if dtype is None:
        return np.dtype(np.float64)
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        resolved = None
    if resolved is None or resolved not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(
            f"dtype must be float64 (the default) or float32 for the computation; got {dtype!r}."
        )
    return resolved


def _resolve_torch_dtype(dtype: Any):
    import torch

    if dtype is None:
        return torch.float64
    mapping = {torch.float64: torch.float64, torch.float32: torch.float32}
    if isinstance(dtype, torch.dtype):
        if dtype in mapping:
            return dtype
    else:
        try:
            np_dtype = _resolve_numpy_dtype(dtype)
        except ValueError:
            np_dtype = None
        if np_dtype is not None:
            return torch.float64 if np_dtype == np.float64 else torch.float32
    raise ValueError(f"dtype must be float64 (the default) or float32 for the computation; got {dtype!r}.")


def as_matrix(obj: Any, name: str, layout: str = "datapoints_first"):
    """Return ``obj`` as a 2-D (datapoints, neurons) array or tensor, without copying."""
    check_layout(layout)
    if is_torch_tensor(obj):
        arr = obj.detach()
        if arr.is_complex():
            raise TypeError(f"{name} has complex dtype {arr.dtype}; activations must be real numbers.")
        if arr.dtype == __import__("torch").bool:
            arr = arr.to(__import__("torch").uint8)
    else:
        if isinstance(obj, (str, bytes)) or obj is None:
            raise TypeError(
                f"{name} must be an array of activations (numpy array, array-like or torch "
                f"tensor) of shape (datapoints, neurons); got {type(obj).__name__}."
            )
        try:
            arr = np.asarray(obj)
        except Exception as err:  # ragged lists and the like
            raise TypeError(
                f"{name} could not be read as a 2-D array of numbers ({err}); pass a numpy "
                f"array of shape (datapoints, neurons)."
            ) from None
        if arr.dtype.kind == "c":
            raise TypeError(f"{name} has complex dtype {arr.dtype}; activations must be real numbers.")
        if arr.dtype.kind not in "biuf":
            raise TypeError(
                f"{name} must hold numbers; got an array of dtype {arr.dtype}. Convert it with "
                f"np.asarray({name}, dtype=float)."
            )
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D with shape (datapoints, neurons); got shape {tuple(arr.shape)}. "
            f"For convolutional activations (N, H, W, C), average over H and W or reshape to "
            f"(N*H*W, C) first; for a single neuron, reshape to (N, 1)."
        )
    if layout == "neurons_first":
        arr = arr.T
    n, a = arr.shape
    if a < 1:
        raise ValueError(f"{name} has no neurons (shape {tuple(arr.shape)} as (datapoints, neurons)).")
    if n < 2:
        raise ValueError(
            f"{name} has {n} datapoint(s) (shape {tuple(arr.shape)} as (datapoints, neurons)); at "
            f"least 2 are needed, and many more than neurons for a meaningful result. If your array "
            f"is (neurons, datapoints), pass layout='neurons_first'."
        )
    return arr


def make_ops(arr, dtype):
    """The operations object for this array's kind, device and computation dtype."""
    if is_torch_tensor(arr):
        return TorchOps(arr.device, _resolve_torch_dtype(dtype))
    return NumpyOps(_resolve_numpy_dtype(dtype))


def check_finite(ops, arr, name: str) -> None:
    count, first = ops.nonfinite(arr)
    if count:
        row, col = first
        raise ValueError(
            f"{name} contains {count} non-finite value(s) (NaN or Inf); the first is at "
            f"datapoint {row}, neuron {col} (row {row}, column {col} of the (datapoints, neurons) "
            f"array). Remove or impute them before comparing."
        )


def check_same_datapoints(x_shape, y_shape, x_name: str = "X", y_name: str = "Y") -> None:
    if x_shape[0] != y_shape[0]:
        raise ValueError(
            f"{x_name} and {y_name} must have the same number of datapoints (rows): {x_name} has "
            f"shape {tuple(x_shape)} and {y_name} has shape {tuple(y_shape)} as (datapoints, "
            f"neurons). Rows are datapoints and columns are neurons; if your arrays are (neurons, "
            f"datapoints), as in google/svcca, pass layout='neurons_first'."
        )


def check_same_backend(x, y) -> None:
    tx, ty = is_torch_tensor(x), is_torch_tensor(y)
    if tx and ty and x.device != y.device:
        raise ValueError(
            f"X is on device {x.device} and Y on device {y.device}; move both to one device "
            f"(for example Y.to(X.device))."
        )


def warn_small_sample(
    n: int, x_neurons: int, y_neurons: int, x_rank: int, y_rank: int, stacklevel: int = 3
) -> None:
    widest = max(x_neurons, y_neurons)
    needed = MIN_DATAPOINTS_PER_NEURON * widest
    if n >= needed:
        return
    # centred data live in n - 1 dimensions: two column spaces of ranks rx + ry > n - 1
    # share at least rx + ry - (n - 1) directions
    shared = min(x_rank, y_rank, x_rank + y_rank - (n - 1))
    if shared > 0:
        detail = (
            f"at least {shared} correlation(s) are exactly 1 by construction, since the two "
            f"column spaces must intersect in {n - 1} centred dimensions"
        )
    else:
        detail = "unrelated data would already give large canonical correlations"
    warnings.warn(
        f"only {n} datapoints for {x_neurons} and {y_neurons} (non-constant) neurons: canonical "
        f"correlations are biased upward ({detail}). Use at least {needed} datapoints "
        f"({MIN_DATAPOINTS_PER_NEURON}-10x the widest side), compare against a shuffled-datapoints "
        f"baseline at the same sizes, or regularise with epsilon > 0.",
        SmallSampleWarning,
        stacklevel=stacklevel,
    )


def host_matrix(obj, name: str, layout: str = "datapoints_first") -> np.ndarray:
    """``obj`` as a checked (datapoints, neurons) float64 numpy array on the host, for the
    measures computed from the activations on the CPU (RSA, predictivity, neighbours)."""
    x = as_matrix(obj, name, layout)
    check_finite(make_ops(x, None), x, name)
    x = x.detach().cpu().numpy() if is_torch_tensor(x) else np.asarray(x)
    return np.asarray(x, dtype=np.float64)


def unit_exponent(top: float) -> int:
    """The k for which ``top * 2**k`` (a largest magnitude) lies in [0.5, 1); 0 for 0 or a
    non-finite ``top``."""
    return -int(np.frexp(top)[1]) if top > 0.0 and np.isfinite(top) else 0


def unit_scaled(x: np.ndarray) -> np.ndarray:
    """``x`` times the exact power of two that brings its largest magnitude into [0.5, 1):
    for the scale-invariant measures of the datapoints (RSA, RBF CKA, predictivity, the
    neighbour measures), whose squared distances and products would overflow above about
    1e154 or underflow below about 1e-154. Scaling by a power of two is exact, so ordinary
    data give the same numbers to the last bit."""
    k = unit_exponent(float(np.max(np.abs(x))) if x.size else 0.0)
    return np.ldexp(x, k) if k else x
