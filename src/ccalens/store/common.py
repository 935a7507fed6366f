"""What every reader of stored activations shares: its error, content fingerprints and
the check of a recorded content hash."""

from __future__ import annotations

import hashlib

import numpy as np

__all__ = ["StoreError", "check_digest", "damaged", "fingerprint"]


class StoreError(RuntimeError):
    """A store or activation file cannot be read or written as asked (see the message)."""


def fingerprint(data) -> str:
    """A short, stable hash of an array's dtype, shape and bytes (sha256, 16 hex digits)."""
    arr = np.ascontiguousarray(np.asarray(data))
    digest = hashlib.sha256(f"{arr.dtype.str}{arr.shape}".encode())
    digest.update(memoryview(arr).cast("B"))
    return digest.hexdigest()[:16]


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


