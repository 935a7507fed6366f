"""``ccalens reproduce FIGURE...``: the paper's experiments, resumable, with their claims."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from . import _common

FIGURES = ("fig1", "fig2", "fig3", "fig4", "fig5", "fig6", "seq")
CNN_FIGURES = ("fig1", "fig3", "fig4", "fig5")
RNN_FIGURES = ("fig1", "fig6", "seq")  # fig1 has CNN panels (runs/fig1) and RNN panels (runs/fig1-rnn)


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
    wanted = list(FIGURES) if "all" in figures else list(dict.fromkeys(figures))
    unknown = [f for f in wanted if f not in FIGURES]
    if unknown:
        raise ValueError(f"unknown figure(s) {unknown}; available: {', '.join(FIGURES)} or all.")
    _common.check_positive("--seeds", seeds)
    _common.check_positive("--n", n)
    _common.check_out_dir(out)
    from ..experiments import cnn, lstm
    from ..experiments.report import write_index

    from ..experiments.pipeline import Pipeline

    cnn_scale = cnn.get_scale(scale, device=device)  # validates --scale before any work
    rnn_scale = lstm.get_rnn_scale(scale, device=device)
    contexts: dict = {}
    pipe = Pipeline(out, log=typer.echo)  # one lock for every figure's steps
    command = " ".join(["ccalens reproduce", *figures, "--scale", scale, "--out", str(out)]
                       + (["--data-dir", str(data_dir)] if data_dir else [])
                       + (["--device", device] if device else []))

    def context(kind: str):
        if kind not in contexts:
            if kind == "cnn":
                from ..experiments.common import Context

                contexts[kind] = Context(cnn_scale, out, data_dir=None if data_dir is None else str(data_dir),
                                         progress=progress, log=typer.echo, pipe=pipe, command=command)
                typer.echo(f"scale {cnn_scale.name} (CNN): {cnn_scale.description}")
            else:
                from ..experiments.rnn import RNNContext

                contexts[kind] = RNNContext(rnn_scale, out, progress=progress, log=typer.echo, pipe=pipe,
                                            command=command)
                typer.echo(f"scale {rnn_scale.name} (RNN): {rnn_scale.description}")
        return contexts[kind]

    def report(fig: str, result: dict) -> None:
        for c in result["claims"]:
            scope = f" [{c['scope']}]" if c.get("scope") else ""
            typer.echo(f"  {fig} {c['id']}{scope}: {c['status']}  ({c['rule']['decision']})")
        typer.echo(f"  wrote {', '.join(str(p) for p in result['paths'].values())}")

    if networks_only:
        for fig in wanted:
            if fig in CNN_FIGURES:
                __import__(f"ccalens.experiments.{fig}", fromlist=["train"]).train(context("cnn"))
            if fig in RNN_FIGURES:
                from ..experiments import rnn

                rnn.train(context("rnn"))
        typer.echo(f"trained the networks of {', '.join(wanted)}; rerun without --networks-only for the analyses")
        return
    for fig in wanted:
        if fig == "fig2":
            from ..experiments import fig2

            fig2.main(["--out", str(out / "fig2"), "--seeds", str(seeds)] + (["--n", str(n)] if n else []))
            continue
        if fig in CNN_FIGURES:
            module = __import__(f"ccalens.experiments.{fig}", fromlist=["run"])
            report(fig, module.run(context("cnn")))
        if fig == "fig1":
            from ..experiments import rnn

            report("fig1-rnn", rnn.run_fig1(context("rnn")))
        elif fig == "fig6":
            from ..experiments import rnn

            report(fig, rnn.run(context("rnn")))
        elif fig == "seq":
            from ..experiments import seq

            report(fig, seq.run(context("rnn")))
    index = write_index(out)
    typer.echo(f"wrote {index}")
    if collect is not None:
        from ..experiments.report import collect as collect_outputs

        copied = collect_outputs(out, collect)
        typer.echo(f"copied {len(copied)} files to {collect}")
