r"""Projection-weighted CCA (Morcos, Raghu & Bengio 2018, section 2.3).

PWCCA weights each canonical correlation by how much of the representation its canonical
variate accounts for: :math:`\tilde\alpha_i = \sum_j |\langle h_i, z_j\rangle|`, the row
sums of :math:`|P^T Q_{0,x}^T X_c|`, a small matrix, so no vector of length n is formed after
the factorisation. Tied correlations have no unique canonical variates; their weights are
taken in one canonical basis of the tied block (:func:`projection_weights`), so the value
is deterministic.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from . import pairs, registry, validate
from .canonical import (attach_uncertainty, canonical, check_compat, check_uncertainty, on_backend, rho_stack,
                        svd_scores)
from ._backend import svd
from .factor import Factor
from .results import PWCCAResult

__all__ = ["TIE_ATOL", "projection_weights", "pwcca", "tie_blocks"]

#: correlations closer than this are one tied block
#: canonical correlations within this of each other form one tied block (:func:`projection_weights`)
TIE_ATOL = 1e-8


def tie_blocks(rho: np.ndarray, atol: float = TIE_ATOL) -> list[slice]:
    """The runs of (descending) canonical correlations whose successive gaps are at most ``atol``."""
    rho = np.asarray(rho)
    blocks, start = [], 0
    for i in range(1, rho.size + 1):
        if i == rho.size or rho[i - 1] - rho[i] > atol:
            if i - start > 1:
                blocks.append(slice(start, i))
            start = i
    return blocks


def projection_weights(rho: np.ndarray, inner: np.ndarray, atol: float = TIE_ATOL) -> np.ndarray:
    r"""PWCCA's weights :math:`\alpha_i` from ``inner[i, j]`` = :math:`\langle h_i, z_j\rangle`.

    Inside a block of tied canonical correlations the canonical variates are not unique:
    any rotation of them is as canonical, and the L1 weights depend on which is taken. The
    weights are therefore computed in one basis fixed by the data: X's principal axes within
    the tied subspace (the variates rotated so that their inner products with X's neurons,
    ``inner[block]``, become ``S V^T`` from its SVD ``U S V^T``). Every code path (single
    pairs, the pairwise engine, streaming, torch) goes through this function, so they agree
    on tied inputs (a layer against its ReLU, duplicated neurons, identical inputs).
    Correlations within ``atol`` (1e-8) of each other count as tied; merging two that differ
    by less than that moves the similarity by less than that. Where X's variance within a
    tied subspace is itself tied (e.g. whitened neurons), the basis is still not unique.
    """
    inner = np.array(inner, dtype=np.float64, copy=True)
    for block in tie_blocks(rho, atol):
        _, s, vt = svd(inner[block], full_matrices=False)
        rotated = np.zeros_like(inner[block])
        rotated[: s.size] = s[:, None] * vt
        inner[block] = rotated
    alpha = np.abs(inner).sum(axis=1)
    return alpha / alpha.sum()


def _projection_weights(f: Factor, coef: np.ndarray, epsilon: float, rho: np.ndarray) -> np.ndarray:
    """alpha_i = sum_j |<h_i, z_j>| / total, h_i the orthonormalised canonical variates."""
    # h_i = Q_0 coef_i. With epsilon == 0 the coefficients come from an SVD (or a
    # symmetric eigendecomposition) and are orthonormal to working precision, so the
    # paper's Gram-Schmidt would change only rounding; with a ridge they are not, and are
    # orthonormalised in order (QR = Gram-Schmidt).
    if epsilon:
        coef, _ = np.linalg.qr(coef)
    return projection_weights(rho, coef.T @ f.projections)


def pwcca(
    X,
    Y,
    *,
    symmetric: bool = False,
    epsilon: float = 0.0,
    keep: float | None = None,
    compat: str | None = None,
    layout: str = "datapoints_first",
    dtype=None,
    rtol: float | None = None,
    permutations: int = 0,
    bootstrap: int = 0,
    confidence: float = 0.95,
    interval: str | None = None,
    seed=None,
) -> PWCCAResult:
    r"""Projection-weighted CCA (section 2.2 of the paper).

    .. math::

        \tilde\alpha_i = \sum_j |\langle h_i, z_j\rangle|, \quad
        \alpha_i = \tilde\alpha_i / \textstyle\sum_k \tilde\alpha_k, \quad
        \mathrm{similarity} = \sum_i \alpha_i \rho^{(i)}

    with :math:`z_j` X's centred neurons and :math:`h_i` X's orthonormalised canonical
    variates. It is not symmetric (footnote 6 of the paper): the weights come from X.

    Parameters
    ----------
    X, Y, epsilon, layout, dtype, rtol
        As in :func:`cca`.
    symmetric : bool, default False
        Average the two directions (X's weights and Y's weights).
    keep : float in (0, 1], optional
        PWCCA "with thresholding to remove low variance noise" (the caption of the paper's
        Figure 3): each side is first replaced by its PCA scores on the fewest leading
        singular directions of its centred data whose share of the variance reaches
        ``keep`` (as in :func:`svcca`), and PWCCA compares those. The truncation is computed
        once from all datapoints; nulls and intervals resample the truncated data. Takes
        arrays (not a :class:`Factor`); the scores are computed in float64 with numpy.
    compat : {None, "svcca"}
        ``"svcca"`` reproduces google/svcca's ``pwcca.compute_pwcca`` (with the fix of its
        PR #9); ``epsilon`` then has the reference's meaning. See :mod:`ccalens.core.compat`.
    permutations, bootstrap, confidence, interval, seed
        Uncertainty: ``permutations=N`` adds a shuffled-datapoints null (``result.null``:
        mean, sd, p-value, baseline-corrected similarity), ``bootstrap=N`` an interval at
        level ``confidence`` by the method ``interval`` (``result.bootstrap``; None is
        the measure family's, :func:`ccalens.core.resampling.default_method`). See :mod:`ccalens.stats`.

    Examples
    --------
    >>> import numpy as np, ccalens
    >>> rng = np.random.default_rng(2)
    >>> shared = rng.standard_normal((4000, 5))
    >>> X = np.c_[shared, 0.1 * rng.standard_normal((4000, 5))] @ rng.standard_normal((10, 10))
    >>> Y = np.c_[shared, 0.1 * rng.standard_normal((4000, 5))] @ rng.standard_normal((10, 10))
    >>> r = ccalens.pwcca(X, Y)
    >>> r.similarity > ccalens.mean_cca(X, Y).similarity
    True
    """
    epsilon = validate.check_epsilon(epsilon)
    check_compat(compat)
    if not isinstance(symmetric, bool):
        raise TypeError(f"symmetric must be True or False; got {symmetric!r}.")
    check_uncertainty(permutations, bootstrap, confidence, interval)
    if keep is not None:
        validate.check_keep(keep)
        if compat is not None:
            raise ValueError("keep= (SVD thresholding) is not part of google/svcca's compute_pwcca; "
                             "use keep with compat=None.")
        (X, kx), (Y, ky) = svd_scores(X, keep, layout, "X"), svd_scores(Y, keep, layout, "Y")
        result = pwcca(X, Y, symmetric=symmetric, epsilon=epsilon, dtype=dtype, rtol=rtol,
                       permutations=permutations, bootstrap=bootstrap, confidence=confidence, interval=interval,
                       seed=seed)
        return dataclasses.replace(result, x_components=kx, y_components=ky)
    opts = dict(epsilon=epsilon, symmetric=symmetric, layout=layout, dtype=dtype, rtol=rtol, compat=compat)
    if compat == "svcca":
        if symmetric:
            raise ValueError(
                "compat='svcca' reproduces google/svcca, which has no symmetric PWCCA; "
                "use symmetric=False with compat, or compat=None for the symmetric version."
            )
        from . import compat as _compat

        result = _compat.pwcca_svcca(X, Y, epsilon=epsilon, layout=layout)
        return attach_uncertainty(result, "pwcca", (X, Y), opts, permutations, bootstrap, confidence, seed, None, interval)
    fx, fy, joint = pairs.factor_pair(X, Y, layout=layout, dtype=dtype, rtol=rtol)
    rho, p, q = canonical(fx, fy, epsilon, joint, want="both" if symmetric else "x")
    weights = _projection_weights(fx, p, epsilon, rho)
    forward = float(weights @ rho)
    reverse_weights = reverse = None
    similarity = forward
    if symmetric:
        reverse_weights_np = _projection_weights(fy, q, epsilon, rho)
        reverse = float(reverse_weights_np @ rho)
        similarity = 0.5 * (forward + reverse)
        reverse_weights = on_backend(fy, reverse_weights_np)
    result = PWCCAResult(
        similarity=similarity,
        rho=on_backend(fx, rho),
        weights=on_backend(fx, weights),
        forward=forward,
        reverse_weights=reverse_weights,
        reverse=reverse,
        weights_from="X",
        x_rank=fx.rank,
        y_rank=fy.rank,
        n_samples=fx.n_samples,
        epsilon=epsilon,
    )
    return attach_uncertainty(result, "pwcca", (X, Y), opts, permutations, bootstrap, confidence, seed, (fx, fy), interval)


def _pwcca_from_factors(fx, fy, m, *, epsilon=0.0, shared=None, **_):
    rho, p, q = canonical(fx, fy, epsilon, want="both", cross=m, shared=shared)
    return (float(_projection_weights(fx, p, epsilon, rho) @ rho),
            float(_projection_weights(fy, q, epsilon, rho) @ rho), {"c": int(rho.size)})


def _pwcca_batched(ops, m, proj_a, proj_b):
    """PWCCA of a stack of equal-rank pairs, both directions: one batched SVD, then the
    weights as one batched product per distinct representation (pairs that share one share
    its projections). Pairs with tied correlations take :func:`projection_weights`'s
    canonical basis, so the values equal :func:`pwcca`'s."""
    u, rho, vh = rho_stack(ops, m, True)
    rho = np.clip(ops.to_numpy(rho), 0.0, 1.0)
    pairs, r = rho.shape
    weights = {0: np.empty((pairs, r)), 1: np.empty((pairs, r))}
    for side, coef, projs in ((0, u, proj_a), (1, vh, proj_b)):
        groups: dict = {}
        for k, proj in enumerate(projs):
            groups.setdefault(id(proj), (proj, []))[1].append(k)
        for proj, idx in groups.values():
            if ops.name == "torch":
                proj = ops.torch.as_tensor(proj, device=m.device, dtype=m.dtype)
            sel = coef[idx]
            # u's columns and vh's rows are the canonical coefficients of each side
            inner = sel.mT @ proj if side == 0 else sel @ proj
            alpha = ops.to_numpy(inner.abs().sum(-1) if ops.name == "torch" else np.abs(inner).sum(-1))
            weights[side][idx] = alpha / alpha.sum(axis=1, keepdims=True)
            tied = [j for j, k in enumerate(idx) if tie_blocks(rho[k])]
            if tied:  # tied correlations: the core's canonical basis, for those pairs only
                inner = ops.to_numpy(inner)
                for j in tied:
                    weights[side][idx[j]] = projection_weights(rho[idx[j]], inner[j])
    v_ab = (weights[0] * rho).sum(axis=1)
    v_ba = (weights[1] * rho).sum(axis=1)
    return [(float(x), float(y), {"c": r}) for x, y in zip(v_ab, v_ba)]


# the weights are sums of |projections| onto X's neurons: an L1 norm, so rotating or mixing
# X's neurons changes them (transforms of Y alone do not)
registry.register(registry.MeasureSpec(
    "pwcca", "PWCCA", "factor", frozenset({"isotropic_scaling", "permutation", "translation"}), pwcca,
    from_factors=_pwcca_from_factors, batched=_pwcca_batched, directed=True, streamable=True, family="cca"))
