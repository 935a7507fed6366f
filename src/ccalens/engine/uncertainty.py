"""What ``pairwise`` adds to each pair: a permutation null and a bootstrap interval, drawn
from the cached factors by the core's resampling (:mod:`ccalens.core.resampling`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..core.resampling import (factor_bootstrap_both, factor_jackknife_both, factor_null_both, summarise_bootstrap,
                               summarise_null)

__all__ = ["Uncertainty"]


@dataclass(frozen=True)
class Uncertainty:
    """What pairwise adds to each pair: a permutation null and/or a bootstrap interval."""

    permutations: int = 0
    bootstrap: int = 0
    confidence: float = 0.95
    symmetric: bool = False
    seeds: dict = field(default_factory=dict)  # (a, b) -> seed, from the data fingerprints
    method: str = "basic"  # the interval's method (and how its draws are made)

    def __bool__(self) -> bool:
        return bool(self.permutations or self.bootstrap)

    def add(self, info: dict, forward, reverse, measure: str, v_ab: float, v_ba: float, n: int | None = None) -> None:
        """Summaries of both directions' null and bootstrap values into ``info``."""
        if self.symmetric:  # the folded value's null and interval: both directions averaged per draw
            forward = reverse = {kind: 0.5 * (forward[kind] + reverse[kind]) for kind in forward}
            v_ab = v_ba = 0.5 * (v_ab + v_ba)
        for key, values, observed in (("", forward, v_ab), ("_reverse", reverse, v_ba)):
            if self.permutations and "null" in values:
                nr = summarise_null(measure, observed, values["null"])
                info.update({f"null_mean{key}": nr.mean, f"null_sd{key}": nr.sd, f"p_value{key}": nr.p_value,
                             f"corrected{key}": nr.corrected})
            if self.bootstrap and "boot" in values:
                ci = summarise_bootstrap(observed, values["boot"], self.confidence, self.method,
                                         jackknife=values.get("jack"), n_samples=n)
                info.update({f"ci_low{key}": ci.low, f"ci_high{key}": ci.high, f"ci_bias{key}": ci.bias})

    def factor_pair(self, info, a, b, fa, fb, measure, epsilon, keep, v_ab, v_ba) -> None:
        rng = np.random.default_rng(self.seeds.get((a, b), 0))
        opts = {"epsilon": epsilon, "keep": keep}
        fwd, rev = {}, {}
        if self.permutations:
            fwd["null"], rev["null"] = factor_null_both(measure, fa, fb, opts, self.permutations, rng)
        if self.bootstrap:
            fwd["boot"], rev["boot"] = factor_bootstrap_both(measure, fa, fb, opts, self.bootstrap, rng, self.method)
            if self.method == "bca":
                fwd["jack"], rev["jack"] = factor_jackknife_both(measure, fa, fb, opts, rng)
        self.add(info, fwd, rev, measure, v_ab, v_ba, fa.n_samples)
