"""ccalens: how similar are the representations of neural networks?

CCA, SVCCA and projection-weighted CCA (Morcos, Raghu & Bengio 2018), exact and fast;
CKA, RSA, Procrustes and the paper's matched-neuron controls through the same API; permutation
nulls and bootstrap intervals for every measure.
Arrays are (datapoints, neurons) everywhere. Importing ccalens never imports torch.
"""

from . import core
from .core import *  # noqa: F401,F403  (every name of core.__all__: the measures, their results, factorize)
from .engine import PairwiseResult, paired_row, pairwise  # noqa: E402
from .stream import ModelComparison, compare_models  # noqa: E402
from .version import __version__  # noqa: E402,F401

__all__ = [*core.__all__, "ModelComparison", "PairwiseResult", "compare_models", "paired_row", "pairwise"]
