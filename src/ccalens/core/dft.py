r"""DFT-CCA: CCA of convolutional layers, one spatial frequency at a time.

A conv layer's activations (N, H, W, C) have H*W*C "neurons" when every position of
every channel counts as one; CCA on that many neurons needs N far above H*W*C datapoints
and O((HWC)^3) work. Raghu et al. (2017, section 4.2) observed that when the data are
translation invariant, the covariance of those neurons is block circulant over the
positions, so the 2-D discrete Fourier transform over (H, W), a unitary change of basis
within each side, makes it block diagonal: one C x C block per frequency. CCA is
invariant to invertible transforms of each side, so

    the canonical correlations of the (N, H*W*C) layers are exactly the union, over the
    H*W frequencies, of the canonical correlations of the complex (N, C) matrices
    :math:`\hat X[:, u, v, :]` and :math:`\hat Y[:, u, v, :]`.

That is what :func:`dft_cca` computes: H*W small complex CCAs instead of one large one,
pooled into one sorted set of coefficients. ``tests/test_dft.py`` checks the equality on
data made circularly shift-invariant (every circular shift of each input included);
without translation invariance the per-frequency CCAs are an approximation (the
reference's note: conv features of natural images are close to it).

This is google/svcca's ``dft_ccas.fourier_ccas``, which no longer runs on Python 3
(``xrange``, ``DataFrame.append``). When the two layers' spatial sizes differ, both keep
the frequencies they share (the low ones), as the reference does.

The per-frequency CCA: centre each side over the datapoints, whiten it with the
eigendecomposition of its Hermitian Gram matrix (directions below ``rtol`` times the
largest singular value count as absent), and take the singular values of the whitened
cross-covariance. This is the Gram route of :mod:`ccalens.core.factor`; it squares the
condition number, which is harmless for the well-conditioned per-frequency blocks of
real conv features, and the frequencies are processed as batches of small matrices.

References
----------
.. [1] M. Raghu, J. Gilmer, J. Yosinski, J. Sohl-Dickstein. SVCCA: Singular Vector
   Canonical Correlation Analysis for Deep Learning Dynamics and Interpretability.
   NeurIPS 2017, section 4.2.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ._backend import is_torch_tensor, svd
from .validate import check_rtol
from .factor import GRAM_MAX_ROUNDING


@dataclass(frozen=True, eq=False)
class DFTCCAResult:
    """Canonical correlations of two conv layers, per spatial frequency and pooled.

    Attributes
    ----------
    similarity : float
        Mean of the pooled coefficients (mean CCA over every position-channel neuron, when
        the data are translation invariant).
    rho : ndarray
        All frequencies' canonical correlations, descending.
    rho_by_frequency : ndarray, shape (H, W, c)
        Each frequency's correlations, descending (zeros where a frequency has fewer than
        c directions); frequency (u, v) is numpy's ``fft2`` ordering.
    ranks : ndarray of int, shape (H, W)
        Number of correlations at each frequency.
    shape : (H, W)
        The spatial size compared (the shared frequencies when the sizes differ).
    n_samples : int
    """

    similarity: float
    rho: Any
    rho_by_frequency: Any
    ranks: Any
    shape: tuple[int, int]
    n_samples: int

    @property
    def distance(self) -> float:
        return 1.0 - self.similarity

    def __repr__(self) -> str:
        return (
            f"DFTCCAResult(similarity={self.similarity:.6f}, distance={self.distance:.6f}, "
            f"coefficients={self.rho.size}, shape={self.shape}, n_samples={self.n_samples})"
        )


def _as_conv(obj, name: str, channels: str) -> np.ndarray:
    if is_torch_tensor(obj):
        obj = obj.detach().cpu().numpy()
    if isinstance(obj, (str, bytes)) or obj is None:
        raise TypeError(f"{name} must be an array of conv activations of shape (N, H, W, C); got {type(obj).__name__}.")
    arr = np.asarray(obj)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers; got dtype {arr.dtype}.")
    if arr.ndim != 4:
        raise ValueError(
            f"{name} must be 4-D conv activations, (datapoints, height, width, channels) with "
            f"channels='last' or (datapoints, channels, height, width) with channels='first' "
            f"(torch's layout); got shape {arr.shape}. For a dense layer use ccalens.cca."
        )
    if channels == "first":
        arr = np.moveaxis(arr, 1, 3)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains non-finite values (NaN or Inf); remove or impute them before comparing.")
    return np.asarray(arr, dtype=np.float64)


def _shared_frequencies(size_x: int, size_y: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices, in each side's fft ordering, of the frequencies both sides have."""
    size = min(size_x, size_y)
    keep = []
    for full in (size_x, size_y):
        freqs = np.fft.fftfreq(full, d=1.0 / full)
        idx = np.flatnonzero((freqs >= -size / 2.0) & (freqs < size / 2.0))
        keep.append(idx[np.argsort(freqs[idx] % size, kind="stable")])  # same order on both sides
    return keep[0], keep[1]


#: A frequency takes the Gram route when its equilibrated Gram matrix has
#: lambda_min / lambda_max >= this (eps * kappa^2 <= GRAM_MAX_ROUNDING, as in
#: :mod:`ccalens.core.factor`); the others, rank-deficient or ill-conditioned, take an SVD.
_GRAM_MIN_RCOND2 = float(np.finfo(np.float64).eps) / GRAM_MAX_ROUNDING


