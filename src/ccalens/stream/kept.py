"""What streaming keeps of the sources: :class:`Summary`, the small matrices of every
source and, for a summary whose every group took the one-pass Gram route, the centred Gram
matrix itself with each group's eigendecomposition, from which the measures are computed
without forming the small matrices at all (:mod:`ccalens.stream.compute`)."""

from __future__ import annotations

__all__ = ["Summary"]


class Summary:
    """What streaming keeps of the sources.

    Attributes
    ----------
    matrices : list of ndarray
        One small matrix per source (see :func:`~ccalens.stream.compress`), formed on first use.
    n : int
        Number of datapoints streamed.
    varying : list of int
        Each source's number of non-constant neurons.
    routes : list of str
        Each source's route: "gram" (the first pass's Gram block), "gram2" (its weak
        eigen-directions summed again in a second pass) or "tsqr" (Householder); see
        :class:`~ccalens.stream.GramSummary`.
    gram : ndarray or None
        When every source took "gram": the centred Gram matrix of all their neurons
        (D x D, constant neurons zeroed); None otherwise.
    widths : list of int or None
        Each source's number of neurons (the blocks of ``gram``).
    groups : list of (kept, (eigenvalues, eigenvectors, norms, cancellation)) or None
        With ``gram``: each source's varying neurons (indices among the D) and the
        eigendecomposition of their correlation matrix, ascending (the routes' check).
    """

    def __init__(self, matrices, n, varying, prints, routes=None, *, gram=None, widths=None, groups=None):
        self._matrices = matrices
        self.n, self.varying, self.prints, self.routes = n, varying, prints, routes
        self.gram, self.widths, self.groups = gram, widths, groups

    @property
    def matrices(self) -> list:
        if callable(self._matrices):
            self._matrices = self._matrices()
        return self._matrices

    @matrices.setter
    def matrices(self, value) -> None:
        self._matrices = value

    def __repr__(self) -> str:
        return f"Summary(n={self.n}, sources={len(self.varying)}, routes={self.routes})"
