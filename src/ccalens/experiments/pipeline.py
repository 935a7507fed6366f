"""Resumable pipeline steps: each is skipped when its inputs and outputs are unchanged.

The model is weasel's project lock (explosion/weasel): a step declares its configuration,
the files it reads and the files it writes; after it runs, ``lock.json`` records a hash of
the configuration and inputs and a hash of every output. On the next run the step is
skipped when the recorded hashes still match, so a killed run continues where it stopped,
and a changed setting or input reruns exactly the steps downstream of it.

The lock is rewritten atomically (a temporary file, then ``os.replace``) after every step,
so a kill at any moment leaves either the old or the new lock, never a torn one; a step
killed midway has no lock entry and runs again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Callable, Iterable

__all__ = ["Pipeline", "file_hash", "atomic_write_text", "exclusive"]


def file_hash(path: Path) -> str:
    """sha256 of a file's bytes; of a folder, of its files' relative paths and bytes."""
    path = Path(path)
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        digest.update(str(f.relative_to(path) if f != path else "").encode())
        with f.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` so that a kill leaves either the old file or the new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


@contextlib.contextmanager
def exclusive(folder: Path, what: str, log: Callable[[str], None] = print):
    """Hold ``folder/.lock`` exclusively: a second process that would train or write the same
    thing waits here until the first has finished, then finds its result. A killed holder's
    lock is released by the kernel, so it blocks no one (:func:`ccalens.locks.exclusive`)."""
    from ..locks import exclusive as lock

    with lock(Path(folder) / ".lock", wait=True,
              on_wait=lambda: log(f"  {what}: another process holds {Path(folder) / '.lock'}; waiting for it to "
                                  f"finish")):
        yield


class Pipeline:
    """Steps recorded in ``root/lock.json``.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> root = Path(tempfile.mkdtemp())
    >>> pipe = Pipeline(root, log=lambda msg: None)
    >>> def make():
    ...     (root / "out.txt").write_text("hello")
    >>> pipe.step("write", config={"greeting": "hello"}, outputs=[root / "out.txt"], run=make)
    True
    >>> pipe.step("write", config={"greeting": "hello"}, outputs=[root / "out.txt"], run=make)
    False
    """

    def __init__(self, root, log: Callable[[str], None] = print):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.lock_path = self.root / "lock.json"
        self.log = log
        self.ran: list[str] = []
        self.skipped: list[str] = []

    def _key(self, config: dict, inputs: Iterable[Path]) -> str:
        digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode())
        for path in inputs:
            if not Path(path).exists():
                raise FileNotFoundError(f"step input {path} is missing; the step that writes it has not run.")
            digest.update(file_hash(path).encode())
        return digest.hexdigest()

    @property
    def lock(self) -> dict:
        """The lock as it is on disk now (another pipeline on the same folder may have added to it)."""
        return json.loads(self.lock_path.read_text()) if self.lock_path.exists() else {}

    def up_to_date(self, name: str, config: dict, inputs: Iterable[Path] = (), outputs: Iterable[Path] = ()) -> bool:
        entry = self.lock.get(name)
        if entry is None or entry["key"] != self._key(config, inputs):
            return False
        outs = {str(p): p for p in map(Path, outputs)}
        return set(entry["outputs"]) == set(outs) and all(
            p.exists() and file_hash(p) == entry["outputs"][k] for k, p in outs.items()
        )

    def step(self, name: str, *, config: dict, outputs: list, run: Callable[[], object],
             inputs: Iterable[Path] = ()) -> bool:
        """Run ``run()`` unless the step is up to date; returns whether it ran."""
        inputs, outputs = [Path(p) for p in inputs], [Path(p) for p in outputs]
        if self.up_to_date(name, config, inputs, outputs):
            self.skipped.append(name)
            self.log(f"  [skip] {name}: inputs and outputs unchanged")
            return False
        started = time.perf_counter()
        run()
        missing = [str(p) for p in outputs if not p.exists()]
        if missing:
            raise RuntimeError(f"step {name} finished without writing {missing}.")
        entry = {
            "key": self._key(config, inputs),
            "outputs": {str(p): file_hash(p) for p in outputs},
            "seconds": round(time.perf_counter() - started, 2),
        }
        lock = self.lock  # re-read, so that entries written meanwhile by others are kept
        lock[name] = entry
        atomic_write_text(self.lock_path, json.dumps(lock, indent=1, sort_keys=True))
        self.ran.append(name)
        self.log(f"  [done] {name} ({time.perf_counter() - started:.1f} s)")
        return True