def _whitener(gram: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Batched W with W^H G W = I, and which frequencies are well enough conditioned for it."""
    lam, vec = np.linalg.eigh(gram)  # ascending, per frequency
    top = lam[..., -1]
    good = (top > 0) & (lam[..., 0] >= _GRAM_MIN_RCOND2 * top)
    inv = np.where(good[:, None], 1.0 / np.sqrt(np.where(good[:, None], lam, 1.0)), 0.0)
    return vec * inv[..., None, :], good


def _svd_basis(f: np.ndarray, rtol: float) -> tuple[np.ndarray, np.ndarray]:
    """Orthonormal bases (zero columns beyond each rank) of a batch of (N, C) matrices, and
    their ranks: singular values at or below rtol times the largest count as absent."""
    u, sv, _ = svd(f, full_matrices=False)
    keep = sv > rtol * np.maximum(sv[..., :1], np.finfo(float).tiny)
    return u * keep[..., None, :], keep.sum(axis=-1)


def dft_cca(X, Y, *, channels: str = "last", rtol: float | None = None) -> DFTCCAResult:
    r"""CCA of two conv layers through the 2-D DFT over their spatial positions.

    Parameters
    ----------
    X, Y : arrays or torch tensors, shapes (N, H, W, C) and (N, H', W', D)
        Activations on the same N datapoints (channels last; ``channels="first"`` for
        torch's (N, C, H, W)). Spatial sizes may differ: the shared low frequencies are
        compared.
    channels : {"last", "first"}
    rtol : float, optional
        Relative tolerance on each frequency's singular values below which a direction is
        treated as absent (default: max(N, C) times float64 epsilon, at least 1e-12).

    Returns
    -------
    DFTCCAResult
        Exactly the canonical correlations of the (N, H*W*C) and (N, H*W*D) layers when the
        data are translation invariant (see the module docstring).
    """
    rtol = check_rtol(rtol)
    if channels not in ("last", "first"):
        raise ValueError(f"channels must be 'last' (N, H, W, C) or 'first' (N, C, H, W); got {channels!r}.")
    x, y = _as_conv(X, "X", channels), _as_conv(Y, "Y", channels)
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"X and Y must have the same number of datapoints (first axis); got shapes {x.shape} and {y.shape}."
        )
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"at least 2 datapoints are needed; got {n}.")
    fx, fy = np.fft.fft2(x, axes=(1, 2)), np.fft.fft2(y, axes=(1, 2))
    if x.shape[1:3] != y.shape[1:3]:
        hx, hy = _shared_frequencies(x.shape[1], y.shape[1])
        wx, wy = _shared_frequencies(x.shape[2], y.shape[2])
        fx, fy = fx[:, hx][:, :, wx], fy[:, hy][:, :, wy]
    h, w = fx.shape[1], fx.shape[2]
    # (frequencies, datapoints, channels), centred over the datapoints
    fx = np.ascontiguousarray(fx.reshape(n, h * w, -1).transpose(1, 0, 2))
    fy = np.ascontiguousarray(fy.reshape(n, h * w, -1).transpose(1, 0, 2))
    fx -= fx.mean(axis=1, keepdims=True)
    fy -= fy.mean(axis=1, keepdims=True)
    # equilibrate channels at each frequency (CCA does not see it; the Gram route likes it)
    for f in (fx, fy):
        norms = np.sqrt((np.abs(f) ** 2).sum(axis=1, keepdims=True))
        f /= np.where(norms > 0, norms, 1.0)
    tol = rtol if rtol is not None else max(1e-12, max(n, fx.shape[2], fy.shape[2]) * np.finfo(float).eps)
    fxh, fyh = fx.conj().transpose(0, 2, 1), fy.conj().transpose(0, 2, 1)
    wx_, good_x = _whitener(fxh @ fx)
    wy_, good_y = _whitener(fyh @ fy)
    cross = wx_.conj().transpose(0, 2, 1) @ (fxh @ fy) @ wy_
    sv = np.clip(svd(cross, compute_uv=False), 0.0, 1.0)  # (HW, min(C, D)), descending
    rank_x = np.full(h * w, fx.shape[2])
    rank_y = np.full(h * w, fy.shape[2])
    # rank-deficient or ill-conditioned frequencies: the Gram route would whiten rounding
    # noise into spurious directions, so their bases come from an SVD with a rank cut
    bad = np.flatnonzero(~(good_x & good_y))
    if bad.size:
        qx, rank_x[bad] = _svd_basis(fx[bad], tol)
        qy, rank_y[bad] = _svd_basis(fy[bad], tol)
        vals = np.clip(svd(qx.conj().transpose(0, 2, 1) @ qy, compute_uv=False), 0.0, 1.0)
        sv[bad] = 0.0  # with fewer datapoints than channels the bases have fewer columns
        sv[bad, : vals.shape[1]] = vals
    for name, rank, size in (("X", rank_x, x.shape[3]), ("Y", rank_y, y.shape[3])):
        if not rank.any():
            raise ValueError(
                f"{name} has no varying neuron: all {size} channel(s) are constant over the {n} "
                f"datapoints at every position, so there is nothing to correlate. Check that the "
                f"right layer was recorded and that the inputs differ.")
    counts = np.minimum(rank_x, rank_y)
    width = sv.shape[1]
    mask = np.arange(width)[None, :] < counts[:, None]
    by_freq = np.where(mask, sv, 0.0).reshape(h, w, width)
    pooled = np.sort(sv[mask])[::-1]
    return DFTCCAResult(
        similarity=float(pooled.mean()) if pooled.size else 0.0,
        rho=pooled,
        rho_by_frequency=by_freq,
        ranks=counts.reshape(h, w),
        shape=(h, w),
        n_samples=n,
    )
