"""Figures: the one module that loads matplotlib (:func:`pyplot`, imported only when a figure
is drawn, with the file-writing Agg backend), and the figures of pairwise results."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .core import registry


def pyplot():
    """matplotlib.pyplot with the Agg backend, or a clear error naming the extra to install."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("figures need matplotlib: pip install 'ccalens[plot]'") from err
    return plt


def clustering(result, n_clusters: int | None = None, method: str = "average"):
    """Hierarchical clustering (average linkage by default) of the (symmetrised) distance matrix.

    Returns (linkage, order of the leaves, cluster label per representation). The number
    of clusters defaults to the largest gap in merge heights.
    """
    from scipy.cluster import hierarchy
    from scipy.spatial.distance import squareform

    if result.rows != result.columns:
        raise ValueError("clustering needs a square (K x K) matrix; this one is K x L.")
    if n_clusters is not None and (isinstance(n_clusters, bool) or not isinstance(n_clusters, (int, np.integer))
                                   or not 1 <= n_clusters <= len(result.rows)):
        raise ValueError(f"the number of clusters must be an int from 1 to {len(result.rows)} (the arrays); "
                         f"got {n_clusters!r}.")
    dist = 0.5 * (result.distance + result.distance.T)
    np.fill_diagonal(dist, 0.0)
    dist = np.clip(dist, 0.0, None)
    if len(dist) < 2:
        return None, [0], np.ones(len(dist), dtype=int)
    link = hierarchy.linkage(squareform(dist, checks=False), method=method)
    order = hierarchy.leaves_list(link)
    if n_clusters is None:  # cut at the largest jump between consecutive merge heights
        heights = link[:, 2]
        n_clusters = 1 if len(heights) < 2 else len(dist) - (int(np.argmax(np.diff(heights))) + 1)
    labels = hierarchy.fcluster(link, t=n_clusters, criterion="maxclust")
    return link, list(order), labels


def heatmap(result, path: Path, order=None, title: str | None = None) -> None:
    plt = pyplot()
    # Euclidean has no similarity scale: show its distance (0 = identical) instead
    as_distance = not registry.MEASURES[result.measure].bounded  # Euclidean: a distance, not a similarity
    sim = result.distance if as_distance else result.similarity
    rows, cols = list(result.rows), list(result.columns)
    if order is not None:
        sim = sim[np.ix_(order, order)]
        rows = [rows[i] for i in order]
        cols = [cols[i] for i in order]
    size = max(4.0, 0.32 * max(len(rows), len(cols)) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size), dpi=110)
    if as_distance:
        im = ax.imshow(sim, vmin=0, vmax=max(float(np.max(sim)), 1e-12), cmap="viridis_r")
    else:  # debiased CKA can dip below 0, cosine down to -1
        im = ax.imshow(sim, vmin=min(0.0, float(np.min(sim))), vmax=1, cmap="viridis")
    ax.set_xticks(range(len(cols)), cols, rotation=90, fontsize=7)
    ax.set_yticks(range(len(rows)), rows, fontsize=7)
    ax.set_xlabel("column representation")
    spec = registry.MEASURES[result.measure]
    ax.set_ylabel(f"row representation ({spec.title} weights)" if spec.directed else "row representation")
    fig.colorbar(im, ax=ax, label=f"{result.measure} {'distance' if as_distance else 'similarity'}")
    ax.set_title(title or f"{result.measure} similarity", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def dendrogram(result, link, labels, path: Path) -> None:
    from scipy.cluster import hierarchy

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(5.0, 0.3 * len(result.rows) + 2), 4), dpi=110)
    names = [f"{name} [{c}]" for name, c in zip(result.rows, labels)]
    hierarchy.dendrogram(link, labels=names, ax=ax, leaf_rotation=90, leaf_font_size=7)
    ax.set_ylabel(f"{result.measure} distance (average linkage)")
    ax.set_title(f"{len(set(labels))} clusters (label in brackets)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
