"""The one-pass Gram summary of :mod:`ccalens.stream`: every inner product of the sources'
columns, accumulated batch by batch (in float64, or in float32 for linear CKA alone), then
checked source by source for the accuracy of the measures that whiten
(:meth:`GramSummary.routes`)."""

from __future__ import annotations

import numpy as np
import scipy.linalg

from ..core.linalg import centred_gram, psd_root, symmetrise_upper
from .kept import Summary
from .summaries import Rows, is_torch

__all__ = ["FLOAT32_CKA_TOLERANCE", "FLOAT32_MAX_CANCELLATION", "FLOAT64_MAX_CANCELLATION", "GramSummary"]

#: linear CKA alone is taken from the float64 Gram matrix without the conditioning check
#: (it inverts nothing) where every group's cancellation factor is at most this (eps f <= 2e-10)
FLOAT64_MAX_CANCELLATION = 1e6

#: float32 accumulation is kept only where every group's cancellation factor (see
#: :meth:`GramSummary.cancellation`) is at most this; otherwise the pass is redone in float64
FLOAT32_MAX_CANCELLATION = 10.0
#: the largest difference of linear CKA from float32 accumulation to float64 allowed on the
#: project's test cases (tests/test_float32.py: near-duplicate neurons, scales 1e-3 to 1e3,
#: dead neurons, offsets; the largest measured was 1.7e-8, with near-duplicate neurons)
FLOAT32_CKA_TOLERANCE = 1e-6


