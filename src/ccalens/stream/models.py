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

import numpy as np

from ..core import registry
from .options import MINIBATCH_MEASURES, check_request, check_route, default_rtol

__all__ = ["DEFAULT_MAX_MEMORY", "ModelComparison", "compare_models", "summary_bytes"]

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
        from ..plot import pyplot

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
    from ..extract.policy import SEQUENCE_WORDS, Policy, has_1d_convolutions
    from .compute import all_pairs
    from .estimates import LayerMinibatchCKA
    from .recording import Recorder, named_models
    from .second_pass import complete
    from .summaries import GramSummary, RowSummary

    named = named_models(models)
    request = check_request(measures, options, front="compare_models", estimates=True)
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
    check_route(route)
    if max_memory is not None and (not isinstance(max_memory, (int, float)) or max_memory <= 0):
        raise ValueError(f"max_memory must be a positive number of bytes or None; got {max_memory!r}.")
    policies = {m: Policy(spatial, sequence, state, select, None, 0, has_1d_convolutions(model))
                for m, model in named.items()}
    minibatch = LayerMinibatchCKA() if request.estimates else None
    exact = bool(request.exact)

    def check_memory(widths, rows):
        need = summary_bytes(sum(widths.values()), max(rows, 1))
        if minibatch is not None:
            need += 8 * len(widths) * (rows**2 + len(widths))
        if max_memory is not None and need > max_memory:
            raise MemoryError(_advice(widths, need, max_memory, rows))

    recorder = Recorder(named, data, layers=layers, batch_size=batch_size, policies=policies, device=device,
                        progress=progress, on_first_batch=check_memory)
    summary, rows_total = None, 0
    with recorder:
        for mats in recorder.batches("comparing models"):
            if summary is None:
                names = [f"layer {k[1]!r} of model {k[0]!r}" for k in recorder.order]
                summary = GramSummary(names) if recorder.rereadable and route == "auto" else RowSummary(names)
            rows_total += int(mats[0].shape[0])
            if exact:  # the summary is skipped when only minibatch estimates were asked for
                summary.add(mats)
            if minibatch is not None:
                minibatch.add(mats)
        if summary is None:
            raise ValueError("data holds no datapoints.")
        n_batches = recorder.batch_count
        if exact and isinstance(summary, GramSummary):
            def rerun(second, what):
                for mats in recorder.batches(what):
                    second.add(mats)

            result = complete(summary, rerun, request.options.get("rtol"), exact=False)
        elif exact:
            result = summary.finish()
    order, labels = recorder.order, recorder.labels
    table = []
    if minibatch is not None:
        minibatch.finish()
    if exact:
        from ..core.validate import warn_small_sample

        widest = sorted(result.varying, reverse=True)[:2] * 2  # one warning for the widest pair, as a pair's would
        warn_small_sample(result.n, widest[0], widest[1], widest[0], widest[1], stacklevel=2)
        rtol = default_rtol(request.options, result.n, result.varying)
        opts = request.options
        values = all_pairs(result, request.exact, rtol=rtol, epsilon=opts.get("epsilon", 0.0),
                           keep=opts.get("keep"), progress=progress)
        for spec in request.exact:
            for i, ki in enumerate(order):
                for j, kj in enumerate(order):
                    v_ab, v_ba = values[(min(i, j), max(i, j))][spec.name]
                    v = 0.5 * (v_ab + v_ba) if opts.get("symmetric") else (v_ab if i <= j else v_ba)
                    table.append(_row(ki, kj, spec.name, v, float(spec.distance(v)), False, result.n))
    for measure in request.estimates:
        values = minibatch.values()
        for i, ki in enumerate(order):
            for j, kj in enumerate(order):
                table.append(_row(ki, kj, measure, float(values[i, j]), 1.0 - float(values[i, j]), True, rows_total))
    table = _in_order(table, request.measures)
    out_layers = {m: [layer for mm, layer in order if mm == m] for m in named}
    return ModelComparison(table=table, layers=out_layers, n_samples=rows_total, batches=n_batches,
                           routes=dict(zip(labels, result.routes)) if exact else {},
                           skipped={m: v for m, v in recorder.skipped.items() if v},
                           widths={f"{m}/{layer}": w for (m, layer), w in recorder.widths.items()})


def _in_order(table: list, measures: list) -> list:
    """The rows measure by measure, in the order the measures were asked for."""
    rank = {m: i for i, m in enumerate(measures)}
    return sorted(table, key=lambda r: rank[r["measure"]])


def _row(kx, ky, measure, similarity, distance, estimate, n) -> dict:
    return {"model_x": kx[0], "layer_x": kx[1], "model_y": ky[0], "layer_y": ky[1], "measure": measure,
            "similarity": float(similarity), "distance": float(distance), "estimate": bool(estimate), "n": int(n)}


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
