r"""The second pass of the Gram route, for the groups that the first pass's Gram matrix does
not summarise exactly enough (see :class:`~ccalens.stream.summaries.GramSummary`): their
weak eigen-directions summed again ("gram2"), or a Householder triangularisation with the
other groups' columns carried along ("tsqr"); and the check that the second pass read the
same data as the first."""

from __future__ import annotations

import numpy as np
import scipy.linalg

from ..core.linalg import psd_root
from .gram import GramSummary
from .summaries import RowSummary, Rows, Summary, is_torch

__all__ = ["SecondPass", "complete", "same_pass"]


class SecondPass(Rows):
    r"""The second pass of the Gram route, for the groups the first could not finish.

    A "gram2" group needs more than the first pass's Gram matrix only along its *weak*
    eigen-directions: those whose eigenvalue, relative to the largest, is below the
    one-pass bound (a few, typically). Along the others the first pass's rounding enters
    the whitened coordinates with at most the one-pass bound, as in a "gram" group. So
    this pass projects each such group onto its weak directions,
    :math:`P = X_c V_w \Lambda_w^{-1/2}` (nearly orthonormal columns), and accumulates
    their exact inner products with every column, :math:`[\mathbf 1 \mid P]^T [\mathbf 1
    \mid P \mid X]`: about k D flops per row for k weak directions in all, where a full
    second Gram pass (CholeskyQR2) would cost D^2 plus the whitening.

    A "tsqr" group is triangularised by a TSQR of :math:`[\mathbf 1 \mid X_T]` that carries
    every other column along (the other groups' own columns and the projections P), giving
    its R factor and :math:`S = Q_T^T K`, the carried columns' coordinates on its basis.
    """

    def __init__(self, shift, routes: list[str], widths, splits: dict):
        """``splits`` maps each "gram2" group to :meth:`GramSummary.split`'s (kept, W, kw, M)."""
        super().__init__(None, shift)
        self.routes, self.splits, self.group_widths = routes, splits, list(widths)
        edges = np.cumsum([0] + list(widths)) + 1  # columns of [1 | shifted data]
        cols = lambda ks: (np.concatenate([np.arange(edges[k], edges[k + 1]) for k in ks])  # noqa: E731
                           if ks else np.arange(0, dtype=int))
        self.tri = np.r_[0, cols([k for k, r in enumerate(routes) if r == "tsqr"])].astype(int)
        self.other = cols([k for k, r in enumerate(routes) if r != "tsqr"]).astype(int)
        # each gram2 group's weak directions as a map from all its columns (a slice of the
        # block: selecting its varying columns by index copied them, 5x the product's time),
        # with zero rows for its constant columns
        self.weak = []
        for k in sorted(splits):
            kept, w, kw, _ = splits[k]
            full = np.zeros((int(widths[k]), kw))
            full[kept - (edges[k] - 1)] = w[:, :kw]
            self.weak.append((k, slice(int(edges[k]), int(edges[k + 1])), full))
        self.kp = sum(w.shape[1] for _, _, w in self.weak)
        self.pp = self.px = None
        self._device: dict = {}
        self.rs = None
        self.buffer: list = []
        self.buffered = 0

    def _on(self, key, array, like):
        """A host array in ``like``'s array type and device (cached)."""
        if not is_torch(like):
            return array
        key = (key, str(like.device))
        if key not in self._device:
            import torch

            self._device[key] = torch.as_tensor(np.asarray(array), device=like.device,
                                                dtype=torch.float64 if np.asarray(array).dtype.kind == "f" else None)
        return self._device[key]

    def add(self, parts) -> None:
        block = self._joint(parts, reuse=True)  # only copies of it are kept (the QR's columns are gathered)
        if block is None:
            return
        rows = int(block.shape[0])
        if is_torch(block):
            import torch

            left = torch.empty((rows, 1 + self.kp), dtype=torch.float64, device=block.device)
            cat = lambda xs: torch.cat(xs, dim=1)  # noqa: E731
        else:
            left = np.empty((rows, 1 + self.kp))
            cat = lambda xs: np.concatenate(xs, axis=1)  # noqa: E731
        left[:, 0] = 1.0
        lo = 1
        for k, cols, w in self.weak:
            left[:, lo : lo + w.shape[1]] = block[:, cols] @ self._on(("w", k), w, block)
            lo += w.shape[1]
        with np.errstate(over="ignore", invalid="ignore"):
            pp, px = left.T @ left, left.T @ block[:, 1:]
            self.pp = pp if self.pp is None else self.pp + pp
            self.px = px if self.px is None else self.px + px
        if self.tri.size > 1:
            carried = cat([block[:, self._on("other", self.other, block)], left[:, 1:]])
            self.buffer.append((block[:, self._on("tri", self.tri, block)], carried))
            self.buffered += rows
            if self.buffered >= 4 * self.tri.size:
                self._merge()

    def _merge(self) -> None:
        if not self.buffer:
            return
        torch_chunk = is_torch(self.buffer[0][0])
        if torch_chunk:
            import torch

            cat = lambda xs: torch.cat(xs, dim=0)  # noqa: E731
            zeros = lambda shape: torch.zeros(shape, dtype=torch.float64, device=self.buffer[0][0].device)  # noqa: E731
        else:
            cat = lambda xs: np.concatenate(xs, axis=0)  # noqa: E731
            zeros = np.zeros
        a = cat(([self.rs[0]] if self.rs is not None else []) + [b[0] for b in self.buffer])
        c = cat(([self.rs[1]] if self.rs is not None else []) + [b[1] for b in self.buffer])
        width = self.tri.size
        top_r, top_s = zeros((width, width)), zeros((width, int(c.shape[1])))
        if torch_chunk:  # Q explicitly (reduced), then Q^T C
            q, r = torch.linalg.qr(a)
            rows = min(width, int(r.shape[0]))
            top_r[:rows] = torch.triu(r[:rows])
            top_s[:rows] = (q.T @ c)[:rows]
        else:  # the reflectors applied to C without forming Q
            sq, r = scipy.linalg.qr_multiply(a, c.T, mode="right")
            rows = min(width, r.shape[0])
            top_r[:rows] = np.triu(r[:rows])
            top_s[:rows] = sq.T[:rows]
        self.rs = (top_r, top_s)
        self.buffer, self.buffered = [], 0

    def small(self, first_centred: np.ndarray, constant: np.ndarray) -> np.ndarray:
        """The joint small matrix (rows x D).

        In coordinates Y (each "gram" group's own neurons; each "gram2" group's whitened
        directions, weak then strong, Y_k = X_k W_k), the Gram matrix G_Y is the first
        pass's, B^T C B, with the weak directions' rows and columns replaced by this pass's
        exact ones. With the "tsqr" groups' R factor T and S (in Y), the joint matrix is
        [[T, S], [0, W]] with W^T W = G_Y - S^T S; a "gram2" group's columns are mapped
        back to its neurons by M = W_k^-1.
        """
        host = lambda a: a.cpu().numpy() if is_torch(a) else a  # noqa: E731
        d = first_centred.shape[0]
        n = float(self.n)
        # coordinates of the groups that are not triangularised: their neurons (``rest``, of
        # the D) and the block-diagonal map from those neurons to Y. Only their rows and
        # columns of the first pass's matrix are read: a "tsqr" group's may hold inf (squares
        # that overflowed), which a product with zero rows would turn into NaN everywhere
        rest = np.flatnonzero(np.isin(np.arange(d), self.other - 1))
        where = {int(v): i for i, v in enumerate(rest)}
        spans, lo = {}, 0
        edges = np.cumsum([0] + self.group_widths)
        blocks = []
        for k, r in enumerate(self.routes):
            if r == "tsqr":
                continue
            if r == "gram":
                b = np.zeros((rest.size, self.group_widths[k]))
                rows = [where[int(i)] for i in range(edges[k], edges[k + 1])]
                b[rows] = np.eye(self.group_widths[k])
            else:
                kept, w, _, _ = self.splits[k]
                b = np.zeros((rest.size, w.shape[1]))
                b[[where[int(i)] for i in kept]] = w
            spans[k] = (lo, lo + b.shape[1])
            lo += b.shape[1]
            blocks.append(b)
        basis = np.concatenate(blocks, axis=1)
        g_y = basis.T @ first_centred[np.ix_(rest, rest)] @ basis
        # the weak directions' exact inner products (centred), from this pass
        pp, px = host(self.pp), host(self.px)
        sums_p, sums_x = pp[0, 1:], px[0]
        pp_c = pp[1:, 1:] - np.outer(sums_p, sums_p) / n
        px_c = px[1:] - np.outer(sums_p, sums_x) / n
        px_c[:, constant] = 0.0
        px_c = px_c[:, rest]
        weak_y, lo_p = [], 0
        p_index = {}
        for k, _, w in self.weak:
            p_index[k] = (lo_p, lo_p + w.shape[1])
            weak_y.extend(range(spans[k][0], spans[k][0] + w.shape[1]))
            lo_p += w.shape[1]
        if self.kp:
            rows_w = px_c @ basis  # against every coordinate; the weak-weak entries are replaced below
            for k, (a, b) in p_index.items():
                rows_w[:, spans[k][0] : spans[k][0] + (b - a)] = pp_c[:, a:b]
            g_y[weak_y, :] = rows_w
            g_y[:, weak_y] = rows_w.T
        # the triangularised groups
        if self.tri.size > 1:
            self._merge()
            top_r, top_s = host(self.rs[0]), host(self.rs[1])
            t = top_r[1:, 1:]
            s_raw = top_s[1:]
            s_rest = np.zeros((t.shape[0], rest.size))
            s_rest[:, [where[int(i)] for i in self.other - 1]] = s_raw[:, : self.other.size]
            s_rest[:, constant[rest]] = 0.0
            s_y = s_rest @ basis
            for k, (a, b) in p_index.items():
                s_y[:, spans[k][0] : spans[k][0] + (b - a)] = s_raw[:, self.other.size + a : self.other.size + b]
        else:
            t, s_y = np.zeros((0, 0)), np.zeros((0, g_y.shape[0]))
        z_y = np.concatenate([s_y, psd_root(g_y - s_y.T @ s_y)], axis=0)
        joint = np.zeros((z_y.shape[0], d))
        tri_neurons = self.tri[1:] - 1
        joint[: t.shape[0], tri_neurons] = t
        for k, (a, b) in spans.items():
            if self.routes[k] == "gram":
                joint[:, edges[k] : edges[k + 1]] = z_y[:, a:b]
            else:
                kept, _, _, m = self.splits[k]
                joint[:, kept] = z_y[:, a:b] @ m
        joint[:, constant] = 0.0
        return joint


