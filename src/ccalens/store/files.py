"""Readers of single activation files (.npy, .npz, .safetensors, .pt, HDF5) and of the
``"path:key"`` names that point into files and stores."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .common import StoreError

__all__ = ["list_arrays", "load_npy", "pick", "read_file_array", "split_spec"]


def split_spec(spec) -> tuple[Path, str | None]:
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


def pick(mapping_keys: list[str], key: str | None, path: Path) -> str:
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
    from .zarrstore import ActivationStore, is_zarr_dir

    path = Path(path)
    if is_zarr_dir(path):
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


def load_npy(path: Path, mmap_mode: str | None = None) -> np.ndarray:
    """A .npy file's array (with ``mmap_mode``, a memory map of it); a file that is not a
    valid .npy, or is cut short, is named as damaged."""
    with open(path, "rb") as fh:
        magic = fh.read(6)
    if magic != b"\x93NUMPY":
        raise StoreError(f"{path} is not a .npy file (it does not start with numpy's header; a text or other file "
                         f"saved under this name?). Save activations with numpy.save.")
    try:
        return np.load(path, allow_pickle=False, mmap_mode=mmap_mode)
    except ValueError as err:
        if "mmap length is greater than file size" in str(err):
            raise StoreError(f"{path} is cut short: its header describes more data than the file holds (an "
                             f"interrupted copy or write?). Save it again.") from None
        if "pickle" in str(err):
            raise StoreError(f"{path} holds Python objects (an object array), not numbers; ccalens never unpickles "
                             f"files. Save a numeric array (numpy.save(path, array.astype(float))).") from None
        raise StoreError(f"{path} is damaged: {err} Save it again.") from None
    except (OSError, EOFError) as err:
        raise StoreError(f"{path} is damaged or cut short ({err}); save it again.") from None


def read_file_array(path: Path, key: str | None) -> np.ndarray:
    """The array ``key`` of an activation file (not a store: see :class:`ccalens.store.Source`)."""
    suffix = path.suffix.lower()
    if suffix == ".npy":
        if key:
            raise StoreError(f"{path} is a .npy file holding one array; drop ':{key}'.")
        return load_npy(path)
    if suffix == ".npz":
        with np.load(path) as z:
            return z[pick(list(z.files), key, path)]
    if suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as f:
            name = pick(list(f.keys()), key, path)
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
            return np.asarray(f[pick(list_arrays(path), key, path)])
    if suffix in (".pt", ".pth"):
        obj = _torch_load(path)
        if isinstance(obj, dict):
            obj = obj[pick(list(obj), key, path)]
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
