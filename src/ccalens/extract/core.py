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
from typing import Any

import numpy as np
import torch
from torch import nn

from .batching import batch_total, batches, inputs_of, to_device
from .policy import SEQUENCE_WORDS, SPATIAL, ExtractionError, Policy, has_1d_convolutions, layer_matrices


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

            stream = tqdm(stream, total=batch_total(data, batch_size), desc="extracting", unit="batch")
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
