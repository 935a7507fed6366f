"""The Figure 2 experiment end to end, on a small configuration."""

import csv
import json

import numpy as np
import pytest

import ccalens
from ccalens.experiments import fig2

SMALL = fig2.Fig2Config(n_samples=800, signal_dims=6, noise_dims=(2, 6, 24), seeds=(0, 1))


def test_synthetic_pair_has_the_stated_structure():
    rng = np.random.default_rng(0)
    cfg = fig2.Fig2Config(n_samples=4000, signal_dims=5, jitter=0.0)
    x, y = fig2.synthetic_pair(rng, cfg, noise_dims=3)
    assert x.shape == y.shape == (4000, 8)
    rho = np.asarray(ccalens.cca(x, y).rho)
    # five shared directions (exactly, without jitter) and three unrelated ones
    np.testing.assert_allclose(rho[:5], 1.0, atol=1e-10)
    assert rho[5:].max() < 0.1


def test_run_computes_every_measure_for_every_seed_and_ratio():
    result = fig2.run(SMALL)
    assert len(result.rows) == 2 * 3
    summary = result.summary()
    assert set(summary) == {"mean_cca", "svcca", "pwcca"}
    assert sorted(summary["pwcca"]) == [0.25, 1.0, 3.0]
    # the rows agree with calling the measures directly
    x, y = fig2.synthetic_pair(np.random.default_rng(0), SMALL, 2)
    assert result.rows[0]["pwcca"] == pytest.approx(ccalens.pwcca(x, y).similarity, abs=1e-12)


def _expected_status(part):
    """A part's status recomputed from its interval: every fig2 part holds above its threshold."""
    low, high = part["interval"]["low"], part["interval"]["high"]
    return "held" if low > part["threshold"] else "not held" if high < part["threshold"] else "inconclusive"


def test_claims_follow_their_stated_rules():
    from scipy.stats import t as student

    from ccalens.experiments.rules import RULES

    cfg = fig2.Fig2Config(n_samples=800, signal_dims=6, noise_dims=(2, 6, 24), seeds=(0, 1, 2))
    result = fig2.run(cfg)
    summ = result.summary()
    by_id = {c["id"]: c for c in result.claims}
    assert set(by_id) == {"fig2.mean_underestimates", "fig2.pwcca_robust", "fig2.svcca_between"}
    drop_mean = summ["mean_cca"][3.0][0] - summ["mean_cca"][0.25][0]
    drop_pw = summ["pwcca"][3.0][0] - summ["pwcca"][0.25][0]
    assert by_id["fig2.mean_underestimates"]["value"] == pytest.approx(drop_mean)
    assert by_id["fig2.pwcca_robust"]["value"] == pytest.approx(drop_mean - drop_pw)
    assert by_id["fig2.pwcca_robust"]["statistic"]["values"]["drop_ratio"] == pytest.approx(drop_pw / drop_mean)
    ratios = sorted(summ["mean_cca"])
    svcca_between = by_id["fig2.svcca_between"]["statistic"]["values"]
    assert svcca_between["min_svcca_minus_mean"] == pytest.approx(
        min(summ["svcca"][r][0] - summ["mean_cca"][r][0] for r in ratios))
    assert svcca_between["min_pwcca_minus_svcca"] == pytest.approx(
        min(summ["pwcca"][r][0] - summ["svcca"][r][0] for r in ratios))
    assert len(svcca_between["paired_tests"]) == 2 * len(ratios) and "violations" in svcca_between
    # a jackknife of a mean over seeds is the t interval of the seeds' values
    per_seed = [next(r["mean_cca"] for r in result.rows if r["seed"] == s and r["ratio"] == 3.0)
                - next(r["mean_cca"] for r in result.rows if r["seed"] == s and r["ratio"] == 0.25) for s in cfg.seeds]
    half = student.ppf(0.975, 2) * np.std(per_seed, ddof=1) / np.sqrt(3)
    interval = by_id["fig2.mean_underestimates"]["interval"]
    assert (interval["low"], interval["high"]) == pytest.approx((drop_mean - half, drop_mean + half))
    for rule_id, claim in by_id.items():
        parts = claim["rule"]["parts"]
        assert [p["name"] for p in parts] == [p.name for p in RULES[rule_id].parts]
        assert claim["replicates"] == 3
        for part in parts:
            assert part["interval"]["unit"] == "seeds"
            assert part["interval"]["confidence"] == pytest.approx(1 - 0.05 / len(parts))
            assert part["status"] == _expected_status(part)
        statuses = [p["status"] for p in parts]
        combined = ("held" if all(s == "held" for s in statuses)
                    else "not held" if "not held" in statuses else "inconclusive")
        if rule_id == "fig2.svcca_between":
            # 800 datapoints for 30 neurons: below the 50 per neuron the ordering claim needs
            assert claim["status"] == "premise not met" and not claim["rule"]["premise_met"]
        else:
            assert claim["status"] == combined
    # the noise dims pull mean CCA down across the sweep, clearly on three seeds
    assert by_id["fig2.mean_underestimates"]["status"] == "held"
    # the property the figure is about: projection weighting discounts the noise dims
    assert summ["pwcca"][0.25][0] > summ["mean_cca"][0.25][0] + 0.1
    # the regime sweep: PWCCA's drop grows with the noise's standard-deviation mass
    assert {r["noise_scale"] for r in result.regime} == set(cfg.regime_scales)
    assert fig2.regime_boundary(result.regime) > 0


def test_too_few_seeds_leave_the_claims_untested():
    by_id = {c["id"]: c for c in fig2.run(SMALL).claims}  # two seeds; the rules need three
    assert {c["status"] for c in by_id.values()} == {"premise not met"}
    assert all(p["interval"]["low"] is not None for c in by_id.values() for p in c["rule"]["parts"])


def test_command_line_writes_figure_numbers_and_claims(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "fig2"
    assert fig2.main(["--out", str(out), "--seeds", "1", "--n", "2000"]) == 0
    printed = capsys.readouterr().out
    assert "signal:noise" in printed and "wrote" in printed
    png = (out / "fig2.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    with (out / "fig2.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(fig2.Fig2Config.noise_dims)
    assert {"seed", "ratio", "mean_cca", "svcca", "pwcca"} <= set(rows[0])
    meta = json.loads((out / "claims.json").read_text())
    assert meta["figure"] == "fig2" and len(meta["claims"]) == 3 and meta["config"]["n"] == 2000
    assert all(c["status"] in ("held", "not held", "inconclusive", "premise not met") and c["rule"]["code"] for c in meta["claims"])
    assert meta["scale"] and meta["dataset"] and meta["command"]  # the index page shows them
