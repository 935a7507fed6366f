"""Small frozen result objects returned by the measures."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import registry
from .resample_results import BootstrapResult, NullResult  # noqa: F401  (re-exported: results are imported from here)

Array = Any  # numpy.ndarray, or torch.Tensor when the inputs were tensors


@dataclass(frozen=True, eq=False)
class _Similarity:
    similarity: float
    null: NullResult | None = None
    bootstrap: BootstrapResult | None = None

    @property
    def distance(self) -> float:
        """The paper's d = 1 - similarity."""
        return registry.one_minus(self.similarity)

    def details(self) -> dict:
        """The result's small facts beside its similarity (ranks, components, weights' side)."""
        return {}

    def __float__(self) -> float:
        return float(self.similarity)

    def _summary(self) -> str:
        return f"similarity={self.similarity:.6f}, distance={self.distance:.6f}"

    def __repr__(self) -> str:
        extra = ""
        if self.null is not None:
            extra += f", p_value={self.null.p_value:.4g}, null_mean={self.null.mean:.6f}"
        if self.bootstrap is not None:
            b = self.bootstrap
            extra += f", ci{100 * b.confidence:g}=[{b.low:.6f}, {b.high:.6f}] ({b.method}"
            if b.reports_correction:
                extra += f", bias-corrected {b.corrected:.6f}"
            extra += ")"
        return f"{type(self).__name__}({self._summary()}{extra})"


@dataclass(frozen=True, eq=False, repr=False)
class CCAResult(_Similarity):
    """Canonical correlation analysis of two representations.

    Attributes
    ----------
    similarity : float
        Mean canonical correlation.
    rho : array, shape (c,)
        Canonical correlations, descending, each in [0, 1]; c = min(x_rank, y_rank).
    x_directions, y_directions : arrays, shapes (n_neurons_x, c) and (n_neurons_y, c)
        Canonical directions in neuron space: ``(X - X.mean(0)) @ x_directions`` are the
        canonical variates of X, of unit Euclidean norm when ``epsilon == 0`` (multiply by
        sqrt(n_samples - 1) for unit variance). Rows of dropped (constant) neurons are 0.
    x_rank, y_rank : int
        Directions kept on each side.
    x_dropped, y_dropped : tuple of int
        Constant neurons removed from each side.
    n_samples : int
    epsilon : float
        The ridge used (0 for plain CCA).
    x_variates, y_variates : arrays of shape (n_samples, c), or None
        The canonical variates, when asked for with ``variates=True``.
    """

    rho: Array = None
    x_directions: Array = None
    y_directions: Array = None
    x_rank: int = 0
    y_rank: int = 0
    x_dropped: tuple[int, ...] = ()
    y_dropped: tuple[int, ...] = ()
    n_samples: int = 0
    epsilon: float = 0.0
    x_variates: Array | None = None
    y_variates: Array | None = None

    def details(self) -> dict:
        return {"rho_first": [float(v) for v in _host(self.rho)[:10]], "x_rank": self.x_rank, "y_rank": self.y_rank,
                "x_dropped": len(self.x_dropped), "y_dropped": len(self.y_dropped)}

    def _summary(self) -> str:
        return (
            f"{super()._summary()}, c={len(self.rho)}, x_rank={self.x_rank}, "
            f"y_rank={self.y_rank}, n_samples={self.n_samples}"
        )


@dataclass(frozen=True, eq=False, repr=False)
class MeanCCAResult(_Similarity):
    """Unweighted mean of the canonical correlations.

    ``compat`` is ``"svcca"`` when computed as google/svcca does (then ``x_rank`` and
    ``y_rank`` count the neurons it kept).
    """

    rho: Array = None
    x_rank: int = 0
    y_rank: int = 0
    n_samples: int = 0
    epsilon: float = 0.0
    compat: str | None = None

    def details(self) -> dict:
        return {"c": len(self.rho)}

    def _summary(self) -> str:
        extra = f", compat={self.compat!r}" if self.compat else ""
        return f"{super()._summary()}, c={len(self.rho)}{extra}"


