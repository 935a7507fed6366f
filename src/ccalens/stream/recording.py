"""Recording the layers of one or more models, batch by batch, as (datapoints, neurons)
matrices on the model's device: forward hooks with :mod:`ccalens.extract`'s policies, the
models put in eval mode (and where they were afterwards), and the checks that every layer
ran once per batch with the same datapoints. :class:`Recorder` runs the models over the data
as often as a summary needs (a second pass for ill-conditioned layers); torch is imported
only here and in :mod:`ccalens.extract`."""

from __future__ import annotations

import collections.abc
from typing import Any

import numpy as np

__all__ = ["Recorder", "check_batch", "first_batch_layers", "layer_request", "named_models", "rows_of"]


class Recorder:
    """The models, their hooked layers and the data; :meth:`batches` yields each batch's layer
    matrices in :attr:`order` (fixed by the first batch of the first pass).

    ``on_first_batch(widths, rows)`` is called once the first batch has fixed the layers
    (for the memory check, before anything is accumulated).
    """

    def __init__(self, named: dict, data, *, layers, batch_size: int, policies: dict, device, progress: bool,
                 on_first_batch=None):
        import torch

        from ..extract.core import resolve_layers

        self.named, self.data, self.batch_size, self.policies = named, data, batch_size, policies
        self.progress, self.on_first_batch = progress, on_first_batch
        self.request = layer_request(layers, named)
        self.targets: dict[str, dict] = {}
        self.skipped: dict[str, dict] = {m: {} for m in named}
        for m, model in named.items():
            want = self.request[m]
            if want == "hidden_states":
                self.targets[m] = {}
            elif want is None:
                self.targets[m] = {name: mod for name, mod in model.named_modules() if name and not any(mod.children())}
                if not self.targets[m]:
                    raise ValueError(f"model {m!r} has no leaf modules to hook; name its layers.")
            elif isinstance(want, str):
                raise ValueError(f"layers for model {m!r} is {want!r}; use None, 'hidden_states' or a list of names.")
            else:
                self.targets[m] = resolve_layers(model, want)
        self.explicit = {m: isinstance(self.request[m], list) for m in named}
        self.current: dict[tuple, Any] = {}
        self.calls: dict[tuple, int] = {}
        self.failures: list[BaseException] = []
        self.mask = None
        self.handles: dict = {}
        self.order: list[tuple] = []
        self.widths: dict = {}
        self.batch_count = 0
        self.training = {mod: mod.training for model in named.values() for mod in model.modules()}
        self.homes, self.dtypes = {}, {}
        for m, model in named.items():
            params = list(model.parameters()) + list(model.buffers())
            self.homes[m] = params[0].device if params else None
            self.dtypes[m] = next((p.dtype for p in params if p.is_floating_point()), None)
        self.device = torch.device(device) if device is not None else next(
            (h for h in self.homes.values() if h is not None), torch.device("cpu"))

    @property
    def rereadable(self) -> bool:
        """Whether the data can be iterated again (for a second pass): not an iterator, and
        not a loader over an IterableDataset (which may be one-shot); asked without calling
        iter(), which would start a loader's workers."""
        import torch

        data = self.data
        streamed = isinstance(data, torch.utils.data.DataLoader) and isinstance(
            data.dataset, torch.utils.data.IterableDataset)
        return isinstance(data, (np.ndarray, torch.Tensor)) or not (
            isinstance(data, collections.abc.Iterator) or streamed)

    @property
    def known_datapoints(self) -> int | None:
        """The number of inputs, where the data says it without being read (a tensor, an
        array, a DataLoader over a sized map-style dataset); None otherwise."""
        import torch

        data = self.data
        if isinstance(data, (np.ndarray, torch.Tensor)):
            return int(data.shape[0])
        if isinstance(data, torch.utils.data.DataLoader) and not isinstance(
                data.dataset, torch.utils.data.IterableDataset) and hasattr(data.dataset, "__len__"):
            try:
                return len(data.dataset)
            except TypeError:
                return None
        return None

    @property
    def labels(self) -> list[str]:
        return [f"{m}/{layer}" for m, layer in self.order]

    def __enter__(self) -> "Recorder":
        for m, model in self.named.items():
            model.eval()
            if self.homes[m] is not None and self.homes[m] != self.device:
                model.to(self.device)
            self.handles.update({(m, name): mod.register_forward_hook(self._hook(m, name))
                                 for name, mod in self.targets[m].items()})
        return self

    def __exit__(self, *exc) -> None:
        for h in self.handles.values():
            h.remove()
        for m, model in self.named.items():
            if self.homes[m] is not None and self.homes[m] != self.device:
                model.to(self.homes[m])
        for mod, was_training in self.training.items():
            mod.train(was_training)

    def _hook(self, m, name):
        from ..extract.policy import ExtractionError, layer_matrices

        def hook(module, inputs, output):
            key = (m, name)
            self.calls[key] = self.calls.get(key, 0) + 1
            if self.calls[key] > 1:
                self.current.pop(key, None)
                return
            try:
                matrices, _ = layer_matrices(module, name, output, self.policies[m], mask=self.mask)
                self.current[key] = next(iter(matrices.values()))
            except (ExtractionError, ValueError) as err:
                if self.explicit[m] or key in self.order:  # a named layer, or one the pass already compares
                    self.failures.append(err)
                else:
                    self.skipped[m][name] = str(err)
            except BaseException as err:  # re-raised after the forward pass
                self.failures.append(err)

        return hook

    def _run(self, m, model, inputs) -> None:
        """One model's forward pass on one batch; its hooks (or its hidden states) fill ``current``."""
        from ..extract.policy import ExtractionError, layer_matrices

        if self.request[m] != "hidden_states":
            model(**inputs) if isinstance(inputs, dict) else model(inputs)
            return
        no_states = ExtractionError(
            f"model {m!r} returned no hidden_states with output_hidden_states=True: layers='hidden_states' needs "
            f"a HuggingFace-style model. Name its layers instead.")
        try:
            out = (model(**inputs, output_hidden_states=True) if isinstance(inputs, dict)
                   else model(inputs, output_hidden_states=True))
        except TypeError as err:
            if "output_hidden_states" in str(err):
                raise no_states from None
            raise
        hidden = getattr(out, "hidden_states", None)
        if hidden is None and isinstance(out, dict):
            hidden = out.get("hidden_states")
        if hidden is None:
            raise no_states
        for i, h in enumerate(hidden):
            mats, _ = layer_matrices(model, f"hidden_states.{i}", h, self.policies[m], mask=self.mask)
            self.current[(m, f"hidden_states.{i}")] = next(iter(mats.values()))

    def batches(self, what: str):
        """Run the models over the data; yield each batch's layer matrices, in :attr:`order`."""
        import torch

        from ..extract.batching import batch_total, batches, inputs_of, to_device

        stream_of = batches(self.data, self.batch_size)
        if self.progress:
            from tqdm.auto import tqdm

            stream_of = tqdm(stream_of, total=batch_total(self.data, self.batch_size), desc=what, unit="batch")
        with torch.no_grad():
            for batch in stream_of:
                raw = inputs_of(batch)
                self.current.clear()
                self.calls.clear()
                rows_in = None
                for m, model in self.named.items():
                    inputs = to_device(raw, self.device, self.dtypes[m])
                    self.mask = inputs.get("attention_mask") if isinstance(inputs, dict) else None
                    self._run(m, model, inputs)
                    if self.failures:
                        raise self.failures[0]
                    rows_in = rows_in or rows_of(inputs)
                self.batch_count += 1
                if rows_in == 0:
                    continue
                if not self.order:  # the first batch fixes the layers and their order
                    self.order = first_batch_layers(self.named, self.targets, self.request, self.current,
                                                    self.calls, self.skipped, self.explicit)
                    self.widths = {key: int(self.current[key].shape[1]) for key in self.order}
                    if self.on_first_batch is not None:
                        self.on_first_batch(self.widths, int(self.current[self.order[0]].shape[0]))
                    for key in set(self.handles) - set(self.order):  # modules left out stop costing time
                        self.handles.pop(key).remove()
                check_batch(self.order, self.current, self.calls, self.batch_count)
                yield [self.current[key] for key in self.order]
                self.current.clear()


