"""What the CNN figures share: the run context, network and extraction steps, claims, outputs.

Every figure is a pipeline built on the public API: networks are trained (or found)
under ``runs/networks/``, their layers are recorded with :func:`ccalens.extract.extract`
into one :class:`ccalens.store.ActivationStore` per network, checkpoint and data split,
and the stores are compared with :func:`ccalens.pairwise`, whose SQLite results keep every
finished pair. Each step is recorded in ``runs/lock.json`` (:mod:`.pipeline`).
"""

from __future__ import annotations

import csv
import json
import platform
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import cnn
from .pipeline import Pipeline, atomic_write_text

MIN_RATIO = 10  # datapoints per neuron the comparisons aim for


@dataclass
class Context:
    scale: cnn.Scale
    root: Path
    data_dir: str | None = None
    log: object = print
    progress: bool = False
    split: object = None
    pipe: Pipeline = None
    command: str | None = None  # what made this run, for claims.json (default: sys.argv)
    started: float = field(default_factory=time.perf_counter)

    def __post_init__(self):
        self.root = Path(self.root)
        if self.split is None:
            self.split = cnn.load_split(self.scale, self.data_dir)
        if self.pipe is None:
            self.pipe = Pipeline(self.root, log=self.log)
        self.data_print = cnn.data_fingerprint(self.split)

    # ---- networks ---------------------------------------------------------------------
    def spec(self, **kw) -> cnn.NetSpec:
        s = self.scale
        base = {"width": s.width, "seed": 0, "epochs": s.epochs, "lr": s.lr, "batch_size": s.batch_size}
        base.update(kw)
        return cnn.NetSpec(**base)

    def network(self, spec: cnn.NetSpec, keep: tuple[int, ...] = ()) -> dict:
        """Train the network unless it is already trained; its record (accuracies, epochs)."""
        folder = cnn.network_folder(self.root, spec, self.split)
        kept = sorted(set(keep) | {0})
        outputs = [folder / "record.json", folder / "final.pt"] + [folder / f"epoch{e}.pt" for e in kept if e != spec.epochs]

        def run():
            cnn.train_network(spec, self.split, self.root, keep=tuple(kept), device=self.scale.device,
                              log=self.log, progress=self.progress)

        self.pipe.step(f"networks/{folder.name}", config={"spec": asdict(spec), "keep": kept, "data": self.data_print},
                       outputs=outputs, run=run)
        return json.loads((folder / "record.json").read_text())

    def weights(self, spec: cnn.NetSpec, epoch: int | None = None) -> Path:
        """The weights file at ``epoch`` (0: initialisation; None: the end of training)."""
        folder = cnn.network_folder(self.root, spec, self.split)
        return folder / ("final.pt" if epoch is None or epoch == spec.epochs else f"epoch{epoch}.pt")

    # ---- representations --------------------------------------------------------------
    def activations(self, figure: str, spec: cnn.NetSpec, *, epoch: int | None = None, data: str = "train",
                    layers=cnn.LAYERS) -> dict[str, str]:
        """Record ``layers`` of the network (at ``epoch``; final by default) on the training or
        test images into a store; returns layer -> "store.zarr:layer" for :func:`ccalens.pairwise`."""
        from ..extract import extract
        from ..store import ActivationStore

        folder = cnn.network_folder(self.root, spec, self.split).name
        when = "final" if epoch is None or epoch == spec.epochs else f"epoch{epoch}"
        path = self.root / figure / "activations" / folder / f"{data}-{when}.zarr"
        weights = self.weights(spec, epoch)

        def run():
            import shutil

            import torch

            if path.exists():
                shutil.rmtree(path)
            model = cnn.load_network(spec, self.split, self.root, epoch)
            x = torch.from_numpy(self.split.x_train if data == "train" else self.split.x_test)
            store = ActivationStore(path)
            with store.writer(network=spec.name, epoch=epoch, data=data) as sink:
                extract(model, x, list(layers), spatial="mean", store=sink, batch_size=512,
                        device=cnn._device(self.scale.device))

        self.pipe.step(f"{figure}/activations/{folder}/{data}-{when}",
                       config={"layers": list(layers), "data": data, "split": self.data_print},
                       inputs=[weights], outputs=[path], run=run)
        return {layer: f"{path}:{layer}" for layer in layers}

    def check_ratio(self, widths: dict[str, int], data: str = "train") -> dict:
        """Datapoints per neuron at every compared layer, said in the log and the outputs."""
        n = len(self.split.x_train if data == "train" else self.split.x_test)
        ratios = {layer: n / w for layer, w in widths.items()}
        worst = min(ratios, key=ratios.get)
        ok = ratios[worst] >= MIN_RATIO
        self.log(f"  {data} data: {n} datapoints; widest compared layer {worst} has {widths[worst]} neurons "
                 f"({ratios[worst]:.0f} datapoints per neuron; "
                 f"{'at least' if ok else 'BELOW'} the {MIN_RATIO}x these comparisons aim for)")
        return {"data": data, "datapoints": n, "neurons": widths, "min_ratio": round(ratios[worst], 1),
                "meets_10x": ok}


