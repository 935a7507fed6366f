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
``"cka_minibatch"`` and its rows say ``estimate=True``. Those invariant to orthogonal maps
of the neurons (debiased and RBF CKA, Euclidean RSA, predictivity) are exact on the
datapoint route below; the others (RSA on correlation distances, the neighbour measures,
the matched-neuron controls) are refused with the reason: extract the layers
(:func:`ccalens.extract`, to a store when they are large) and run :func:`ccalens.pairwise`.

Memory: the summary needs about 8 (D + 1)((D + 1) + 2 b) bytes on the device for D
columns and batches of b rows, whatever the number of batches, and the measures about
88 w^2 bytes per layer of w neurons afterwards (:func:`summary_bytes`). It is estimated from the
widths after the first batch's forward pass, before anything is accumulated, and a
summary above ``max_memory`` is refused with the routes that fit.

Layers with at least as many neurons as datapoints (when the number of datapoints is known
in advance: a tensor, an array, a DataLoader over a sized dataset), a D x D summary that
would not fit ``max_memory``, a measure that needs the datapoints (debiased or RBF CKA,
Euclidean RSA, predictivity) or ``route="datapoints"`` take the **datapoint route**
(:mod:`ccalens.stream.datapoints`): one pass that holds every datapoint's activations
(spilled to a temporary folder beyond ``max_memory``) and compares the layers through their
n x n Gram matrices, exactly. Where neither route fits, the refusal names the largest
number of datapoints and of neurons that would.
"""

from __future__ import annotations

import math

from ..core import registry
from .comparison import ModelComparison
from .options import check_request, check_route, default_rtol

__all__ = ["DEFAULT_MAX_MEMORY", "ModelComparison", "compare_models", "summary_bytes"]

DEFAULT_MAX_MEMORY = 4 * 2**30


def summary_bytes(columns: int, batch_rows: int, widths=()) -> int:
    """Bytes the one-pass summary of ``columns`` columns needs at ``batch_rows`` rows per
    batch: the (D + 1)^2 Gram matrix (accumulated and centred in place) and one batch of
    the joint columns; with the layers' ``widths``, also what the measures work with per
    layer afterwards (its block, its eigendecomposition, its factor and PCA, and the work of
    two pairs side by side: about eleven w x w matrices per layer of w neurons, measured in
    tests/test_stream_datapoints.py)."""
    d = int(columns) + 1
    return 8 * d * (d + 2 * int(batch_rows)) + 8 * 11 * sum(int(w) ** 2 for w in widths)


def _gib(nbytes: float) -> str:
    """A size in the unit that shows it: GiB, MiB, KiB or bytes."""
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= 0.1 * size:
            return f"{nbytes / size:.2f} {unit}"
    return f"{float(nbytes):.1f} B"


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
    accumulate: str = "float64",
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
        CKA, Procrustes, shape metrics) and, on the datapoint route, those of
        :data:`ccalens.stream.options.DATAPOINT_MEASURES` (also debiased and RBF CKA,
        Euclidean RSA, predictivity). Estimated: ``"cka_minibatch"``.
    device : torch device, optional
        Where to run and accumulate; the models are moved there and back.
    batch_size : int
        Rows per batch when ``data`` is a tensor or an array.
    spatial, sequence, state, select
        How a layer's output becomes a matrix (:mod:`ccalens.extract`); ``spatial`` must
        keep one datapoint per input ("mean" or "flatten"), and ``sequence`` one per input
        ("last", "first", "mean", a timestep) or one per token ("all").
    max_memory : bytes, optional
        Refuse a summary larger than this (default 4 GiB), with the routes that fit; on
        the datapoint route, the held activations beyond it go to a temporary folder.
    progress : bool
        A progress bar over batches.
    route : {"auto", "tsqr", "datapoints"}
        "auto": the Gram route, with the second pass where a layer needs one (a one-shot
        iterator of batches takes "tsqr"), or the datapoint route where a layer is at least
        as wide as the data or the Gram route does not fit (see the module docstring);
        "tsqr": one pass of a tall-skinny QR; "datapoints": the datapoint route.
    accumulate : {"float64", "float32"}
        "float32": each batch's Gram product in float32, summed in float64, for linear CKA
        alone (the CCA family whitens, squaring the rounding's effect). Kept where each
        layer's centring cancels little (:data:`ccalens.stream.gram.FLOAT32_MAX_CANCELLATION`),
        else the pass is redone in float64 and ``notes`` says so; measured within
        :data:`~ccalens.stream.gram.FLOAT32_CKA_TOLERANCE` of float64 on the project's test
        cases. Routes say "gram32".
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
    try:
        import torch  # noqa: F401
    except ModuleNotFoundError:
        raise ModuleNotFoundError(
            "compare_models runs the models with torch, which is not installed: install ccalens's torch extra "
            "(pip install 'ccalens[torch]', or pip install -e '.[torch]' in a checkout), or any recent torch. "
            "Without torch, compare stored activations with ccalens.pairwise or ccalens.stream.") from None
    from ..extract.policy import SEQUENCE_WORDS, Policy, has_1d_convolutions
    from .compute import all_pairs
    from .datapoints import HeldLayers, datapoint_bytes, datapoint_pairs, largest_datapoints
    from .estimates import LayerMinibatchCKA
    from .recording import Recorder, named_models
    from .second_pass import complete
    from .gram import FLOAT32_MAX_CANCELLATION, FLOAT64_MAX_CANCELLATION, GramSummary
    from .summaries import RowSummary

    named = named_models(models)
    request = check_request(measures, options, front="compare_models", estimates=True, datapoints=True)
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
    check_route(route, ("auto", "tsqr", "datapoints"))
    if max_memory is not None and (not isinstance(max_memory, (int, float)) or max_memory <= 0):
        raise ValueError(f"max_memory must be a positive number of bytes or None; got {max_memory!r}.")
    if accumulate not in ("float64", "float32"):
        raise ValueError(f"accumulate must be 'float64' or 'float32'; got {accumulate!r}.")
    if accumulate == "float32" and (any(s.name != "cka" for s in request.exact) or route != "auto"):
        raise ValueError(
            f"accumulate='float32' serves linear CKA alone on route='auto' (asked: measures "
            f"{[s.name for s in request.exact]}, route={route!r}): the CCA family, Procrustes and the shape "
            f"metrics whiten each layer, which squares the effect of float32 rounding (every trained layer would "
            f"need the float64 second pass). Ask measures='cka', or leave accumulate='float64'.")
    if request.needs_datapoints and route == "tsqr":
        raise ValueError(f"{', '.join(s.name for s in request.exact if not s.streamable)} need(s) the datapoint "
                         f"route, and route='tsqr' asks for the neurons' summary; leave route='auto'.")
    policies = {m: Policy(spatial, sequence, state, select, None, 0, has_1d_convolutions(model))
                for m, model in named.items()}
    minibatch = LayerMinibatchCKA() if request.estimates else None
    exact = bool(request.exact)
    kernels = any(s.kind == "kernel" for s in request.exact)
    plan = {}

    def choose_route(widths, rows):
        """After the first batch: the route, and the memory check, before anything is kept."""
        total, widest = sum(widths.values()), max(widths.values())
        need = summary_bytes(total, max(rows, 1), widths.values()) if exact else 0
        if minibatch is not None:
            need += 8 * len(widths) * (rows**2 + len(widths))
        n = known if sequence != "all" else None
        points = (route == "datapoints" or request.needs_datapoints
                  or (route == "auto" and n is not None and widest >= n)
                  or (route == "auto" and max_memory is not None and need > max_memory))
        plan["datapoints"] = exact and points
        if not plan["datapoints"]:
            if max_memory is not None and need > max_memory:
                raise MemoryError(_advice(widths, need, max_memory, rows))
            return
        budget = None if max_memory is None else max_memory
        plan["max_rows"] = (None if budget is None or n is not None  # a known n is checked here, once
                            else largest_datapoints(budget, widths.values(), kernels=kernels))
        if n is not None and budget is not None and datapoint_bytes(n, widths.values(), kernels=kernels) > budget:
            raise MemoryError(_neither(widths, n, rows, budget, kernels))
        plan["budget"] = None if budget is None else (
            budget / 2 if n is None else max(0, budget - datapoint_bytes(n, widths.values(), kernels=kernels)))

    recorder = Recorder(named, data, layers=layers, batch_size=batch_size, policies=policies, device=device,
                        progress=progress, on_first_batch=choose_route)
    known = recorder.known_datapoints
    summary, rows_total, notes = None, 0, []
    try:
        with recorder:
            for mats in recorder.batches("comparing models"):
                if summary is None:
                    names = [f"layer {k[1]!r} of model {k[0]!r}" for k in recorder.order]
                    if plan["datapoints"]:
                        summary = HeldLayers(
                            [recorder.widths[k] for k in recorder.order], recorder.labels, plan["budget"],
                            rows=known if sequence != "all" else None, max_rows=plan["max_rows"],
                            refuse=lambda rows: _neither(recorder.widths, rows, int(mats[0].shape[0]),
                                                         max_memory, kernels))
                    elif recorder.rereadable and route == "auto":
                        summary = GramSummary(names, accumulate=accumulate)
                    elif accumulate == "float32":
                        raise ValueError("accumulate='float32' needs data that can be read again (a tensor, an "
                                         "array, a DataLoader, a list of batches), for its float64 fallback; "
                                         "this data is a one-shot iterator. Leave accumulate='float64'.")
                    else:
                        summary = RowSummary(names)
                rows_total += int(mats[0].shape[0])
                if exact:  # the summary is skipped when only minibatch estimates were asked for
                    summary.add(mats)
                if minibatch is not None:
                    minibatch.add(mats)
            if summary is None:
                raise ValueError("data holds no datapoints.")
            n_batches = recorder.batch_count
            result = None
            cka_only = all(s.name == "cka" for s in request.exact)
            if exact and isinstance(summary, GramSummary) and cka_only:
                # linear CKA inverts nothing: the Gram matrix is enough at any conditioning, unless
                # the centring magnifies the accumulation's rounding (then the checked route below)
                worst = max(zip(summary.cancellation(), recorder.labels))
                if worst[0] <= (FLOAT32_MAX_CANCELLATION if summary.single else FLOAT64_MAX_CANCELLATION):
                    result = summary.cka_summary()
                elif summary.single:  # the pass again, in float64
                    notes.append(f"accumulate='float32' fell back to float64: the centring of {worst[1]} cancels "
                                 f"{worst[0]:.3g}-fold (above {FLOAT32_MAX_CANCELLATION:g}), which would magnify "
                                 f"float32 rounding.")
                    summary = GramSummary(names)
                    for mats in recorder.batches("comparing models again in float64"):
                        summary.add(mats)
            if result is None and exact and not plan["datapoints"] and isinstance(summary, GramSummary):
                def rerun(second, what):
                    for mats in recorder.batches(what):
                        second.add(mats)

                result = complete(summary, rerun, request.options.get("rtol"), exact=False)
            elif result is None and exact and not plan["datapoints"]:
                result = summary.finish()
        if exact:
            from ..core.validate import warn_small_sample

            varying = summary.widths if plan["datapoints"] else result.varying
            widest = sorted(varying, reverse=True)[:2] * 2  # one warning for the widest pair, as a pair's would
            warn_small_sample(rows_total, widest[0], widest[1], widest[0], widest[1], stacklevel=2)
            rtol = default_rtol(request.options, rows_total, varying)
            opts = request.options
            if plan["datapoints"]:
                values, result, more = datapoint_pairs(summary, request.exact, rtol=rtol,
                                                       epsilon=opts.get("epsilon", 0.0), keep=opts.get("keep"),
                                                       progress=progress)
                notes += more
                if accumulate == "float32":
                    notes.append("accumulate='float32' applies to the neurons' Gram route; the datapoint route "
                                 "computed in float64.")
            else:
                values = all_pairs(result, request.exact, rtol=rtol, epsilon=opts.get("epsilon", 0.0),
                                   keep=opts.get("keep"), progress=progress)
    finally:
        if isinstance(summary, HeldLayers):
            summary.close()
    order, labels = recorder.order, recorder.labels
    table = []
    if minibatch is not None:
        minibatch.finish()
    if exact:
        opts = request.options
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
                           routes=dict(zip(labels, result.routes)) if exact else {}, notes=notes,
                           skipped={m: v for m, v in recorder.skipped.items() if v},
                           widths={f"{m}/{layer}": w for (m, layer), w in recorder.widths.items()})


def _in_order(table: list, measures: list) -> list:
    """The rows measure by measure, in the order the measures were asked for."""
    rank = {m: i for i, m in enumerate(measures)}
    return sorted(table, key=lambda r: rank[r["measure"]])


def _row(kx, ky, measure, similarity, distance, estimate, n) -> dict:
    label = registry.distance_label(measure) if measure in registry.MEASURES else "1 - s"  # cka_minibatch: 1 - s
    return {"model_x": kx[0], "layer_x": kx[1], "model_y": ky[0], "layer_y": ky[1], "measure": measure,
            "similarity": float(similarity), "distance": float(distance), "distance_is": label,
            "estimate": bool(estimate), "n": int(n)}


def _largest_columns(budget: float, batch_rows: int) -> int:
    """The most columns whose one-pass summary fits, for narrow layers: 8 d (d + 2 b) <= budget."""
    return max(1, int(-batch_rows + math.sqrt(batch_rows**2 + budget / 8)) - 1)


def _widest(widths: dict) -> str:
    widest = sorted(widths.items(), key=lambda kv: -kv[1])[:5]
    return ", ".join(f"{m}/{layer} ({w})" for (m, layer), w in widest)


def _neither(widths: dict, n: int, batch_rows: int, budget: float, kernels: bool) -> str:
    """The refusal where neither the neurons' summary nor the datapoint route fits."""
    from .datapoints import datapoint_bytes, largest_datapoints

    total = sum(widths.values())
    return (f"neither route fits max_memory={_gib(budget)}: the neurons' D x D summary of {len(widths)} layers with "
            f"{total} neurons in all needs about {_gib(summary_bytes(total, batch_rows, widths.values()))} (narrow layers of at most "
            f"about {_largest_columns(budget, batch_rows)} neurons in all would fit), and the datapoint route for {n} datapoints "
            f"needs about {_gib(datapoint_bytes(n, widths.values(), kernels=kernels))} (it fits at most about "
            f"{largest_datapoints(budget, widths.values(), kernels=kernels)} datapoints with these {len(widths)} layers). Compare "
            f"fewer or narrower layers (the widest: {_widest(widths)}), a random subset of datapoints, or raise "
            f"max_memory.")


def _advice(widths: dict, need: float, budget: float, batch_rows: int) -> str:
    total = sum(widths.values())
    shown = _widest(widths)
    from .datapoints import largest_datapoints

    d = _largest_columns(budget, batch_rows)  # for blocks of layers
    return (f"the one-pass summary of {len(widths)} layers with {total} neurons in all needs about {_gib(need)}, "
            f"above max_memory={_gib(budget)}. Routes that fit: (1) fewer or narrower layers (the widest: {shown}); "
            f"(2) blocks of layers over several passes, at most about {d} neurons per pass (pass layers= for each "
            f"block; pairs across blocks need the layers of both); (3) extract the layers to a store "
            f"(ccalens.extract(..., store=...)) and run ccalens.pairwise on it, which reads one pair at a time; "
            f"(4) route='datapoints' (exact through the n x n Gram matrices, for up to about "
            f"{largest_datapoints(budget, widths.values())} datapoints); or raise max_memory.")
