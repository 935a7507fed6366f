r"""google/svcca's numbers, for users who migrate and need them unchanged.

``mean_cca(X, Y, compat="svcca")`` and ``pwcca(X, Y, compat="svcca")`` follow the
algorithm of google/svcca's ``cca_core.get_cca_similarity`` and ``pwcca.compute_pwcca``
step by step (our own implementation of it, with rows as datapoints):

1. covariances of the centred neurons (``np.cov``: divided by n - 1);
2. each side's covariance divided by its largest absolute entry (the largest variance),
   the cross-covariance by the geometric mean of the two;
3. neurons whose scaled variance is below ``epsilon`` dropped;
4. ``epsilon`` times the identity added to each side's covariance;
5. whitening by the eigendecomposition square root of the pseudo-inverse, then an SVD;
   the coefficients are its singular values (``cca_coef1``), and mean CCA is their mean;
6. PWCCA's weights come from the side that kept fewer neurons (X on ties): its neurons
   are rotated by the SVD's singular vectors *without* the whitening, each neuron's mean
   is added back, the result is QR-orthonormalised over the datapoints, and
   :math:`|\cdot|` is summed against the raw (uncentred) activations.

Departures from the reference, all where it fails outright:

* the Y side uses Y's activations and means (the acts1/acts2 indexing bug that its open
  PR #9 fixes; unfixed, ``compute_pwcca`` raises IndexError or mixes the two sides);
* the means added back are those of the kept neurons (the reference subtracts the means of
  all neurons from the kept ones and fails with a shape error as soon as one is dropped);
* round-off negative eigenvalues in the inverse square root are clipped to 0 (the
  reference returns NaN, for example with a dead neuron and ``epsilon=0``);
* constant input and an ``epsilon`` that drops every neuron raise ValueError (the
  reference divides by zero, or returns zeros that ``compute_pwcca`` cannot use).

How this differs from the paper (section 2.2), and why ``compat=None`` is the default:
the paper weights the *canonical variates* :math:`h_i = (u^{(i)})^T \Sigma^{-1/2} L_1`
against the centred neurons; the reference weights un-whitened rotations of the neurons,
shifted by the neuron means, against uncentred activations, and uses whichever side has
fewer neurons. The reference's value also depends on the signs LAPACK gives the singular
vectors, since the means are added after the rotation. On centred, equally scaled, nearly
white neurons the two agree to about 1e-4 (1.3e-4 measured for 30 Gaussian neurons against
a noisy linear map of them); with offsets (ReLU units) or mixed scales they differ by
several hundredths or more (see ``tests/test_compat.py``). The covariance
route also squares the condition number, and ``epsilon`` is relative to the largest
variance rather than to each neuron.
"""

from __future__ import annotations

import numpy as np

from . import validate
from ._backend import is_torch_tensor, svd
from .results import MeanCCAResult, PWCCAResult


