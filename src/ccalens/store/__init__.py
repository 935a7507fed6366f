"""Activation stores: a chunked, compressed Zarr directory, and readers for common files.

An :class:`ActivationStore` holds one (datapoints, neurons) array per recorded layer, under
names such as ``"net0/conv1"``, each with its metadata (model, layer, checkpoint, policy,
dataset fingerprint, shape). Arrays are appended batch by batch while a model runs, so
memory stays bounded, and each is marked complete only when its writer is closed: an array
whose writer was killed midway is reported as incomplete and never read as if whole.

:class:`Source` is one array named ``"path"`` or ``"path:key"`` in a store or in a
``.npy``, ``.npz``, ``.safetensors``, ``.pt`` or HDF5 file; :func:`load_array` reads one.
"""

from .common import StoreError, check_digest, damaged, fingerprint
from .files import list_arrays, pick, split_spec
from .source import Source, VerifiedRows, load_array
from .zarrstore import ActivationStore, is_zarr_dir

__all__ = ["ActivationStore", "Source", "StoreError", "VerifiedRows", "check_digest", "damaged", "fingerprint",
           "is_zarr_dir", "list_arrays", "load_array", "pick", "split_spec"]