def complete(first: GramSummary, rerun, rtol: float | None = None, exact: bool = True) -> Summary:
    """The :class:`Summary` of a finished first (Gram) pass, with the second pass where a
    group needs one.

    ``rerun(summary, what)`` feeds every chunk again, in the same order of groups, to
    ``summary.add`` (``what`` names the pass, for a progress bar). The second pass must see
    the same data: with ``exact=True`` its column sums, ranges and row count must equal the
    first pass's bit for bit (a file read twice); with ``exact=False`` (a model run twice,
    whose kernels or data order may differ in rounding) to within 1e-9 of n times each
    column's magnitude for the sums and 1e-5 for the ranges.
    """
    routes = first.routes(rtol)
    if all(r == "gram" for r in routes):
        return first.finish()
    constant = first._constant()
    varying = first._varying(constant)
    ill = sum(r != "gram" for r in routes)
    what = f"second pass ({ill} of {len(routes)} {'group' if ill == 1 else 'groups'})"
    if all(r == "tsqr" for r in routes):  # nothing to carry along: a plain TSQR pass
        second = RowSummary(first.names)
        second.shift = first.shift
        second.track_squares = not exact
        rerun(second, what)
        same_pass(first, second, exact)
        return second.finish()
    splits = {k: first.split(k) for k, r in enumerate(routes) if r == "gram2"}
    second = SecondPass(first.shift, routes, first.widths, splits)
    second.names = first.names
    second.track_squares = not exact
    rerun(second, what)
    same_pass(first, second, exact)
    return Summary(first._split(second.small(first.centred(), constant)), first.n, varying, None, routes)