class GramSummary(Rows):
    r"""The one-pass Gram summary of column groups that arrive in row chunks, in float64:
    numpy arrays on the CPU, torch tensors on their own device (only the (D + 1) x (D + 1)
    matrix comes to the host). With ``accumulate="float32"`` each chunk's product is taken
    in float32 (about half the float64 product's time) and summed across chunks in
    float64; only linear CKA may use it (:meth:`cka_summary`, :data:`FLOAT32_CKA_TOLERANCE`).

    ``add(parts)`` accumulates :math:`A^T A` for :math:`A = [\mathbf 1 \mid X_1 - s_1 \mid
    \dots]` (one BLAS syrk per chunk, about D^2 flops per row), with each group shifted by
    its first chunk's means :math:`s_k`; the centred Gram matrix is then
    :math:`C = G - g g^T / n` from the shifted column sums :math:`g`, with little
    cancellation because the shift is close to the mean.

    Forming a Gram matrix squares the condition number, so each group is checked on its
    own block, with the thresholds :func:`ccalens.factorize` uses in memory. With
    :math:`\kappa` the condition number of the group's equilibrated centred data and
    :math:`f \ge 1` the largest ratio of a column's shifted to its centred sum of squares
    (the cancellation left by an unrepresentative first chunk), :meth:`routes` gives each
    group one of:

    ``"gram"``
        :math:`\epsilon f \kappa^2 \le` :data:`~ccalens.core.factor.GRAM_MAX_ROUNDING`:
        this pass is enough. A cross block :math:`C_{ij}` enters the canonical
        correlations with at most :math:`\epsilon \kappa_i \kappa_j`, within that bound too.
    ``"gram2"``
        :math:`\epsilon f \kappa^2 \le` :data:`~ccalens.core.factor.GRAM2_MAX_ROUNDING`
        and :math:`f \le 10^3`: in this pass's eigendecomposition of the group's block,
        only the directions whose eigenvalue (relative to the largest) is below the
        one-pass bound are inexact; a second pass projects the data onto those few
        directions and sums their exact inner products with every column
        (:class:`~ccalens.stream.second_pass.SecondPass`), where CholeskyQR2 would whiten and sum everything again.
    ``"tsqr"``
        otherwise (near-duplicate or dead-but-not-constant neurons, rank deficiency, no more
        rows than varying columns, magnitudes whose squares overflow): the second pass
        triangularises :math:`[\mathbf 1 \mid X_k]` by Householder reflections and carries
        the other groups' columns along (:class:`~ccalens.stream.second_pass.SecondPass`).
    """

    def __init__(self, names=None, accumulate: str = "float64"):
        super().__init__(names)
        if accumulate not in ("float64", "float32"):
            raise ValueError(f"accumulate must be 'float64' or 'float32'; got {accumulate!r}.")
        self.single = accumulate == "float32"
        self.acc = None
        self._gram = None
        self._centred = None
        self._diagonal = None

    def add(self, parts) -> None:
        if self._centred is not None:
            raise RuntimeError("this Gram summary was centred in place; it takes no more chunks.")
        block = self._joint(parts, reuse=True)
        if block is None:
            return
        if is_torch(block) and block.device.type == "cpu":  # the host's BLAS syrk: half a GEMM's flops
            block = block.numpy()
        if is_torch(block) and self.single:
            b32 = block.float()
            g = b32.T @ b32
            self.acc = g.double() if self.acc is None else self.acc.add_(g)
        elif is_torch(block):
            self.acc = block.T @ block if self.acc is None else self.acc.addmm_(block.T, block)
        elif self.single:  # the chunk's syrk in float32, added to the float64 upper triangle
            if self.acc is None:
                self.acc = np.zeros((block.shape[1],) * 2, order="F")
            self.acc += scipy.linalg.blas.ssyrk(1.0, block.T.astype(np.float32), trans=0, lower=0)
        else:  # one syrk into the upper triangle of the one (D + 1)^2 matrix: no second copy of it
            if self.acc is None:
                self.acc = np.zeros((block.shape[1],) * 2, order="F")
            self.acc = scipy.linalg.blas.dsyrk(1.0, block.T, beta=1.0, c=self.acc, trans=0, lower=0,
                                               overwrite_c=True)
        self._gram = None

    @property
    def gram(self) -> np.ndarray:
        """The accumulated Gram matrix of [1 | shifted columns], on the host (until
        :meth:`centred` turns it into the centred one, in place)."""
        if self._centred is not None:
            raise RuntimeError("the Gram matrix was centred in place; use centred() and raw_diagonal.")
        if self._gram is None:
            if is_torch(self.acc):
                self._gram = self.acc.cpu().numpy()
            else:
                symmetrise_upper(self.acc)
                self._gram = self.acc
        return self._gram

    @property
    def raw_diagonal(self) -> np.ndarray:
        """The diagonal of the accumulated Gram matrix (the ones column's n, then each shifted
        column's sum of squares), kept when the matrix is centred."""
        return self._diagonal if self._diagonal is not None else np.diag(self.gram).copy()

    def centred(self) -> np.ndarray:
        """The centred data's Gram matrix (D x D), constant columns zeroed: computed once, in
        the accumulated matrix's own memory (a view of it), so the summary never holds two."""
        if self._centred is None:
            gram = self.gram
            self._diagonal = np.diag(gram).copy()
            self._centred = centred_gram(gram, self._constant(), in_place=True)
            self._gram = None
        return self._centred

    def _kept(self, k: int) -> np.ndarray:
        """Indices (among the D neurons) of group k's varying neurons."""
        a = int(np.sum(self.widths[:k]))
        return a + np.flatnonzero(~self._constant()[a : a + self.widths[k]])

    def routes(self, rtol: float | None = None) -> list[str]:
        """Each group's route (see the class docstring)."""
        from ..core.factor import GRAM2_MAX_ROUNDING, GRAM_MAX_ROUNDING
        from ..core.linalg import correlation_eigh

        self._check_rows()
        eps, info = np.finfo(np.float64).eps, np.finfo(np.float64)
        c = self.centred()
        raw = self.raw_diagonal[1:]
        cancellation = self.cancellation()
        out = []
        self._eig = {}
        for k in range(len(self.widths)):
            keep = self._kept(k)
            block = c[np.ix_(keep, keep)]
            d = np.diag(block)
            if keep.size == 0:
                out.append("gram")  # no varying neuron: finish() says so
                continue
            if (keep.size >= self.n or not np.all(np.isfinite(block)) or not np.all(np.isfinite(raw[keep]))
                    or np.any(d <= info.tiny * 1e8) or np.any(raw[keep] > info.max * 1e-8)):
                out.append("tsqr")
                continue
            cancel = cancellation[k]
            lam, vec, scale = correlation_eigh(block)
            rcond2 = max(lam[0], 0.0) / lam[-1]
            floor2 = (rtol or 0.0) ** 2
            if eps * cancel <= GRAM_MAX_ROUNDING * rcond2 and rcond2 >= floor2:
                out.append("gram")
                self._eig[k] = (lam, vec, scale, cancel)  # the whitening of the measures (kept.Summary)
            elif eps * cancel <= GRAM2_MAX_ROUNDING * rcond2 and rcond2 >= floor2 and cancel <= 1e3:
                out.append("gram2")
                self._eig[k] = (lam, vec, scale, cancel)
            else:
                out.append("tsqr")
        return out

    def split(self, k: int):
        """(kept, W, kw, M) for a "gram2" group: the coordinates Y = X_c[:, kept] W are its
        whitened eigen-directions, the kw weak ones (eigenvalue below the one-pass bound,
        relative to the largest) first; X_c[:, kept] = Y M (M = W^-1)."""
        from ..core.factor import GRAM_MAX_ROUNDING

        lam, vec, scale, cancel = self._eig[k]
        weak = int(np.count_nonzero(lam / lam[-1] * GRAM_MAX_ROUNDING < np.finfo(np.float64).eps * cancel))
        w = (vec / np.sqrt(lam)[None, :]) / scale[:, None]
        m = (np.sqrt(lam)[:, None] * vec.T) * scale[None, :]
        return self._kept(k), w, max(weak, 1), m

    def cancellation(self) -> list[float]:
        """Per group, the largest ratio of a varying column's shifted to its centred sum of
        squares (1 when the first chunk's shift is the mean): the factor by which the
        centring magnifies the accumulation's rounding."""
        c, raw = self.centred(), self.raw_diagonal[1:]
        out = []
        for k in range(len(self.widths)):
            keep = self._kept(k)
            d = np.diag(c)[keep]
            with np.errstate(divide="ignore", invalid="ignore"):
                out.append(float(np.max(raw[keep] / d)) if keep.size else 1.0)
        return out

    def cka_summary(self) -> Summary:
        """The centred Gram matrix for linear CKA alone (no conditioning check: a ratio of
        Frobenius norms of its blocks inverts nothing); its routes say "gram32" when the
        chunks were accumulated in float32."""
        self._check_rows()
        varying = self._varying(self._constant())
        centred = self.centred()
        groups = [(self._kept(k), None) for k in range(len(self.widths))]
        route = "gram32" if self.single else "gram"
        return Summary(lambda: self._split(psd_root(centred)), self.n, varying, None, [route] * len(self.widths),
                       gram=centred, widths=list(self.widths), groups=groups)

    def finish(self) -> Summary:
        """The small matrices when every group takes the "gram" route (see :meth:`routes`)."""
        self._check_rows()
        varying = self._varying(self._constant())
        centred = self.centred()
        eig = getattr(self, "_eig", {})
        groups = [(self._kept(k), eig.get(k)) for k in range(len(self.widths))] if eig else None
        return Summary(lambda: self._split(psd_root(centred)), self.n, varying, None, ["gram"] * len(self.widths),
                       gram=centred if groups is not None else None, widths=list(self.widths), groups=groups)
