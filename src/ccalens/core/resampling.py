r"""Uncertainty for every measure: permutation nulls and bootstrap intervals.

``permutations=N`` (on every measure, and in :func:`ccalens.pairwise`) recomputes the
similarity with the datapoints of Y shuffled N times. This is the baseline the reference
code's tutorials ask for by hand: CCA-type similarities of unrelated data are far above 0
when datapoints are few relative to neurons (a MANOVA/Wachter law), so a similarity means
little until it is compared with its null at the same sizes. The result's ``null`` holds
the null mean and sd, the permutation p-value (Phipson & Smyth 2010: (1 + #{null >=
observed}) / (1 + N)) and the baseline-corrected similarity.

The null reuses the factorisation. Shuffling Y's datapoints permutes the rows of its
orthonormal basis and changes nothing else that the measures need, so each permutation
costs one gather and one product :math:`Q_x^T (P Q_y)`; N of them are formed as a few
large matrix products (``benchmarks/bench_stats.py`` measures the saving against N full
runs). RBF CKA permutes its cached kernel; the matched-neuron controls recompute (they
are a single pass over the data).

``bootstrap=N`` resamples datapoints with replacement N times and recomputes the measure,
giving an interval at level ``confidence`` by the method ``interval`` (basic by default;
percentile, BCa with a grouped jackknife, bias-corrected: :mod:`ccalens.core.intervals`),
the bootstrap's bias estimate and a standard error. A resample has fewer distinct
datapoints than the original, so CCA-type similarities of a resample are biased upward;
the basic and bias-corrected intervals are centred on the bias-corrected value, and
results report it beside the estimate.

References
----------
.. [1] B. Phipson, G. K. Smyth. Permutation p-values should never be zero. Statistical
   Applications in Genetics and Molecular Biology 9 (2010).
.. [2] B. Efron, R. Tibshirani. An Introduction to the Bootstrap. Chapman & Hall, 1993.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np

from . import intervals
from ._backend import _chunks, blas_parallel_map
from .intervals import (DEFAULT_METHOD, JACKKNIFE_GROUPS, METHODS, RELIABLE_DATAPOINTS_PER_NEURON,  # noqa: F401
                        check_method, few_datapoints_note, interval_bounds)
from .draws import MAX_DRAWS, _rng, _tick, check_options, few_draws_note, progress  # noqa: F401  (re-exported: the measures and engines import them from here)
from .registry import MEASURES, check_measure, from_cross
from .results import BootstrapResult, NullResult

__all__ = ["BootstrapResult", "MAX_DRAWS", "NullResult", "bootstrap_interval", "default_method", "null_distribution",
           "progress", "summarise_null"]

#: entries of the stacked permuted bases per product (bounds the memory of the batches)
_BATCH_ENTRIES = 1 << 24

def _factor_null(measure, fx, fy, opts, permutations, rng):
    """Similarities with Y's datapoints shuffled, from the two cached factors."""
    forward, reverse = factor_null_both(measure, fx, fy, opts, permutations, rng)
    return 0.5 * (forward + reverse) if opts.get("symmetric") else forward


