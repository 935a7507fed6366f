r"""The Hilbert-Schmidt independence criterion that every CKA is a ratio of (Gretton et al.
2005; Kornblith et al. 2019): the biased estimator on centred kernels, Song et al.'s (2012)
unbiased one on raw kernels, and the unbiased one for linear kernels of centred data without
any n x n kernel, for one pair or for every pair of a stack of representations at once. The
last is what linear CKA over minibatches accumulates (:class:`MinibatchCKA`, and the
estimate of :func:`ccalens.compare_models`).
"""

from __future__ import annotations

import numpy as np

from ._backend import is_torch_tensor

__all__ = ["MinibatchCKA", "centre_kernel", "hsic_biased", "hsic_unbiased", "hsic_unbiased_centred",
           "hsic_unbiased_linear"]


def centre_kernel(k: np.ndarray) -> np.ndarray:
    row = k.mean(axis=0)
    return k - row[None, :] - row[:, None] + row.mean()


def hsic_biased(kc: np.ndarray, lc: np.ndarray) -> float:
    """tr(K H L H) from centred kernels (the 1/(n-1)^2 factor cancels in CKA)."""
    return float(np.einsum("ij,ij->", kc, lc))


def hsic_unbiased(k: np.ndarray, l: np.ndarray) -> float:
    """Song et al.'s unbiased HSIC of two (uncentred) n x n kernels."""
    n = k.shape[0]
    kt, lt = k.copy(), l.copy()
    np.fill_diagonal(kt, 0.0)
    np.fill_diagonal(lt, 0.0)
    k1, l1 = kt.sum(axis=1), lt.sum(axis=1)
    trace = float(np.einsum("ij,ij->", kt, lt))
    return (trace + k1.sum() * l1.sum() / ((n - 1) * (n - 2)) - 2.0 * float(k1 @ l1) / (n - 2)) / (n * (n - 3))


def hsic_unbiased_linear(xy_sq: float, a: np.ndarray, b: np.ndarray) -> float:
    r"""Song et al.'s unbiased HSIC for linear kernels of centred data, without n x n kernels.

    With :math:`K = X_c X_c^T` and :math:`a = \mathrm{diag}(K)` (row norms squared),
    centring gives :math:`K 1 = 0`, so :math:`\tilde K 1 = -a`,
    :math:`1^T \tilde K 1 = -\sum a` and :math:`\mathrm{tr}(\tilde K \tilde L) =
    \|X_c^T Y_c\|_F^2 - a \cdot b`. ``xy_sq`` is :math:`\|X_c^T Y_c\|_F^2`.
    """
    return float(hsic_unbiased_centred(np.asarray([[xy_sq]]), np.asarray(a)[None, :], np.asarray(b)[None, :])[0, 0])


def hsic_unbiased_centred(traces, a, b):
    r""":func:`hsic_unbiased_linear` for every pair of two stacks of centred representations at once.

    ``traces[i, j]`` is :math:`\mathrm{tr}(K_i L_j) = \|X_{i,c}^T Y_{j,c}\|_F^2`, ``a[i]`` and
    ``b[j]`` the row norms squared of :math:`X_{i,c}` and :math:`Y_{j,c}` (shape (stack, n)).
    Only products, sums and broadcasting: numpy arrays and torch tensors (on their device) alike.
    """
    n = a.shape[-1]
    ab = a @ b.T
    sums = a.sum(-1)[:, None] * b.sum(-1)[None, :]
    return (traces - ab + sums / ((n - 1) * (n - 2)) - 2.0 * ab / (n - 2)) / (n * (n - 3))


class MinibatchCKA:
    """Linear CKA accumulated over minibatches (Nguyen, Raghu & Kornblith 2021).

    Each :meth:`update` adds the unbiased HSIC of one batch's (X, Y) to float64 running
    sums; :attr:`similarity` is
    :math:`\\overline{HSIC_1(X,Y)} / \\sqrt{\\overline{HSIC_1(X,X)}\\,\\overline{HSIC_1(Y,Y)}}`.
    The unbiased estimator makes the result independent of the batch size in expectation;
    the value is never NaN: a batch that cannot be used is refused with a clear error.

    Examples
    --------
    >>> import numpy as np, ccalens
    >>> rng = np.random.default_rng(0)
    >>> acc = ccalens.MinibatchCKA()
    >>> for _ in range(20):
    ...     X = rng.standard_normal((64, 10))
    ...     _ = acc.update(X, 3.0 * X + 1.0)
    >>> round(acc.similarity, 10)
    1.0
    """

    def __init__(self):
        self.sums = np.zeros(3)  # HSIC_1(X, Y), HSIC_1(X, X), HSIC_1(Y, Y)
        self.batches = 0
        self.n_samples = 0
        self.widths: tuple[int, int] | None = None

    def update(self, X, Y) -> "MinibatchCKA":
        from .pairs import as_matrices

        ax, ay = as_matrices(X, Y, "datapoints_first", allow_factor=False, measure="minibatch CKA")
        n = ax.shape[0]
        if n < 4:
            raise ValueError(f"each minibatch needs at least 4 datapoints for the unbiased HSIC; got {n}.")
        widths = (int(ax.shape[1]), int(ay.shape[1]))
        if self.widths is not None and widths != self.widths:
            raise ValueError(
                f"this minibatch has {widths[0]} and {widths[1]} neurons, earlier ones had "
                f"{self.widths[0]} and {self.widths[1]}: every batch must come from the same two "
                f"layers. Start a new MinibatchCKA for other layers.")
        x, y = _host64(ax, "X"), _host64(ay, "Y")
        x = x - x.mean(axis=0)  # exact for the unbiased estimator, and fewer cancellations
        y = y - y.mean(axis=0)
        a, b = np.einsum("ij,ij->i", x, x), np.einsum("ij,ij->i", y, y)
        xy = float(np.sum((x.T @ y) ** 2))
        self.sums += (
            hsic_unbiased_linear(xy, a, b),
            hsic_unbiased_linear(float(np.sum((x.T @ x) ** 2)), a, a),
            hsic_unbiased_linear(float(np.sum((y.T @ y) ** 2)), b, b),
        )
        self.batches += 1
        self.n_samples += n
        self.widths = widths
        return self

    @property
    def similarity(self) -> float:
        if self.batches == 0:
            raise ValueError("no minibatch yet: call update(X_batch, Y_batch) at least once.")
        xy, xx, yy = self.sums / self.batches
        if xx <= 0 or yy <= 0:
            raise ValueError(
                f"minibatch CKA is undefined so far: the mean unbiased HSIC of "
                f"{'X' if xx <= 0 else 'Y'} with itself is {min(xx, yy):.3g} <= 0 (a side is "
                f"constant, or batches are very small); use larger batches."
            )
        return float(xy / np.sqrt(xx * yy))

    def __repr__(self) -> str:
        try:
            value = f"{self.similarity:.6f}" if self.batches else "none yet"
        except ValueError:  # the mean self-HSIC is not positive (yet)
            value = "undefined"
        return f"MinibatchCKA(similarity={value}, batches={self.batches}, n_samples={self.n_samples})"


def _host64(arr, name: str) -> np.ndarray:
    x = arr.detach().cpu().numpy() if is_torch_tensor(arr) else np.asarray(arr)
    x = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains non-finite values (NaN or Inf); remove or impute them before comparing.")
    return x
