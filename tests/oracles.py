"""Independent, slow, textbook computations used as references by the tests.

They share no code with ccalens: each follows a definition directly in sample space.
"""

from __future__ import annotations

import numpy as np


def svd_basis(x: np.ndarray, rtol: float | None = None) -> np.ndarray:
    """Orthonormal basis of the centred columns of x, from numpy's SVD."""
    xc = x - x.mean(axis=0)
    u, s, _ = np.linalg.svd(xc, full_matrices=False)
    tol = (rtol if rtol is not None else max(xc.shape) * np.finfo(float).eps) * s[0]
    return u[:, s > tol]


def cca_svd(x: np.ndarray, y: np.ndarray):
    """Canonical correlations and X's canonical variates via SVD bases (Bjorck-Golub)."""
    qx, qy = svd_basis(x), svd_basis(y)
    p, rho, qt = np.linalg.svd(qx.T @ qy, full_matrices=False)
    c = min(qx.shape[1], qy.shape[1])
    return rho[:c], qx @ p[:, :c], qy @ qt[:c].T


def pwcca_paper(x: np.ndarray, y: np.ndarray) -> float:
    """Section 2.2 literally: Gram-Schmidt on h_i, alpha_i = sum_j |<h_i, z_j>|."""
    rho, hx, _ = cca_svd(x, y)
    h = np.zeros_like(hx)
    for i in range(hx.shape[1]):  # classical Gram-Schmidt, twice for stability
        v = hx[:, i].copy()
        for _ in range(2):
            v -= h[:, :i] @ (h[:, :i].T @ v)
        h[:, i] = v / np.linalg.norm(v)
    z = x - x.mean(axis=0)
    alpha = np.abs(h.T @ z).sum(axis=1)
    alpha /= alpha.sum()
    return float(alpha @ rho)


def cca_covariance(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The paper's equation (*): SVD of Sxx^-1/2 Sxy Syy^-1/2 (full-rank input only)."""
    xc, yc = x - x.mean(0), y - y.mean(0)
    n = x.shape[0]
    sxx, syy, sxy = xc.T @ xc / (n - 1), yc.T @ yc / (n - 1), xc.T @ yc / (n - 1)

    def inv_sqrt(m):
        w, v = np.linalg.eigh(m)
        return (v / np.sqrt(w)) @ v.T

    return np.linalg.svd(inv_sqrt(sxx) @ sxy @ inv_sqrt(syy), compute_uv=False)[: min(x.shape[1], y.shape[1])]


def svcca_reference_neurons_first(acts1, acts2, epsilon=0.0):
    """A step-by-step reimplementation of google/svcca's algorithm in its own layout.

    acts are (neurons, datapoints). Returns (mean of cca_coef1, pwcca value, weights)
    following cca_core.get_cca_similarity and pwcca.compute_pwcca (with PR #9's fix and
    kept-neuron means, as documented in ccalens.core.compat).
    """
    numx = acts1.shape[0]
    covariance = np.cov(acts1, acts2)
    sigmaxx = covariance[:numx, :numx]
    sigmaxy = covariance[:numx, numx:]
    sigmayy = covariance[numx:, numx:]
    xmax = np.max(np.abs(sigmaxx))
    ymax = np.max(np.abs(sigmayy))
    sigmaxx = sigmaxx / xmax
    sigmayy = sigmayy / ymax
    sigmaxy = sigmaxy / np.sqrt(xmax * ymax)
    x_idxs = np.abs(np.diagonal(sigmaxx)) >= epsilon
    y_idxs = np.abs(np.diagonal(sigmayy)) >= epsilon
    sxx = sigmaxx[x_idxs][:, x_idxs] + epsilon * np.eye(x_idxs.sum())
    syy = sigmayy[y_idxs][:, y_idxs] + epsilon * np.eye(y_idxs.sum())
    sxy = sigmaxy[x_idxs][:, y_idxs]

    def sqrtm(a):
        w, v = np.linalg.eigh(a)
        return np.dot(v, np.dot(np.diag(np.sqrt(np.maximum(w, 0))), v.T))

    invsqrt_xx = sqrtm(np.linalg.pinv(sxx))
    invsqrt_yy = sqrtm(np.linalg.pinv(syy))
    u, s, v = np.linalg.svd(np.dot(invsqrt_xx, np.dot(sxy, invsqrt_yy)))
    s = np.abs(s)
    a1, a2 = acts1[x_idxs], acts2[y_idxs]
    m1 = np.mean(a1, axis=1, keepdims=True)
    m2 = np.mean(a2, axis=1, keepdims=True)
    if x_idxs.sum() <= y_idxs.sum():
        dirns = np.dot(u.T, a1 - m1) + m1
        acts = a1
    else:
        dirns = np.dot(v, a2 - m2) + m2
        acts = a2
    p, _ = np.linalg.qr(dirns.T)
    weights = np.sum(np.abs(np.dot(p.T, acts.T)), axis=1)
    weights = weights / np.sum(weights)
    return float(np.mean(s)), float(np.sum(weights * s)), weights


def shape_cases() -> dict:
    """Awkward input pairs for the shape metric, the same for the netrep reference script
    (tests/data/make_netrep_reference.py) and the tests: name -> (X, Y)."""
    rng = np.random.default_rng(2021)
    cases = {}
    x = rng.standard_normal((60, 5))
    cases["equal_widths"] = (x, x @ rng.standard_normal((5, 5)) + 0.5 * rng.standard_normal((60, 5)))
    x = rng.standard_normal((80, 3))
    cases["unequal_widths"] = (x, np.hstack([x, x[:, :2] ** 2]) @ rng.standard_normal((5, 7))
                               + 0.3 * rng.standard_normal((80, 7)))
    x = np.maximum(rng.standard_normal((70, 6)), 0.0)
    x[:, [1, 4]] = 0.0  # dead ReLU units: exact zero columns, a rank of 4
    cases["dead_units"] = (x, np.maximum(x @ rng.standard_normal((6, 6)) + rng.standard_normal((70, 6)), 0.0))
    x = rng.standard_normal((90, 4))
    cases["large_offsets"] = (x + 1e4, x @ rng.standard_normal((4, 4)) + 0.4 * rng.standard_normal((90, 4)) - 5e3)
    x = rng.standard_normal((8, 5))
    cases["few_datapoints"] = (x, x @ rng.standard_normal((5, 6)) + 0.5 * rng.standard_normal((8, 6)))
    x = rng.standard_normal((100, 4))
    x = np.hstack([x, x[:, :1]])  # a repeated neuron: rank 4 of 5
    cases["repeated_neuron"] = (x, x[:, :4] @ rng.standard_normal((4, 5)) + 0.5 * rng.standard_normal((100, 5)))
    x = rng.standard_normal((100, 4))
    cases["scales"] = (1e3 * x, 1e-2 * (x @ rng.standard_normal((4, 4)) + 0.5 * rng.standard_normal((100, 4))))
    return cases


SHAPE_ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0)
