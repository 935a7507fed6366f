"""Activation stores: a chunked, compressed Zarr directory, and readers for common files.

An :class:`ActivationStore` holds one (datapoints, neurons) array per recorded layer, under
names such as ``"net0/conv1"``, each with its metadata (model, layer, checkpoint, policy,
dataset fingerprint, shape). Arrays are appended batch by batch while a model runs, so
memory stays bounded, and each is marked complete only when its writer is closed: an array
whose writer was killed midway is reported as incomplete and never read as if whole.

:func:`load_array` reads an array from a store or from ``.npy``, ``.npz``,
``.safetensors``, ``.pt`` and HDF5 files, given ``"path"`` or ``"path:key"``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ActivationStore", "StoreError", "fingerprint", "load_array", "list_arrays"]


class StoreError(RuntimeError):
    """A store or activation file cannot be read or written as asked (see the message)."""


def fingerprint(data) -> str:
    """A short, stable hash of an array's dtype, shape and bytes (sha256, 16 hex digits)."""
    arr = np.ascontiguousarray(np.asarray(data))
    digest = hashlib.sha256(f"{arr.dtype.str}{arr.shape}".encode())
    digest.update(memoryview(arr).cast("B"))
    return digest.hexdigest()[:16]


def _zarr():
    try:
        import zarr
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("activation stores need zarr: pip install 'ccalens[store]'") from err
    return zarr


def _is_zarr_dir(path: Path) -> bool:
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


def damaged(label: str, why: str, store=None) -> StoreError:
    """The error for an array whose stored content was damaged after it was written."""
    verify = f"; 'ccalens info --verify {store}' checks every array" if store is not None else ""
    return StoreError(f"{label} is damaged: {why}. Extract it again (with --overwrite), or restore the store "
                      f"from a copy{verify}.")


def check_digest(label: str, digest, dtype, rows: int, width: int, attrs) -> None:
    """Refuse an array unless ``digest`` (sha256 over its rows' bytes, in order) matches its writer's."""
    recorded = attrs.get("content_sha256")
    if recorded is None:  # written before ccalens recorded content hashes: nothing to check against
        return
    digest = digest.copy()
    digest.update(f"{np.dtype(dtype).str}{(rows, width)}".encode())
    if digest.hexdigest() != recorded:
        raise damaged(label, "its content no longer matches what its writer recorded (a chunk file was deleted, "
                             "overwritten or corrupted)")


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
        if mode == "r" and not _is_zarr_dir(self.path):
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
        return dict(self._array(name).attrs)

    def _array(self, name: str):
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
        arr = self._array(name)
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


def _split_spec(spec) -> tuple[Path, str | None]:
    """'path' or 'path:key'; the path is the shortest prefix before a ':' that exists."""
    text = os.fspath(spec)
    if os.path.exists(text) or ":" not in text:
        return Path(text), None
    start = 0
    while (i := text.find(":", start)) != -1:
        if os.path.exists(text[:i]):
            return Path(text[:i]), text[i + 1 :] or None
        start = i + 1
    path, key = text.split(":", 1)  # nothing exists: report the first part as missing
    return Path(path), key or None


def _pick(mapping_keys: list[str], key: str | None, path: Path) -> str:
    if key is None:
        if len(mapping_keys) == 1:
            return mapping_keys[0]
        raise StoreError(
            f"{path} holds {len(mapping_keys)} arrays; name one as {path}:KEY. Keys: "
            f"{', '.join(mapping_keys[:30])}."
        )
    if key not in mapping_keys:
        raise StoreError(f"{path} has no array {key!r}; it holds: {', '.join(mapping_keys[:30])}.")
    return key


def list_arrays(path) -> list[str]:
    """Names of the arrays a file or store holds (as accepted after ``path:``)."""
    path = Path(path)
    if _is_zarr_dir(path):
        return ActivationStore(path, mode="r").arrays()
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return [""]
    if suffix == ".npz":
        with np.load(path) as z:
            return list(z.files)
    if suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as f:
            return list(f.keys())
    if suffix in (".h5", ".hdf5"):
        import h5py

        names: list[str] = []
        with h5py.File(path, "r") as f:
            f.visititems(lambda n, obj: names.append(n) if isinstance(obj, h5py.Dataset) else None)
        return names
    if suffix in (".pt", ".pth"):
        obj = _torch_load(path)
        return list(obj) if isinstance(obj, dict) else [""]
    raise StoreError(
        f"cannot read {path}: expected a Zarr activation store or a .npy, .npz, .safetensors, "
        f".pt/.pth or .h5/.hdf5 file."
    )


def _torch_load(path: Path):
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)


def _load_npy(path: Path) -> np.ndarray:
    """A .npy file's array; a file that is not a valid .npy, or is cut short, is named as damaged."""
    with open(path, "rb") as fh:
        magic = fh.read(6)
    if magic != b"\x93NUMPY":
        raise StoreError(f"{path} is not a .npy file (it does not start with numpy's header; a text or other file "
                         f"saved under this name?). Save activations with numpy.save.")
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as err:
        if "pickle" in str(err):
            raise StoreError(f"{path} holds Python objects (an object array), not numbers; ccalens never unpickles "
                             f"files. Save a numeric array (numpy.save(path, array.astype(float))).") from None
        raise StoreError(f"{path} is damaged: {err} Save it again.") from None
    except (OSError, EOFError) as err:
        raise StoreError(f"{path} is damaged or cut short ({err}); save it again.") from None


def load_array(spec) -> np.ndarray:
    """Read one (datapoints, neurons) array from ``"path"`` or ``"path:key"``."""
    path, key = _split_spec(spec)
    if not path.exists():
        raise StoreError(f"no such file or store: {path}")
    if _is_zarr_dir(path):
        store = ActivationStore(path, mode="r")
        return store.read(_pick(store.arrays(), key, path))
    suffix = path.suffix.lower()
    if suffix == ".npy":
        if key:
            raise StoreError(f"{path} is a .npy file holding one array; drop ':{key}'.")
        return _load_npy(path)
    if suffix == ".npz":
        with np.load(path) as z:
            return z[_pick(list(z.files), key, path)]
    if suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as f:
            name = _pick(list(f.keys()), key, path)
            try:
                return f.get_tensor(name)
            except TypeError:  # bfloat16 and other dtypes numpy lacks: read through torch
                pass
        try:
            from safetensors.torch import load_file
        except ImportError as err:
            raise StoreError(f"{path}:{name} has a dtype numpy cannot hold (bfloat16?); install torch to read it.") from err
        return load_file(str(path))[name].float().numpy()
    if suffix in (".h5", ".hdf5"):
        import h5py

        with h5py.File(path, "r") as f:
            return np.asarray(f[_pick(list_arrays(path), key, path)])
    if suffix in (".pt", ".pth"):
        obj = _torch_load(path)
        if isinstance(obj, dict):
            obj = obj[_pick(list(obj), key, path)]
        elif key:
            raise StoreError(f"{path} holds one tensor; drop ':{key}'.")
        if not hasattr(obj, "detach"):
            raise StoreError(
                f"{path}{':' + key if key else ''} holds a {type(obj).__name__}, not a tensor; save the "
                f"activations as a tensor, or a dict of tensors.")
        obj = obj.detach().cpu()
        if obj.dtype.is_floating_point and obj.dtype.itemsize < 4:  # bfloat16 / float16: numpy lacks bf16
            obj = obj.float()
        return obj.numpy()
    return np.asarray(list_arrays(path))  # raises StoreError with the supported formats