@dataclass(frozen=True, eq=False, repr=False)
class SVCCAResult(_Similarity):
    """SVCCA: CCA between the leading singular directions of each side.

    Attributes
    ----------
    rho : array, shape (min(x_components, y_components),)
    x_components, y_components : int
        Singular directions kept on each side.
    x_variance_kept, y_variance_kept : float
        Share of each side's variance (squared singular values) that they hold.
    """

    rho: Array = None
    x_components: int = 0
    y_components: int = 0
    x_variance_kept: float = 0.0
    y_variance_kept: float = 0.0
    n_samples: int = 0

    def details(self) -> dict:
        return {"x_components": self.x_components, "y_components": self.y_components}

    def _summary(self) -> str:
        return (
            f"{super()._summary()}, x_components={self.x_components}, "
            f"y_components={self.y_components}"
        )


@dataclass(frozen=True, eq=False, repr=False)
class PWCCAResult(_Similarity):
    """Projection-weighted CCA (section 2.2 of the paper).

    Attributes
    ----------
    similarity : float
        sum_i weights_i * rho_i (with ``symmetric=True``, the mean of both directions).
    rho : array, shape (c,)
        Canonical correlations, descending.
    weights : array, shape (c,)
        Projection weights from X's neurons (from the side the reference code chose,
        with ``compat="svcca"``), summing to 1.
    forward : float
        The directed value with X's weights.
    reverse_weights : array or None
        Y's weights, with ``symmetric=True``.
    reverse : float or None
        The directed value with Y's weights, with ``symmetric=True``.
    weights_from : {"X", "Y"}
        Which side's neurons gave ``weights``.
    x_components, y_components : int or None
        With ``keep=``, how many leading singular directions each side kept (their PCA
        scores are then the "neurons" the weights sum over); None without it.
    """

    rho: Array = None
    weights: Array = None
    forward: float = 0.0
    reverse_weights: Array | None = None
    reverse: float | None = None
    weights_from: str = "X"
    x_rank: int = 0
    y_rank: int = 0
    n_samples: int = 0
    x_components: int | None = None  # with keep=: the leading singular directions kept per side
    y_components: int | None = None
    epsilon: float = 0.0
    compat: str | None = None

    def details(self) -> dict:
        out = {"weights_from": self.weights_from, "c": len(self.rho)}
        if self.reverse is not None:
            out.update(forward=self.forward, reverse=self.reverse)
        return out

    def _summary(self) -> str:
        extra = f", reverse={self.reverse:.6f}" if self.reverse is not None else ""
        extra += f", compat={self.compat!r}" if self.compat else ""
        return f"{super()._summary()}, c={len(self.rho)}, weights_from={self.weights_from!r}{extra}"


@dataclass(frozen=True, eq=False, repr=False)
class CKAResult(_Similarity):
    """Centred kernel alignment (Kornblith et al. 2019).

    Attributes
    ----------
    kernel : {"linear", "rbf"}
    debiased : bool
        Whether the unbiased HSIC estimator was used.
    bandwidth : float or None
        RBF: sigma as a fraction of the median distance between datapoints.
    hsic_xy, hsic_xx, hsic_yy : float
        The HSIC terms (up to a common factor, which cancels): similarity =
        hsic_xy / sqrt(hsic_xx * hsic_yy).
    """

    kernel: str = "linear"
    debiased: bool = False
    bandwidth: float | None = None
    hsic_xy: float = 0.0
    hsic_xx: float = 0.0
    hsic_yy: float = 0.0
    n_samples: int = 0

    def details(self) -> dict:
        return {"bandwidth": self.bandwidth} if self.kernel == "rbf" else {}

    def _summary(self) -> str:
        kind = ("debiased " if self.debiased else "") + self.kernel
        return f"{super()._summary()}, kernel={kind!r}, n_samples={self.n_samples}"


