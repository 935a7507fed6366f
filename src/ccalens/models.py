r"""Every layer of one model against every layer of another, in one pass over the data.

:func:`compare_models` runs the models side by side on each batch. Forward hooks reduce
each chosen layer's output to a (datapoints, neurons) matrix (the policies of
:mod:`ccalens.extract`: spatial means for convolutions, a sequence policy for recurrent
and transformer layers, with the attention mask applied so that padding never becomes a
datapoint) and hand it, on the model's device and in float64, to one summary of all the
layers' columns together, :math:`[\mathbf 1 \mid L_1 - s_1 \mid \dots \mid L_K - s_K]`.
Nothing of a batch is kept once it is added. The summary holds every inner product of the
centred layers, so every measure that depends on the data through them (the CCA family,
linear CKA, Procrustes, the shape metrics) is **exact** on all the data: it equals
:func:`ccalens.extract` followed by the in-memory measure, to rounding.

The summary is :func:`ccalens.stream`'s Gram route (:class:`ccalens.stream.GramSummary`):
the pass accumulates the Gram matrix of all the layers' columns (about D^2 flops per row,
at the BLAS's or the GPU's full rate), then checks each layer's conditioning on its own
block. Trained networks have ill-conditioned layers (nearly collinear units), where a Gram
matrix alone loses accuracy: for those the models run over the data a second time, and
the layer's few weak eigen-directions are summed again (moderate conditioning) or it is
triangularised by Householder reflections with the other layers carried along
(near-duplicate units, rank deficiency). The second pass needs data that can be iterated again (a tensor, an array, a
DataLoader, a list of batches); a one-shot iterator of batches takes the tall-skinny QR
(:class:`ccalens.stream.RowSummary`) in its one pass, as does ``route="tsqr"``. The
second pass must see the same datapoints: a DataLoader may shuffle them (the summary does
not depend on their order), but not augment them differently (refused, with the reason).

Measured (``benchmarks/bench_summary_route.py``, the 2-core development machine, 10,000
rows of 516 columns): accumulating the Gram matrix took 0.42 s and the buffered TSQR
4.70 s; on a layer with five nearly repeated units (condition number about 1e6) the
canonical correlations from a Gram matrix alone agreed with the in-memory route only to
1.7e-2, which is why the check and the second pass exist.

Measures that need the datapoints themselves cannot come from the summary. Debiased
linear CKA has an unbiased minibatch estimator (Nguyen, Raghu & Kornblith 2021: the
unbiased HSIC of each batch, averaged over batches, then normalised); it is offered as
``"cka_minibatch"`` and its rows say ``estimate=True``. The others (RBF CKA, RSA,
predictivity, the neighbour measures, the matched-neuron controls) are refused with the
reason: extract the layers (:func:`ccalens.extract`, to a store when they are large) and
run :func:`ccalens.pairwise`.

Memory: the summary needs about 8 (D + 1)(2 (D + 1) + 2 b) bytes on the device for D
columns and batches of b rows, whatever the number of batches. It is estimated from the
widths after the first batch's forward pass, before anything is accumulated, and a
summary above ``max_memory`` is refused with the routes that fit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .core import registry

__all__ = ["MINIBATCH_MEASURES", "ModelComparison", "compare_models", "summary_bytes"]

#: measures computed as minibatch estimates (not from the exact summary), with what they estimate
MINIBATCH_MEASURES = {"cka_minibatch": "debiased linear CKA (unbiased HSIC averaged over batches; Nguyen et al. 2021)"}
DEFAULT_MAX_MEMORY = 4 * 2**30


def summary_bytes(columns: int, batch_rows: int) -> int:
    """Bytes the one-pass summary of ``columns`` columns needs at ``batch_rows`` rows per batch."""
    d = int(columns) + 1
    return 8 * d * (2 * d + 2 * int(batch_rows))


def _gib(nbytes: float) -> str:
    return f"{nbytes / 2**30:.2f} GiB"


@dataclass(frozen=True, eq=False)
class ModelComparison:
    """The result of :func:`compare_models`.

    Attributes
    ----------
    table : list of dict
        One row per (model, layer) x (model, layer) x measure: ``model_x``, ``layer_x``,
        ``model_y``, ``layer_y``, ``measure``, ``similarity``, ``distance``, ``estimate``
        (True for minibatch estimates), ``n`` (datapoints).
    layers : dict
        The layers compared, per model, in order.
    n_samples : int
        Datapoints (rows) in the pass.
    batches : int
    skipped : dict
        Per model, the leaf modules left out of the default layer list, with the reason.
    widths : dict
        Neurons per (model, layer).
    routes : dict
        How each "model/layer" was summarised: "gram" (the first pass's Gram matrix),
        "gram2" (its weak eigen-directions summed again in a second pass), "tsqr" (Householder, in the
        second pass or, with ``route="tsqr"`` or one-shot data, the only one); empty when
        only minibatch estimates were asked for.
    """

    table: list
    layers: dict
    n_samples: int
    batches: int
    skipped: dict = field(default_factory=dict)
    widths: dict = field(default_factory=dict)
    routes: dict = field(default_factory=dict)

    @property
    def measures(self) -> list[str]:
        return list(dict.fromkeys(r["measure"] for r in self.table))

    def to_pandas(self):
        """The tidy table as a pandas DataFrame."""
        import pandas as pd

        return pd.DataFrame(self.table)

    def matrix(self, measure: str | None = None, model_x: str | None = None, model_y: str | None = None,
               value: str = "similarity"):
        """Layers of ``model_x`` (rows) against layers of ``model_y`` (columns), a DataFrame.

        Defaults: the first measure; the first model against the second (or itself).
        """
        import pandas as pd

        measure = measure or self.measures[0]
        if measure not in self.measures:
            raise ValueError(f"no measure {measure!r} in this comparison; it has {self.measures}.")
        names = list(self.layers)
        model_x = model_x or names[0]
        model_y = model_y or (names[1] if len(names) > 1 else names[0])
        for m in (model_x, model_y):
            if m not in self.layers:
                raise ValueError(f"no model {m!r} in this comparison; the models are {names}.")
        if value not in ("similarity", "distance"):
            raise ValueError(f"value must be 'similarity' or 'distance'; got {value!r}.")
        out = pd.DataFrame(np.nan, index=self.layers[model_x], columns=self.layers[model_y], dtype=float)
        for r in self.table:
            if r["measure"] == measure and r["model_x"] == model_x and r["model_y"] == model_y:
                out.loc[r["layer_x"], r["layer_y"]] = r[value]
        out.index.name, out.columns.name = model_x, model_y
        return out

    def pairs(self) -> list[tuple[str, str]]:
        """The model pairs a plot shows: each model with itself for one model, else each
        pair of distinct models."""
        names = list(self.layers)
        if len(names) == 1:
            return [(names[0], names[0])]
        return [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]

    def plot(self, measures=None, path=None, *, value: str = "similarity"):
        """Layer x layer heatmaps, one per model pair and measure, with labelled axes.

        Saves to ``path`` when given; returns the matplotlib figure.
        """
        from .plot import pyplot

        plt = pyplot()
        measures = [measures] if isinstance(measures, str) else list(measures or self.measures)
        pairs = self.pairs()
        fig, axes = plt.subplots(len(measures), len(pairs), squeeze=False,
                                 figsize=(4.8 * len(pairs) + 1, 4.2 * len(measures) + 0.5), dpi=110)
        for i, measure in enumerate(measures):
            for j, (a, b) in enumerate(pairs):
                ax = axes[i][j]
                m = self.matrix(measure, a, b, value=value)
                image = ax.imshow(m.to_numpy(), cmap="magma", origin="lower", aspect="auto",
                                  vmin=0.0 if value == "similarity" else None,
                                  vmax=1.0 if value == "similarity" and registry.MEASURES.get(
                                      measure, None) is not None and registry.MEASURES[measure].bounded else None)
                ax.set_xticks(range(m.shape[1]), m.columns, rotation=90, fontsize=7)
                ax.set_yticks(range(m.shape[0]), m.index, fontsize=7)
                ax.set_xlabel(f"{b} layer")
                ax.set_ylabel(f"{a} layer")
                estimate = " (minibatch estimate)" if measure in MINIBATCH_MEASURES else ""
                ax.set_title(f"{_title(measure)}{estimate}: {a} vs {b}", fontsize=9)
                fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label=value)
        fig.suptitle(f"{self.n_samples} datapoints", fontsize=9)
        fig.tight_layout()
        if path is not None:
            fig.savefig(path)
        return fig

    def __repr__(self) -> str:
        layers = ", ".join(f"{m}: {len(v)} layers" for m, v in self.layers.items())
        return f"ModelComparison({layers}; measures={self.measures}; n_samples={self.n_samples})"


def _title(measure: str) -> str:
    spec = registry.MEASURES.get(measure)
    return spec.title if spec is not None else measure


def _check_measures(measures) -> list[str]:
    from . import stream

    measures = [measures] if isinstance(measures, str) else list(measures)
    if not measures:
        raise ValueError("measures is empty; name at least one (e.g. 'pwcca', 'cka').")
    out = []
    for m in measures:
        if m in MINIBATCH_MEASURES or m in stream.MEASURES:
            out.append(m)
            continue
        if m in registry.MEASURES:
            hint = (" For an estimate of debiased CKA over batches, use 'cka_minibatch'."
                    if m == "cka_debiased" else "")
            raise ValueError(
                f"{stream.why_not_streamable(m)}; compare_models keeps only a summary of the datapoints.{hint} "
                f"Otherwise extract the layers (ccalens.extract, to a store when they are large) and run "
                f"ccalens.pairwise. compare_models computes {', '.join(stream.MEASURES)} exactly and "
                f"{', '.join(MINIBATCH_MEASURES)} as an estimate.")
        raise ValueError(f"unknown measure {m!r}; compare_models computes {', '.join(stream.MEASURES)} exactly "
                         f"and {', '.join(MINIBATCH_MEASURES)} as an estimate.")
    return list(dict.fromkeys(out))


def _named_models(models) -> dict:
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


def _layer_request(layers, names) -> dict:
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


class _MinibatchCKA:
    """Unbiased HSIC (Song et al. 2012) of every layer pair, summed over batches, on the device.

    The estimator is exactly invariant to a shift of the features (it U-centres the
    kernels, which removes the row, column and constant terms a shift adds), so each layer
    is shifted by its first batch's means before the Gram matrices are formed: uncentred
    features (logits, post-ReLU units) otherwise lose digits to cancellation.
    """

    def __init__(self):
        self.hsic = None
        self.batches = 0
        self.shift = None
        self.held = None

    def add(self, mats) -> None:
        """Hold each batch until the next arrives: a batch of fewer than 4 rows (a dataset's
        short last batch) joins the one before it, since the unbiased HSIC needs 4."""
        import torch

        if self.held is not None and int(mats[0].shape[0]) < 4:
            self.held = [torch.cat([h, x]) for h, x in zip(self.held, mats)]
            return
        if self.held is not None:
            self._add(self.held)
        self.held = list(mats)

    def _add(self, mats) -> None:
        import torch

        n = int(mats[0].shape[0])
        if n < 4:
            raise ValueError(f"cka_minibatch needs at least 4 datapoints per batch (unbiased HSIC); the data hold "
                             f"{n}. Pass more datapoints.")
        mats = [x.to(torch.float64) for x in mats]
        if self.shift is None:
            self.shift = [x.mean(dim=0) for x in mats]
        grams = []
        for x, shift in zip(mats, self.shift):
            x = x - shift
            k = x @ x.T
            k.fill_diagonal_(0.0)
            grams.append(k)
        k = torch.stack(grams)  # (L, n, n)
        del grams
        ones = k.sum(dim=2)  # K 1, (L, n)
        total = ones.sum(dim=1)  # 1' K 1, (L,)
        flat = k.reshape(len(mats), -1)
        trace = flat @ flat.T  # tr(K_i K_j) (symmetric K)
        cross = ones @ ones.T  # 1' K_i K_j 1
        h = (trace + torch.outer(total, total) / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * cross) / (n * (n - 3))
        self.hsic = h if self.hsic is None else self.hsic + h
        self.batches += 1

    def finish(self) -> None:
        if self.held is not None:
            self._add(self.held)
            self.held = None

    def values(self) -> np.ndarray:
        h = self.hsic.cpu().numpy()
        d = np.sqrt(np.clip(np.diag(h), 0.0, None))
        with np.errstate(divide="ignore", invalid="ignore"):
            out = h / np.outer(d, d)
        return out


def compare_models(
    models,
    data,
    *,
    layers=None,
    measures=("pwcca", "cka"),
    device=None,
    batch_size: int = 256,
    spatial: str = "mean",
    sequence="last",
    state: str = "hidden",
    select=None,
    max_memory: float | int | None = DEFAULT_MAX_MEMORY,
    progress: bool = False,
    route: str = "auto",
    **options,
) -> ModelComparison:
    r"""Compare every layer of the given models with every other, in one pass over ``data``
    (and a second for the ill-conditioned layers; see the module docstring).

    Parameters
    ----------
    models : torch.nn.Module, list of modules, or dict name -> module
        One model (its layers against each other), two (named "A", "B"), or named models.
    data : torch.Tensor, numpy array, DataLoader or iterable of batches
        The inputs, first dimension = datapoints. Batches may be (inputs, labels) pairs or
        dicts of keyword inputs (HuggingFace style; their ``attention_mask`` is applied).
    layers : None, "hidden_states", list of names, or dict model -> one of those
        None: every leaf module whose output is a tensor (others are listed in
        ``result.skipped``). "hidden_states": a HuggingFace model's per-layer hidden states
        (``output_hidden_states=True``). Names: modules of ``model.named_modules()``.
    measures : str or sequence of str
        Exact: the measures of :data:`ccalens.stream.MEASURES` (the CCA family, linear
        CKA, Procrustes, shape metrics). Estimated: ``"cka_minibatch"``.
    device : torch device, optional
        Where to run and accumulate; the models are moved there and back.
    batch_size : int
        Rows per batch when ``data`` is a tensor or an array.
    spatial, sequence, state, select
        How a layer's output becomes a matrix (:mod:`ccalens.extract`); ``spatial`` must
        keep one datapoint per input ("mean" or "flatten"), and ``sequence`` one per input
        ("last", "first", "mean", a timestep) or one per token ("all").
    max_memory : bytes, optional
        Refuse a summary larger than this (default 4 GiB), with the routes that fit.
    progress : bool
        A progress bar over batches.
    route : {"auto", "tsqr"}
        "auto": the Gram route, with the second pass where a layer needs one (a one-shot
        iterator of batches takes "tsqr"); "tsqr": one pass of a tall-skinny QR.
    **options
        Options of the measures that mean the same on the summary (``epsilon``, ``keep``,
        ``symmetric``, ``alpha``, ``rtol``).

    Returns
    -------
    ModelComparison
        ``.table`` / ``.to_pandas()``: one row per (model, layer) pair and measure;
        ``.matrix(measure, a, b)``; ``.plot()``.

    Examples
    --------
    >>> import torch, ccalens
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> a = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    >>> b = torch.nn.Sequential(torch.nn.Linear(5, 6), torch.nn.Tanh(), torch.nn.Linear(6, 4))
    >>> res = ccalens.compare_models({"a": a, "b": b}, torch.randn(500, 5), measures="cka", batch_size=64)
    >>> res.layers
    {'a': ['0', '1', '2'], 'b': ['0', '1', '2']}
    >>> res.matrix("cka", "a", "b").shape
    (3, 3)
    """
    import torch

    from . import stream
    from .engine import pairwise
    from .extract.core import (SEQUENCE_WORDS, ExtractionError, Policy, batches, has_1d_convolutions, inputs_of,
                               layer_matrices, resolve_layers, to_device)

    named = _named_models(models)
    measures = _check_measures(measures)
    if spatial not in ("mean", "flatten"):
        raise ValueError(f"spatial must be 'mean' or 'flatten' in compare_models (every layer needs one datapoint "
                         f"per input to be compared with every other); got {spatial!r}. Positions as datapoints "
                         f"(spatial='as_samples') differ in number between layers: use ccalens.extract.")
    if sequence == "each":
        raise ValueError("sequence='each' makes one array per timestep; compare_models compares layers. Use "
                         "'last', 'first', 'mean', 'all' or a timestep.")
    if not (sequence in SEQUENCE_WORDS or (isinstance(sequence, int) and not isinstance(sequence, bool))):
        raise ValueError(f"sequence must be 'last', 'first', 'mean', 'all' or a timestep index; got {sequence!r}.")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int; got {batch_size!r}.")
    if route not in stream.ROUTES:
        raise ValueError(f"route must be one of {', '.join(map(repr, stream.ROUTES))}; got {route!r}.")
    if max_memory is not None and (not isinstance(max_memory, (int, float)) or max_memory <= 0):
        raise ValueError(f"max_memory must be a positive number of bytes or None; got {max_memory!r}.")
    unknown = set(options) - {"epsilon", "keep", "symmetric", "alpha", "rtol"}
    if unknown:
        raise TypeError(f"unknown option(s) {sorted(unknown)}; compare_models takes epsilon, keep, symmetric, alpha "
                        f"and rtol for the measures.")
    policies = {m: Policy(spatial, sequence, state, select, None, 0, has_1d_convolutions(model))
                for m, model in named.items()}
    request = _layer_request(layers, named)

    # --- hooks ------------------------------------------------------------------------
    targets: dict[str, dict] = {}
    skipped: dict[str, dict] = {m: {} for m in named}
    for m, model in named.items():
        want = request[m]
        if want == "hidden_states":
            targets[m] = {}
        elif want is None:
            targets[m] = {name: mod for name, mod in model.named_modules() if name and not any(mod.children())}
            if not targets[m]:
                raise ValueError(f"model {m!r} has no leaf modules to hook; name its layers.")
        elif isinstance(want, str):
            raise ValueError(f"layers for model {m!r} is {want!r}; use None, 'hidden_states' or a list of names.")
        else:
            targets[m] = resolve_layers(model, want)
    explicit = {m: isinstance(request[m], list) for m in named}

    current: dict[tuple, Any] = {}
    calls: dict[tuple, int] = {}
    failures: list[BaseException] = []
    mask_box = {"mask": None}

    def make_hook(m, name):
        def hook(module, inputs, output):
            key = (m, name)
            calls[key] = calls.get(key, 0) + 1
            if calls[key] > 1:
                current.pop(key, None)
                return
            try:
                matrices, _ = layer_matrices(module, name, output, policies[m], mask=mask_box["mask"])
                current[key] = next(iter(matrices.values()))
            except (ExtractionError, ValueError) as err:
                if explicit[m] or key in order:  # a named layer, or one the pass already compares
                    failures.append(err)
                else:
                    skipped[m][name] = str(err)
            except BaseException as err:  # re-raised after the forward pass
                failures.append(err)

        return hook

    handles = {}
    training = {mod: mod.training for model in named.values() for mod in model.modules()}
    homes, dtypes = {}, {}
    for m, model in named.items():
        params = list(model.parameters()) + list(model.buffers())
        homes[m] = params[0].device if params else None
        dtypes[m] = next((p.dtype for p in params if p.is_floating_point()), None)
    run_device = torch.device(device) if device is not None else next(
        (h for h in homes.values() if h is not None), torch.device("cpu"))

    order: list[tuple] = []
    widths: dict = {}
    minibatch = _MinibatchCKA() if any(x in MINIBATCH_MEASURES for x in measures) else None
    exact = any(x not in MINIBATCH_MEASURES for x in measures)
    counts = {"batches": 0}

    def layer_batches(what):
        """Run the models over the data; yield each batch's layer matrices, in ``order``
        (fixed by the first batch of the first pass)."""
        nonlocal order, widths
        stream_of = batches(data, batch_size)
        if progress:
            from tqdm.auto import tqdm

            if isinstance(data, (np.ndarray, torch.Tensor)):
                total = -(-int(data.shape[0]) // batch_size)
            else:
                total = len(data) if hasattr(data, "__len__") else None
            stream_of = tqdm(stream_of, total=total, desc=what, unit="batch")
        with torch.no_grad():
            for batch in stream_of:
                raw = inputs_of(batch)
                current.clear()
                calls.clear()
                rows_in = None
                for m, model in named.items():
                    inputs = to_device(raw, run_device, dtypes[m])
                    mask_box["mask"] = inputs.get("attention_mask") if isinstance(inputs, dict) else None
                    if request[m] == "hidden_states":
                        no_states = ExtractionError(
                            f"model {m!r} returned no hidden_states with output_hidden_states=True: "
                            f"layers='hidden_states' needs a HuggingFace-style model. Name its layers instead.")
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
                            mats, _ = layer_matrices(model, f"hidden_states.{i}", h, policies[m],
                                                     mask=mask_box["mask"])
                            current[(m, f"hidden_states.{i}")] = next(iter(mats.values()))
                    elif isinstance(inputs, dict):
                        model(**inputs)
                    else:
                        model(inputs)
                    if failures:
                        raise failures[0]
                    rows_in = rows_in or _rows(inputs)
                counts["batches"] += 1
                if rows_in == 0:
                    continue
                if not order:  # the first batch fixes the layers and their order
                    order = _first_batch_layers(named, targets, request, current, calls, skipped, explicit)
                    widths = {key: int(current[key].shape[1]) for key in order}
                    need = summary_bytes(sum(widths.values()), max(int(current[order[0]].shape[0]), 1))
                    if minibatch is not None:
                        need += 8 * len(order) * (int(current[order[0]].shape[0]) ** 2 + len(order))
                    if max_memory is not None and need > max_memory:
                        raise MemoryError(_advice(widths, need, max_memory, int(current[order[0]].shape[0])))
                    for key in set(handles) - set(order):  # modules left out stop costing time
                        handles.pop(key).remove()
                _check_batch(order, current, calls, counts["batches"])
                yield [current[key] for key in order]
                current.clear()

    # a second pass (for the ill-conditioned layers) needs data that can be iterated again: not
    # an iterator, and not a loader over an IterableDataset (which may be one-shot); asked
    # without calling iter(), which would start a loader's workers
    import collections.abc

    streamed = isinstance(data, torch.utils.data.DataLoader) and isinstance(data.dataset,
                                                                           torch.utils.data.IterableDataset)
    again = isinstance(data, (np.ndarray, torch.Tensor)) or not (isinstance(data, collections.abc.Iterator)
                                                                 or streamed)
    names = None
    summary = None
    rows_total = 0
    result = None
    try:
        for m, model in named.items():
            model.eval()
            if homes[m] is not None and homes[m] != run_device:
                model.to(run_device)
            handles.update({(m, name): mod.register_forward_hook(make_hook(m, name))
                            for name, mod in targets[m].items()})
        for mats in layer_batches("comparing models"):
            if summary is None:
                names = [f"layer {k[1]!r} of model {k[0]!r}" for k in order]
                summary = (stream.GramSummary(names) if again and route == "auto" else stream.RowSummary(names))
            rows_total += int(mats[0].shape[0])
            if exact:  # the summary is skipped when only minibatch estimates were asked for
                summary.add(mats)
            if minibatch is not None:
                minibatch.add(mats)
        if summary is None:
            raise ValueError("data holds no datapoints.")
        n_batches = counts["batches"]
        if exact:
            if isinstance(summary, stream.GramSummary):
                def rerun(second, what):
                    for mats in layer_batches(what):
                        second.add(mats)

                result = stream.complete(summary, rerun, options.get("rtol"), exact=False)
            else:
                result = summary.finish()
    finally:
        for h in handles.values():
            h.remove()
        for m, model in named.items():
            if homes[m] is not None and homes[m] != run_device:
                model.to(homes[m])
        for mod, was_training in training.items():
            mod.train(was_training)
    if minibatch is not None:
        minibatch.finish()
    if exact:
        from .core.validate import warn_small_sample

        widest = sorted(result.varying, reverse=True)[:2] * 2  # one warning for the widest pair, as a pair's would
        warn_small_sample(result.n, widest[0], widest[1], widest[0], widest[1], stacklevel=2)
        rtol = stream.default_rtol(options, result.n, [z.shape[1] for z in result.matrices])
        n_rows = result.n
    labels = [f"{m}/{layer}" for m, layer in order]
    table = []
    opts = {k: v for k, v in options.items() if k != "rtol"}
    for measure in measures:
        if measure in MINIBATCH_MEASURES:
            values = minibatch.values()
            for i, ki in enumerate(order):
                for j, kj in enumerate(order):
                    table.append(_row(ki, kj, measure, float(values[i, j]), 1.0 - float(values[i, j]), True,
                                      rows_total))
            continue
        pw = _quiet_pairwise(pairwise, dict(zip(labels, result.matrices)), measure, rtol=rtol, **opts)
        by_label = dict(zip(labels, order))
        for r in pw.table:
            table.append(_row(by_label[r["row"]], by_label[r["column"]], measure, r["similarity"], r["distance"],
                              False, n_rows))
    out_layers = {m: [layer for mm, layer in order if mm == m] for m in named}
    routes = dict(zip(labels, result.routes)) if exact else {}
    return ModelComparison(table=table, layers=out_layers, n_samples=rows_total, batches=n_batches, routes=routes,
                           skipped={m: v for m, v in skipped.items() if v},
                           widths={f"{m}/{layer}": w for (m, layer), w in widths.items()})


def _quiet_pairwise(pairwise, reps, measure, **options):
    import warnings

    from .core.validate import SmallSampleWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallSampleWarning)
        return pairwise(reps, measure, **options)


def _row(kx, ky, measure, similarity, distance, estimate, n) -> dict:
    return {"model_x": kx[0], "layer_x": kx[1], "model_y": ky[0], "layer_y": ky[1], "measure": measure,
            "similarity": float(similarity), "distance": float(distance), "estimate": bool(estimate), "n": int(n)}


def _rows(inputs) -> int:
    import torch

    if isinstance(inputs, dict):
        return int(next(v for v in inputs.values() if isinstance(v, torch.Tensor)).shape[0])
    return int(inputs.shape[0])


def _first_batch_layers(named, targets, request, current, calls, skipped, explicit) -> list[tuple]:
    """The (model, layer) keys of the pass, in model and module order, from the first batch."""
    from .extract.core import ExtractionError

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


def _check_batch(order, current, calls, n_batches) -> None:
    from .extract.core import ExtractionError

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


def _advice(widths: dict, need: float, budget: float, batch_rows: int) -> str:
    total = sum(widths.values())
    widest = sorted(widths.items(), key=lambda kv: -kv[1])[:5]
    shown = ", ".join(f"{m}/{layer} ({w})" for (m, layer), w in widest)
    # the largest number of columns that fits, for blocks of layers
    d = max(1, int((-batch_rows + math.sqrt(batch_rows**2 + budget / 4)) / 2) - 1)  # 8 d (2 d + 2 b) <= budget
    return (f"the one-pass summary of {len(widths)} layers with {total} neurons in all needs about {_gib(need)}, "
            f"above max_memory={_gib(budget)}. Routes that fit: (1) fewer or narrower layers (the widest: {shown}); "
            f"(2) blocks of layers over several passes, at most about {d} neurons per pass (pass layers= for each "
            f"block; pairs across blocks need the layers of both); (3) extract the layers to a store "
            f"(ccalens.extract(..., store=...)) and run ccalens.pairwise on it, which reads one pair at a time; "
            f"or raise max_memory.")
