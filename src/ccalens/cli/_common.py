"""Shared CLI plumbing: error handling and output."""

from __future__ import annotations

import functools
import re
import sys

import typer

STATE = {"debug": False}

#: the library's words for an option, and the command line's (errors speak the CLI's language)
CLI_WORDS = (
    (re.compile(r"pass layout='neurons_first'"), "pass --neurons-first"),
    (re.compile(r"layout='neurons_first'"), "--neurons-first"),
    (re.compile(r"results=('[^']*')"), r"the results file \1"),
    (re.compile(r"symmetric=True"), "--symmetric"),
    (re.compile(r"symmetric=False"), "no --symmetric"),
    (re.compile(r"pass overwrite=True \(--overwrite on the command line\)"), "pass --overwrite"),
    (re.compile(r"; pass allow_incomplete=True only to inspect the partial data"), ""),
    (re.compile(r"compat='svcca'"), "--compat svcca"),
    (re.compile(r"compat=None"), "no --compat"),
    (re.compile(r"(?<!-)\bkeep="), "--keep="),
    (re.compile(r"(?<!-)\bepsilon="), "--epsilon="),
    (re.compile(r"\bpermutations must"), "--permutations must"),
    (re.compile(r"\bbootstrap must"), "--bootstrap must"),
    (re.compile(r"\bconfidence must"), "--confidence must"),
)


def cli_words(message: str) -> str:
    """A library message with its keyword arguments named as the command line's options."""
    for pattern, replacement in CLI_WORDS:
        message = pattern.sub(replacement, message)
    return message


def friendly(fn):
    """Run a command; library errors become one message on stderr and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from ..datasets import DatasetError
        from ..store import StoreError

        try:
            return fn(*args, **kwargs)
        except Exception as err:
            if STATE["debug"] or hasattr(err, "exit_code"):  # Typer/Click's own exits pass through
                raise
            # extraction errors exist only once the command has loaded torch (not imported here:
            # a command that does not need torch should not spend seconds importing it)
            extraction = sys.modules.get("ccalens.extract.policy")
            library = (ValueError, TypeError, MemoryError, StoreError, DatasetError, FileNotFoundError,
                       ImportError) + (
                (extraction.ExtractionError,) if extraction else ())
            if isinstance(err, library):
                typer.echo(f"error: {cli_words(str(err))}", err=True)
            else:  # anything else (a corrupt file, an OS error): still one line
                detail = str(err).strip().splitlines()[0] if str(err).strip() else "(no message)"
                typer.echo(f"error: {type(err).__name__}: {detail} (run with --debug for the traceback)", err=True)
            raise typer.Exit(code=1) from None

    return wrapper


def check_positive(name: str, value, allow_zero: bool = False) -> None:
    """Counts and sizes from the command line: a clear error for zero or negative ones."""
    if value is not None and (value < 0 or (value == 0 and not allow_zero)):
        raise ValueError(f"{name} must be {'0 or more' if allow_zero else 'at least 1'}; got {value}.")


def check_out_dir(out) -> None:
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a folder (it is created if missing).")


def console():
    from rich.console import Console

    # piped or redirected output has no terminal width: do not cut numbers at 80 columns
    return Console(file=sys.stdout, soft_wrap=True, width=None if sys.stdout.isatty() else 240)


def draw_progress():
    """A context in which permutation nulls, bootstraps and jackknives show a rich progress
    bar on stderr, with the time left (nothing when stderr is not a terminal)."""
    import contextlib

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from ..core.resampling import progress

    console = Console(stderr=True)
    if not console.is_terminal:
        return contextlib.nullcontext()
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                   console=console, transient=True)
    tasks: dict = {}

    def report(kind, done, total):
        task = tasks.get(kind)
        if task is None or bar.tasks[task].total != total or done < bar.tasks[task].completed:
            task = tasks[kind] = bar.add_task(kind, total=total)
        bar.update(task, completed=done)

    stack = contextlib.ExitStack()
    stack.enter_context(bar)
    stack.enter_context(progress(report))
    return stack


def measure_help(all_: bool = False) -> str:
    """The --measure help: every registered measure's name (and "all" where it applies)."""
    from ..core.registry import names

    return "Which measure: " + ", ".join(names()) + (", or all." if all_ else ".")


def json_text(payload) -> str:
    """``payload`` as JSON text that any parser reads: a non-finite number (which no measure
    should give, but a user-registered one might) becomes null, never NaN or Infinity."""
    import json
    import math

    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v

    return json.dumps(clean(payload), indent=2, allow_nan=False)