@dataclass(frozen=True, eq=False, repr=False)
class ProcrustesResult(_Similarity):
    """Orthogonal Procrustes (Ding et al. 2021): similarity = nuclear norm of X^T Y for
    centred, unit-Frobenius-norm data; ``distance`` = 2 - 2 similarity, the squared
    Procrustes distance min_R ||X - Y R||_F^2."""

    x_rank: int = 0
    y_rank: int = 0
    n_samples: int = 0

    @property
    def distance(self) -> float:
        return registry.procrustes_distance(self.similarity)


@dataclass(frozen=True, eq=False, repr=False)
class ShapeResult(_Similarity):
    """Generalised shape metric (Williams et al. 2021): similarity = cos(theta) of the
    partially whitened (``alpha``) representations after the best rotation; ``distance`` =
    theta in radians, in [0, pi/2], a metric."""

    alpha: float = 0.5
    x_rank: int = 0
    y_rank: int = 0
    n_samples: int = 0

    @property
    def distance(self) -> float:
        return registry.angular(self.similarity)

    def _summary(self) -> str:
        return f"{super()._summary()}, alpha={self.alpha:g}"


@dataclass(frozen=True, eq=False, repr=False)
class MatchedResult(_Similarity):
    """A matched-neuron control: ``measure`` is "cosine" (similarity = cosine, distance =
    1 - cosine) or "euclidean" (distance = RMS distance between datapoints' activation
    vectors, similarity = -distance)."""

    measure: str = "cosine"
    n_samples: int = 0

    @property
    def distance(self) -> float:
        spec = registry.MEASURES.get(self.measure)
        return (spec.distance if spec is not None else registry.one_minus)(self.similarity)

    def _summary(self) -> str:
        return f"{super()._summary()}, measure={self.measure!r}"


@dataclass(frozen=True, eq=False, repr=False)
class RSAResult(_Similarity):
    """Representational similarity analysis: ``similarity`` is the correlation (``compare``)
    of the two representations' RDMs (``rdm``), over their upper triangles."""

    rdm: str = "correlation"
    compare: str = "spearman"
    n_samples: int = 0

    def details(self) -> dict:
        return {"rdm": self.rdm, "compare": self.compare}

    def _summary(self) -> str:
        return f"{super()._summary()}, rdm={self.rdm!r}, compare={self.compare!r}, n_samples={self.n_samples}"


@dataclass(frozen=True, eq=False, repr=False)
class PredictivityResult(_Similarity):
    """Linear predictivity: ``similarity`` is the held-out R^2 of a ridge regression of Y on X
    (pooled over Y's neurons), at the penalty ``alpha`` chosen from ``alphas``."""

    alpha: float = 0.0
    alphas: Any = None
    n_samples: int = 0

    def details(self) -> dict:
        return {"alpha": self.alpha}

    def _summary(self) -> str:
        return f"{super()._summary()}, alpha={self.alpha:.4g}, n_samples={self.n_samples}"


@dataclass(frozen=True, eq=False, repr=False)
class NeighbourResult(_Similarity):
    """Nearest-neighbour alignment (mutual k-NN or CKNNA) with ``k`` neighbours; ``ties``
    counts datapoints whose k-th and (k+1)-th neighbours were equally similar (broken by
    index, deterministically)."""

    k: int = 0
    ties: int = 0
    n_samples: int = 0

    def details(self) -> dict:
        return {"k": self.k, "ties": self.ties}

    def _summary(self) -> str:
        return f"{super()._summary()}, k={self.k}, ties={self.ties}, n_samples={self.n_samples}"


def _host(array):
    """A result's array on the host, as numpy (torch results keep tensors)."""
    if hasattr(array, "detach"):
        return array.detach().cpu().numpy()
    return array