def named_models(models) -> dict:
    from torch import nn

    if isinstance(models, nn.Module):
        return {"model": models}
    if isinstance(models, dict):
        named = dict(models)
    elif isinstance(models, (list, tuple)):
        named = {chr(ord("A") + i) if len(models) <= 26 else f"model{i}": m for i, m in enumerate(models)}
    else:
        raise TypeError(f"models must be a torch.nn.Module, a list of them or a dict name -> module; got "
                        f"{type(models).__name__}.")
    if not named:
        raise ValueError("models is empty; pass one model, two, or a dict name -> model.")
    for name, m in named.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"model names must be non-empty strings; got {name!r}.")
        if not isinstance(m, nn.Module):
            raise TypeError(f"model {name!r} is a {type(m).__name__}, not a torch.nn.Module.")
    if len({id(m) for m in named.values()}) != len(named):
        raise ValueError("the same model object is given twice; pass it once (one model is compared with itself).")
    return named


def layer_request(layers, names) -> dict:
    """{model: None (default layers) | "hidden_states" | [names]}."""
    if layers is None or isinstance(layers, str) or (isinstance(layers, (list, tuple)) and all(
            isinstance(x, str) for x in layers)):
        return {m: (list(layers) if isinstance(layers, (list, tuple)) else layers) for m in names}
    if isinstance(layers, dict):
        unknown = set(layers) - set(names)
        if unknown:
            raise ValueError(f"layers names model(s) {sorted(unknown)} that are not among the models {list(names)}.")
        return {m: (list(layers[m]) if isinstance(layers.get(m), (list, tuple)) else layers.get(m)) for m in names}
    raise TypeError(f"layers must be None, 'hidden_states', a list of layer names or a dict model -> names; got "
                    f"{type(layers).__name__}.")


