"""How one layer's output becomes a (datapoints, neurons) matrix: the policies for dense,
convolutional and sequence outputs, the attention mask, and tuple or dict outputs (see
:mod:`ccalens.extract.core` for the policies in words)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["CONV", "RECURRENT", "SEQUENCE_WORDS", "SPATIAL", "ExtractionError", "Policy", "has_1d_convolutions",
           "layer_matrices"]


class ExtractionError(RuntimeError):
    """Recording activations failed in a way the caller must fix (see the message)."""


SPATIAL = ("mean", "flatten", "as_samples")


SEQUENCE_WORDS = ("last", "first", "all", "mean", "each")


RECURRENT = (nn.LSTM, nn.GRU, nn.RNN)


CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def _pick_tensor(output, select, name: str):
    """Reduce a module's output to one tensor; return it and a description of the choice."""
    if isinstance(output, torch.Tensor):
        return output, "output"
    if isinstance(output, dict):
        if select is not None:
            if select not in output:
                raise ExtractionError(
                    f"layer {name!r} returned a dict without key {select!r}; its keys are {list(output)}."
                )
            return output[select], f"output[{select!r}]"
        if isinstance(output.get("last_hidden_state"), torch.Tensor):
            return output["last_hidden_state"], "output['last_hidden_state']"
        for key, value in output.items():
            if isinstance(value, torch.Tensor):
                return value, f"output[{key!r}]"
    if isinstance(output, (tuple, list)):
        if select is not None:
            if not isinstance(select, int) or not -len(output) <= select < len(output):
                raise ExtractionError(
                    f"layer {name!r} returned a {type(output).__name__} of {len(output)} elements; "
                    f"select must be an index in range, got {select!r}."
                )
            value = output[select]
            if isinstance(value, (tuple, list)):  # e.g. LSTM's (h_n, c_n)
                raise ExtractionError(
                    f"element {select} of layer {name!r}'s output is itself a tuple; select a tensor."
                )
            return value, f"output[{select}]"
        for i, value in enumerate(output):
            if isinstance(value, torch.Tensor):
                return value, f"output[{i}]"
    raise ExtractionError(
        f"layer {name!r} returned {type(output).__name__}, which holds no tensor to record."
    )


def _position_index(n_positions: int, keep: int | None, seed: int) -> np.ndarray | None:
    if keep is None or keep >= n_positions:
        return None
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_positions, size=keep, replace=False))


@dataclass
class Policy:
    """How a layer's output becomes a (datapoints, neurons) matrix (the module docstring)."""

    spatial: str
    sequence: Any
    state: str
    select: Any
    positions: int | None
    seed: int
    #: the model has 1-D convolutions: a 3-D output of any other non-recurrent module (a ReLU,
    #: a BatchNorm1d, a pooling layer after a Conv1d) is (N, channels, length), not a sequence
    channels_first_3d: bool = False


CONV_1D = (nn.Conv1d, nn.ConvTranspose1d)


def has_1d_convolutions(model: nn.Module) -> bool:
    """Whether ``model`` holds a 1-D convolution (its 3-D outputs are then channels-first)."""
    return any(isinstance(m, CONV_1D) for m in model.modules())