def same_pass(first: Rows, second: Rows, exact: bool = True) -> None:
    """Refuse a second pass that read other data than the first (see :func:`complete`)."""
    if second.n != first.n:
        raise ValueError(
            f"the second pass of the Gram route read {second.n:,} datapoints, the first {first.n:,}: the data "
            f"cannot be read twice alike (a one-shot iterable, a loader that drops a different last batch each "
            f"time, a file rewritten in between). Pass route='tsqr' (one pass), or data that can be read again.")
    host = lambda a: a.cpu().numpy() if is_torch(a) else np.asarray(a, dtype=np.float64)  # noqa: E731
    sums1, sums2 = host(first.sums), host(second.sums)
    lo1, lo2, hi1, hi2 = host(first.col_min), host(second.col_min), host(first.col_max), host(second.col_max)
    if exact:
        same = np.array_equal(sums1, sums2) and np.array_equal(lo1, lo2) and np.array_equal(hi1, hi2)
    else:  # to rounding: float32 kernels that add in another order differ by about 1e-6 per value
        size = np.r_[1.0, np.maximum(np.abs(lo1), np.abs(hi1))]  # the ones column, then each neuron
        squares1 = first.raw_diagonal if isinstance(first, GramSummary) else host(first.squares)
        squares2 = host(second.squares)
        same = (np.all(np.abs(sums1 - sums2) <= 1e-5 * first.n * size)
                and np.all(np.abs(squares1 - squares2) <= 1e-5 * squares1 + 1e-300)
                and np.all(np.abs(lo1 - lo2) <= 1e-5 * size[1:]) and np.all(np.abs(hi1 - hi2) <= 1e-5 * size[1:]))
    if not same:
        how = ("their sums, ranges" if exact else "their sums, sums of squares or ranges, beyond rounding,")
        raise ValueError(
            f"the sources changed between the two passes of the Gram route ({how} differ): a file or store "
            f"was rewritten while it was read, or the data are augmented differently each time (shuffling "
            f"is fine). Rerun once the data are final, or pass route='tsqr' (one pass).")
