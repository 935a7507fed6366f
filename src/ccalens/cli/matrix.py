"""``ccalens matrix STORE``: every pair of a store's arrays, with figures and clusters."""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Annotated, Optional

import typer

from . import _common


@_common.friendly
def matrix(
    store: Annotated[str, typer.Argument(help="A STORE.zarr directory of activation arrays.")],
    measure: Annotated[str, typer.Option("--measure", "-m", help="pwcca, svcca, mean_cca, cca, cka, cka_debiased, cka_rbf, procrustes, cosine or euclidean.")] = "pwcca",
    out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("results"),
    resume: Annotated[bool, typer.Option("--resume", help="Keep the pairs finished by an earlier (possibly killed) run.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Delete an earlier run's results in --out and start afresh.")] = False,
    symmetric: Annotated[bool, typer.Option("--symmetric", help="PWCCA: average both directions.")] = False,
    arrays: Annotated[Optional[str], typer.Option("--arrays", help="Only arrays matching this pattern, e.g. 'net*/conv2'.")] = None,
    clusters: Annotated[Optional[int], typer.Option("--clusters", help="Number of clusters (default: largest gap).")] = None,
    scheduler: Annotated[Optional[str], typer.Option("--scheduler", help="A Dask scheduler address, or 'local' for a local cluster.")] = None,
    permutations: Annotated[int, typer.Option("--permutations", help="Per pair: shuffled-datapoints null (null_mean, null_sd, p_value, corrected columns).")] = 0,
    bootstrap: Annotated[int, typer.Option("--bootstrap", help="Per pair: bootstrap resamples for a confidence interval (ci_low, ci_high, and the bias ci_bias).")] = 0,
    confidence: Annotated[float, typer.Option("--confidence", help="Level of the bootstrap interval.")] = 0.95,
    interval: Annotated[Optional[str], typer.Option("--interval", help="Bootstrap interval method: percentile, basic, bca or bias_corrected (default: the one measured to cover best, see ccalens.core.resampling).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the permutations and resamples.")] = 0,
    block: Annotated[Optional[int], typer.Option("--block", help="Arrays per block of the batched product "
                                                 "(default: about 1 GB of bases); smaller blocks checkpoint more often.")] = None,
) -> None:
    """Similarity of every pair of arrays in STORE: table (Parquet, CSV), heatmap, dendrogram."""
    from ..store import ActivationStore

    from ..core import registry
    from ..core.resampling import check_options

    # every option is checked before an earlier run's results are touched
    registry.check_measure(measure)
    if symmetric and measure != "pwcca":
        raise ValueError("--symmetric folds PWCCA's directed matrix; the other measures are symmetric already.")
    check_options(permutations, bootstrap, confidence, interval)
    _common.check_positive("--block", block)
    _common.check_out_dir(out)
    st = ActivationStore(store, mode="r")
    entries = [e for e in st.info() if arrays is None or fnmatch.fnmatch(e["name"], arrays)]
    incomplete = [e["name"] for e in entries if not e["complete"]]
    if incomplete:
        raise ValueError(f"{store} has incomplete arrays {incomplete} (their writer was interrupted); extract them again or exclude them with --arrays.")
    if len(entries) < 2:
        raise ValueError(f"{store} has {len(entries)} matching array(s); a matrix needs at least 2.")
    if clusters is not None and not 1 <= clusters <= len(entries):
        raise ValueError(f"the number of clusters must be an int from 1 to {len(entries)} (the arrays); got {clusters}.")
    if resume and overwrite:
        raise ValueError("--resume keeps an earlier run's results and --overwrite deletes them; pass one of them.")
    out.mkdir(parents=True, exist_ok=True)
    db = out / "pairs.sqlite"
    from ..locks import LockedError, exclusive

    try:
        with exclusive(out / ".matrix.lock", wait=False):
            if db.exists() and not resume:
                if not overwrite:
                    raise ValueError(f"{out} already holds the results of an earlier run ({db.name}); pass --resume to "
                                     f"keep them and compute only the missing pairs, or --overwrite to start afresh.")
                from ..engine.database import remove

                remove(db)
            _run(store, entries, measure, out, db, symmetric, clusters, scheduler, permutations, bootstrap, confidence,
                 seed, block, interval)
    except LockedError:
        raise ValueError(f"another ccalens matrix run is writing to {out} now; wait for it to finish (then "
                         f"--resume), or choose another --out.") from None


