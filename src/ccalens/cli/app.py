"""The ``ccalens`` command line: thin Typer wrappers around the library.

Every command turns the library's errors into one clear message and exit code 1;
``ccalens --debug COMMAND`` shows the traceback instead.
"""

from __future__ import annotations

import typer

from . import _common, compare, compare_models, demo, extract, info, matrix, reproduce, sanity

app = typer.Typer(
    name="ccalens",
    help="How similar are the representations of neural networks? CCA, SVCCA and PWCCA "
    "(Morcos, Raghu & Bengio 2018). Arrays are (datapoints, neurons).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from ..version import __version__

        typer.echo(f"ccalens {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks instead of one-line errors."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    _common.STATE["debug"] = debug


app.command("compare")(compare.compare)
app.command("compare-models")(compare_models.compare_models)
app.command("info")(info.info)
app.command("extract")(extract.extract)
app.command("reproduce")(reproduce.reproduce)
app.command("demo")(demo.demo)
app.command("matrix")(matrix.matrix)
app.command("sanity")(sanity.sanity)


def run() -> None:  # console-script entry point
    import sys

    args = sys.argv[1:]
    if "--debug" in args[1:]:  # also accepted after the command: ccalens compare a b --debug
        args = ["--debug"] + [a for a in args if a != "--debug"]
    app(args=args, prog_name="ccalens")
