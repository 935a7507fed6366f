"""Forward hooks that turn a model's layer outputs into (datapoints, neurons) arrays.

Policies, applied per batch as the activations arrive (so memory stays bounded):

* dense outputs ``(N, C)`` are taken as they are;
* convolutional outputs ``(N, C, *spatial)`` (the module is a ``ConvNd``, or the output
  has 4 or 5 dimensions) follow ``spatial``:

  - ``"mean"``: average over positions, as the paper does: C neurons;
  - ``"flatten"``: C * H * W neurons;
  - ``"as_samples"``: every position is a datapoint with C neurons, as google/svcca's
    tutorials do; ``positions=k`` keeps k positions, the same (seeded) ones for every input
    and every model, so that datapoints stay aligned across networks;

* sequence outputs ``(N, T, D)`` (``nn.LSTM``/``nn.GRU``/``nn.RNN``, honouring
  ``batch_first``, and any other 3-D output, read as batch-first with features last)
  follow ``sequence``; in a model that holds a 1-D convolution, every 3-D output of a
  non-recurrent module is read as a Conv1d gives it, (N, channels, length), and follows
  ``spatial`` (a ReLU or a BatchNorm1d after a Conv1d is not a sequence):

  - ``"last"``: the state after the last timestep;
  - ``"first"``: the state at the first timestep (a transformer's first token);
  - ``"all"``: every timestep is a datapoint (N * T datapoints);
  - ``"mean"``: the average over timesteps;
  - an int t: the state at timestep t;
  - ``"each"``: one array per timestep, named ``"{layer}@t{t}"``;

  with an attention mask (dict batches that hold ``attention_mask``, HuggingFace style),
  padding never becomes a datapoint: ``"all"`` keeps the real tokens only, ``"mean"``
  averages over them, ``"first"`` and ``"last"`` take the first and the last real token
  (left or right padding alike); a timestep index and ``"each"`` are refused there, since
  a position may be padding in one sequence and not in another;

* for ``nn.LSTM``, ``state="cell"`` takes the final cell state c_n instead of the hidden
  states (nn.LSTM exposes the cell state only after the last step);
* tuple and dict outputs (HuggingFace ``ModelOutput``) are reduced to one tensor: the
  ``select`` element (an index or a key) when given, otherwise the first tensor
  (``last_hidden_state`` for dicts that have it); the choice is recorded in the metadata.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from collections.abc import Mapping
from typing import Any, Iterable

import numpy as np
import torch
from torch import nn

SPATIAL = ("mean", "flatten", "as_samples")
SEQUENCE_WORDS = ("last", "first", "all", "mean", "each")
RECURRENT = (nn.LSTM, nn.GRU, nn.RNN)
CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


class ExtractionError(RuntimeError):
    """Recording activations failed in a way the caller must fix (see the message)."""


@dataclass
class MemorySink:
    """Collects the batches of each array in memory; ``arrays()`` concatenates them."""

    batches: dict[str, list[np.ndarray]] = field(default_factory=dict)
    metadata: dict[str, dict] = field(default_factory=dict)

    def append(self, name: str, batch: np.ndarray, meta: dict) -> None:
        self.batches.setdefault(name, []).append(batch)
        self.metadata.setdefault(name, dict(meta))

    def arrays(self) -> dict[str, np.ndarray]:
        return {k: np.concatenate(v, axis=0) for k, v in self.batches.items()}

    def close(self) -> None:  # nothing to flush
        pass


def layer_names(model: nn.Module) -> list[str]:
    """The names ``extract`` accepts: every named submodule of ``model``."""
    return [name for name, _ in model.named_modules() if name]


def resolve_layers(model: nn.Module, layers) -> dict[str, nn.Module]:
    """``{name: module}`` for the named layers; a clear error (with the closest name) for a missing one."""
    if isinstance(layers, str):
        layers = [layers]
    layers = list(layers)
    if not layers:
        raise ValueError("layers is empty; name at least one module (see ccalens.extract.layer_names(model)).")
    modules = dict(model.named_modules())
    found = {}
    for name in layers:
        if name not in modules or not name:
            names = layer_names(model)
            close = difflib.get_close_matches(name, names, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            shown = ", ".join(names[:40]) + (f", ... ({len(names)} in all)" if len(names) > 40 else "")
            raise ValueError(f"model has no layer named {name!r}.{hint} Available layers: {shown}.")
        found[name] = modules[name]
    return found


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


def _run_sequential(seq, prefix: str, x, hooks: dict):
    """Run a scripted nn.Sequential child by child, calling the hooks of requested names."""
    for name, child in seq.named_children():
        full = f"{prefix}{name}"
        if getattr(child, "original_name", "") == "Sequential":
            x = _run_sequential(child, f"{full}.", x, hooks)
        else:
            x = child(x)
        if full in hooks:
            hooks[full](child, None, x)
    return x


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


def extract(
    model: nn.Module,
    data,
    layers,
    *,
    spatial: str = "mean",
    sequence="last",
    state: str = "hidden",
    select=None,
    positions: int | None = None,
    seed: int = 0,
    batch_size: int = 256,
    device=None,
    store=None,
    progress: bool = False,
) -> dict[str, np.ndarray] | Any:
    """Record the outputs of named modules of ``model`` on ``data``.

    Parameters
    ----------
    model : torch.nn.Module
    data : torch.Tensor, numpy array, DataLoader or iterable of batches
        Inputs, first dimension = datapoints. A DataLoader (or any iterable of batches) may
        yield (inputs, labels) pairs or dicts of keyword inputs (HuggingFace style; their
        ``attention_mask`` is applied to sequence outputs).
    layers : str or list of str
        Names from ``model.named_modules()`` (see :func:`layer_names`).
    spatial, sequence, state, select, positions, seed
        The policies of the module docstring.
    batch_size : int
        Batch size when ``data`` is a tensor or an array.
    device : torch device, optional
        Where to run; the model is moved there and back.
    store : object with ``append(name, batch, meta)`` and ``close()``, optional
        Where to stream the activations; by default they are returned as a dict.
    progress : bool
        Show a progress bar.

    Returns
    -------
    dict of name -> ndarray (datapoints, neurons), float32 as the model computes, or the
    store when one was given.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}.")
    if spatial not in SPATIAL:
        raise ValueError(f"spatial must be one of {SPATIAL}; got {spatial!r}.")
    if not (sequence in SEQUENCE_WORDS or (isinstance(sequence, int) and not isinstance(sequence, bool))):
        raise ValueError(f"sequence must be one of {SEQUENCE_WORDS} or a timestep index; got {sequence!r}.")
    if positions is not None and (not isinstance(positions, int) or positions < 1):
        raise ValueError(f"positions must be a positive int (positions kept per input); got {positions!r}.")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int; got {batch_size!r}.")
    targets = resolve_layers(model, layers)
    policy = Policy(spatial, sequence, state, select, positions, seed, has_1d_convolutions(model))
    sink = store if store is not None else MemorySink()

    training = {m: m.training for m in model.modules()}
    params = list(model.parameters()) + list(model.buffers())
    home = params[0].device if params else None
    # floating inputs take the model's floating dtype (numpy arrays are float64 by default)
    model_dtype = next((p.dtype for p in params if p.is_floating_point()), None)
    run_device = torch.device(device) if device is not None else home
    calls: dict[str, int] = {name: 0 for name in targets}
    per_batch: dict[str, int] = {}
    rows_seen = n_batches = 0
    failure: list[BaseException] = []
    current = {"mask": None}  # the batch's attention mask, if it has one

    def make_hook(name):
        def hook(module, inputs, output):
            per_batch[name] = per_batch.get(name, 0) + 1
            if per_batch[name] > 1:
                return
            try:
                matrices, meta = layer_matrices(module, name, output, policy, mask=current["mask"])
                for array_name, mat in matrices.items():
                    sink.append(array_name, mat.float().cpu().numpy() if mat.dtype != torch.float64 else mat.cpu().numpy(), meta)
            except BaseException as err:  # re-raised after the forward pass
                failure.append(err)

        return hook

    scripted = isinstance(model, torch.jit.ScriptModule)
    if scripted and getattr(model, "original_name", "") != "Sequential":
        raise ExtractionError(
            "TorchScript modules do not support forward hooks, and this one is not a scripted "
            "nn.Sequential (whose layers ccalens can run one by one). Save the model's state_dict "
            "and load it through a module:function factory instead."
        )
    hooks = {name: make_hook(name) for name in targets}
    handles = [] if scripted else [module.register_forward_hook(hooks[name]) for name, module in targets.items()]
    try:
        model.eval()
        if run_device is not None and run_device != home:
            model.to(run_device)
        stream = batches(data, batch_size)
        if progress:
            from tqdm.auto import tqdm

            total = len(data) if isinstance(data, torch.utils.data.DataLoader) else None
            stream = tqdm(stream, total=total, desc="extracting", unit="batch")
        with torch.no_grad():
            for batch in stream:
                inputs = to_device(inputs_of(batch), run_device, model_dtype)
                per_batch.clear()
                current["mask"] = inputs.get("attention_mask") if isinstance(inputs, dict) else None
                if scripted:
                    _run_sequential(model, "", inputs, hooks)
                    n_in = inputs.shape[0]
                elif isinstance(inputs, dict):
                    model(**inputs)
                    n_in = next(v for v in inputs.values() if isinstance(v, torch.Tensor)).shape[0]
                else:
                    model(inputs)
                    n_in = inputs.shape[0]
                rows_seen += n_in
                n_batches += 1
                if failure:
                    raise failure[0]
                for name in targets:
                    count = per_batch.get(name, 0)
                    if count > 1:
                        raise ExtractionError(
                            f"layer {name!r} ran {count} times in one forward pass (the module is "
                            f"reused), so its activations are ambiguous; hook a module that runs once."
                        )
                    calls[name] += count
    finally:
        for handle in handles:
            handle.remove()
        if run_device is not None and run_device != home:
            model.to(home)
        for module, was_training in training.items():
            module.train(was_training)
    if rows_seen == 0:
        raise ValueError("data holds no datapoints.")
    silent = [name for name, count in calls.items() if count == 0]
    if silent:
        raise ExtractionError(
            f"layer(s) {silent} never ran during the forward pass: they are defined in the model "
            f"but model.forward does not call them. Choose layers that forward uses."
        )
    partial = {name: count for name, count in calls.items() if count != n_batches}
    if partial:
        raise ExtractionError(
            f"layer(s) {sorted(partial)} ran in only some of the {n_batches} batches "
            f"({partial}); their activations would not line up with the datapoints."
        )
    sink.close()
    if store is not None:
        return store
    return sink.arrays()
