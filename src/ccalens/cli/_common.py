"""Shared CLI plumbing: error handling and output."""

from __future__ import annotations

import functools
import sys

import typer

STATE = {"debug": False}


def friendly(fn):
    """Run a command; library errors become one message on stderr and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from ..datasets import DatasetError
        from ..store import StoreError

        handled: tuple = (ValueError, TypeError, StoreError, DatasetError, FileNotFoundError, ImportError)
        try:
            from ..extract import ExtractionError

            handled += (ExtractionError,)
        except ImportError:  # torch missing: extraction errors cannot occur
            pass
        try:
            return fn(*args, **kwargs)
        except handled as err:
            if STATE["debug"]:
                raise
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(code=1) from None

    return wrapper


def console():
    from rich.console import Console

    return Console(file=sys.stdout, soft_wrap=True)
