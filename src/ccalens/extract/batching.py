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


def batch_total(data, batch_size: int) -> int | None:
    """How many batches ``batches(data, batch_size)`` will give, where that is known without
    reading the data (a tensor, an array, a sized loader or list): a progress bar's total."""
    if isinstance(data, (np.ndarray, torch.Tensor)):
        return -(-int(data.shape[0]) // batch_size)
    if isinstance(data, Mapping):  # keyword inputs, sliced like a tensor
        rows = [int(v.shape[0]) for v in data.values() if isinstance(v, torch.Tensor)]
        return -(-rows[0] // batch_size) if rows else None
    try:
        return len(data)
    except TypeError:
        return None


def _padding_mask(ids, mask) -> bool:
    """Whether ``mask`` is a padding mask of the token ids ``ids``: integer tensors of one
    (sequences, tokens) shape, the mask 0/1 with the ones of each row in one run at its start
    or its end (right or left padding), each row holding at least one."""
    if not (isinstance(ids, torch.Tensor) and isinstance(mask, torch.Tensor)) or ids.ndim != 2:
        return False
    if ids.shape != mask.shape or ids.is_floating_point() or mask.is_floating_point():
        return False
    m = mask.to(torch.int64)
    if not bool(((m == 0) | (m == 1)).all()) or not bool((m.sum(1) > 0).all()):
        return False
    steps = (m[:, 1:] - m[:, :-1]).abs().sum(1)  # a run at one end changes value at most once
    return bool((steps <= 1).all())


def inputs_of(batch):
    """The model input of a batch: DataLoaders often yield (inputs, labels); a pair of token
    ids and their padding mask (a ``TensorDataset(input_ids, attention_mask)``) becomes
    ``{"input_ids": ..., "attention_mask": ...}`` so that the mask is applied (with a warning
    that says so); mappings of keyword inputs (a tokenizer's BatchEncoding) become plain
    dicts. A dict of token ids without an ``attention_mask`` is warned about: its padding, if
    any, would count as datapoints."""
    import warnings

    if isinstance(batch, (tuple, list)) and batch:
        if len(batch) >= 2 and _padding_mask(batch[0], batch[1]):
            warnings.warn("a tuple batch of token ids and a 0/1 padding mask of their shape is read as (input_ids, "
                          "attention_mask), and the mask is applied; pass a dict {'input_ids': ..., "
                          "'attention_mask': ...} to say so explicitly.", UserWarning, stacklevel=3)
            return {"input_ids": batch[0], "attention_mask": batch[1]}
        batch = batch[0]
    if isinstance(batch, Mapping) and not isinstance(batch, dict):
        batch = dict(batch)
    if isinstance(batch, dict) and "input_ids" in batch and "attention_mask" not in batch:
        warnings.warn("a batch of input_ids came without an attention_mask: every position, padding included, "
                      "counts (as a datapoint with sequence='all', in the pooling of 'mean' and 'last'). Pass the "
                      "tokenizer's attention_mask with the ids.", UserWarning, stacklevel=3)
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
