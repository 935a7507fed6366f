"""``ccalens sanity``: specificity, sensitivity and invariance tests of every measure."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from . import _common


@_common.friendly
def sanity(
    out: Annotated[Path, typer.Option("--out", help="Output folder (sanity.csv, sanity.png, sanity.json).")] = Path("runs/sanity"),
    store: Annotated[Optional[str], typer.Option("--store", help="A STORE.zarr with NETWORK/LAYER arrays, instead of the digits CNNs.")] = None,
    labels: Annotated[Optional[str], typer.Option("--labels", help="With --store: class labels per datapoint (.npy or STORE:KEY) for the probe.")] = None,
    dataset: Annotated[str, typer.Option("--dataset", help="digits (bundled), fashion-mnist (Debian's dataset-fashion-mnist or --data-dir) or cifar10 (--data-dir).")] = "digits",
    data_dir: Annotated[Optional[str], typer.Option("--data-dir", help="Folder of the fashion-mnist idx files or cifar-10-batches-py.")] = None,
    networks: Annotated[int, typer.Option("--networks", help="Digits CNNs to train (different seeds).")] = 4,
    depth: Annotated[int, typer.Option("--depth", help="Conv layers per digits CNN.")] = 6,
    width: Annotated[int, typer.Option("--width", help="Channels per conv layer.")] = 16,
    epochs: Annotated[int, typer.Option("--epochs")] = 20,
    grid: Annotated[int, typer.Option("--grid", help="Average each feature map over a grid x grid partition (1: over all positions, as the paper).")] = 1,
    max_train: Annotated[Optional[int], typer.Option("--max-train", help="Use only the first N training images.")] = None,
    measures: Annotated[Optional[str], typer.Option("--measures", help="Comma-separated subset of the measures.")] = None,
) -> None:
    """Which measure can I trust here? Layer identification across seeds (specificity),
    PC deletion against a linear probe (sensitivity), and invariances checked against the
    docs, for every measure; prints a measures x tests table and saves it as CSV and PNG."""
    from ..experiments import sanity as suite

    if store is None and networks < 2:
        raise ValueError(f"--networks must be at least 2 (specificity compares networks); got {networks}.")
    for name, value in (("--epochs", epochs), ("--width", width), ("--grid", grid), ("--max-train", max_train),
                        ("--depth", depth)):
        _common.check_positive(name, value)
    _common.check_out_dir(out)
    if labels is not None and store is None:
        raise ValueError("--labels goes with --store (the trained networks bring their own labels).")
    chosen = suite.MEASURES if measures is None else tuple(m.strip() for m in measures.split(",") if m.strip())
    if not chosen:
        raise ValueError(f"--measures names no measure; give a comma-separated subset of {', '.join(suite.MEASURES)}.")
    cfg = suite.SanityConfig(dataset=dataset, data_dir=data_dir, networks=networks, depth=depth, width=width, epochs=epochs, max_train=max_train, grid=grid)
    result = suite.run(cfg, store=store, labels=labels, measures=chosen, log=typer.echo, progress=True)
    paths = suite.write(result, out)
    from rich.table import Table

    table = Table(title=f"sanity: {result['source']}, {result['datapoints']} datapoints")
    for name in ("measure", "specif.", "sensit.", "orth.", "scale", "linear", "perm.", "shift", "docs ok"):
        table.add_column(name, justify="left" if name == "measure" else "right")
    for row in suite.format_rows(result):
        table.add_row(*row)
    console = _common.console()
    if result.get("premise_not_met"):
        console.print(f"[bold red]premise not met[/]: {result['premise_not_met']}")
    console.print(table)
    console.print("columns: specificity, sensitivity, then invariance to orthogonal maps, isotropic scaling, "
                  "invertible linear maps, permutations of units and translation, and whether the docs say the same.")
    console.print("specificity: share of layers matched to the same layer of a network from another seed "
                  "(Kornblith et al. 2019); sensitivity: Spearman correlation of the distance with the linear "
                  "probe's accuracy drop under principal-component deletion (Ding et al. 2021).")
    notes = {r["measure"]: r["sensitivity_note"] for r in result["table"] if r["sensitivity_note"]}
    for measure, note in notes.items():
        console.print(f"* {measure}: sensitivity n/a: {note}")
    typer.echo(f"wrote {paths['csv']}, {paths['png']}, {paths['json']} in {result['seconds']} s")
