"""The representations ``pairwise`` compares: labels, and each one read, factorised or
described (shape and content fingerprint) through :class:`ccalens.store.Source`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core import validate
from ..core.factor import Factor, factorize_matrix
from ..store import Source, fingerprint

__all__ = ["describe", "factor_of", "host_array", "labels", "load"]


def labels(reps, names, default_prefix: str) -> tuple[list, list[str]]:
    """The representations in order and their unique labels (dict keys, paths, or prefix + index)."""
    if isinstance(reps, dict):
        items = list(reps.items())
        values, out = [v for _, v in items], [str(k) for k, _ in items]
    else:
        values = list(reps)
        out = [str(r) if isinstance(r, (str, Path)) else f"{default_prefix}{i}" for i, r in enumerate(values)]
    if names is not None:
        if len(names) != len(values):
            raise ValueError(f"names has {len(names)} entries for {len(values)} representations.")
        out = [str(n) for n in names]
    if len(set(out)) != len(out):
        raise ValueError(f"representation names must be unique; got {out}.")
    return values, out


def _array_of(rep, label: str):
    if isinstance(rep, Factor):
        raise TypeError(
            f"{label}: pass arrays, tensors or store paths to pairwise (it factorises each once "
            f"itself and fingerprints the data for resuming)."
        )
    if isinstance(rep, (str, Path)):
        rep = Source(rep)
    if isinstance(rep, Source):
        rep = rep.read()
    return validate.as_matrix(rep, label)


def factor_of(rep, label: str, rtol) -> Factor:
    """The factor of one representation (an array, a tensor, a store path or its Source)."""
    arr = _array_of(rep, label)
    return factorize_matrix(arr, validate.make_ops(arr, None), rtol, label)


def load(rep, label: str):
    """A representation's array itself (for the measures that need the activations)."""
    arr = _array_of(rep, label)
    validate.check_finite(validate.make_ops(arr, None), arr, label)
    return arr


def host_array(value):
    return value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)


def describe(value, label: str):
    """(shape, fingerprint, backend) of a representation (an array, a tensor, a store path or
    its :class:`~ccalens.store.Source`), without reading a store array's data."""
    if isinstance(value, (str, Path, Source)):
        source = value if isinstance(value, Source) else Source(value)
        if source.is_store:
            return source.shape, source.fingerprint, "numpy"
        value = source.read()
    arr = validate.as_matrix(value, label)
    backend = "torch" if hasattr(arr, "detach") else "numpy"
    return tuple(int(v) for v in arr.shape), fingerprint(host_array(arr)), backend
