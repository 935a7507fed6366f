"""The math core: pure array code, numpy (and torch only when given tensors)."""

from ._validate import SmallSampleWarning
from .factor import Factor, factorize
from .measures import cca, mean_cca, pwcca, svcca
from .results import CCAResult, MeanCCAResult, PWCCAResult, SVCCAResult

__all__ = [
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
]
