"""``ccalens reproduce FIGURE...``: the paper's experiments, resumable, with their claims."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from . import _common

#: the figures (the experiments' table; repeated here so that --help needs no torch)
FIGURES = ("fig1", "fig2", "fig3", "fig4", "fig5", "fig6", "seq")


@_common.friendly
def reproduce(
    figures: Annotated[list[str], typer.Argument(help=f"Figures to reproduce: {', '.join(FIGURES)}, or all.")],
    scale: Annotated[str, typer.Option("--scale", help="tiny (digits, minutes), small (Fashion-MNIST, "
                                       "under an hour per figure on 2 cores) or paper (CIFAR-10, GPU).")] = "tiny",
    out: Annotated[Path, typer.Option("--out", help="Folder for runs/<figure>/, the networks and index.html.")] = Path("runs"),
    data_dir: Annotated[Optional[Path], typer.Option("--data-dir", help="Dataset folder (CIFAR-10's "
                                                    "cifar-10-batches-py; Fashion-MNIST's idx files).")] = None,
    device: Annotated[Optional[str], typer.Option("--device", help="cpu, cuda or auto (default: the scale's).")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Progress bars.")] = True,
    seeds: Annotated[int, typer.Option("--seeds", help="Seeds per setting (fig2).")] = 5,
    n: Annotated[Optional[int], typer.Option("--n", help="Datapoints (fig2).")] = None,
    collect: Annotated[Optional[Path], typer.Option("--collect", help="Also copy every figure's PNG, CSV and "
                                                   "claims.json (no networks or stores) to this folder, e.g. "
                                                   "results/small.")] = None,
    networks_only: Annotated[bool, typer.Option("--networks-only", help="Only train (or finish training) the "
                                                "networks the figures need, and stop: the long part of a run, "
                                                "to start before the analyses are decided.")] = False,
) -> None:
    """Rerun the paper's findings. Each writes runs/<figure>/ (figure, numbers, claims.json);
    finished steps are skipped, so a killed run continues where it stopped."""
    _common.check_positive("--seeds", seeds)
    _common.check_positive("--n", n)
    _common.check_out_dir(out)
    from ..experiments.reproduce import reproduce as run

    command = " ".join(["ccalens reproduce", *figures, "--scale", scale, "--out", str(out)]
                       + (["--data-dir", str(data_dir)] if data_dir else [])
                       + (["--device", device] if device else []))
    run(figures, scale=scale, out=out, data_dir=data_dir, device=device, progress=progress, seeds=seeds, n=n,
        collect=collect, networks_only=networks_only, command=command, log=typer.echo)
