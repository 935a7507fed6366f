"""Many representations at once: ``pairwise`` factorises each representation once, batches
the cross products, and keeps every finished pair.

Modules, one concern each: :mod:`~ccalens.engine.api` (the call and its result),
:mod:`~ccalens.engine.sources` (labels, reading and fingerprints),
:mod:`~ccalens.engine.blocks` (blocks of pairs from one product, batched kernels),
:mod:`~ccalens.engine.uncertainty` (per-pair nulls and intervals),
:mod:`~ccalens.engine.database` (the SQLite results),
:mod:`~ccalens.engine.distributed` (Dask), :mod:`~ccalens.engine.folder` (a results
folder of every pair of a store: ``ccalens matrix``) and :mod:`~ccalens.engine.paired`
(paired differences along a row or a column).
"""

from .api import PairwiseResult, pairwise
from .folder import matrix_folder
from .paired import paired_row
from .sources import labels

__all__ = ["PairwiseResult", "labels", "matrix_folder", "paired_row", "pairwise"]
