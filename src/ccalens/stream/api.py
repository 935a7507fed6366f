r"""Out-of-core comparison: representations with more datapoints than memory holds.

Every measure here depends on the data only through inner products of centred columns,
so it is the same on a small matrix :math:`Z` with :math:`Z^T Z = X_c^T X_c` for
:math:`X_c = [X_{1c} \mid \dots \mid X_{Kc}]`, all sources' centred neurons side by side.
Streaming builds that :math:`Z`, one block of columns per source, in one or two passes
over row chunks (memory O(chunk x D + D^2), D = the total number of neurons):

* **the Gram route** (the default, :class:`GramSummary`): one pass accumulates the Gram
  matrix of :math:`[\mathbf 1 \mid X_1 \mid \dots]` with BLAS syrk (about D^2 flops per
  row), and :math:`Z` is a pivoted Cholesky factor of the centred Gram matrix. Forming
  a Gram matrix squares the condition number, so each source is checked on its own block,
  with :func:`ccalens.factorize`'s thresholds: for moderately ill-conditioned sources a
  second pass sums the exact inner products of their few weak eigen-directions, and the
  ill-conditioned ones
  (near-duplicate neurons, rank deficiency) are triangularised by Householder reflections
  in that pass, with the other sources' columns carried along;
* **the TSQR route** (``route="tsqr"``, and for one-pass iterators, which cannot be read
  twice): one pass of a tall-skinny Householder QR of :math:`[\mathbf 1 \mid X_1 \mid
  \dots]` (:class:`RowSummary`). The trailing block :math:`T` of its R factor is the R
  factor of the centred data (MATH.md), and :math:`Z = T`. Backward stable whatever the
  conditioning, at about four times the flops and a fraction of the BLAS's rate.

Either way the small matrix handed to the measures is :math:`[Z; -Z]/\sqrt 2` (zero
column means, the centred data's own inner products, scale included, which the shape
metrics with :math:`0 < \alpha < 1` need).

* :func:`compress` turns sources into those small matrices (one per source);
* :func:`compare` and :func:`pairwise` run the measures on them, reporting the true
  number of datapoints (and warning about it as the in-memory path does).

Each source is shifted by its first chunk's column means (every measure here ignores
translations), so large offsets cost no accuracy; the Gram route checks the cancellation
that an unrepresentative first chunk would leave. Reading and decompressing the next
chunks runs in a background thread, beside the arithmetic.

Only the measures that depend on the centred data through its inner products alone are
available (:data:`MEASURES`: the CCA family, linear CKA, Procrustes, the shape metrics).
Debiased and RBF CKA, RSA, predictivity, the neighbour measures, the matched-neuron
controls, permutation nulls, bootstraps and canonical variates need the datapoints
themselves: run those in memory on a random subset of datapoints.

Sources are Zarr arrays, ``"store.zarr:name"`` paths, ``.npy`` files (memory-mapped),
numpy arrays, or iterables of row chunks (all with the same rows, in the same chunks).
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

from ..core import validate
from .options import (DEFAULT_CHUNK_ROWS, check_chunk_rows, check_request, check_route, default_rtol)
from .second_pass import complete
from .sources import feed, open_all
from .gram import GramSummary
from .summaries import RowSummary, Summary

__all__ = ["compare", "compress", "pairwise", "summarise", "summarise_sources"]


def compress(sources, *, chunk_rows: int = DEFAULT_CHUNK_ROWS, progress: bool = False, route: str = "auto"
             ) -> tuple[list, int]:
    """Summarise the sources; returns (one small matrix per source, n).

    Each returned matrix has at most 2 * D rows (D = all sources' neurons together) and the
    source's neurons as columns; any measure of :data:`MEASURES` between two of them equals
    the measure between the full sources (pass ``rtol=max(n, neurons) * eps`` for the
    in-memory default rank tolerance; :func:`compare` and :func:`pairwise` do).

    ``route="auto"`` (the default) accumulates the centred data's Gram matrix in one pass
    (about D^2 flops per row at the BLAS's full rate) and checks each source's conditioning
    on it; the sources too ill-conditioned for that (and any source that is a one-pass
    iterator, which cannot be read again) take a Householder pass. ``route="tsqr"``
    takes the Householder pass for everything. See :class:`GramSummary`.
    """
    summary = summarise_sources(sources, chunk_rows, progress, route=route)
    return summary.matrices, summary.n


def summarise(sources, *, chunk_rows: int = DEFAULT_CHUNK_ROWS, progress: bool = False, route: str = "auto") -> "Summary":
    """:func:`compress` with what it found: a :class:`Summary` (the small matrices, n, each
    source's varying neurons and the route each source took)."""
    return summarise_sources(sources, chunk_rows, progress, route=route)


def summarise_sources(sources, chunk_rows, progress, fingerprints: bool = False, route: str = "auto",
              rtol: float | None = None) -> Summary:
    if isinstance(sources, (str, Path)) or hasattr(sources, "shape"):
        sources = [sources]
    if not isinstance(sources, (list, tuple)):
        raise TypeError(
            f"sources must be a list of sources; got {type(sources).__name__}. Wrap one chunk "
            f"iterator in a list: compress([chunks]).")
    sources = list(sources)
    if not sources:
        raise ValueError("no sources given.")
    chunk_rows = check_chunk_rows(chunk_rows)
    check_route(route)
    opened = open_all(sources)
    # a second pass needs sources that can be read again: arrays, files and stores, not iterators
    rereadable = all(hasattr(o, "shape") for o in opened)
    first = GramSummary() if route == "auto" and rereadable else RowSummary()
    digests = [hashlib.sha256() for _ in sources] if fingerprints else None
    feed(first, opened, chunk_rows, progress, digests, "streaming")
    if isinstance(first, GramSummary):
        out = complete(first, lambda summary, what: feed(summary, open_all(sources), chunk_rows, progress, None,
                                                            what), rtol)
    else:
        out = first.finish()
    if digests is not None:
        out.prints = [hashlib.sha256(f"stream:{out.n}x{w}:{d.hexdigest()}".encode()).hexdigest()[:16]
                      for d, w in zip(digests, first.widths)]
    return out


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", validate.SmallSampleWarning)
        return fn(*args, **kwargs)


def compare(x, y, measure: str = "pwcca", *, chunk_rows: int = DEFAULT_CHUNK_ROWS, progress: bool = False, route: str = "auto",
            **options):
    """A measure between two out-of-core sources (one streaming pass over both, and a second
    for a source too ill-conditioned for the Gram route: see :func:`compress`).

    ``measure`` is one of :data:`MEASURES`; ``options`` are those of the measure that do
    not need the datapoints themselves (epsilon, keep, n_components, symmetric, rtol, dtype).
    """
    request = check_request(measure, options, front="streaming", single_pair=True)
    spec, options = request.exact[0], request.options
    summary = summarise_sources([x, y], chunk_rows, progress, route=route, rtol=options.get("rtol"))
    (zx, zy), n = summary.matrices, summary.n
    options["rtol"] = default_rtol(options, n, (zx.shape[1], zy.shape[1]))
    result = quiet(spec.compute, zx, zy, **options)
    rx, ry = getattr(result, "x_rank", summary.varying[0]), getattr(result, "y_rank", summary.varying[1])
    validate.warn_small_sample(n, summary.varying[0], summary.varying[1], rx, ry, stacklevel=3)
    return with_n(result, n)


def with_n(result, n: int):
    import dataclasses

    if hasattr(result, "n_samples"):
        result = dataclasses.replace(result, n_samples=n)
    return result


def pairwise(sources, measure: str = "pwcca", *, others=None, names=None, other_names=None,
             chunk_rows: int = DEFAULT_CHUNK_ROWS, progress: bool = False, route: str = "auto", **options):
    """:func:`ccalens.pairwise` over out-of-core sources, after one streaming pass.

    ``measure`` is one of :data:`MEASURES`. Labels, ``others`` (a K x L matrix), ``symmetric``,
    ``results`` (resuming; pairs are keyed by the sources' content, hashed during the pass,
    so adding a source reuses every pair already done), ``block`` and ``scheduler`` are as
    in :func:`ccalens.pairwise`; permutations and bootstraps need the datapoints and are
    refused.
    """
    from ..engine import labels as _labels
    from ..engine import pairwise as in_memory

    engine = {k: options.pop(k) for k in ("results", "block", "scheduler") if k in options}
    request = check_request(measure, options, front="streaming")
    spec, options = request.exact[0], request.options
    row_vals, row_labels = _labels(sources, names, "rep")
    if not row_vals:
        raise ValueError("sources is empty; pass at least one source.")
    col_vals, col_labels = ([], []) if others is None else _labels(others, other_names, "other")
    if set(row_labels) & set(col_labels):
        raise ValueError(f"the names {sorted(set(row_labels) & set(col_labels))} are used in both sources "
                         f"and others; names must be unique.")
    summary = summarise_sources(row_vals + col_vals, chunk_rows, progress, fingerprints=engine.get("results") is not None,
                        route=route, rtol=options.get("rtol"))
    zs, n = summary.matrices, summary.n
    rtol = default_rtol(options, n, [z.shape[1] for z in zs])
    opts = {k: v for k, v in options.items() if k not in ("rtol", "dtype")}
    k = len(row_vals)
    prints = dict(zip(row_labels + col_labels, summary.prints)) if summary.prints else None
    result = quiet(
        in_memory, dict(zip(row_labels, zs[:k])), spec,
        others=dict(zip(col_labels, zs[k:])) if others is not None else None,
        rtol=rtol, fingerprints=prints, **engine, **opts)
    for row in result.table:
        row["n"] = n
    return result
