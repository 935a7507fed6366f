"""One validation of measures and options for every front door that works from a summary of
the datapoints (:func:`~ccalens.stream.compare`, :func:`~ccalens.stream.pairwise`,
:func:`~ccalens.compare_models`): which measures a summary gives exactly, which give an
estimate, which options mean the same on the summary, and why the others are refused.
Each front door calls :func:`check_request` once; the code behind it trusts what it returns.
"""

from __future__ import annotations

import numpy as np

from ..core import registry

__all__ = ["DATAPOINT_MEASURES", "DEFAULT_CHUNK_ROWS", "MEASURES", "MINIBATCH_MEASURES", "ROUTES", "Request", "check_chunk_rows",
           "check_request", "check_route", "default_rtol", "why_not_streamable"]

#: Measures that streaming computes exactly: they see the centred data only through
#: inner products of its columns, which the small matrices keep.
MEASURES = registry.names(streamable=True)

#: Measures that the datapoint route of :func:`~ccalens.compare_models` computes exactly from
#: the layers' n x n Gram matrices (:mod:`ccalens.stream.datapoints`): those invariant to
#: orthogonal maps and translations of the neurons, and the factor measures that see a
#: layer wider than the datapoints through its leading principal components (PWCCA).
DATAPOINT_MEASURES = tuple(
    name for name, s in registry.MEASURES.items()
    if {"orthogonal", "translation"} <= s.invariant_to or (s.kind == "factor" and s.streamable))

#: Measures computed as minibatch estimates (not from the exact summary), with what they estimate.
MINIBATCH_MEASURES = {"cka_minibatch": "debiased linear CKA (unbiased HSIC averaged over batches; Nguyen et al. 2021)"}

#: Streaming routes: "auto" (a Gram pass, with a Householder pass for the sources it cannot
#: summarise exactly enough) and "tsqr" (one Householder pass over everything).
ROUTES = ("auto", "tsqr")

DEFAULT_CHUNK_ROWS = 32768

#: Options of the measures that mean the same on the small matrices.
_OPTIONS = ("epsilon", "keep", "n_components", "symmetric", "rtol", "dtype", "alpha")
#: ... of those, the ones that concern one pair only: a matrix of pairs takes each measure
#: as registered (the shape metric at its default alpha, "shape_cca" at alpha = 0).
_SINGLE_PAIR = ("n_components", "dtype", "alpha")

#: Options that need the datapoints themselves, with when they are in use and why.
_NEEDS_DATAPOINTS = {
    "permutations": (lambda v: bool(v), "a permutation null shuffles datapoints"),
    "bootstrap": (lambda v: bool(v), "a bootstrap resamples datapoints"),
    "variates": (lambda v: bool(v), "canonical variates have one value per datapoint"),
    "debiased": (lambda v: bool(v), "debiased CKA needs each datapoint's norm"),
    "kernel": (lambda v: v != "linear", "RBF CKA needs the distances between datapoints"),
    "compat": (lambda v: bool(v), "the reference code's algorithm needs the raw activations"),
}
#: Options with no effect unless one of the above is in use.
_IDLE = ("confidence", "interval", "seed", "bandwidth", "layout")

_WHY_NOT = {  # why a registered measure that is not streamable needs the datapoints, by its kind
    "factor": "it needs each datapoint's own values, not only the neurons' inner products",
    "kernel": "it compares n x n kernels between datapoints",
    "raw": "it works on the activations themselves (their distances, neighbours, regressions or matched neurons)",
}


class Request:
    """What a front door was asked, checked: the measures' specs (exact ones) and names of
    estimates, in the order given, and the options that mean the same on the summary."""

    def __init__(self, exact: list, estimates: list, options: dict):
        self.exact, self.estimates, self.options = exact, estimates, options

    @property
    def needs_datapoints(self) -> bool:
        """Some exact measure needs the datapoint route (it cannot come from a D x D summary)."""
        return any(not s.streamable for s in self.exact)

    @property
    def measures(self) -> list[str]:
        return [s.name for s in self.exact] + list(self.estimates)

    def __repr__(self) -> str:
        return f"Request(measures={self.measures}, options={self.options})"


def why_not_streamable(measure) -> str:
    """Why a registered measure cannot be computed from a streamed summary (its kind's reason)."""
    spec = registry.check_measure(measure)
    return f"{spec.name!r} ({spec.title}) cannot stream: {_WHY_NOT[spec.kind]}"


def _known(front: str, estimates: bool, datapoints: bool = False) -> str:
    exact = ", ".join(DATAPOINT_MEASURES if datapoints else MEASURES)
    if estimates:
        return f"{front} computes {exact} exactly and {', '.join(MINIBATCH_MEASURES)} as an estimate."
    return f"The measures that stream are {exact}."


