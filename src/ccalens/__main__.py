"""``ccalens`` and ``python -m ccalens``: the command line, or what to install for it.

The command line needs the ``cli`` extra (Typer, rich); a plain ``pip install ccalens``
installs the library and this entry point, which then says what to install instead of
failing with an import traceback.
"""

from __future__ import annotations

import sys


def main() -> None:
    try:
        import rich  # noqa: F401
        import typer  # noqa: F401
    except ImportError as err:
        sys.stderr.write(f"error: the ccalens command line needs the 'cli' extra ({err.name} is not installed): "
                         f"pip install 'ccalens[cli]' (or 'ccalens[dev]' for every extra).\n")
        raise SystemExit(1) from None
    from .cli import run

    run()


if __name__ == "__main__":
    main()
