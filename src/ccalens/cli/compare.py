"""``ccalens compare A B``: similarity of two stored representations."""

from __future__ import annotations

import json
from enum import Enum
from typing import Annotated, Optional

import numpy as np
import typer

from . import _common


class Measure(str, Enum):
    pwcca = "pwcca"
    svcca = "svcca"
    mean = "mean"
    cca = "cca"
    all = "all"


def _results(x, y, measure: Measure, symmetric: bool, compat, epsilon: float, keep: float, layout: str):
    import ccalens

    wanted = ["pwcca", "svcca", "mean", "cca"] if measure == Measure.all else [measure.value]
    fx = fy = None
    if compat is None:  # factorise once, reuse for every measure
        fx = ccalens.factorize(x, layout=layout, name="A")
        fy = ccalens.factorize(y, layout=layout, name="B")
    out = {}
    for m in wanted:
        if m == "pwcca":
            r = ccalens.pwcca(fx if fx else x, fy if fy else y, symmetric=symmetric, compat=compat, epsilon=epsilon, layout=layout)
            out[m] = {"similarity": r.similarity, "distance": r.distance, "weights_from": r.weights_from, "c": len(r.rho)}
            if symmetric:
                out[m].update(forward=r.forward, reverse=r.reverse)
        elif m == "mean":
            r = ccalens.mean_cca(fx if fx else x, fy if fy else y, compat=compat, epsilon=epsilon, layout=layout)
            out[m] = {"similarity": r.similarity, "distance": r.distance, "c": len(r.rho)}
        elif m == "svcca":
            if compat:
                raise ValueError("--compat applies to pwcca and mean only; google/svcca has no SVCCA function to match.")
            r = ccalens.svcca(fx, fy, keep=keep)
            out[m] = {"similarity": r.similarity, "distance": r.distance, "x_components": r.x_components, "y_components": r.y_components}
        else:
            if compat:
                raise ValueError("--compat applies to pwcca and mean only.")
            r = ccalens.cca(fx, fy, epsilon=epsilon)
            rho = np.asarray(r.rho)
            out[m] = {
                "similarity": r.similarity,
                "distance": r.distance,
                "rho_first": [float(v) for v in rho[:10]],
                "x_rank": r.x_rank,
                "y_rank": r.y_rank,
                "x_dropped": len(r.x_dropped),
                "y_dropped": len(r.y_dropped),
            }
    return out


@_common.friendly
def compare(
    a: Annotated[str, typer.Argument(help="Array A: a .npy/.npz/.safetensors/.pt/.h5 file or STORE.zarr, with :KEY when it holds several.")],
    b: Annotated[str, typer.Argument(help="Array B, the same way.")],
    measure: Annotated[Measure, typer.Option("--measure", "-m", help="Which measure.")] = Measure.pwcca,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    neurons_first: Annotated[bool, typer.Option("--neurons-first", help="The arrays are (neurons, datapoints), as in google/svcca.")] = False,
    symmetric: Annotated[bool, typer.Option("--symmetric", help="PWCCA: average both directions.")] = False,
    compat: Annotated[Optional[str], typer.Option("--compat", help="'svcca' reproduces google/svcca's numbers (pwcca, mean).")] = None,
    epsilon: Annotated[float, typer.Option("--epsilon", help="Ridge (google/svcca's epsilon with --compat svcca).")] = 0.0,
    keep: Annotated[float, typer.Option("--keep", help="SVCCA: share of variance kept on each side.")] = 0.99,
) -> None:
    """How similar are two representations? Prints similarity and distance per measure."""
    import warnings

    from ..store import load_array

    x, y = load_array(a), load_array(b)
    layout = "neurons_first" if neurons_first else "datapoints_first"
    rows = [arr.shape[1 if neurons_first else 0] if arr.ndim == 2 else None for arr in (x, y)]
    if None not in rows and rows[0] != rows[1]:
        raise ValueError(
            f"A and B must have the same number of datapoints: A is {x.shape} and B is {y.shape} "
            f"as ({'neurons, datapoints' if neurons_first else 'datapoints, neurons'}). "
            + ("" if neurons_first else "If the files are (neurons, datapoints), add --neurons-first.")
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = _results(x, y, measure, symmetric, compat, epsilon, keep, layout)
    notes = sorted({str(w.message) for w in caught})
    n = x.shape[1] if neurons_first else x.shape[0]
    if as_json:
        payload = {"a": a, "b": b, "n_samples": int(n), "measures": results, "warnings": notes}
        typer.echo(json.dumps(payload, indent=2))
        return
    from rich.table import Table

    table = Table(title=f"{a}  vs  {b}  ({n:,} datapoints)")
    table.add_column("measure")
    table.add_column("similarity", justify="right")
    table.add_column("distance", justify="right")
    table.add_column("details")
    for m, r in results.items():
        details = ", ".join(f"{k}={v}" for k, v in r.items() if k not in ("similarity", "distance", "rho_first"))
        table.add_row(m, f"{r['similarity']:.6f}", f"{r['distance']:.6f}", details)
    out = _common.console()
    out.print(table)
    for note in notes:
        out.print(f"[yellow]warning:[/yellow] {note}")
