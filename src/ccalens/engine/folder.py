"""A results folder for every pair of a store's arrays (``ccalens matrix``): the pairs
(SQLite, resumable, one writer at a time), their table (Parquet, CSV), the clustering, a
heatmap and a dendrogram, and a summary of the nulls and intervals."""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Callable

from ..core import intervals, registry
from ..core.intervals import MISSED_TARGET, draws_text, few_datapoints_note, reports_correction
from ..core.draws import few_draws_note
from ..core.resampling import check_options, default_method
from ..locks import LockedError, exclusive
from ..store import ActivationStore
from .api import pairwise
from .database import remove

__all__ = ["matrix_folder"]


def matrix_folder(store, out, measure: str = "pwcca", *, arrays: str | None = None, resume: bool = False,
                  overwrite: bool = False, symmetric: bool = False, clusters: int | None = None, scheduler=None,
                  permutations: int = 0, bootstrap: int = 0, confidence: float = 0.95, interval: str | None = None,
                  seed: int = 0, block: int | None = None, log: Callable[[str], None] = print):
    """Compare every pair of ``store``'s arrays (those matching the pattern ``arrays``) into
    the folder ``out``. An earlier run's results are kept with ``resume`` (only the missing
    pairs are computed) or deleted with ``overwrite``, never implicitly; a second run on the
    same folder is refused while the first writes. Returns the :class:`PairwiseResult`."""
    spec = registry.check_measure(measure)  # every option is checked before an earlier run's results are touched
    if symmetric and not spec.directed:
        raise ValueError("--symmetric folds PWCCA's directed matrix; the other measures are symmetric already.")
    check_options(permutations, bootstrap, confidence, interval)
    out = Path(out)
    st = ActivationStore(store, mode="r")
    entries = [e for e in st.info() if arrays is None or fnmatch.fnmatch(e["name"], arrays)]
    incomplete = [e["name"] for e in entries if not e["complete"]]
    if incomplete:
        raise ValueError(f"{store} has incomplete arrays {incomplete} (their writer was interrupted); extract them "
                         f"again or exclude them with --arrays.")
    if len(entries) < 2:
        raise ValueError(f"{store} has {len(entries)} matching array(s); a matrix needs at least 2.")
    if clusters is not None and not 1 <= clusters <= len(entries):
        raise ValueError(f"the number of clusters must be an int from 1 to {len(entries)} (the arrays); got {clusters}.")
    if resume and overwrite:
        raise ValueError("--resume keeps an earlier run's results and --overwrite deletes them; pass one of them.")
    out.mkdir(parents=True, exist_ok=True)
    db = out / "pairs.sqlite"
    try:
        with exclusive(out / ".matrix.lock", wait=False):
            if db.exists() and not resume:
                if not overwrite:
                    raise ValueError(f"{out} already holds the results of an earlier run ({db.name}); pass --resume to "
                                     f"keep them and compute only the missing pairs, or --overwrite to start afresh.")
                remove(db)
            reps = {e["name"]: f"{store}:{e['name']}" for e in entries}
            result = pairwise(reps, measure, symmetric=symmetric, results=db, progress=True, scheduler=scheduler,
                              permutations=permutations, bootstrap=bootstrap, confidence=confidence,
                              interval=interval, seed=seed, block=block)
    except LockedError:
        raise ValueError(f"another ccalens matrix run is writing to {out} now; wait for it to finish (then "
                         f"--resume), or choose another --out.") from None
    _write(result, out, measure, clusters, db, permutations, bootstrap, confidence, interval, symmetric, log)
    return result


def _write(result, out, measure, clusters, db, permutations, bootstrap, confidence, interval, symmetric, log):
    import pandas as pd

    from .. import plot

    # every output names its measure: one folder (one pairs.sqlite) holds runs of several
    files = output_names(measure)
    table = pd.DataFrame(result.table)
    table["distance_is"] = registry.distance_label(measure)  # what the distance column is
    table.to_parquet(out / files["pairs"], index=False)
    table.to_csv(out / files["pairs_csv"], index=False)
    link, order, labels = plot.clustering(result, clusters)
    pd.DataFrame({"array": result.rows, "cluster": labels}).to_csv(out / files["clusters"], index=False)
    names = [result.rows[i] for i in order]
    pd.DataFrame(result.similarity[[*order]][:, order], index=names, columns=names).to_csv(out / files["matrix"])
    plot.heatmap(result, out / files["heatmap"], order=order, title=f"{measure} similarity, ordered by clustering")
    if link is not None:
        plot.dendrogram(result, link, labels, out / files["dendrogram"])
    log(f"{len(result.rows)} arrays, {result.computed} pairs computed, {result.reused} reused from {db}, "
        f"in {result.seconds:.1f} s")
    if permutations or bootstrap:
        off = table[table["row"] != table["column"]]
        directed = registry.MEASURES[measure].directed and not symmetric
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
            log(f"permutation null ({permutations} per pair): mean {off['null_mean'].mean():.4f}; {verdict}; "
                f"mean corrected similarity {off['corrected'].mean():.4f}")
        if bootstrap:
            method = interval or default_method(measure)
            family = registry.MEASURES[measure].family
            value = off["similarity"]
            outside = int(((value < off["ci_low"]) | (value > off["ci_high"])).sum())
            line = (f"{method} intervals ({draws_text(method, bootstrap)} per pair): mean {100 * confidence:g}% "
                    f"interval width {(off['ci_high'] - off['ci_low']).mean():.4f}; mean estimated bias "
                    f"{off['ci_bias'].mean():+.4f} (columns ci_low, ci_high, ci_bias)")
            if reports_correction(method, contains_estimate=not outside):
                line += (f"; {outside} of {len(off)} intervals exclude their similarity: they belong to the "
                         f"bias-corrected value, similarity - ci_bias")
            log(line)
            few = few_draws_note(method, intervals.draw_count(method, int(off["n"].iloc[0]), bootstrap))
            if few:
                log(f"warning: {few}")
            ranks = off[["row_rank", "column_rank"]].max(axis=1).dropna() if "row_rank" in off else []
            if len(ranks):
                note = few_datapoints_note(int(off["n"].iloc[0]), int(ranks.max()), family)
                if note:
                    log(f"warning: {note}")
            if method == default_method(measure) and MISSED_TARGET.get(family):
                log(f"note: {'; '.join(MISSED_TARGET[family].values())} (each where the data show it: see "
                    f"ccalens.core.regimes)")
    written = [files[k] for k in ("pairs", "pairs_csv", "clusters", "matrix", "heatmap")]
    written += [files["dendrogram"]] if link is not None else []
    log(f"{len(set(labels))} cluster(s); wrote {', '.join(written)} to {out}")


def output_names(measure: str) -> dict:
    """The files ``ccalens matrix`` writes for ``measure`` (each named by it)."""
    return {"pairs": f"{measure}-pairs.parquet", "pairs_csv": f"{measure}-pairs.csv",
            "clusters": f"{measure}-clusters.csv", "matrix": f"{measure}-matrix_reordered.csv",
            "heatmap": f"{measure}-heatmap.png", "dendrogram": f"{measure}-dendrogram.png"}
