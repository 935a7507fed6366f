"""``ccalens demo``: groups of CNNs compared layer by layer."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from . import _common


@_common.friendly
def demo(
    out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("runs/demo"),
    dataset: Annotated[str, typer.Option("--dataset", help="digits (bundled), fashion-mnist (Debian's dataset-fashion-mnist or --data-dir) or cifar10 (--data-dir).")] = "digits",
    data_dir: Annotated[Optional[str], typer.Option("--data-dir", help="Folder of the fashion-mnist idx files or cifar-10-batches-py.")] = None,
    networks: Annotated[int, typer.Option("--networks", help="Networks per group.")] = 3,
    epochs: Annotated[int, typer.Option("--epochs")] = 60,
    width: Annotated[int, typer.Option("--width", help="Channels of the first conv layer.")] = 16,
    max_train: Annotated[Optional[int], typer.Option("--max-train", help="Use only the first N training images (fashion-mnist, cifar10 are large).")] = None,
    permutations: Annotated[int, typer.Option("--permutations", help="Shuffled-datapoints null per PWCCA value (0: none).")] = 50,
    bootstrap: Annotated[int, typer.Option("--bootstrap", help="Draws of the datapoints per PWCCA value for its interval (PWCCA's default method; 0: none).")] = 50,
) -> None:
    """Train CNNs on true and on permuted labels, then compare every layer within and between groups.

    The default (digits) runs offline in about 1.5 minutes on 2 CPU cores. For larger runs:
    --dataset fashion-mnist --max-train 10000, or --dataset cifar10 --data-dir PATH.
    """
    from ..experiments import demo as experiment

    if networks < 2:
        raise ValueError(f"--networks must be at least 2 to compare within a group; got {networks}.")
    for name, value in (("--epochs", epochs), ("--width", width), ("--max-train", max_train)):
        _common.check_positive(name, value)
    _common.check_out_dir(out)
    cfg = experiment.DemoConfig(dataset=dataset, data_dir=data_dir, networks=networks, epochs=epochs,
                                width=width, max_train=max_train, permutations=permutations, bootstrap=bootstrap)
    result = experiment.run(cfg, log=typer.echo, progress=True)
    paths = experiment.write(result, out)
    typer.echo("\nper-layer distances (mean ± sd over pairs of networks):")
    typer.echo(experiment.format_table(result))
    typer.echo(f"\nwrote {paths['png']}, {paths['csv']}, {paths['json']} in {result['seconds']} s")