def layer_matrices(module: nn.Module, name: str, output, policy: Policy, mask=None) -> tuple[dict[str, torch.Tensor], dict]:
    """Apply the policies to one batch's output of ``module``; returns {array name:
    (datapoints, neurons)} and metadata. ``mask`` is the batch's attention mask (N, T), if any."""
    meta: dict[str, Any] = {"layer": name, "module": type(module).__name__}
    if isinstance(module, nn.LSTM) and policy.state == "cell":
        if policy.sequence != "last":
            raise ExtractionError(
                f"layer {name!r}: nn.LSTM exposes the cell state only after the last step; use "
                f"sequence='last' with state='cell' (got sequence={policy.sequence!r})."
            )
        c_n = output[1][1]  # (num_layers * directions, N, H)
        if module.bidirectional:  # both directions of the top layer, like the hidden output
            return {name: torch.cat([c_n[-2], c_n[-1]], dim=1)}, {
                **meta, "taken": "cell state c_n of the top layer, forward and backward", "policy": "last"}
        return {name: c_n[-1]}, {**meta, "taken": "cell state c_n of the top layer", "policy": "last"}
    if policy.state not in ("hidden", "cell"):
        raise ValueError(f"state must be 'hidden' or 'cell'; got {policy.state!r}.")
    if policy.state == "cell":
        raise ExtractionError(f"layer {name!r} is a {type(module).__name__}, not an nn.LSTM: it has no cell state.")
    tensor, taken = _pick_tensor(output, policy.select, name)
    meta["taken"] = taken
    tensor = tensor.detach()
    if tensor.dim() == 0 or tensor.dim() == 1:
        raise ExtractionError(
            f"layer {name!r} produced a tensor of shape {tuple(tensor.shape)}; expected a batch "
            f"dimension first (N, ...)."
        )
    if tensor.dim() == 2:
        return {name: tensor}, {**meta, "policy": "dense"}
    is_conv = (isinstance(module, CONV) or tensor.dim() >= 4
               or (tensor.dim() == 3 and policy.channels_first_3d and not isinstance(module, RECURRENT)))
    if is_conv:
        n, c = tensor.shape[:2]
        if policy.spatial == "mean":
            return {name: tensor.reshape(n, c, -1).mean(dim=2)}, {**meta, "policy": "spatial=mean"}
        if policy.spatial == "flatten":
            return {name: tensor.reshape(n, -1)}, {**meta, "policy": "spatial=flatten"}
        positions = tensor.reshape(n, c, -1).transpose(1, 2)  # (N, P, C)
        index = _position_index(positions.shape[1], policy.positions, policy.seed)
        if index is not None:
            positions = positions[:, torch.as_tensor(index, device=positions.device)]
        meta["positions"] = int(positions.shape[1])
        return {name: positions.reshape(-1, c)}, {**meta, "policy": "spatial=as_samples"}
    # a sequence: make it (N, T, D)
    if isinstance(module, RECURRENT) and not module.batch_first:
        tensor = tensor.transpose(0, 1)
    seq = policy.sequence
    meta["policy"] = f"sequence={seq}"
    if mask is not None:
        return {name: _masked(name, tensor, mask, seq)}, {**meta, "policy": f"sequence={seq}, attention mask applied"}
    if seq == "last":
        return {name: tensor[:, -1]}, meta
    if seq == "first":
        return {name: tensor[:, 0]}, meta
    if seq == "mean":
        return {name: tensor.mean(dim=1)}, meta
    if seq == "all":
        return {name: tensor.reshape(-1, tensor.shape[-1])}, meta
    if seq == "each":
        return {f"{name}@t{t}": tensor[:, t] for t in range(tensor.shape[1])}, meta
    if not -tensor.shape[1] <= seq < tensor.shape[1]:
        raise ExtractionError(
            f"layer {name!r}: sequence={seq} is outside the {tensor.shape[1]} timesteps of this batch."
        )
    return {name: tensor[:, seq]}, meta


def _masked(name: str, tensor: torch.Tensor, mask, seq) -> torch.Tensor:
    """``tensor`` (N, T, D) reduced by ``seq`` over the real (mask 1) tokens only."""
    if tuple(mask.shape) != tuple(tensor.shape[:2]):
        raise ExtractionError(
            f"layer {name!r} gave {tuple(tensor.shape[:2])} (sequences, tokens) but the batch's attention mask "
            f"is {tuple(mask.shape)}: the layer's tokens do not line up with the mask. Choose layers that keep "
            f"one state per input token."
        )
    real = mask.to(device=tensor.device) != 0
    counts = real.sum(dim=1)
    if bool((counts == 0).any()):
        raise ExtractionError(
            f"sequence {int(torch.nonzero(counts == 0)[0])} of the batch is all padding (its attention mask is "
            f"all 0): it has no token to represent. Drop empty sequences from the data."
        )
    if seq == "all":
        return tensor[real]
    if seq == "mean":  # where, not a product: a padding position may hold NaN, and NaN * 0 is NaN
        kept = torch.where(real.unsqueeze(-1), tensor, torch.zeros((), dtype=tensor.dtype, device=tensor.device))
        return kept.sum(dim=1) / counts.to(tensor.dtype).unsqueeze(-1)
    rows = torch.arange(tensor.shape[0], device=tensor.device)
    steps = torch.arange(tensor.shape[1], device=tensor.device)
    if seq == "first":
        index = torch.where(real, steps, tensor.shape[1]).amin(dim=1)
        return tensor[rows, index]
    if seq == "last":
        index = torch.where(real, steps, -1).amax(dim=1)
        return tensor[rows, index]
    raise ExtractionError(
        f"sequence={seq!r} cannot be used with an attention mask: a position may be padding in one sequence "
        f"and a token in another. Use 'first', 'last', 'mean' or 'all'."
    )