def rows_of(inputs) -> int:
    import torch

    if isinstance(inputs, dict):
        return int(next(v for v in inputs.values() if isinstance(v, torch.Tensor)).shape[0])
    return int(inputs.shape[0])


def first_batch_layers(named, targets, request, current, calls, skipped, explicit) -> list[tuple]:
    """The (model, layer) keys of the pass, in model and module order, from the first batch."""
    from ..extract.policy import ExtractionError

    order = []
    for m in named:
        if request[m] == "hidden_states":
            order += sorted((k for k in current if k[0] == m), key=lambda k: int(k[1].split(".")[1]))
            continue
        for name in targets[m]:
            key = (m, name)
            count = calls.get(key, 0)
            reason = None
            if count == 0:
                reason = ("never ran during the forward pass: it is defined in the model but model.forward does not "
                          "call it")
            elif count > 1:
                reason = (f"ran {count} times in one forward pass (the module is reused), so its activations are "
                          f"ambiguous")
            elif key not in current:
                reason = skipped[m].get(name, "gave no tensor")
            if reason is not None:
                if explicit[m]:
                    raise ExtractionError(f"layer {name!r} of model {m!r} {reason}; choose layers that forward "
                                          f"runs once per batch.")
                skipped[m].setdefault(name, reason)
                continue
            order.append(key)
    if not order:
        raise ExtractionError(f"no layer gave a (datapoints, neurons) matrix; skipped: {skipped}.")
    rows = {k: int(current[k].shape[0]) for k in order}
    if len(set(rows.values())) > 1:
        common = max(set(rows.values()), key=list(rows.values()).count)
        odd = {f"{k[0]}/{k[1]}": v for k, v in rows.items() if v != common}
        raise ExtractionError(
            f"the layers give different numbers of datapoints for the same batch ({odd} against {common} for the "
            f"others), so they cannot be compared row by row. Name layers with one state per input (or per token "
            f"with sequence='all'), or choose another sequence policy.")
    return order


def check_batch(order, current, calls, n_batches) -> None:
    from ..extract.policy import ExtractionError

    missing = [f"{m}/{layer}" for m, layer in order if (m, layer) not in current]
    if missing:
        twice = [f"{m}/{layer}" for m, layer in order if calls.get((m, layer), 0) > 1]
        why = (f"ran more than once in batch {n_batches} ({twice})" if twice
               else f"did not run in batch {n_batches}")
        raise ExtractionError(f"layer(s) {missing} {why}; their activations would not line up with the datapoints.")
    rows = {int(current[k].shape[0]) for k in order}
    if len(rows) > 1:
        raise ExtractionError(f"the layers gave different numbers of datapoints in batch {n_batches}: "
                              f"{ {f'{k[0]}/{k[1]}': int(current[k].shape[0]) for k in order} }.")
