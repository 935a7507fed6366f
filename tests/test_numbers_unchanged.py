"""A fixed set of results, recorded before the measure registry redesign, recomputed now.

``tests/data/reference_numbers.json`` was written by ``python tests/test_numbers_unchanged.py``
at the commit before the redesign (one home per measure): every measure on one pair, its
permutation null and bootstrap intervals with a seed, the compat mode, ``pairwise`` for
every measure (with nulls and intervals for two), and ``stream``. A refactoring changes
no number: they must agree to 1e-12 (the last bits of BLAS products differ between thread
counts on some CPUs, so the comparison is not bitwise across machines).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

REFERENCE = Path(__file__).parent / "data" / "reference_numbers.json"


def _data():
    rng = np.random.default_rng(20180614)
    latent = rng.standard_normal((400, 6))
    x = np.c_[latent, rng.standard_normal((400, 6))] @ rng.standard_normal((12, 12))
    y = np.maximum(np.c_[latent + 0.5 * rng.standard_normal((400, 6)), rng.standard_normal((400, 6))], 0)
    reps = [x, y, x @ rng.standard_normal((12, 12)) + rng.standard_normal((400, 12)), np.tanh(y)]
    return x, y, reps


def numbers() -> dict:
    import ccalens
    from ccalens import stream

    x, y, reps = _data()
    out: dict = {}
    calls = {
        "cca": lambda **k: ccalens.cca(x, y, **k),
        "mean_cca": lambda **k: ccalens.mean_cca(x, y, **k),
        "svcca": lambda **k: ccalens.svcca(x, y, **k),
        "pwcca": lambda **k: ccalens.pwcca(x, y, **k),
        "pwcca_symmetric": lambda **k: ccalens.pwcca(x, y, symmetric=True, **k),
        "cka": lambda **k: ccalens.cka(x, y, **k),
        "cka_debiased": lambda **k: ccalens.cka(x, y, debiased=True, **k),
        "cka_rbf": lambda **k: ccalens.cka(x, y, kernel="rbf", **k),
        "procrustes": lambda **k: ccalens.procrustes(x, y, **k),
        "cosine": lambda **k: ccalens.cosine(x, y, **k),
        "euclidean": lambda **k: ccalens.euclidean(x, y, **k),
    }
    for name, call in calls.items():
        r = call()
        out[f"{name}/similarity"] = r.similarity
        out[f"{name}/distance"] = r.distance
        u = call(permutations=12, bootstrap=9, seed=3, interval="percentile")
        out[f"{name}/null_mean"] = u.null.mean
        out[f"{name}/p_value"] = u.null.p_value
        out[f"{name}/ci"] = [u.bootstrap.low, u.bootstrap.high]
    out["cca/rho"] = ccalens.cca(x, y).rho.tolist()
    out["pwcca/weights"] = ccalens.pwcca(x, y).weights.tolist()
    out["pwcca/bca"] = list(ccalens.pwcca(x, y, bootstrap=9, seed=3, interval="bca").bootstrap.interval("bca"))
    out["compat/pwcca"] = ccalens.pwcca(x, y, compat="svcca").similarity
    out["compat/mean_cca"] = ccalens.mean_cca(x, y, compat="svcca").similarity
    for measure in ("pwcca", "svcca", "mean_cca", "cca", "cka", "cka_debiased", "cka_rbf", "procrustes", "cosine",
                    "euclidean"):
        out[f"pairwise/{measure}"] = ccalens.pairwise(reps, measure, block=2).similarity.tolist()
    for measure in ("pwcca", "cka"):
        t = ccalens.pairwise(reps, measure, permutations=6, bootstrap=5, seed=1, interval="percentile").to_pandas()
        t = t[t["row"] != t["column"]]
        out[f"pairwise/{measure}/uncertainty"] = t[["null_mean", "p_value", "ci_low", "ci_high"]].to_numpy().tolist()
    for measure in ("pwcca", "svcca", "mean_cca", "cca", "cka", "procrustes"):
        out[f"stream/{measure}"] = stream.compare(x, y, measure, chunk_rows=64).similarity
    return out


def _flatten(value):
    return np.asarray(value, dtype=np.float64).ravel()


@pytest.mark.skipif(not REFERENCE.exists(), reason="no recorded reference numbers")
def test_every_recorded_number_is_unchanged():
    pytest.importorskip("pandas")
    recorded = json.loads(REFERENCE.read_text())
    now = numbers()
    assert set(now) == set(recorded)
    for key, value in recorded.items():
        np.testing.assert_allclose(_flatten(now[key]), _flatten(value), rtol=1e-12, atol=1e-12, err_msg=key)


if __name__ == "__main__":  # record the numbers (only at the commit before a refactoring)
    REFERENCE.parent.mkdir(exist_ok=True)
    REFERENCE.write_text(json.dumps(numbers(), indent=0))
    print(f"wrote {REFERENCE}", file=sys.stderr)
