"""``ccalens compare A B``: similarity of two stored representations."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Optional

import typer

from ..core import registry
from ..core.intervals import reports_correction
from ..core.canonical import DEFAULT_KEEP
from . import _common


def _measure_choices() -> dict[str, str]:
    from ..core.registry import MEASURES

    return {name: name for name in (*MEASURES, "all")}  # the same names as the library, matrix and sanity


Measure = Enum("Measure", _measure_choices(), type=str)


def _interval_choices() -> dict[str, str]:
    from ..core.resampling import METHODS

    return {name: name for name in METHODS}


Interval = Enum("Interval", _interval_choices(), type=str)


def _uncertainty(r) -> dict:
    out = {}
    if r.null is not None:
        out.update(null_mean=r.null.mean, null_sd=r.null.sd, p_value=r.null.p_value, corrected=r.null.corrected,
                   permutations=r.null.permutations)
    if r.bootstrap is not None:
        b = r.bootstrap
        out.update(ci_low=b.low, ci_high=b.high, confidence=b.confidence, resamples=b.resamples, ci_method=b.method,
                   ci_bias=b.bias, ci_corrected=b.corrected, ci_contains_estimate=b.contains_estimate,
                   ci_note=b.note)
    return out


def _layout_hint(x, y, neurons_first: bool) -> str | None:
    """A word where both arrays have more neurons than datapoints: perhaps they are
    (neurons, datapoints), as google/svcca stores them (a transposed pair of equal shapes
    looks like a valid one and gives PWCCA 1)."""
    rows, cols = (1, 0) if neurons_first else (0, 1)
    if x.shape[cols] > x.shape[rows] and y.shape[cols] > y.shape[rows]:
        if neurons_first:
            return (f"both arrays have more neurons ({x.shape[cols]:,}, {y.shape[cols]:,}) than datapoints "
                    f"({x.shape[rows]:,}) as read with --neurons-first: if they are (datapoints, neurons), leave "
                    f"--neurons-first out.")
        return (f"both arrays have more neurons ({x.shape[cols]:,}, {y.shape[cols]:,}) than datapoints "
                f"({x.shape[rows]:,}): if the files are (neurons, datapoints), as google/svcca stores them, add "
                f"--neurons-first.")
    return None


def _results(x, y, measure, symmetric: bool, compat, epsilon: float, keep: float, layout: str,
             permutations: int = 0, bootstrap: int = 0, confidence: float = 0.95, seed: int = 0,
             interval: str | None = None, subset: int | None = None):
    from ..core.compare import compare_measures

    subsets: dict = {}
    results, skipped = compare_measures(
        x, y, measure, layout=layout, symmetric=symmetric, compat=compat, epsilon=epsilon, keep=keep,
        permutations=permutations, bootstrap=bootstrap, confidence=confidence, seed=seed, interval=interval,
        subset=subset, subsets=subsets)
    out = {m: {"similarity": r.similarity, "distance": r.distance, "distance_is": registry.distance_label(m),
               **r.details(), **_uncertainty(r),
               **({"subset": subsets[m]} if m in subsets else {})}
           for m, r in results.items()}
    return out, skipped


@_common.friendly
def compare(
    a: Annotated[str, typer.Argument(help="Array A: a .npy/.npz/.safetensors/.pt/.h5 file or STORE.zarr, with :KEY when it holds several.")],
    b: Annotated[str, typer.Argument(help="Array B, the same way.")],
    measure: Annotated[Optional[list[Measure]], typer.Option("--measure", "-m", metavar="NAME", help="Repeat for several (default pwcca). " + _common.measure_help(all_=True))] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    neurons_first: Annotated[bool, typer.Option("--neurons-first", help="The arrays are (neurons, datapoints), as in google/svcca.")] = False,
    symmetric: Annotated[bool, typer.Option("--symmetric", help="PWCCA: average both directions.")] = False,
    compat: Annotated[Optional[str], typer.Option("--compat", help="'svcca' reproduces google/svcca's numbers (pwcca, mean).")] = None,
    epsilon: Annotated[float, typer.Option("--epsilon", help="Ridge (google/svcca's epsilon with --compat svcca).")] = 0.0,
    keep: Annotated[float, typer.Option("--keep", help="SVCCA: share of variance kept on each side.")] = DEFAULT_KEEP,
    permutations: Annotated[int, typer.Option("--permutations", help="Shuffled-datapoints null: its mean and sd, a p-value and the baseline-corrected similarity.")] = 0,
    bootstrap: Annotated[int, typer.Option("--bootstrap", help="Draws of the datapoints for a confidence interval: bootstrap resamples, half-samples or jackknife groups, as --interval draws them.")] = 0,
    confidence: Annotated[float, typer.Option("--confidence", help="Level of the bootstrap interval.")] = 0.95,
    interval: Annotated[Optional[Interval], typer.Option("--interval", help="Interval method (default: the measure family's, chosen by its measured coverage in benchmarks/interval_coverage.py; see ccalens.core.intervals).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the permutations and resamples.")] = 0,
    subset: Annotated[Optional[int], typer.Option("--subset", metavar="N", help="The measures of the datapoints (RBF CKA, RSA, predictivity, the neighbour measures: n x n matrices) on a random subset of N datapoints (seeded by --seed; the output says so) when there are more.")] = None,
    versus: Annotated[Optional[str], typer.Option("--versus", metavar="C", help="A third array C: is B or C closer to A? Prints s(A, B) - s(A, C) with an interval from the same draws for both terms and a p-value (--bootstrap draws, 1000 if not given).")] = None,
) -> None:
    """How similar are two representations? Prints similarity and distance per measure,
    with a permutation null and a bootstrap interval when asked for; with --versus C, which
    of B and C is closer to A."""
    import warnings

    from ..store import load_array

    x, y = load_array(a), load_array(b)
    z = None if versus is None else load_array(versus)
    for name, arr in (("A", x), ("B", y), ("C", z)):
        if arr is None:
            continue
        if arr.ndim != 2:
            raise ValueError(f"{name} has shape {tuple(arr.shape)}; compare needs 2-D arrays "
                             f"({'neurons, datapoints' if neurons_first else 'datapoints, neurons'}).")
    names = list(dict.fromkeys(m.value for m in (measure or [Measure.pwcca])))
    selection = "all" if "all" in names else names  # every -m counts; "all" includes the rest
    if symmetric and not ("all" in names or any(registry.MEASURES[m].directed for m in names)):
        raise ValueError("--symmetric averages PWCCA's two directions; the other measures are symmetric already.")
    layout = "neurons_first" if neurons_first else "datapoints_first"
    axis = 1 if neurons_first else 0
    for name, arr in (("B", y), ("C", z)):
        if arr is not None and arr.shape[axis] != x.shape[axis]:
            raise ValueError(
                f"A and {name} must have the same number of datapoints: A is {x.shape} and {name} is {arr.shape} "
                f"as ({'neurons, datapoints' if neurons_first else 'datapoints, neurons'}). "
                + ("" if neurons_first else "If the files are (neurons, datapoints), add --neurons-first.")
            )
    if z is not None:
        if permutations:
            raise ValueError("--versus gives a paired interval and p-value of the difference; --permutations "
                             "(a null of one similarity) does not apply. Leave one of them out.")
        _versus(a, b, versus, x, y, z, selection, as_json, layout, symmetric, compat, epsilon, keep, bootstrap or 1000,
                confidence, None if interval is None else interval.value, seed)
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with _common.draw_progress():  # permutations, resamples: a bar with the time left (on a terminal)
            results, skipped = _results(x, y, selection, symmetric, compat, epsilon, keep, layout,
                                        permutations, bootstrap, confidence, seed,
                                        None if interval is None else interval.value, subset)
    notes = sorted({str(w.message) for w in caught})
    n = x.shape[1] if neurons_first else x.shape[0]
    hint = _layout_hint(x, y, neurons_first)
    if hint:
        notes.append(hint)
    if as_json:
        payload = {"a": a, "b": b, "n_samples": int(n), "measures": results, "skipped": skipped, "warnings": notes}
        typer.echo(_common.json_text(payload))
        return
    from rich.table import Table

    table = Table(title=f"{a}  vs  {b}  ({n:,} datapoints)")
    table.add_column("measure")
    table.add_column("similarity", justify="right")
    table.add_column("distance", justify="right")
    table.add_column("distance is")
    if permutations:
        table.add_column(f"null mean ± sd ({permutations} perms)", justify="right")
        table.add_column("p", justify="right")
        table.add_column("corrected", justify="right")
    methods = {r["ci_method"] for r in results.values() if "ci_method" in r}
    if bootstrap:
        from ..core.intervals import draws_text

        head = (f"{methods.pop()} CI ({draws_text(next(iter(results.values()))['ci_method'], bootstrap)})"
                if len(methods) == 1 else "CI (method per measure)")
        table.add_column(f"{100 * confidence:g}% {head}", justify="right")
    table.add_column("details")
    hidden = {"subset", "similarity", "distance", "distance_is", "rho_first", "null_mean", "null_sd", "p_value", "corrected",
              "permutations", "ci_low", "ci_high", "confidence", "resamples", "ci_method", "ci_bias", "ci_corrected",
              "ci_contains_estimate", "ci_note"}
    for m, r in results.items():
        details = ", ".join(f"{k}={v}" for k, v in r.items() if k not in hidden)
        if "subset" in r:
            sub = r["subset"]
            details = (f"on a random subset of {sub['datapoints']:,} of {sub['of']:,} datapoints (seed {sub['seed']})"
                       + (f", {details}" if details else ""))
        cells = [m, f"{r['similarity']:.6f}", f"{r['distance']:.6f}", registry.distance_label(m)]
        if permutations:
            cells += [f"{r['null_mean']:.4f} ± {r['null_sd']:.4f}", f"{r['p_value']:.3g}", f"{r['corrected']:.4f}"]
        if bootstrap:
            ci = f"[{r['ci_low']:.4f}, {r['ci_high']:.4f}]"
            if methods:  # the measures use different methods: each cell names its own
                from ..core.intervals import draws_text

                ci = f"{r['ci_method']} ({draws_text(r['ci_method'], r['resamples'])}) " + ci
            if reports_correction(r["ci_method"], r["ci_contains_estimate"]):
                # the interval belongs to the bias-corrected value: print it beside
                ci += f" around {r['ci_corrected']:.4f} (bias {r['ci_bias']:+.4f})"
            cells.append(ci)
        table.add_row(*cells, details)
    _print(table, skipped, notes, [r.get("ci_note") for r in results.values()])


def _versus(a, b, c, x, y, z, measure, as_json, layout, symmetric, compat, epsilon, keep, draws, confidence,
            interval, seed) -> None:
    """``compare A B --versus C``: s(A, B) - s(A, C) per measure, from shared draws."""
    import warnings

    from ..core.compare import measure_options, select_measures
    from ..core.paired import paired_difference
    from ..core.registry import MEASURES

    if compat is not None:
        raise ValueError("--versus computes ccalens's measures on shared draws; --compat (google/svcca's "
                         "numbers for one pair) does not apply to it.")
    n = x.shape[1] if layout == "neurons_first" else x.shape[0]
    wanted, skipped = select_measures(measure, {"A": x.shape, "B": y.shape, "C": z.shape}, layout)
    results = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with _common.draw_progress():
            for m in wanted:
                opts = measure_options(MEASURES[m], {"epsilon": epsilon, "symmetric": symmetric or None, "keep": keep})
                results[m] = paired_difference(x, y, z, m, bootstrap=draws, confidence=confidence, interval=interval,
                                               seed=seed, names=(f"B ({b})", f"C ({c})"), label=f"A ({a})",
                                               layout=layout, **opts)
    notes = sorted({str(w.message) for w in caught})
    if as_json:
        payload = {"a": a, "b": b, "c": c, "n_samples": int(n), "difference": "s(A, B) - s(A, C)",
                   "measures": {m: r.as_dict() for m, r in results.items()}, "skipped": skipped, "warnings": notes}
        typer.echo(_common.json_text(payload))
        return
    from rich.table import Table

    from ..core.intervals import draws_text

    table = Table(title=f"Is B or C closer to A?  A = {a}, B = {b}, C = {c}  ({n:,} datapoints)")
    for col in ("measure", "s(A, B)", "s(A, C)", "difference"):
        table.add_column(col, justify="left" if col == "measure" else "right")
    table.add_column(f"{100 * confidence:g}% CI (method, draws)", justify="right")
    table.add_column("p", justify="right")
    table.add_column("closer to A")
    for m, r in results.items():
        closer = "B" if r.low > 0 else "C" if r.high < 0 else "undecided"
        table.add_row(m, f"{r.similarity_first:.4f}", f"{r.similarity_second:.4f}", f"{r.difference:+.4f}",
                      f"[{r.low:+.4f}, {r.high:+.4f}] ({r.method}, {draws_text(r.method, r.draws)})",
                      r.p_text.removeprefix("p = "), closer)
    _print(table, skipped, notes, [r.note for r in results.values()])


def _print(table, skipped: dict, warnings: list, interval_notes) -> None:
    """The table, then what was skipped and why, the warnings and the intervals' notes (each once)."""
    out = _common.console()
    out.print(table)
    for m, why in skipped.items():
        out.print(f"skipped {m}: {why}")
    for note in warnings:
        out.print(f"[yellow]warning:[/yellow] {note}")
    for note in sorted({n for n in interval_notes if n}):
        out.print(f"[yellow]interval:[/yellow] {note}")
