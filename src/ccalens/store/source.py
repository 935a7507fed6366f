"""One stored array, named once: ``"path"`` or ``"path:key"`` for a Zarr store or a file.

:class:`Source` parses the name once, opens what it names once, and answers what every
reader needs: the shape, whether the writer finished, a content fingerprint (without
reading a store array's data), the whole array (its content checked against the hash its
writer recorded) or its rows chunk by chunk (checked once every row has passed). The
single-pair API, ``compare``, the pairwise engine, its Dask workers and ``stream`` all read
through it, so an incomplete or damaged array is refused the same way everywhere.
"""

from __future__ import annotations

import os
from functools import cached_property

import numpy as np

from .common import StoreError, check_digest, damaged, fingerprint
from .files import load_npy, pick, read_file_array, split_spec
from .zarrstore import ActivationStore, is_zarr_dir

__all__ = ["Source", "VerifiedRows", "load_array"]


class Source:
    """The array a name points to (see the module text).

    Raises :class:`StoreError` when the file or store does not exist, when a store or file
    holds several arrays and the name picks none, or names one it does not hold.
    """

    def __init__(self, spec):
        self.spec = os.fspath(spec)
        self.path, requested = split_spec(spec)
        if not self.path.exists():
            raise StoreError(f"no such file or store: {self.path}")
        self.is_store = is_zarr_dir(self.path)
        self.store = ActivationStore(self.path, mode="r") if self.is_store else None
        self.key = pick(self.store.arrays(), requested, self.path) if self.is_store else requested

    @property
    def label(self) -> str:
        if self.is_store:
            return f"array {self.key!r} in {self.path}"
        return f"{self.path}" + (f":{self.key}" if self.key else "")

    @cached_property
    def _zarr_array(self):
        return self.store.array(self.key)

    @property
    def complete(self) -> bool:
        """Whether the writer finished (files are always whole)."""
        return bool(self._zarr_array.attrs.get("complete", False)) if self.is_store else True

    def check_complete(self) -> "Source":
        if not self.complete:
            raise StoreError(f"{self.label} is incomplete: its writer was interrupted after "
                             f"{self._zarr_array.shape[0]} rows. Extract it again (the retry replaces it).")
        return self

    @cached_property
    def shape(self) -> tuple[int, ...]:
        if self.is_store:
            return tuple(int(v) for v in self._zarr_array.shape)
        if self.path.suffix.lower() == ".npy" and not self.key:
            return tuple(int(v) for v in load_npy(self.path, mmap_mode="r").shape)
        return tuple(int(v) for v in self.read().shape)

    @cached_property
    def fingerprint(self) -> str:
        """16 hex digits that change with the content: the writer's recorded hash for a
        finished store array (no data read), else the hash of the data."""
        if self.is_store:
            self.check_complete()
            content = self._zarr_array.attrs.get("content_sha256")
            if content is not None:
                return content[:16]
        return fingerprint(self.read())

    def read(self) -> np.ndarray:
        """The whole array; a store array is refused if incomplete or damaged."""
        if self.is_store:
            self.check_complete()
            return self.store.read(self.key)
        return self._file_data

    @cached_property
    def _file_data(self) -> np.ndarray:
        return read_file_array(self.path, self.key)  # a file is read once, however often it is asked for

    def rows(self):
        """An object with ``.shape`` and row slicing that reads only what is sliced: a
        :class:`VerifiedRows` for a store array, a memory map for a ``.npy``, else the array."""
        if self.is_store:
            self.check_complete()
            return VerifiedRows(self._zarr_array, self.label)
        if self.path.suffix.lower() == ".npy" and not self.key:
            arr = load_npy(self.path, mmap_mode="r")
            if arr.ndim != 2:
                raise ValueError(f"{self.path}: sources must be 2-D (datapoints, neurons); got shape {arr.shape}.")
            return arr
        return self.read()


class VerifiedRows:
    """A store array read in row slices; :meth:`verify_stream` checks the content once every
    row has passed (a chunk that no longer decodes is refused as it is read)."""

    def __init__(self, arr, label: str):
        self.arr, self.label, self.shape = arr, label, arr.shape
        self.chunks = getattr(arr, "chunks", None)  # readers align their slices to it

    def __getitem__(self, index):
        try:
            return self.arr[index]
        except Exception as err:  # a chunk that no longer decompresses
            raise damaged(self.label, f"a chunk cannot be decoded ({type(err).__name__}: {err})") from None

    def verify_stream(self, digest, dtype, rows, width) -> None:
        check_digest(self.label, digest, dtype, rows, width, self.arr.attrs)


def load_array(spec) -> np.ndarray:
    """Read one (datapoints, neurons) array from ``"path"`` or ``"path:key"``."""
    return Source(spec).read()
