"""The math core: pure array code, numpy (and torch only when given tensors)."""

from .validate import SmallSampleWarning
from .factor import Factor, factorize
from .measures import cca, mean_cca, pwcca, svcca
from .cka import cka
from .hsic import MinibatchCKA
from .alignment import cosine, euclidean, procrustes
from .dft import DFTCCAResult, dft_cca
from .rsa import rsa
from .predictivity import predictivity
from .neighbours import cknna, mutual_knn
from .shape import shape_metric
from .paired import PairedDifference, paired_difference, paired_differences
from .results import (
    BootstrapResult,
    CCAResult,
    CKAResult,
    MatchedResult,
    MeanCCAResult,
    NullResult,
    ProcrustesResult,
    NeighbourResult,
    PWCCAResult,
    PredictivityResult,
    RSAResult,
    ShapeResult,
    SVCCAResult,
)

__all__ = [
    "BootstrapResult",
    "CKAResult",
    "MatchedResult",
    "MinibatchCKA",
    "NullResult",
    "ProcrustesResult",
    "cka",
    "cosine",
    "dft_cca",
    "DFTCCAResult",
    "euclidean",
    "procrustes",
    "rsa",
    "RSAResult",
    "predictivity",
    "PredictivityResult",
    "mutual_knn",
    "cknna",
    "NeighbourResult",
    "shape_metric",
    "ShapeResult",
    "CCAResult",
    "Factor",
    "MeanCCAResult",
    "PWCCAResult",
    "SVCCAResult",
    "SmallSampleWarning",
    "cca",
    "factorize",
    "mean_cca",
    "pwcca",
    "svcca",
    "PairedDifference",
    "paired_difference",
    "paired_differences",
]