def _measures(measures, front: str, estimates: bool, datapoints: bool = False) -> tuple[list, list]:
    names = [measures] if isinstance(measures, (str, registry.MeasureSpec)) else list(measures)
    if not names:
        raise ValueError("measures is empty; name at least one (e.g. 'pwcca', 'cka').")
    exact, estimated = [], []
    for m in names:
        name = m.name if isinstance(m, registry.MeasureSpec) else m
        if estimates and name in MINIBATCH_MEASURES:
            estimated.append(name)
            continue
        if name in (DATAPOINT_MEASURES if datapoints else MEASURES):
            exact.append(registry.MEASURES[name])
            continue
        if name in registry.MEASURES and datapoints:
            raise ValueError(
                f"{name!r} ({registry.MEASURES[name].title}) is not available in {front}: it is not invariant to "
                f"orthogonal maps of the neurons, so it can come neither from a D x D summary nor from the layers' "
                f"n x n Gram matrices. Extract the layers (ccalens.extract, to a store when they are large) and "
                f"run ccalens.pairwise. {_known(front, estimates, datapoints)}")
        if name in registry.MEASURES:
            hint = (" For an estimate of debiased CKA over batches, use 'cka_minibatch'."
                    if name == "cka_debiased" and estimates else "")
            extract = (", or extract the layers (ccalens.extract, to a store when they are large) and run "
                       "ccalens.pairwise" if estimates else "")
            raise ValueError(
                f"{why_not_streamable(name)}, and {front} keeps only a small summary of the datapoints.{hint} Run it "
                f"in memory on a random subset of datapoints{extract}. {_known(front, estimates)}")
        raise ValueError(f"unknown measure {name!r}. {_known(front, estimates, datapoints)}")
    unique = lambda xs: list({id(x) if not isinstance(x, str) else x: x for x in xs}.values())  # noqa: E731
    return unique(exact), unique(estimated)


def _where(front: str) -> str:
    return "when streaming" if front == "streaming" else f"in {front}"


def _options(options: dict, front: str, single_pair: bool) -> dict:
    out = {}
    for key, value in options.items():
        if key == "layout" and value != "datapoints_first":
            raise ValueError(
                f"layout={value!r} is not available {_where(front)}: sources are read in row chunks of "
                f"(datapoints, neurons). Transpose the chunks, or store the arrays datapoints-first.")
        if key in _NEEDS_DATAPOINTS:
            active, why = _NEEDS_DATAPOINTS[key]
            if active(value):
                raise ValueError(
                    f"{key}={value!r} is not available {_where(front)}: {why}, and {front} keeps only a small "
                    f"summary of the datapoints. Run it in memory on a random subset of datapoints.")
        elif key in _OPTIONS:
            if key in _SINGLE_PAIR and not single_pair:
                raise ValueError(f"{key}= is a single-pair option; {front} takes "
                                 f"{', '.join(k for k in _OPTIONS if k not in _SINGLE_PAIR)}.")
            out[key] = value
        elif key not in _IDLE:
            allowed = _OPTIONS if single_pair else tuple(k for k in _OPTIONS if k not in _SINGLE_PAIR)
            raise TypeError(f"unknown option {key}= for {front}; the measures' options it takes are "
                            f"{', '.join(allowed)}.")
    return out


def check_request(measures, options: dict, *, front: str, estimates: bool = False,
                  single_pair: bool = False, datapoints: bool = False) -> Request:
    """Check the measures and options of one call of a front door (``front`` names it in
    the messages). ``estimates``: minibatch estimates are allowed too; ``single_pair``:
    the single-pair options (``n_components``, ``dtype``) are allowed; ``datapoints``: the
    front door has the datapoint route, so :data:`DATAPOINT_MEASURES` are allowed."""
    exact, estimated = _measures(measures, front, estimates, datapoints)
    return Request(exact, estimated, _options(dict(options), front, single_pair))


def check_route(route: str, routes=ROUTES) -> str:
    if route not in routes:
        raise ValueError(f"route must be one of {', '.join(map(repr, routes))}; got {route!r}.")
    return route


def check_chunk_rows(chunk_rows) -> int:
    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, (int, np.integer)) or chunk_rows < 1:
        raise ValueError(f"chunk_rows must be a positive int; got {chunk_rows!r}.")
    return int(chunk_rows)


def default_rtol(options: dict, n: int, widths) -> float | None:
    """The in-memory default rank tolerance, max(n, neurons) * eps, for the true n (the
    small matrices have only 2D rows, which would give a far tighter one)."""
    if options.get("rtol") is not None:
        return options["rtol"]
    return max(n, *widths) * np.finfo(np.float64).eps
