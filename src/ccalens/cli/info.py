"""``ccalens info STORE``: what a store or activation file holds."""

from __future__ import annotations

from typing import Annotated

import typer

from . import _common


@_common.friendly
def info(
    store: Annotated[str, typer.Argument(help="A STORE.zarr directory, or an activation file.")],
) -> None:
    """List arrays, shapes, completeness and metadata."""
    from pathlib import Path

    from rich.table import Table

    from ..store import ActivationStore, list_arrays, load_array

    path = Path(store)
    table = Table(title=str(path))
    for col in ("array", "shape", "dtype", "complete", "metadata"):
        table.add_column(col)
    if path.is_dir() and (path / "zarr.json").exists():
        for entry in ActivationStore(path, mode="r").info():
            meta = ", ".join(f"{k}={v}" for k, v in sorted(entry["metadata"].items()))
            table.add_row(entry["name"], str(entry["shape"]), entry["dtype"], "yes" if entry["complete"] else "NO (interrupted)", meta)
    else:
        if not path.exists():
            raise FileNotFoundError(f"no such file or store: {path}")
        for key in list_arrays(path):
            arr = load_array(f"{path}:{key}" if key else path)
            table.add_row(key or path.name, str(tuple(arr.shape)), str(arr.dtype), "yes", "")
    _common.console().print(table)
