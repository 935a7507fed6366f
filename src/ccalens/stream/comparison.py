"""The result of :func:`~ccalens.compare_models`: the tidy table of every (model, layer)
pair and measure, its layer x layer matrices and their heatmaps."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..core import registry
from .options import MINIBATCH_MEASURES

__all__ = ["ModelComparison"]


@dataclass(frozen=True, eq=False)
class ModelComparison:
    """The result of :func:`compare_models`.

    Attributes
    ----------
    table : list of dict
        One row per (model, layer) x (model, layer) x measure: ``model_x``, ``layer_x``,
        ``model_y``, ``layer_y``, ``measure``, ``similarity``, ``distance``, ``distance_is``
        (what the distance is: "1 - s", "2 - 2s", "arccos s, radians"), ``estimate``
        (True for minibatch estimates), ``n`` (datapoints).
    layers : dict
        The layers compared, per model, in order.
    n_samples : int
        Datapoints (rows) in the pass.
    batches : int
    skipped : dict
        Per model, the leaf modules left out of the default layer list, with the reason.
    widths : dict
        Neurons per (model, layer).
    routes : dict
        How each "model/layer" was summarised: "gram" (the first pass's Gram matrix),
        "gram2" (its weak eigen-directions summed again in a second pass), "tsqr" (Householder, in the
        second pass or, with ``route="tsqr"`` or one-shot data, the only one), "datapoint"
        (every datapoint's activations held and the layers compared through their n x n Gram
        matrices; :mod:`ccalens.stream.datapoints`); empty when only minibatch estimates
        were asked for.
    notes : list of str
        What the values mean beyond the measure's definition (on the datapoint route, which
        layers a measure saw through their leading principal components).
    """

    table: list
    layers: dict
    n_samples: int
    batches: int
    skipped: dict = field(default_factory=dict)
    widths: dict = field(default_factory=dict)
    routes: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)

    @property
    def measures(self) -> list[str]:
        return list(dict.fromkeys(r["measure"] for r in self.table))

    def to_pandas(self):
        """The tidy table as a pandas DataFrame."""
        import pandas as pd

        return pd.DataFrame(self.table)

    def matrix(self, measure: str | None = None, model_x: str | None = None, model_y: str | None = None,
               value: str = "similarity"):
        """Layers of ``model_x`` (rows) against layers of ``model_y`` (columns), a DataFrame.

        Defaults: the first measure; the first model against the second (or itself).
        """
        import pandas as pd

        measure = measure or self.measures[0]
        if measure not in self.measures:
            raise ValueError(f"no measure {measure!r} in this comparison; it has {self.measures}.")
        names = list(self.layers)
        model_x = model_x or names[0]
        model_y = model_y or (names[1] if len(names) > 1 else names[0])
        for m in (model_x, model_y):
            if m not in self.layers:
                raise ValueError(f"no model {m!r} in this comparison; the models are {names}.")
        if value not in ("similarity", "distance"):
            raise ValueError(f"value must be 'similarity' or 'distance'; got {value!r}.")
        out = pd.DataFrame(np.nan, index=self.layers[model_x], columns=self.layers[model_y], dtype=float)
        for r in self.table:
            if r["measure"] == measure and r["model_x"] == model_x and r["model_y"] == model_y:
                out.loc[r["layer_x"], r["layer_y"]] = r[value]
        out.index.name, out.columns.name = model_x, model_y
        return out

    def pairs(self) -> list[tuple[str, str]]:
        """The model pairs a plot shows: each model with itself for one model, else each
        pair of distinct models."""
        names = list(self.layers)
        if len(names) == 1:
            return [(names[0], names[0])]
        return [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]

    def plot(self, measures=None, path=None, *, value: str = "similarity"):
        """Layer x layer heatmaps, one per model pair and measure, with labelled axes.

        Saves to ``path`` when given; returns the matplotlib figure.
        """
        from ..plot import pyplot

        plt = pyplot()
        measures = [measures] if isinstance(measures, str) else list(measures or self.measures)
        pairs = self.pairs()
        fig, axes = plt.subplots(len(measures), len(pairs), squeeze=False,
                                 figsize=(4.8 * len(pairs) + 1, 4.2 * len(measures) + 0.5), dpi=110)
        for i, measure in enumerate(measures):
            for j, (a, b) in enumerate(pairs):
                ax = axes[i][j]
                m = self.matrix(measure, a, b, value=value)
                image = ax.imshow(m.to_numpy(), cmap="magma", origin="lower", aspect="auto",
                                  vmin=0.0 if value == "similarity" else None,
                                  vmax=1.0 if value == "similarity" and registry.MEASURES.get(
                                      measure, None) is not None and registry.MEASURES[measure].bounded else None)
                ax.set_xticks(range(m.shape[1]), m.columns, rotation=90, fontsize=7)
                ax.set_yticks(range(m.shape[0]), m.index, fontsize=7)
                ax.set_xlabel(f"{b} layer")
                ax.set_ylabel(f"{a} layer")
                estimate = " (minibatch estimate)" if measure in MINIBATCH_MEASURES else ""
                ax.set_title(f"{_title(measure)}{estimate}: {a} vs {b}", fontsize=9)
                fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label=value)
        fig.suptitle(f"{self.n_samples} datapoints", fontsize=9)
        fig.tight_layout()
        if path is not None:
            fig.savefig(path)
        return fig

    def __repr__(self) -> str:
        layers = ", ".join(f"{m}: {len(v)} layers" for m, v in self.layers.items())
        return f"ModelComparison({layers}; measures={self.measures}; n_samples={self.n_samples})"


def _title(measure: str) -> str:
    spec = registry.MEASURES.get(measure)
    return spec.title if spec is not None else measure
