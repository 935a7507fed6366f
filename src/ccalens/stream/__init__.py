"""One pass over data or models: many representations compared exactly from a summary of
their datapoints, however many datapoints there are.

* :func:`compare`, :func:`pairwise`, :func:`compress`, :func:`summarise`: out-of-core
  sources (Zarr arrays, store paths, ``.npy`` files, arrays, iterables of row chunks);
* :func:`compare_models` (also ``ccalens.compare_models``): every layer of one or more
  models against every other, recorded by forward hooks.

One module per concern: :mod:`.options` (the one validation of measures and options that
every front door here shares), :mod:`.sources` (reading), :mod:`.summaries` (the TSQR
pass), :mod:`.gram` (the checked Gram pass), :mod:`.second_pass`, :mod:`.api` (the functions over sources), :mod:`.recording`
(model hooks), :mod:`.estimates` (minibatch estimates), :mod:`.datapoints` (the datapoint
route for layers wider than the data), :mod:`.comparison` (its result), :mod:`.models` (model
comparison).
Importing this package never imports torch.
"""

from .api import compare, compress, pairwise, summarise
from .comparison import ModelComparison
from .models import DEFAULT_MAX_MEMORY, compare_models, summary_bytes
from .options import MEASURES, MINIBATCH_MEASURES, ROUTES, default_rtol, why_not_streamable
from .second_pass import complete
from .gram import GramSummary
from .summaries import RowSummary, Summary

__all__ = ["DEFAULT_MAX_MEMORY", "MEASURES", "MINIBATCH_MEASURES", "ROUTES", "GramSummary", "ModelComparison",
           "RowSummary", "Summary", "compare", "compare_models", "complete", "compress", "default_rtol", "pairwise",
           "summarise", "summary_bytes", "why_not_streamable"]
