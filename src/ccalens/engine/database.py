"""The results database of ``pairwise``: every finished pair, committed as it finishes.

Pairs are keyed by the options and the two representations' content fingerprints, so a
rerun, or a run over more representations, reuses what is done. SQLite in WAL mode: a
committed pair survives a kill -9 at any moment.
"""

from __future__ import annotations

import json
import sqlite3

__all__ = ["Results", "remove", "swap_sides"]


def swap_sides(info: dict) -> dict:
    """Per-side details (x_..., y_..., as svcca's x_components) seen from the other side."""
    out = dict(info)
    for k, v in info.items():
        if k.startswith("x_") and "y_" + k[2:] in info:
            out[k], out["y_" + k[2:]] = info["y_" + k[2:]], v
    return out


def _swap(info: dict) -> dict:
    """The details of a pair seen from the other side: ranks, per-side and per-direction
    columns swap."""
    info = swap_sides(info)
    out = {k: v for k, v in info.items() if not k.endswith("_reverse")}
    for k, v in info.items():
        if k.endswith("_reverse"):
            plain = k[: -len("_reverse")]
            out[plain], out[k] = v, info.get(plain)
    out["ranks"] = list(info.get("ranks", [None, None]))[::-1]
    return out


class Results:
    """SQLite results store: one committed row per finished pair (WAL, crash-safe).

    Pairs are keyed by the options and the two representations' content fingerprints, not
    by their names: a later run with more representations, or other names for the same
    data, reuses every pair already computed.
    """

    def __init__(self, path, options_key: str, prints: dict[str, str]):
        self.opts, self.prints = options_key, prints
        try:
            self.db = sqlite3.connect(str(path), timeout=60)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")  # a committed pair is on disk
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS pair_values (opts TEXT, fa TEXT, fb TEXT, value REAL, "
                "reverse REAL, info TEXT, PRIMARY KEY (opts, fa, fb))"
            )
            self.db.commit()
        except sqlite3.Error as err:
            raise ValueError(
                f"results={str(path)!r} cannot be used as a SQLite results file ({err}). Give the path "
                f"of a new file in an existing folder, or of an earlier run's results file."
            ) from None

    def done(self, wanted) -> dict[tuple[str, str], tuple[float, float, dict]]:
        cur = self.db.execute("SELECT fa, fb, value, reverse, info FROM pair_values WHERE opts = ?", (self.opts,))
        # a value stored as NULL (SQLite's NaN) is not a finished pair: compute it again
        rows = {(fa, fb): (v, r, json.loads(i)) for fa, fb, v, r, i in cur if v is not None and r is not None}
        out = {}
        for a, b in wanted:
            fa, fb = self.prints[a], self.prints[b]
            if (fa, fb) in rows:
                out[(a, b)] = rows[(fa, fb)]
            elif (fb, fa) in rows:
                v, r, info = rows[(fb, fa)]
                out[(a, b)] = (r, v, _swap(info))
        return out

    def add(self, a: str, b: str, value: float, reverse: float, info: dict) -> None:
        fa, fb = self.prints[a], self.prints[b]
        if fa > fb:  # stored in fingerprint order; values follow the orientation
            fa, fb, value, reverse = fb, fa, reverse, value
            info = _swap(info)
        with self.db:  # one transaction per pair
            self.db.execute(
                "INSERT OR REPLACE INTO pair_values VALUES (?, ?, ?, ?, ?, ?)",
                (self.opts, fa, fb, value, reverse, json.dumps(info)),
            )

    def close(self) -> None:
        self.db.close()


def remove(path) -> None:
    """Delete a results database and its journal files (``--overwrite``: start afresh)."""
    from pathlib import Path

    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
