"""Recording layer activations from torch models (the only part of ccalens that needs torch).

``from ccalens.extract import extract`` imports torch; ``import ccalens`` does not.
"""

from .core import ExtractionError, MemorySink, extract, layer_names

__all__ = ["ExtractionError", "MemorySink", "extract", "layer_names"]
