"""``ccalens matrix STORE``: every pair of a store's arrays, with figures and clusters."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..core.intervals import METHODS
from . import _common


@_common.friendly
def matrix(
    store: Annotated[str, typer.Argument(help="A STORE.zarr directory of activation arrays.")],
    measure: Annotated[str, typer.Option("--measure", "-m", metavar="NAME", help=_common.measure_help())] = "pwcca",
    out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("results"),
    resume: Annotated[bool, typer.Option("--resume", help="Keep the pairs finished by an earlier (possibly killed) run.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Delete an earlier run's results in --out and start afresh.")] = False,
    symmetric: Annotated[bool, typer.Option("--symmetric", help="PWCCA: average both directions.")] = False,
    arrays: Annotated[Optional[str], typer.Option("--arrays", help="Only arrays matching this pattern, e.g. 'net*/conv2'.")] = None,
    clusters: Annotated[Optional[int], typer.Option("--clusters", help="Number of clusters (default: largest gap).")] = None,
    scheduler: Annotated[Optional[str], typer.Option("--scheduler", help="A Dask scheduler address, or 'local' for a local cluster.")] = None,
    permutations: Annotated[int, typer.Option("--permutations", help="Per pair: shuffled-datapoints null (null_mean, null_sd, p_value, corrected columns).")] = 0,
    bootstrap: Annotated[int, typer.Option("--bootstrap", help="Per pair: draws of the datapoints (resamples, half-samples or jackknife groups, by --interval) for a confidence interval (ci_low, ci_high, and the estimated bias ci_bias).")] = 0,
    confidence: Annotated[float, typer.Option("--confidence", help="Level of the bootstrap interval.")] = 0.95,
    interval: Annotated[Optional[str], typer.Option("--interval", help=f"Interval method: {', '.join(METHODS)} (default: the measure family's, chosen by its measured coverage in benchmarks/interval_coverage.py; see ccalens.core.intervals).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the permutations and resamples.")] = 0,
    block: Annotated[Optional[int], typer.Option("--block", help="Arrays per block of the batched product "
                                                 "(default: about 1 GB of bases); smaller blocks checkpoint more often.")] = None,
) -> None:
    """Similarity of every pair of arrays in STORE: table (Parquet, CSV), heatmap, dendrogram."""
    _common.check_positive("--block", block)
    _common.check_out_dir(out)
    from ..engine.folder import matrix_folder

    matrix_folder(store, out, measure, arrays=arrays, resume=resume, overwrite=overwrite, symmetric=symmetric,
                  clusters=clusters, scheduler=scheduler, permutations=permutations, bootstrap=bootstrap,
                  confidence=confidence, interval=interval, seed=seed, block=block, log=typer.echo)
