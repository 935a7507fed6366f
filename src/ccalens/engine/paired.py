"""Paired differences along a row or a column of a pairwise matrix: which of the other
representations is closer to this one, with intervals from shared draws
(:mod:`ccalens.core.paired`)."""

from __future__ import annotations

from ..core.paired import paired_differences
from .sources import labels, load

__all__ = ["paired_row"]


def paired_row(reps, row: str | None = None, measure: str = "pwcca", *, column: str | None = None, others=None,
               names=None, bootstrap: int = 1000, confidence: float = 0.95, interval: str | None = None, seed=0,
               **options):
    """Every paired difference along one row (or column) of ``pairwise(reps, measure)``.

    ``row="A"``: for each pair (B, C) of the other representations, ``s(A, B) - s(A, C)``;
    ``column="A"``: ``s(B, A) - s(C, A)`` (a directed measure such as PWCCA weighs by its
    first argument, so a row and a column differ). All differences come from one set of
    draws of the datapoints, shared by every term.

    Parameters
    ----------
    reps : dict or list
        As for :func:`ccalens.pairwise`: arrays, tensors or store paths (a list of paths is
        labelled by the paths), all on the same datapoints.
    row, column : str
        The name of the shared representation: exactly one of them.
    others : list of str, optional
        The representations to compare against it (default: all the others, in order).
    bootstrap, confidence, interval, seed, options
        As for :func:`ccalens.paired_differences`.

    Returns
    -------
    pandas.DataFrame
        One row per pair: shared, first, second, similarity_first, similarity_second,
        difference, low, high, p_value, p_floor, method, draws, corrected, note, ...
    """
    import pandas as pd

    if (row is None) == (column is None):
        raise ValueError("give exactly one of row= (s(row, other)) and column= (s(other, column)): the name of "
                         "the shared representation.")
    shared = row if row is not None else column
    values, label_list = labels(reps, names, "rep")
    by_name = dict(zip(label_list, values))
    if shared not in by_name:
        raise ValueError(f"{shared!r} is not one of the representations {label_list}.")
    chosen = [n for n in label_list if n != shared] if others is None else [str(o) for o in others]
    unknown = [o for o in chosen if o not in by_name]
    if unknown:
        raise ValueError(f"others names {unknown}, which are not among the representations {label_list}.")
    if shared in chosen:
        raise ValueError(f"others includes the shared representation {shared!r}; a difference compares two others.")
    if len(chosen) < 2:
        raise ValueError(f"a paired difference needs at least two other representations; got {chosen}.")
    arrays = {o: load(by_name[o], o) for o in chosen}
    results = paired_differences(load(by_name[shared], shared), arrays, measure, bootstrap=bootstrap,
                                 confidence=confidence, interval=interval, seed=seed,
                                 order="first" if row is not None else "second", label=shared, **options)
    return pd.DataFrame([r.as_dict() for r in results])
