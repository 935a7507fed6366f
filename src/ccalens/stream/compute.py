r"""Every requested measure for every pair of a summary's sources, each source factorised
once for all of them.

When every source took the one-pass Gram route (:class:`~ccalens.stream.kept.Summary` with
``gram``), nothing of the summary's small matrices is formed:

* **linear CKA** is a ratio of Frobenius norms of Gram blocks,
  :math:`\|C_{ij}\|_F^2 / (\|C_{ii}\|_F \|C_{jj}\|_F)` (Kornblith et al. 2019), with each
  block divided by its own norm first so that no square under- or overflows;
* **the CCA family, Procrustes and the shape metrics** see each source through the
  eigendecomposition of its correlation matrix :math:`R_k = V_k \Lambda_k V_k^T` that the
  routes' conditioning check computed already: :math:`Q_k = X_{s,k} V_k \Lambda_k^{-1/2}`
  is an orthonormal basis of the source's centred data (never formed), its coordinates are
  :math:`T_k = \Lambda_k^{1/2} V_k^T`, and the cross products the measures need are
  :math:`M_{ij} = Q_i^T Q_j = \Lambda_i^{-1/2} V_i^T R_{ij} V_j \Lambda_j^{-1/2}`, from the
  correlation block :math:`R_{ij}`. Under the route's bound
  (:math:`\epsilon\kappa^2 \le` ``GRAM_MAX_ROUNDING``) this is as accurate as the Cholesky
  whitening of the in-memory Gram route, and no SVD of a source is taken unless a measure
  asks for its principal axes (SVCCA, Procrustes, the shape metrics).

Otherwise (a source took "gram2" or "tsqr") each small matrix is factorised once
(:func:`ccalens.factorize`'s routes, Householder for the ill-conditioned ones) and
:math:`M_{ij}` is the product of the two bases.

Either way the values are the registered kernels' (:func:`ccalens.core.registry.from_cross`)
on those factors, so they equal :func:`ccalens.pairwise` on the small matrices, and the
in-memory measures, to rounding.
"""

from __future__ import annotations

import numpy as np

from ..core import registry
from ..core.factor import Factor, factorize_matrix
from ..core.ops import NumpyOps
from ..core.pairs import compute_pcas, cross, factorize_each, side_by_side

__all__ = ["SourceFactors", "all_pairs"]


class SourceFactors:
    """Each source of a :class:`~ccalens.stream.kept.Summary` factorised once, and the cross
    product of any two (see the module docstring)."""

    def __init__(self, summary, rtol: float | None):
        self.summary, self.n = summary, int(summary.n)
        self.ops = NumpyOps()
        self._factors = None
        if summary.gram is not None:
            self.edges = np.cumsum([0] + list(summary.widths))
            self.columns = [kept for kept, _ in summary.groups]  # each source's varying neurons, among the D
            self.norms = [self._block_norm(k) for k in range(len(self.columns))]
            self.sizes = [len(c) for c in self.columns]
        else:
            mats = summary.matrices  # small matrices, or factors made already (the datapoint route's)
            self._factors = factorize_each(
                lambda k: mats[k] if isinstance(mats[k], Factor) else factorize_matrix(
                    mats[k], self.ops, rtol, f"source {k}"), list(range(len(mats))))
            self.sizes = [f.rank for f in self._factors]

    @property
    def factors(self) -> list:
        """Each source's factor; from the Gram route's eigendecompositions, made on first use
        (linear CKA alone needs none, and a float32 summary has none)."""
        if self._factors is None:
            if any(eig is None for _, eig in self.summary.groups):
                raise ValueError("this summary keeps only the Gram matrix (linear CKA alone, or float32 "
                                 "accumulation); the other measures need the float64 pass and its checks.")
            self._factors = [self._from_eig(k, kept, eig) for k, (kept, eig) in enumerate(self.summary.groups)]
        return self._factors

    @property
    def from_gram(self) -> bool:
        return self.summary.gram is not None

    def _from_eig(self, k: int, kept: np.ndarray, eig) -> Factor:
        lam, vec, scale, _ = eig
        width = int(self.summary.widths[k])
        local = kept - self.edges[k]
        dropped = tuple(int(i) for i in np.setdiff1d(np.arange(width), local))
        root = np.sqrt(lam)
        whiten = vec / root[None, :]  # R_k^-1/2 in the eigenbasis: Q_k = X_s,k whiten
        return Factor(n_samples=self.n, n_neurons=width, mean=None, kept=local, dropped=dropped, scale=scale,
                      basis_data=None, basis_coef=whiten, coords=root[:, None] * vec.T, method="gram",
                      rcond=float(np.sqrt(max(lam[0], 0.0) / lam[-1])), ops=self.ops)

    def _correlation(self, i: int, j: int) -> np.ndarray:
        """R_ij: the correlation block of two sources' varying neurons."""
        fi, fj = self.factors[i], self.factors[j]
        block = self._block(i, j)  # a copy (fancy indexing), scaled in place
        block /= fi.scale[:, None]
        block /= fj.scale[None, :]
        return block

    def _block(self, i: int, j: int) -> np.ndarray:
        return self.summary.gram[np.ix_(self.columns[i], self.columns[j])]

    def _block_norm(self, k: int) -> float:
        block = self._block(k, k)  # a copy, scaled in place
        top = float(np.max(np.abs(block)))
        block /= top
        return top * float(np.linalg.norm(block))

    def cross(self, i: int, j: int) -> np.ndarray:
        """M_ij = Q_i^T Q_j."""
        fi, fj = self.factors[i], self.factors[j]
        if not self.from_gram:
            return cross(fi, fj)
        return fi.basis_coef.T @ self._correlation(i, j) @ fj.basis_coef

    def linear_cka(self, i: int, j: int) -> float:
        """||C_ij||_F^2 / (||C_ii||_F ||C_jj||_F), each block scaled by its own norm first."""
        scaled = self._block(i, j) / np.sqrt(self.norms[i]) / np.sqrt(self.norms[j])
        return float(np.sum(scaled * scaled))


