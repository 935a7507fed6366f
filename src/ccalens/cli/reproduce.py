"""``ccalens reproduce FIGURE``: the paper's experiments."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from . import _common

FIGURES = ("fig2",)


@_common.friendly
def reproduce(
    figures: Annotated[list[str], typer.Argument(help=f"Figures to reproduce: {', '.join(FIGURES)}, or all.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for runs/<figure>/.")] = Path("runs"),
    seeds: Annotated[int, typer.Option("--seeds", help="Seeds per setting.")] = 5,
    n: Annotated[Optional[int], typer.Option("--n", help="Datapoints (fig2).")] = None,
) -> None:
    """Rerun the paper's findings; each writes a figure, its numbers and claims.json."""
    wanted = list(FIGURES) if figures == ["all"] else figures
    unknown = [f for f in wanted if f not in FIGURES]
    if unknown:
        raise ValueError(f"unknown figure(s) {unknown}; available: {', '.join(FIGURES)} or all.")
    for fig in wanted:
        if fig == "fig2":
            from ..experiments import fig2

            argv = ["--out", str(out / "fig2"), "--seeds", str(seeds)] + (["--n", str(n)] if n else [])
            fig2.main(argv)
