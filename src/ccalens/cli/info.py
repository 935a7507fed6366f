"""``ccalens info STORE``: what a store or activation file holds."""

from __future__ import annotations

from typing import Annotated

import typer

from . import _common


@_common.friendly
def info(
    store: Annotated[str, typer.Argument(help="A STORE.zarr directory, or an activation file.")],
    verify: Annotated[bool, typer.Option("--verify", help="Read every array of a store and check its content "
                                         "against what its writer recorded (exit code 1 if any is damaged).")] = False,
) -> None:
    """List arrays, shapes, completeness and metadata."""
    from pathlib import Path

    from rich.table import Table

    from ..store import ActivationStore, list_arrays, load_array

    path = Path(store)
    table = Table(title=str(path))
    for col in ("array", "shape", "dtype", "complete", "metadata"):
        table.add_column(col)
    bad = []
    if path.is_dir() and (path / "zarr.json").exists():
        st = ActivationStore(path, mode="r")
        states = st.verify() if verify else {}
        if verify:
            table.add_column("content")
        for entry in st.info():
            meta = ", ".join(f"{k}={v}" for k, v in sorted(entry["metadata"].items()) if k != "content_sha256")
            row = [entry["name"], str(entry["shape"]), entry["dtype"], "yes" if entry["complete"] else "NO (interrupted)", meta]
            if verify:
                row.append(states[entry["name"]])
                bad += [entry["name"]] if states[entry["name"]].startswith("damaged") else []
            table.add_row(*row)
    else:
        if not path.exists():
            raise FileNotFoundError(f"no such file or store: {path}")
        for key in list_arrays(path):
            arr = load_array(f"{path}:{key}" if key else path)
            table.add_row(key or path.name, str(tuple(arr.shape)), str(arr.dtype), "yes", "")
    _common.console().print(table)
    if bad:
        raise ValueError(f"{len(bad)} damaged array(s) in {path}: {', '.join(bad)}; extract them again "
                         f"(with --overwrite) or restore the store from a copy.")
