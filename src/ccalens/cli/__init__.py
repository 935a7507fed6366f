"""The ``ccalens`` command line: thin Typer wrappers around the library (:mod:`~ccalens.cli.app`
holds the application; each command has its module)."""

from .app import app, main, run

__all__ = ["app", "main", "run"]