def factor_null_both(measure, fx, fy, opts, permutations, rng):
    """Both directions' values (fx's weights, fy's weights) with Y's datapoints shuffled."""
    ops = fx.ops
    qx, qy = fx.basis(), fy.basis()
    n, ry = fy.n_samples, fy.rank
    batch = max(1, min(permutations, _BATCH_ENTRIES // max(1, n * ry)))
    epsilon, keep = opts.get("epsilon", 0.0), opts.get("keep")
    values = np.empty(permutations)
    reverse = np.empty(permutations)
    done = 0
    while done < permutations:
        size = min(batch, permutations - done)
        perms = np.stack([rng.permutation(n) for _ in range(size)])  # (size, n)
        if ops.name == "torch":
            index = ops.torch.as_tensor(perms.T.copy(), device=qy.device)
            stacked = qy[index].reshape(n, size * ry)
        else:
            stacked = qy[perms.T].reshape(n, size * ry)  # column block b is P_b Q_y
        cross = ops.cross(qx, stacked).reshape(fx.rank, size, ry)

        def run(lo_hi, cross=cross, perms=perms, done=done):
            for b in range(*lo_hi):  # the small SVDs of each permutation, side by side
                values[done + b], reverse[done + b], _ = from_cross(
                    measure, fx, fy, np.ascontiguousarray(cross[:, b, :]),
                    epsilon=epsilon, keep=keep, y_rows=perms[b])

        blas_parallel_map(run, _chunks(size, 8))
        done += size
        _tick("permutations", done, permutations)
    return values, reverse


def _factor_data(fx, fy):
    """Each side's centred, kept neurons as its factor reproduces them (Q_0 @ projections)."""
    return [f.ops.matmul_small(f.basis(), f.projections) for f in (fx, fy)]


def _factor_values_on_rows(measure, data, fx, fy, opts, rows):
    """Both directions' values on the datapoints ``rows`` of the factors' data (re-centred
    and re-factorised)."""
    from ..core.factor import factorize_matrix
    from ..core.pairs import cross

    fa, fb = (factorize_matrix(_take_rows(d, rows), f.ops, opts.get("rtol"), name)
              for d, f, name in zip(data, (fx, fy), ("X", "Y")))
    forward, reverse, _ = from_cross(measure, fa, fb, cross(fa, fb), epsilon=opts.get("epsilon", 0.0),
                                     keep=opts.get("keep"))
    return forward, reverse


def factor_bootstrap_both(measure, fx, fy, opts, resamples, rng, method: str = "basic"):
    """Both directions' values over the draws of ``method`` (resamples with replacement,
    half-samples or jackknife groups: :func:`ccalens.core.intervals.draw_rows`), from the
    factors alone.

    The factor-based measures depend on the data only through their centred, kept
    neurons, which the factor reproduces as Q_0 @ projections; each draw re-centres and
    re-factorises those.
    """
    data = _factor_data(fx, fy)
    n = fx.n_samples
    count = intervals.draw_count(method, n, resamples)
    forward, reverse = np.empty(count), np.empty(count)
    for k, rows in enumerate(intervals.draw_rows(method, n, resamples, rng)):
        try:
            forward[k], reverse[k] = _factor_values_on_rows(measure, data, fx, fy, opts, rows)
        except ValueError as err:
            raise _resample_error(k, count, n, err, method) from None
        _tick("bootstrap", k + 1, count)
    return forward, reverse


def factor_jackknife_both(measure, fx, fy, opts, rng, groups: int = intervals.JACKKNIFE_GROUPS):
    """Both directions' values without each of ``min(n, groups)`` random groups of
    datapoints (BCa's acceleration), from the factors alone."""
    data = _factor_data(fx, fy)
    n = fx.n_samples
    parts = intervals.jackknife_groups(n, rng, groups)
    forward, reverse = np.empty(len(parts)), np.empty(len(parts))
    for k, part in enumerate(parts):
        try:
            forward[k], reverse[k] = _factor_values_on_rows(measure, data, fx, fy, opts, _without(n, part))
        except ValueError as err:
            raise _jackknife_error(part, n, err) from None
        _tick("jackknife", k + 1, len(parts))
    return forward, reverse


def _without(n: int, part: np.ndarray) -> np.ndarray:
    """The datapoints 0..n-1 other than ``part`` (a jackknife's kept rows)."""
    return np.setdiff1d(np.arange(n), part, assume_unique=True)


def _jackknife_error(part, n: int, err: Exception) -> ValueError:
    return ValueError(f"the jackknife of the BCa interval (leaving out {part.size} of {n} datapoints) "
                      f"cannot measure the rest: {err} Use interval='basic' or 'percentile'.")


def _take_rows(arr, rows):
    if hasattr(arr, "detach"):
        import torch

        return arr[torch.as_tensor(rows, device=arr.device)]
    return np.asarray(arr)[rows]


def recompute(measure, x, y, opts):
    """The measure's similarity on arrays already in (datapoints, neurons) layout, through
    its registered function (no uncertainty)."""
    options = {k: v for k, v in opts.items() if k != "layout"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # one small-sample warning is enough, from the real run
        return check_measure(measure).compute(x, y, **options).similarity


def null_distribution(measure, data, opts, permutations: int, rng, *, factors=None, kernels=None) -> np.ndarray:
    """``permutations`` similarities with Y's datapoints shuffled (cheapest route available)."""
    if factors is not None and MEASURES[measure].kind == "factor" and not opts.get("n_components"):
        return _factor_null(measure, *factors, opts, permutations, rng)
    if kernels is not None:
        n = kernels.k.shape[0]

        def one(_):
            return kernels.value(rng.permutation(n))[0]
    else:
        x, y = _arrays(data, "the permutation null", opts)
        n = x.shape[0]

        def one(_):
            return recompute(measure, x, _take_rows(y, rng.permutation(n)), opts)
    values = np.empty(permutations)
    for k in range(permutations):
        values[k] = one(k)
        _tick("permutations", k + 1, permutations)
    return values


def summarise_null(measure: str, observed: float, values: np.ndarray) -> NullResult:
    mean = float(np.mean(values))
    sd = float(np.std(values, ddof=1)) if values.size > 1 else 0.0
    # ties within rounding count as "at least as large", so identical values give p = 1
    tol = 1e-12 * max(1.0, abs(observed))
    exceed = int(np.count_nonzero(values >= observed - tol))
    p_value = (1 + exceed) / (1 + values.size)
    adjusted = None
    if measure != "euclidean" and mean < 1.0:
        adjusted = float((observed - mean) / (1.0 - mean))
    if sd > 0:
        z = float((observed - mean) / sd)
    else:  # a constant null (or a single permutation): only the side is known
        z = float(np.sign(observed - mean) * np.inf) if observed != mean else 0.0
    return NullResult(observed=float(observed), mean=mean, sd=sd, p_value=float(p_value),
                      corrected=float(observed - mean), adjusted=adjusted, z=z,
                      permutations=int(values.size), values=values)


def bootstrap_values(measure, data, opts, resamples: int, rng, method: str = "basic") -> np.ndarray:
    """The similarity on the draws of ``method``: ``resamples`` draws of the datapoints with
    replacement, half-samples without, or jackknife groups left out."""
    x, y = _arrays(data, "the bootstrap", opts)
    n = x.shape[0]
    count = intervals.draw_count(method, n, resamples)
    values = np.empty(count)
    for k, rows in enumerate(intervals.draw_rows(method, n, resamples, rng)):
        try:
            values[k] = recompute(measure, _take_rows(x, rows), _take_rows(y, rows), opts)
        except ValueError as err:
            raise _resample_error(k, count, n, err, method) from None
        _tick("bootstrap", k + 1, count)
    return values


def jackknife_values(measure, data, opts, rng, groups: int = intervals.JACKKNIFE_GROUPS) -> np.ndarray:
    """The similarity without each of ``min(n, groups)`` random groups of datapoints (for BCa)."""
    x, y = _arrays(data, "the jackknife", opts)
    n = x.shape[0]
    out = []
    parts = intervals.jackknife_groups(n, rng, groups)
    for part in parts:
        rows = _without(n, part)
        try:
            out.append(recompute(measure, _take_rows(x, rows), _take_rows(y, rows), opts))
        except ValueError as err:
            raise _jackknife_error(part, n, err) from None
        _tick("jackknife", len(out), len(parts))
    return np.asarray(out)


def _factor_route(measure, factors, opts) -> bool:
    """Whether resamples can be drawn from the cached factors (the factor measures, except
    SVCCA with a fixed number of components, which their kernel does not take)."""
    return (factors is not None and MEASURES[measure].from_factors is not None and not opts.get("n_components")
            and not opts.get("compat"))


def default_method(measure: str) -> str:
    """The interval method of ``measure`` when none is named: its family's
    (:data:`ccalens.core.intervals.DEFAULT_BY_FAMILY`)."""
    return intervals.default_method(check_measure(measure).family)


def bootstrap_interval(measure, data, opts, resamples: int, confidence: float, rng, *, estimate: float,
                       method: str | None = None, neurons: int | None = None,
                       factors=None) -> BootstrapResult:
    """The ``method`` interval of the similarity over ``method``'s draws of the datapoints
    (None: the measure's default, :func:`default_method`).

    With ``factors`` (and a factor measure) the resamples are drawn from the factors, as
    :func:`ccalens.pairwise` does; otherwise the measure is recomputed on resampled rows of
    ``data``. Both draw the same rows from ``rng``.
    """
    method = method or default_method(measure)
    if _factor_route(measure, factors, opts):
        fold = (lambda f, r: 0.5 * (f + r)) if opts.get("symmetric") else (lambda f, r: f)
        values = fold(*factor_bootstrap_both(measure, *factors, opts, resamples, rng, method))
        jack = fold(*factor_jackknife_both(measure, *factors, opts, rng)) if method == "bca" else None
        n = factors[0].n_samples
    else:
        values = bootstrap_values(measure, data, opts, resamples, rng, method)
        jack = jackknife_values(measure, data, opts, rng) if method == "bca" else None
        n = _arrays(data, "the bootstrap", opts)[0].shape[0]
    return summarise_bootstrap(estimate, values, confidence, method, jackknife=jack, n_samples=n, neurons=neurons,
                               notes=[regime_note(measure, method, data, opts, factors),
                                      few_draws_note(method, intervals.draw_count(method, n, resamples))],
                               family=MEASURES[measure].family)


def regime_note(measure, method, data, opts, factors=None) -> str | None:
    """The coverage benchmark's note when ``method`` is the measure's default and the data
    show a regime where that default was measured to cover less than its target
    (:mod:`ccalens.core.regimes`), or None."""
    from . import regimes, validate

    family = MEASURES[measure].family
    if method != default_method(measure) or not intervals.MISSED_TARGET.get(family):
        return None
    if factors is not None:
        ops = factors[0].ops
        x, y = (ops.to_numpy(a) for a in _factor_data(*factors))
        ranks = (factors[0].rank, factors[1].rank)
        rho = np.linalg.svd(ops.to_numpy(ops.cross(factors[0].basis(), factors[1].basis())), compute_uv=False)
    else:
        x, y = (validate.host_matrix(a, name, opts.get("layout") or "datapoints_first")
                for a, name in zip(data, "XY"))
        ranks, rho = None, None
        if family == "cca":
            from .factor import factorize

            fx, fy = factorize(x), factorize(y)
            rho = np.linalg.svd(fx.basis().T @ fy.basis(), compute_uv=False)
    return intervals.coverage_note(family, method, regimes.detect(x, y, ranks=ranks, rho=rho))


def summarise_bootstrap(estimate: float, values, confidence: float, method: str = intervals.DEFAULT_METHOD, *,
                        jackknife=None, n_samples: int | None = None, neurons: int | None = None,
                        notes=(), family: str | None = None) -> BootstrapResult:
    """A :class:`BootstrapResult` from ``method``'s draws' values (and, for BCa, jackknife
    values); ``notes`` are further warnings to carry (a regime where coverage was short)."""
    values = np.asarray(values, dtype=np.float64)
    low, high, note = intervals.interval_bounds(estimate, values, confidence, method, jackknife=jackknife,
                                                n_samples=n_samples)
    regime = intervals.few_datapoints_note(n_samples, neurons, family)
    note = "; ".join(t for t in (note, regime, *notes) if t) or None
    return BootstrapResult(low=low, high=high, confidence=float(confidence),
                           sd=intervals.standard_error(method, values, n_samples), resamples=int(values.size),
                           values=values, method=method, estimate=float(estimate),
                           bias=intervals.estimate_bias(method, estimate, values, n_samples), note=note,
                           jackknife=None if jackknife is None else np.asarray(jackknife, dtype=np.float64),
                           n_samples=n_samples)


def _resample_error(k: int, resamples: int, n: int, err: Exception, method: str = "basic") -> ValueError:
    """A draw the measure cannot use: say so, rather than blame the data."""
    scheme = intervals.SCHEMES[method]
    what = {"bootstrap": f"the {n} datapoints drawn with replacement",
            "subsample": f"{intervals.subsample_size(n)} of the {n} datapoints, drawn without replacement",
            "jackknife": f"the {n} datapoints without one group"}[scheme]
    kind = {"bootstrap": "bootstrap resample", "subsample": "half-sample", "jackknife": "jackknife group"}[scheme]
    why = ("resamples repeat many of them" if scheme == "bootstrap" else "a draw keeps too few of them")
    return ValueError(
        f"{kind} {k + 1} of {resamples} ({what}) cannot be measured: {err} The data "
        f"themselves can be; with so few datapoints, {why}. Use more datapoints, or leave out bootstrap=.")


def _arrays(data, what: str, opts: dict):
    from ..core.factor import Factor
    from ..core import validate

    x, y = data
    if isinstance(x, Factor) or isinstance(y, Factor):
        raise TypeError(
            f"{what} needs the activations, and a Factor keeps only what the measures need; "
            f"pass the arrays themselves (the factorisation is reused internally)."
        )
    layout = opts.get("layout") or "datapoints_first"
    return validate.as_matrix(x, "X", layout), validate.as_matrix(y, "Y", layout)


def attach(result, measure: str, data, opts: dict, permutations: int, bootstrap: int, confidence: float,
           seed, *, factors=None, kernels=None, interval: str | None = None):
    """The result with ``null`` and ``bootstrap`` filled in when they were asked for."""
    if not permutations and not bootstrap:
        return result
    rng = _rng(seed)
    changes = {}
    if permutations:
        values = null_distribution(measure, data, opts, permutations, rng, factors=factors, kernels=kernels)
        changes["null"] = summarise_null(measure, result.similarity, values)
    if bootstrap:
        changes["bootstrap"] = bootstrap_interval(measure, data, opts, bootstrap, confidence, rng,
                                                  estimate=result.similarity,
                                                  method=interval or default_method(measure),
                                                  neurons=_neurons(result, data, opts, factors), factors=factors)
    return dataclasses.replace(result, **changes)


def _neurons(result, data, opts, factors=None) -> int:
    """The larger side's neurons that the measure used (its rank where it is known)."""
    ranks = [getattr(result, f"{side}_rank", None) for side in "xy"]
    if all(r is not None for r in ranks):
        return int(max(ranks))
    if factors is not None:
        return int(max(f.rank for f in factors))
    x, y = _arrays(data, "the bootstrap", opts)
    return int(max(x.shape[1], y.shape[1]))