"""Uncertainty for every measure: permutation nulls, bootstrap intervals and their progress.

The public face of :mod:`ccalens.core.resampling` (the draws) and
:mod:`ccalens.core.intervals` (the interval methods and their measured coverage); see
those modules for the methods and references.
"""

from .core.intervals import DEFAULT_BY_FAMILY, DEFAULT_METHOD, METHODS, RELIABLE_DATAPOINTS_PER_NEURON
from .core.resampling import (
    MAX_DRAWS,
    bootstrap_interval,
    bootstrap_values,
    default_method,
    jackknife_values,
    null_distribution,
    progress,
    summarise_bootstrap,
    summarise_null,
)
from .core.results import BootstrapResult, NullResult

__all__ = ["BootstrapResult", "DEFAULT_BY_FAMILY", "DEFAULT_METHOD", "MAX_DRAWS", "METHODS", "NullResult",
           "RELIABLE_DATAPOINTS_PER_NEURON", "bootstrap_interval", "bootstrap_values", "default_method",
           "jackknife_values",
           "null_distribution", "progress", "summarise_bootstrap", "summarise_null"]