def command_line() -> str:
    argv = [Path(sys.argv[0]).name] + sys.argv[1:] if sys.argv and sys.argv[0] else ["ccalens"]
    return " ".join(shlex.quote(a) for a in argv)


def write_outputs(ctx: Context, figure: str, rows: list[dict], claims: list[dict], meta: dict) -> dict[str, Path]:
    """``runs/<figure>/``: the numbers (CSV and Parquet), claims.json (with the run's facts)."""
    out = ctx.root / figure
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out / f"{figure}.csv", "claims": out / "claims.json"}
    if rows:
        fields = list(dict.fromkeys(k for r in rows for k in r))
        with paths["csv"].open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)
        try:
            import pandas as pd

            paths["parquet"] = out / f"{figure}.parquet"
            pd.DataFrame(rows).to_parquet(paths["parquet"], index=False)
        except ImportError:  # pragma: no cover - the store extra brings pandas and pyarrow
            pass
    doc = {
        "figure": figure,
        "scale": asdict(ctx.scale),
        "dataset": ctx.split.name,
        "command": getattr(ctx, "command", None) or command_line(),
        "machine": f"{platform.machine()}, {platform.processor() or platform.system()}",
        "claims": claims,
        **meta,
    }
    atomic_write_text(paths["claims"], json.dumps(doc, indent=2, default=_json_default))
    return paths


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def mean_sd(values) -> tuple[float, float]:
    arr = np.asarray(list(values), dtype=float)
    return (float(arr.mean()), float(arr.std())) if arr.size else (float("nan"), float("nan"))


NAIVE = ("cosine", "euclidean")


def naive_distance(a: np.ndarray, b: np.ndarray, measure: str) -> float:
    """Neuron-by-neuron comparisons that ignore how a layer's units are ordered or mixed.

    cosine: 1 - <A, B> / (|A| |B|) over the whole (datapoints x neurons) arrays;
    euclidean: |A - B|_F / sqrt(datapoints), the RMS distance between activation vectors
    (:func:`ccalens.cosine`, :func:`ccalens.euclidean`). They need the same shape (the same
    width); an all-zero layer has no cosine and gives NaN here.
    """
    from ..core.alignment import matched_value
    from ..core.registry import distance

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if measure not in NAIVE:
        raise ValueError(f"measure must be one of {NAIVE}; got {measure!r}.")
    if a.shape != b.shape:
        raise ValueError(f"{measure} distance needs equal shapes; got {a.shape} and {b.shape}.")
    try:
        return float(distance(measure, matched_value(measure, a, b)))
    except ValueError:  # zero norm
        return float("nan")


def pair_rows(ctx: Context, figure: str, reps: dict[str, dict[str, object]], layers, measures,
              tag: dict | None = None) -> list[dict]:
    """Distances between every unordered pair of ``reps`` (name -> layer -> store spec or array).

    CCA measures go through :func:`ccalens.pairwise`, whose SQLite results under
    ``runs/<figure>/pairs.sqlite`` keep every finished pair; PWCCA is symmetrised (the
    mean of its two directions).
    """
    from ..engine import pairwise
    from ..store import load_array

    names = list(reps)
    rows = []
    for layer in layers:
        layer_reps = {name: reps[name][layer] for name in names}
        for measure in measures:
            if measure in NAIVE:
                arrays = {k: v if isinstance(v, np.ndarray) else load_array(v) for k, v in layer_reps.items()}
                dist = np.array([[naive_distance(arrays[a], arrays[b], measure) if a != b else 0.0 for b in names]
                                 for a in names])
            else:
                result = pairwise(layer_reps, measure, symmetric=measure == "pwcca",
                                  results=ctx.root / figure / "pairs.sqlite", progress=ctx.progress)
                dist = result.distance
            for i in range(len(names)):
                for j in range(i + 1, len(names)):
                    rows.append({**(tag or {}), "layer": layer, "measure": measure, "a": names[i], "b": names[j],
                                 "distance": float(dist[i, j])})
    return rows
