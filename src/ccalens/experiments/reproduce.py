"""The paper's figures by name: the table of figure modules, and a resumable run of any of
them that writes runs/<figure>/ (figure, numbers, claims.json) and index.html.

``ccalens reproduce`` is a thin wrapper around :func:`reproduce`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from . import cnn, fig1, fig2, fig3, fig4, fig5, lstm

__all__ = ["CNN_FIGURES", "FIGURES", "RNN_FIGURES", "reproduce"]

FIGURES = ("fig1", "fig2", "fig3", "fig4", "fig5", "fig6", "seq")
#: the CNN figures' modules (each has train(context) and run(context))
CNN_FIGURES = {"fig1": fig1, "fig3": fig3, "fig4": fig4, "fig5": fig5}
RNN_FIGURES = ("fig1", "fig6", "seq")  # fig1 has CNN panels (runs/fig1) and RNN panels (runs/fig1-rnn)


def reproduce(figures, *, scale: str = "tiny", out=Path("runs"), data_dir=None, device: str | None = None,
              progress: bool = True, seeds: int = 5, n: int | None = None, collect=None,
              networks_only: bool = False, command: str = "", log: Callable[[str], None] = print) -> Path | None:
    """Rerun ``figures`` (names of :data:`FIGURES`, or "all"); finished steps are skipped, so
    a killed run continues where it stopped. Returns the index page written (None with
    ``networks_only``, which only trains the networks the figures need)."""
    from .pipeline import Pipeline
    from .report import write_index

    wanted = list(FIGURES) if "all" in figures else list(dict.fromkeys(figures))
    unknown = [f for f in wanted if f not in FIGURES]
    if unknown:
        raise ValueError(f"unknown figure(s) {unknown}; available: {', '.join(FIGURES)} or all.")
    out = Path(out)
    cnn_scale = cnn.get_scale(scale, device=device)  # validates the scale before any work
    rnn_scale = lstm.get_rnn_scale(scale, device=device)
    contexts: dict = {}
    pipe = Pipeline(out, log=log)  # one lock for every figure's steps

    def context(kind: str):
        if kind not in contexts:
            if kind == "cnn":
                from .common import Context

                contexts[kind] = Context(cnn_scale, out, data_dir=None if data_dir is None else str(data_dir),
                                         progress=progress, log=log, pipe=pipe, command=command)
                log(f"scale {cnn_scale.name} (CNN): {cnn_scale.description}")
            else:
                from .rnn import RNNContext

                contexts[kind] = RNNContext(rnn_scale, out, progress=progress, log=log, pipe=pipe, command=command)
                log(f"scale {rnn_scale.name} (RNN): {rnn_scale.description}")
        return contexts[kind]

    def report(fig: str, result: dict) -> None:
        for c in result["claims"]:
            scope = f" [{c['scope']}]" if c.get("scope") else ""
            log(f"  {fig} {c['id']}{scope}: {c['status']}  ({c['rule']['decision']})")
        log(f"  wrote {', '.join(str(p) for p in result['paths'].values())}")

    if networks_only:
        for fig in wanted:
            if fig in CNN_FIGURES:
                CNN_FIGURES[fig].train(context("cnn"))
            if fig in RNN_FIGURES:
                from . import rnn

                rnn.train(context("rnn"))
        log(f"trained the networks of {', '.join(wanted)}; rerun without --networks-only for the analyses")
        return None
    for fig in wanted:
        if fig == "fig2":
            fig2.reproduce(out / "fig2", seeds=seeds, n=n, log=log)
            continue
        if fig in CNN_FIGURES:
            report(fig, CNN_FIGURES[fig].run(context("cnn")))
        if fig == "fig1":
            from . import rnn

            report("fig1-rnn", rnn.run_fig1(context("rnn")))
        elif fig == "fig6":
            from . import rnn

            report(fig, rnn.run(context("rnn")))
        elif fig == "seq":
            from . import seq

            report(fig, seq.run(context("rnn")))
    index = write_index(out)
    log(f"wrote {index}")
    if collect is not None:
        from .report import collect as collect_outputs

        copied = collect_outputs(out, collect)
        log(f"copied {len(copied)} files to {collect}")
    return index
