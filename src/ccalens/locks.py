"""Exclusive file locks between processes (fcntl.flock), released by the kernel when their holder dies.

Used where two runs could write the same thing: a results folder of ``ccalens matrix``
(the second run refuses) and a network's training folder (the second run waits for the
first, then finds its result).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Callable, Iterator

__all__ = ["LockedError", "exclusive"]


class LockedError(RuntimeError):
    """Another process holds the lock (raised only when not waiting)."""


@contextlib.contextmanager
def exclusive(path, *, wait: bool, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold ``path`` (a lock file, created if missing) exclusively for the ``with`` block.

    With ``wait`` a held lock is waited for (``on_wait()`` is called once first); without it,
    :class:`LockedError` is raised at once.
    """
    import fcntl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                raise LockedError(f"another process holds {path}") from None
            if on_wait is not None:
                on_wait()
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
