"""``ccalens compare-models A [B ...]``: every layer against every layer, in one pass."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from . import _common
from .extract import DATASETS, load_inputs, load_model


def _measures_help() -> str:
    from ..stream import MEASURES, MINIBATCH_MEASURES
    from ..stream.options import DATAPOINT_MEASURES

    also = [m for m in DATAPOINT_MEASURES if m not in MEASURES]
    return (f"Repeat for several. Exact: {', '.join(MEASURES)}; exact on the datapoint route (taken for them): "
            f"{', '.join(also)}; estimated over batches: {', '.join(MINIBATCH_MEASURES)}.")


@_common.friendly
def compare_models(
    models: Annotated[list[str], typer.Argument(help="One or more models: module.path:function factories (with "
                                                     "--state-dict), TorchScript files, or torch.save'd models "
                                                     "(--trust-pickle). One model: its layers against each other.")],
    data: Annotated[str, typer.Option("--data", "-d", help=f"One of {', '.join(DATASETS)}, or an array file (.npy, "
                                                          f".npz:KEY, .pt, ...).")] = "digits",
    layers: Annotated[str, typer.Option("--layers", "-l", help="Comma-separated module names for every model, "
                                                               "'hidden_states' (HuggingFace), or empty for every "
                                                               "leaf module.")] = "",
    measure: Annotated[Optional[list[str]], typer.Option("--measure", "-m", help=_measures_help())] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for comparison.csv, comparison.json and "
                                                          "heatmaps.png (created if missing).")] = Path(
        "comparison"),
    state_dict: Annotated[Optional[list[str]], typer.Option("--state-dict", help="Weights for a factory model; "
                                                                                 "one per model, in order.")] = None,
    names: Annotated[str, typer.Option("--names", help="Comma-separated model names (default A, B, ...).")] = "",
    spatial: Annotated[str, typer.Option("--spatial", help="Conv layers: mean or flatten.")] = "mean",
    sequence: Annotated[str, typer.Option("--sequence", help="Sequence layers: last, first, mean, all, or a "
                                                             "timestep.")] = "last",
    split: Annotated[str, typer.Option("--split", help="Dataset split: train or test.")] = "test",
    data_dir: Annotated[Optional[str], typer.Option("--data-dir", help="Folder of fashion-mnist or cifar10 "
                                                                       "files.")] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", help="Use only the first N datapoints.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size")] = 256,
    device: Annotated[Optional[str], typer.Option("--device", help="Run and accumulate there (cpu, cuda, "
                                                                   "cuda:1).")] = None,
    max_memory: Annotated[float, typer.Option("--max-memory", help="Largest summary allowed, in GiB (on the "
                                                                   "datapoint route, held activations beyond it go "
                                                                   "to a temporary folder).")] = 4.0,
    trust_pickle: Annotated[bool, typer.Option("--trust-pickle", help="Allow loading pickled whole models.")] = False,
    route: Annotated[str, typer.Option("--route", help="auto: a Gram matrix of the neurons, and a second pass over "
                                                       "the data for ill-conditioned layers, or the datapoint route "
                                                       "for layers at least as wide as the data; tsqr: one pass of "
                                                       "a QR; datapoints: hold the activations and compare the n x n "
                                                       "Gram matrices.")] = "auto",
    accumulate: Annotated[str, typer.Option("--accumulate", help="float64, or float32 for linear CKA alone (each "
                                                                 "batch's Gram product in float32, within 1e-6; "
                                                                 "see the numerics page).")] = "float64",
) -> None:
    """Compare every layer of the models with every other, in one pass over the data, and
    write the table and the layer x layer heatmaps."""
    from ..stream import compare_models as run

    _common.check_positive("--limit", limit)
    _common.check_positive("--batch-size", batch_size)
    _common.check_out_dir(out)
    if max_memory <= 0:
        raise ValueError(f"--max-memory must be a positive number of GiB; got {max_memory}.")
    if split not in ("train", "test"):
        raise ValueError(f"--split must be train or test; got {split!r}.")
    weights = list(state_dict or [])
    if weights and len(weights) != len(models):
        raise ValueError(f"--state-dict was given {len(weights)} time(s) for {len(models)} model(s); give one per "
                         f"model, in order.")
    labels = [n.strip() for n in names.split(",") if n.strip()] if names else []
    if labels and len(labels) != len(models):
        raise ValueError(f"--names lists {len(labels)} name(s) for {len(models)} model(s).")
    nets = [load_model(spec, weights[i] if weights else None, trust_pickle) for i, spec in enumerate(models)]
    if not labels:
        labels = ["model"] if len(nets) == 1 else [chr(ord("A") + i) for i in range(len(nets))]
    request = None
    if layers.strip() == "hidden_states":
        request = "hidden_states"
    elif layers.strip():
        request = [n.strip() for n in layers.split(",") if n.strip()]
    seq = int(sequence) if sequence.lstrip("-").isdigit() else sequence
    x = load_inputs(data, data_dir, split, limit)
    result = run(dict(zip(labels, nets)), x, layers=request, measures=tuple(measure or ("pwcca", "cka")),
                 device=device, batch_size=batch_size, spatial=spatial, sequence=seq,
                 max_memory=int(max_memory * 2**30), progress=True, route=route, accumulate=accumulate)
    out.mkdir(parents=True, exist_ok=True)
    result.to_pandas().to_csv(out / "comparison.csv", index=False)
    (out / "comparison.json").write_text(_common.json_text({
        "models": dict(zip(labels, models)), "data": data, "split": split, "datapoints": result.n_samples,
        "batches": result.batches, "layers": result.layers, "widths": result.widths, "skipped": result.skipped,
        "measures": result.measures, "routes": result.routes, "notes": result.notes}) + "\n")
    result.plot(path=out / "heatmaps.png")
    console = _common.console()
    first = result.measures[0]
    a, b = result.pairs()[0]
    console.print(f"{result.n_samples:,} datapoints, {sum(map(len, result.layers.values()))} layers; {first}, "
                  f"{a} (rows) vs {b} (columns):")
    console.print(result.matrix(first, a, b).round(3).to_string())
    for note in result.notes:
        console.print(f"note: {note}")
    console.print(f"wrote {out / 'comparison.csv'}, {out / 'comparison.json'} and {out / 'heatmaps.png'}")
