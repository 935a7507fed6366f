"""Every ``ccalens`` command in the documentation's shell examples (the site's pages and the
README) is parsed by the command line's own parser: a renamed command or option, or a
value of the wrong type, fails here. (The Python examples run as doctests; the shell ones
would need the reader's files, so they are parsed, not run.)"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

typer = pytest.importorskip("typer")

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "docs").rglob("*.md")) + [ROOT / "README.md"]


def shell_commands():
    for page in PAGES:
        for block in re.findall(r"```bash\n(.*?)```", page.read_text(), flags=re.S):
            block = block.replace("\\\n", " ")
            for line in block.splitlines():
                line = line.split(" # ")[0].split("  #")[0].strip()
                if line.startswith("ccalens "):
                    yield page.relative_to(ROOT).as_posix(), shlex.split(line)[1:]


COMMANDS = list(shell_commands())


def test_the_docs_have_shell_examples_to_check():
    assert len(COMMANDS) >= 20 and {args[0] for _, args in COMMANDS} >= {"compare", "extract", "matrix", "sanity",
                                                                          "reproduce", "compare-models"}


@pytest.mark.parametrize("page, args", COMMANDS, ids=[f"{p}:{' '.join(a)[:40]}" for p, a in COMMANDS])
def test_shell_example_parses(page, args):
    from ccalens.cli.app import app

    import click

    group = typer.main.get_command(app)
    args = [a for a in args if a != "--debug"]  # the group's own option
    parent = click.Context(group, info_name="ccalens")
    command = group.get_command(parent, args[0])
    assert command is not None, f"{page}: no command {args[0]!r}"
    with command.make_context(args[0], list(args[1:]), parent=parent, resilient_parsing=False) as sub:
        assert sub.params is not None


def test_a_wrong_option_would_fail():
    import click

    from ccalens.cli.app import app

    group = typer.main.get_command(app)
    parent = click.Context(group, info_name="ccalens")
    with pytest.raises(Exception, match="No such option: --colour"):  # typer's own copy of click's UsageError
        group.get_command(parent, "compare").make_context("compare", ["a.npy", "b.npy", "--colour"], parent=parent)