def _run(store, entries, measure, out, db, symmetric, clusters, scheduler, permutations, bootstrap, confidence, seed,
         block, interval=None) -> None:
    from .. import plot
    from ..engine import pairwise

    reps = {e["name"]: f"{store}:{e['name']}" for e in entries}
    result = pairwise(reps, measure, symmetric=symmetric, results=db, progress=True, scheduler=scheduler,
                      permutations=permutations, bootstrap=bootstrap, confidence=confidence, interval=interval, seed=seed,
                      block=block)
    import pandas as pd

    table = pd.DataFrame(result.table)
    table.to_parquet(out / "pairs.parquet", index=False)
    table.to_csv(out / "pairs.csv", index=False)
    link, order, labels = plot.clustering(result, clusters)
    pd.DataFrame({"array": result.rows, "cluster": labels}).to_csv(out / "clusters.csv", index=False)
    names = [result.rows[i] for i in order]
    pd.DataFrame(result.similarity[[*order]][:, order], index=names, columns=names).to_csv(out / "matrix_reordered.csv")
    plot.heatmap(result, out / "heatmap.png", order=order, title=f"{measure} similarity, ordered by clustering")
    if link is not None:
        plot.dendrogram(result, link, labels, out / "dendrogram.png")
    typer.echo(f"{len(reps)} arrays, {result.computed} pairs computed, {result.reused} reused from {db}, in {result.seconds:.1f} s")
    if permutations or bootstrap:
        off = table[table["row"] != table["column"]]
        directed = measure == "pwcca" and not symmetric
        if not directed:  # both directions are the same pair: count it once
            off = off[off["row"] < off["column"]]
        if permutations:
            pairs = f"{len(off)} {'directed ' if directed else ''}pairs"
            floor = 1.0 / (permutations + 1)  # the smallest p-value N permutations can give (Phipson & Smyth)
            if floor > 0.05:
                verdict = (f"no p-value can reach 0.05 with {permutations} permutations (the smallest possible is "
                           f"1/{permutations + 1} = {floor:.3f}; use at least 19); smallest p-value "
                           f"{off['p_value'].min():.3f} in {pairs}")
            else:
                verdict = f"{int((off['p_value'] <= 0.05).sum())} of {pairs} with p <= 0.05"
            typer.echo(f"permutation null ({permutations} per pair): mean {off['null_mean'].mean():.4f}; {verdict}; "
                       f"mean corrected similarity {off['corrected'].mean():.4f}")
        if bootstrap:
            from ..core.resampling import DEFAULT_METHOD, few_datapoints_note

            method = interval or DEFAULT_METHOD
            value = off["similarity"]
            outside = int(((value < off["ci_low"]) | (value > off["ci_high"])).sum())
            line = (f"bootstrap ({bootstrap} resamples per pair, {method} intervals): mean {100 * confidence:g}% "
                    f"interval width {(off['ci_high'] - off['ci_low']).mean():.4f}; mean bootstrap bias "
                    f"{off['ci_bias'].mean():+.4f} (columns ci_low, ci_high, ci_bias)")
            if method in ("basic", "bias_corrected") or outside:
                line += (f"; {outside} of {len(off)} intervals exclude their similarity: they belong to the "
                         f"bias-corrected value, similarity - ci_bias")
            typer.echo(line)
            ranks = off[["row_rank", "column_rank"]].max(axis=1).dropna() if "row_rank" in off else []
            if len(ranks):
                note = few_datapoints_note(int(off["n"].iloc[0]), int(ranks.max()))
                if note:
                    typer.echo(f"warning: {note}")
    typer.echo(f"{len(set(labels))} cluster(s); wrote pairs.parquet, pairs.csv, clusters.csv, matrix_reordered.csv, heatmap.png, dendrogram.png to {out}")