def all_pairs(summary, specs: list, *, rtol: float | None, epsilon: float = 0.0, keep: float | None = None,
              pairs=None, progress: bool = False) -> dict:
    """{(i, j): {measure: (value with i's weights, value with j's weights)}} for the pairs
    of sources (default: every unordered pair, i <= j) and every registered spec in ``specs``
    (factor-based measures that stream). A pair of a source with itself gets the measure's
    own value for identical representations where the registry declares one."""
    sources = SourceFactors(summary, rtol)
    count = len(sources.sizes)
    wanted = pairs if pairs is not None else [(i, j) for i in range(count) for j in range(i, count)]
    # the measures that take the canonical vectors first: their SVD of the pair's matrix
    # then gives the others (mean CCA) their correlations (registry.from_cross's shared)
    ordered = sorted(specs, key=lambda s: not s.directed)
    if any(not (s.name == "cka" and sources.from_gram) for s in specs):
        compute_pcas(sources.factors)  # side by side, before the pairs that use them

    def one(pair):
        i, j = pair
        values, shared = {}, {}
        todo = [s for s in ordered if not (i == j and s.identical is not None)]
        for s in ordered:
            if s not in todo:
                values[s.name] = (float(s.identical), float(s.identical))
        if sources.from_gram and any(s.name == "cka" for s in todo):
            v = sources.linear_cka(i, j)
            values["cka"] = (v, v)
            todo = [s for s in todo if s.name != "cka"]
        if todo:
            m = sources.cross(i, j)
            for s in todo:
                v_ab, v_ba, _ = registry.from_cross(s.name, sources.factors[i], sources.factors[j], m,
                                                    epsilon=epsilon, keep=keep, shared=shared)
                values[s.name] = (float(v_ab), float(v_ba))
        return {s.name: values[s.name] for s in specs}

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(wanted), desc="measures", unit="pair")

    def counted(pair):
        values = one(pair)
        if bar is not None:
            bar.update()  # tqdm's update is thread-safe
        return values

    # the costliest pairs first (their SVDs grow with the product of the ranks and the
    # smaller one), so that the threads finish together; the result does not depend on it
    ranks = sources.sizes
    order = sorted(wanted, key=lambda p: -ranks[p[0]] * ranks[p[1]] * min(ranks[p[0]], ranks[p[1]]))
    try:
        out = dict(zip(order, side_by_side(counted, order)))
    finally:
        if bar is not None:
            bar.close()
    return {pair: out[pair] for pair in wanted}
