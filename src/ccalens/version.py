"""The version of ccalens (one place; the package metadata and ``ccalens --version`` read it)."""

__version__ = "0.1.0"
