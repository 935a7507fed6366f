"""Batches of inputs from whatever the user holds: tensors, arrays, DataLoaders, dicts of
keyword inputs (HuggingFace style), and lists of batches; each moved to the model's device
and dtype."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Iterable

import numpy as np
import torch

__all__ = ["batches", "inputs_of", "to_device"]


def batches(data, batch_size: int) -> Iterable:
    """The batches of ``data``: a DataLoader's, slices of a tensor or an array, or the items of
    any other iterable of batches (tensors, (inputs, labels) pairs or dicts of inputs)."""
    if isinstance(data, torch.utils.data.DataLoader):
        yield from data
        return
    if isinstance(data, np.ndarray):
        data = torch.from_numpy(data)
    if isinstance(data, torch.Tensor):
        for start in range(0, data.shape[0], batch_size):
            yield data[start : start + batch_size]
        return
    if isinstance(data, Mapping):  # all keyword inputs at once (a tokenizer's output): sliced like a tensor
        rows = {int(v.shape[0]) for v in data.values() if isinstance(v, torch.Tensor)}
        if len(rows) != 1:
            raise ValueError(f"data is a mapping of inputs whose tensors do not share one first dimension "
                             f"(datapoints): {sorted(rows)}; pass a list of batches instead.")
        for start in range(0, rows.pop(), batch_size):
            yield {k: (v[start : start + batch_size] if isinstance(v, torch.Tensor) else v) for k, v in data.items()}
        return
    if isinstance(data, (str, bytes)) or not hasattr(data, "__iter__"):
        raise TypeError(
            f"data must be a torch tensor, a numpy array, a torch DataLoader or an iterable of batches; "
            f"got {type(data).__name__}."
        )
    for batch in data:
        yield batch


def inputs_of(batch):
    """The model input of a batch: DataLoaders often yield (inputs, labels); mappings of
    keyword inputs (a tokenizer's BatchEncoding) become plain dicts."""
    if isinstance(batch, (tuple, list)) and batch:
        batch = batch[0]
    if isinstance(batch, Mapping) and not isinstance(batch, dict):
        batch = dict(batch)
    if isinstance(batch, np.ndarray):
        batch = torch.from_numpy(batch)
    if not isinstance(batch, (torch.Tensor, dict)):
        raise TypeError(
            f"a batch must be a tensor, an array, an (inputs, labels) pair or a dict of keyword inputs; got "
            f"{type(batch).__name__}."
        )
    return batch


def to_device(obj, device, dtype=None):
    """``obj`` (a tensor or a dict of them) on ``device``; floating tensors take ``dtype``."""
    if isinstance(obj, torch.Tensor):
        if dtype is not None and obj.is_floating_point() and obj.dtype != dtype:
            obj = obj.to(dtype)
        return obj if device is None else obj.to(device)
    if isinstance(obj, Mapping):
        return {k: to_device(v, device, dtype) for k, v in obj.items()}
    return obj
