"""ccalens: how similar are the representations of neural networks?

CCA, SVCCA and projection-weighted CCA (Morcos, Raghu & Bengio 2018), exact and fast;
CKA, RSA, Procrustes and the paper's matched-neuron controls through the same API; permutation
nulls and bootstrap intervals for every measure.
Arrays are (datapoints, neurons) everywhere. Importing ccalens never imports torch.
"""

from .core import (
    BootstrapResult,
    CKAResult,
    MatchedResult,
    MinibatchCKA,
    NullResult,
    ProcrustesResult,
    cka,
    cosine,
    dft_cca,
    DFTCCAResult,
    euclidean,
    procrustes,
    rsa,
    RSAResult,
    predictivity,
    PredictivityResult,
    mutual_knn,
    cknna,
    NeighbourResult,
    CCAResult,
    Factor,
    MeanCCAResult,
    PWCCAResult,
    SmallSampleWarning,
    SVCCAResult,
    cca,
    factorize,
    mean_cca,
    pwcca,
    svcca,
)

from .engine import PairwiseResult, pairwise  # noqa: E402

from .version import __version__  # noqa: E402,F401

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
    "CCAResult",
    "Factor",
    "MeanCCAResult",
    "PairwiseResult",
    "PWCCAResult",
    "SVCCAResult",
    "SmallSampleWarning",
    "cca",
    "factorize",
    "mean_cca",
    "pairwise",
    "pwcca",
    "svcca",
]