def _as_numpy_pair(X, Y, layout):
    from .factor import Factor

    for arr, name in ((X, "X"), (Y, "Y")):
        if isinstance(arr, Factor):
            raise TypeError(
                f"compat='svcca' recomputes everything from the raw activations; pass {name} "
                f"as an array, not a Factor."
            )
    ax = validate.as_matrix(X, "X", layout)
    ay = validate.as_matrix(Y, "Y", layout)
    validate.check_same_datapoints(ax.shape, ay.shape)
    torch_in = is_torch_tensor(ax) or is_torch_tensor(ay)
    ax = ax.detach().cpu().numpy() if is_torch_tensor(ax) else ax
    ay = ay.detach().cpu().numpy() if is_torch_tensor(ay) else ay
    ax = np.asarray(ax, dtype=np.float64)
    ay = np.asarray(ay, dtype=np.float64)
    ops = validate.make_ops(ax, None)
    validate.check_finite(ops, ax, "X")
    validate.check_finite(ops, ay, "Y")
    return ax, ay, torch_in


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(matrix)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def _reference_cca(x: np.ndarray, y: np.ndarray, epsilon: float):
    a = x.shape[1]
    mean_x, mean_y = x.mean(axis=0), y.mean(axis=0)
    xc, yc = x - mean_x, y - mean_y
    # one joint covariance of all neurons, as the reference's np.cov(acts1, acts2)
    with np.errstate(over="ignore", invalid="ignore"):
        cov = np.cov(np.concatenate([x, y], axis=1), rowvar=False)
    if not np.all(np.isfinite(cov)):
        raise ValueError(
            "compat='svcca': the covariance of these activations overflows float64 (values "
            "beyond about 1e150), where google/svcca returns NaN; rescale the data or use "
            "compat=None, which rescales such neurons exactly."
        )
    sxx, sxy, syy = cov[:a, :a], cov[:a, a:], cov[a:, a:]
    xmax, ymax = np.abs(sxx).max(), np.abs(syy).max()
    for value, name in ((xmax, "X"), (ymax, "Y")):
        if value == 0:
            raise ValueError(
                f"{name} has no varying neuron (every neuron is constant); google/svcca would "
                f"divide by zero here. Check that the right layer was recorded."
            )
    sxx, syy, sxy = sxx / xmax, syy / ymax, sxy / np.sqrt(xmax * ymax)
    keep_x = np.abs(np.diag(sxx)) >= epsilon
    keep_y = np.abs(np.diag(syy)) >= epsilon
    for keep, name in ((keep_x, "X"), (keep_y, "Y")):
        if not keep.any():
            raise ValueError(
                f"compat='svcca' with epsilon={epsilon} drops every neuron of {name} (neurons "
                f"whose variance, divided by the largest one, is below epsilon are dropped); "
                f"use a smaller epsilon."
            )
    sxx = sxx[np.ix_(keep_x, keep_x)] + epsilon * np.eye(keep_x.sum())
    syy = syy[np.ix_(keep_y, keep_y)] + epsilon * np.eye(keep_y.sum())
    sxy = sxy[np.ix_(keep_x, keep_y)]
    inv_sqrt_x = _psd_sqrt(np.linalg.pinv(sxx))
    inv_sqrt_y = _psd_sqrt(np.linalg.pinv(syy))
    u, s, vh = svd(inv_sqrt_x @ sxy @ inv_sqrt_y, full_matrices=True)
    return {
        "rho": np.abs(s),
        "u": u,
        "vh": vh,
        "keep_x": keep_x,
        "keep_y": keep_y,
        "xc": xc,
        "yc": yc,
        "mean_x": mean_x,
        "mean_y": mean_y,
    }


def _wrap(torch_in: bool, array: np.ndarray):
    if torch_in:
        import torch

        return torch.as_tensor(array)
    return array


def mean_cca_svcca(X, Y, *, epsilon: float = 0.0, layout: str = "datapoints_first") -> MeanCCAResult:
    """Mean of google/svcca's ``get_cca_similarity(...)["cca_coef1"]``."""
    x, y, torch_in = _as_numpy_pair(X, Y, layout)
    ref = _reference_cca(x, y, epsilon)
    rho = ref["rho"]
    return MeanCCAResult(
        similarity=float(np.mean(rho)),
        rho=_wrap(torch_in, rho),
        x_rank=int(ref["keep_x"].sum()),
        y_rank=int(ref["keep_y"].sum()),
        n_samples=x.shape[0],
        epsilon=epsilon,
        compat="svcca",
    )


def pwcca_svcca(X, Y, *, epsilon: float = 0.0, layout: str = "datapoints_first") -> PWCCAResult:
    """google/svcca's ``pwcca.compute_pwcca`` with its PR #9 fix, in our layout."""
    x, y, torch_in = _as_numpy_pair(X, Y, layout)
    ref = _reference_cca(x, y, epsilon)
    keep_x, keep_y = ref["keep_x"], ref["keep_y"]
    widest = max(keep_x.sum(), keep_y.sum())
    if x.shape[0] <= widest:
        raise ValueError(
            f"compat='svcca' needs more datapoints than neurons, as google/svcca asserts: got "
            f"{x.shape[0]} datapoints for {keep_x.sum()} and {keep_y.sum()} neurons. Use "
            f"compat=None (which handles it, with a warning) or record more datapoints."
        )
    if keep_x.sum() <= keep_y.sum():
        side = "X"
        dirns = ref["xc"][:, keep_x] @ ref["u"] + ref["mean_x"][keep_x]
        acts = x[:, keep_x]
    else:
        side = "Y"
        dirns = ref["yc"][:, keep_y] @ ref["vh"].T + ref["mean_y"][keep_y]
        acts = y[:, keep_y]
    basis, _ = np.linalg.qr(dirns)
    weights = np.abs(basis.T @ acts).sum(axis=1)
    weights = weights / weights.sum()
    rho = ref["rho"]
    value = float(np.sum(weights * rho))
    return PWCCAResult(
        similarity=value,
        rho=_wrap(torch_in, rho),
        weights=_wrap(torch_in, weights),
        forward=value,
        weights_from=side,
        x_rank=int(keep_x.sum()),
        y_rank=int(keep_y.sum()),
        n_samples=x.shape[0],
        epsilon=epsilon,
        compat="svcca",
    )
