"""The Zarr activation store: one (datapoints, neurons) array per recorded layer, appended
batch by batch and marked complete (with the sha256 of its content) when its writer closes."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from .common import StoreError, check_digest, damaged

__all__ = ["ActivationStore", "is_zarr_dir"]


def _zarr():
    try:
        import zarr
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("activation stores need zarr: pip install 'ccalens[store]'") from err
    return zarr


def is_zarr_dir(path: Path) -> bool:
    """Whether ``path`` is a Zarr (v3) store directory."""
    return path.is_dir() and (path / "zarr.json").exists()


class _Writer:
    """Appends batches to arrays of one store; ``close()`` marks them complete."""

    def __init__(self, store: "ActivationStore", prefix: str, chunk_rows: int, overwrite: bool, attrs: dict):
        self.store, self.prefix, self.chunk_rows = store, prefix.strip("/"), chunk_rows
        self.overwrite, self.attrs = overwrite, attrs
        self.arrays: dict[str, Any] = {}
        self.hashes: dict[str, Any] = {}

    def _full(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def check_free(self, names) -> None:
        """Refuse now, before any work, where a finished array of one of ``names`` would be
        replaced without ``overwrite`` (the same refusal as the first write's)."""
        if self.overwrite:
            return
        present = set(self.store.arrays())
        for name in names:
            full = self._full(name)
            if full in present and self.store.group[full].attrs.get("complete", False):
                raise StoreError(
                    f"{self.store.path} already holds a finished array {full!r}; write under another prefix, or "
                    f"pass overwrite=True (--overwrite on the command line) to replace it.")

    def append(self, name: str, batch: np.ndarray, meta: dict | None = None) -> None:
        batch = np.asarray(batch)
        if batch.ndim != 2:
            raise StoreError(f"store arrays are (datapoints, neurons); got a batch of shape {batch.shape} for {name!r}.")
        if ":" in name or ":" in self.prefix:
            raise StoreError(f"array names cannot contain ':' (it separates a store from an array in 'store.zarr:name'); got {self._full(name)!r}.")
        full = self._full(name)
        arr = self.arrays.get(full)
        if arr is None:
            arr = self.store._create(full, batch, self.chunk_rows, self.overwrite, {**self.attrs, **(meta or {})})
            self.arrays[full] = arr
            self.hashes[full] = hashlib.sha256()
        elif batch.shape[1] != arr.shape[1]:
            raise StoreError(
                f"array {full!r} has {arr.shape[1]} neurons but a batch of {batch.shape[1]} arrived."
            )
        batch = np.ascontiguousarray(batch.astype(arr.dtype, copy=False))
        arr.append(batch, axis=0)
        self.hashes[full].update(memoryview(batch).cast("B"))

    def close(self) -> None:
        for full, arr in self.arrays.items():
            digest = self.hashes[full].copy()
            digest.update(f"{arr.dtype.str}{tuple(arr.shape)}".encode())
            arr.attrs.update({"complete": True, "rows": int(arr.shape[0]), "content_sha256": digest.hexdigest()})

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()


class ActivationStore:
    """A Zarr directory of (datapoints, neurons) activation arrays with metadata.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from ccalens.store import ActivationStore
    >>> store = ActivationStore(os.path.join(tempfile.mkdtemp(), "acts.zarr"))
    >>> with store.writer(prefix="net0", model="cnn", checkpoint=3) as w:
    ...     w.append("conv1", np.ones((4, 2), dtype=np.float32), {"layer": "conv1"})
    >>> store.read("net0/conv1").shape
    (4, 2)
    >>> store.metadata("net0/conv1")["checkpoint"]
    3
    """

    def __init__(self, path, mode: str = "a"):
        self.path = Path(path)
        if mode not in ("r", "a"):
            raise ValueError(f"mode must be 'r' (read) or 'a' (read and append); got {mode!r}.")
        if mode == "r" and not is_zarr_dir(self.path):
            if self.path.is_file():
                target = self.path.with_suffix(".zarr")
                raise StoreError(
                    f"{self.path} is a file, not an activation store (a .zarr folder of arrays). Put the arrays in "
                    f"one with ccalens extract ... --out {target}, or compare two files directly with "
                    f"ccalens compare A B.")
            raise StoreError(
                f"{self.path} is not an activation store (no zarr.json there); create one with "
                f"ccalens extract ... --out {self.path}."
            )
        self.group = _zarr().open_group(str(self.path), mode=mode)
        self.mode = mode

    def writer(self, prefix: str = "", *, chunk_rows: int = 4096, overwrite: bool = False, **attrs) -> _Writer:
        """A sink for :func:`ccalens.extract.extract`: arrays go under ``prefix``."""
        if self.mode == "r":
            raise StoreError(f"{self.path} was opened read-only.")
        return _Writer(self, prefix, chunk_rows, overwrite, attrs)

    def _create(self, name, batch, chunk_rows, overwrite, attrs):
        if name in self.arrays():
            # an interrupted write (its writer never finished) is never read as data, so a
            # retry of the same extraction replaces it; a finished array needs overwrite
            if self.group[name].attrs.get("complete", False) and not overwrite:
                raise StoreError(
                    f"{self.path} already holds a finished array {name!r}; write under another prefix, or "
                    f"pass overwrite=True (--overwrite on the command line) to replace it."
                )
            del self.group[name]
        arr = self.group.create_array(
            name, shape=(0, batch.shape[1]), chunks=(chunk_rows, batch.shape[1]), dtype=batch.dtype
        )
        clean = {k: (v if isinstance(v, (str, int, float, bool, type(None), list)) else str(v)) for k, v in attrs.items()}
        arr.attrs.update({**clean, "complete": False, "neurons": int(batch.shape[1])})
        return arr

    def arrays(self) -> list[str]:
        """Names of every array in the store, complete or not."""
        names: list[str] = []

        def walk(group, prefix):
            for key, member in group.members():
                if isinstance(member, _zarr().Group):
                    walk(member, f"{prefix}{key}/")
                else:
                    names.append(f"{prefix}{key}")

        walk(self.group, "")
        return sorted(names)

    def metadata(self, name: str) -> dict:
        return dict(self.array(name).attrs)

    def array(self, name: str):
        """The Zarr array ``name`` itself (not its data; see :meth:`read`)."""
        if name not in self.arrays():
            raise StoreError(
                f"{self.path} has no array {name!r}; it holds: {', '.join(self.arrays()) or 'nothing'}."
            )
        return self.group[name]

    def read(self, name: str, *, allow_incomplete: bool = False) -> np.ndarray:
        """The whole array, refused if its writer never finished or its content was damaged since.

        A finished array carries the sha256 of everything its writer appended
        (``content_sha256``); a read recomputes it and refuses an array whose chunks were
        deleted, overwritten or corrupted (a deleted chunk would otherwise read as zeros).
        """
        arr = self.array(name)
        if not arr.attrs.get("complete", False) and not allow_incomplete:
            raise StoreError(
                f"array {name!r} in {self.path} is incomplete: its writer stopped after "
                f"{arr.shape[0]} rows without finishing (the process was killed or failed). "
                f"Extract it again; pass allow_incomplete=True only to inspect the partial data."
            )
        try:
            data = arr[:]
        except Exception as err:  # a chunk that no longer decompresses
            raise self._damaged(name, f"a chunk cannot be decoded ({type(err).__name__}: {err})") from None
        if arr.attrs.get("complete", False):
            self.check_content(name, [data], arr.attrs)
        return data

    def check_content(self, name: str, parts, attrs) -> None:
        """Refuse ``name`` unless the rows ``parts`` (in order) hash to what its writer recorded."""
        digest = hashlib.sha256()
        rows = 0
        for part in parts:
            part = np.ascontiguousarray(part)
            digest.update(memoryview(part).cast("B"))
            rows += part.shape[0]
        self.check_digest(name, digest, part.dtype, rows, part.shape[1], attrs)

    def check_digest(self, name: str, digest, dtype, rows: int, width: int, attrs) -> None:
        check_digest(f"array {name!r} in {self.path}", digest, dtype, rows, width, attrs)

    def _damaged(self, name: str, why: str) -> StoreError:
        return damaged(f"array {name!r} in {self.path}", why, self.path)

    def verify(self) -> dict[str, str]:
        """Every array's state: "ok", "incomplete", "unverified" (no recorded hash) or the damage found."""
        out = {}
        for name in self.arrays():
            attrs = self.group[name].attrs
            if not attrs.get("complete", False):
                out[name] = "incomplete"
                continue
            try:
                self.read(name)
            except StoreError as err:
                out[name] = "damaged: " + str(err).split(" is damaged: ", 1)[-1].split(". Extract it again", 1)[0]
                continue
            out[name] = "ok" if attrs.get("content_sha256") else "unverified (no content hash recorded)"
        return out

    def info(self) -> list[dict]:
        """One entry per array: name, shape, dtype, complete, metadata."""
        out = []
        for name in self.arrays():
            arr = self.group[name]
            attrs = dict(arr.attrs)
            out.append(
                {
                    "name": name,
                    "shape": tuple(int(s) for s in arr.shape),
                    "dtype": str(arr.dtype),
                    "complete": bool(attrs.pop("complete", False)),
                    "metadata": attrs,
                }
            )
        return out


