"""The claim records and the rules that decide the paper's claims, on constructed inputs.

Every rule is exercised both ways (held and not held) and with its premise unmet, on
inputs whose answer is known; the bootstrap intervals and the permutation test are
calibrated on null data; Figure 1's random-direction control on a constructed layer.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from ccalens.experiments import claims, fig1, fig2, fig3, fig4, rnn, seq
from ccalens.experiments.claims import PairTable
from ccalens.experiments.rules import RULES

KEYS = {"id", "scope", "claim", "statistic", "value", "interval", "rule", "rule_commit", "status", "note"}
ISSUE_IDS = {
    "fig1.unconverged", "fig1.signal_stable_noise_decorrelates", "fig1rnn.unconverged",
    "fig1rnn.signal_stable_noise_decorrelates", "fig2.mean_underestimates", "fig2.pwcca_robust",
    "fig2.svcca_between", "fig3.early_equal", "fig3.late_generalisers_closer", "fig3.memorisers_as_close",
    "fig3.softmax_converges_train", "fig3.softmax_test_only_generalisers", "fig3.unweighted_blurs",
    "fig3.cosine_euclid_miss", "fig4.wider_closer", "fig4.distance_predicts_accuracy", "fig5.clusters_by_lr",
    "fig5.one_cluster_apart", "fig5.clusters_match_ablation", "fig6.bottom_up", "fig6.pwcca_clearer_than_mean",
    "fig6.cca_clearer_than_cosine_euclid", "seq.cca_beyond_cosine", "seq.nonlinear_over_time",
}


def test_every_claim_of_the_issue_has_exactly_one_rule():
    assert set(RULES) == ISSUE_IDS
    for rule in RULES.values():
        assert rule.claim and rule.statistic and rule.words
        compile(rule.decision, "<rule>", "eval")
        compile(rule.premise, "<premise>", "eval")


# ---- the record -------------------------------------------------------------------------
def test_decide_gives_each_status_and_the_full_record():
    base = {"rr_minus_tt_conv1": 0.01, "min_train_accuracy": 1.0}
    held = claims.decide("fig3.early_equal", base, scope="PWCCA")
    assert set(held) == KEYS and held["status"] == "held" and held["value"] == 0.01 and held["scope"] == "PWCCA"
    assert held["rule"]["code"] == "abs(rr_minus_tt_conv1) <= 0.05"
    assert held["rule"]["premise_code"] == "min_train_accuracy >= 0.995"
    assert held["statistic"]["values"] == base
    assert claims.decide("fig3.early_equal", {**base, "rr_minus_tt_conv1": -0.2})["status"] == "not held"
    unmet = claims.decide("fig3.early_equal", {**base, "min_train_accuracy": 0.9})
    assert unmet["status"] == "premise not met"  # never "not held" when the premise failed
    nan = claims.decide("fig3.early_equal", {**base, "rr_minus_tt_conv1": float("nan")})
    assert nan["status"] == "not held"
    with pytest.raises(KeyError, match="reads a value the statistic does not have"):
        claims.decide("fig3.early_equal", {"rr_minus_tt_conv1": 0.0})
    with pytest.raises(KeyError, match="has no value 'rr_minus_tt_conv1'"):
        claims.decide("fig3.early_equal", {"min_train_accuracy": 1.0})


def test_rule_code_cannot_reach_builtins():
    with pytest.raises(KeyError, match="__import__.* is not defined"):
        claims.evaluate("__import__('os')", {})


def test_rule_commit_names_a_commit_or_says_why_not():
    value = claims.rule_commit()
    assert value in ("uncommitted", "unknown") or re.fullmatch(r"[0-9a-f]{40}", value)


# ---- intervals and tests, calibrated on null data -------------------------------------
def test_group_bootstrap_covers_the_population_mean_about_95_percent():
    rng = np.random.default_rng(0)
    covered = 0
    reps = 200
    for rep in range(reps):
        values = dict(enumerate(rng.standard_normal(30)))
        groups = {"all": list(values)}
        interval = claims.group_bootstrap(groups, lambda G: float(np.mean([values[i] for i in G["all"]])),
                                          draws=400, seed=rep)
        covered += interval["low"] <= 0.0 <= interval["high"]
    assert 0.88 <= covered / reps <= 0.99


def test_pair_table_never_pairs_a_network_with_its_own_copy():
    table = PairTable({("a", "b"): 1.0, ("a", "c"): 2.0, ("b", "c"): 3.0})
    assert table.mean(["a", "b", "c"]) == pytest.approx(2.0)
    assert table.mean(["a", "a", "b"]) == pytest.approx(1.0)  # (a, a) is not a pair; (a, b) twice
    assert np.isnan(table.mean(["a", "a"]))
    assert table.mean(["a"], ["b", "c"]) == pytest.approx(1.5)
    interval = claims.bootstrap_interval([np.nan] * 5 + [1.0] * 3, 1.0, unit="x")
    assert interval["low"] is None and "fewer than 10" in interval["reason"]
    interval = claims.bootstrap_interval(np.linspace(2, 3, 101), 1.0, unit="x")
    assert interval["method"] == "percentile bootstrap"
    assert not interval["contains_estimate"] and interval["bias"] == pytest.approx(1.5)
    assert interval["corrected"] == pytest.approx(-0.5)


def test_datapoint_bootstraps_give_basic_intervals_that_undo_the_resampling_bias():
    """A statistic that every resample raises by 0.1 (as repeated rows raise CCA values):
    the percentile interval misses the estimate, the basic interval (the claims' method for
    datapoint and probe-window bootstraps) is centred on estimate - bias and covers it."""
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 0.01, 400)
    draws = 0.5 + 0.1 + noise
    pct = claims.bootstrap_interval(draws, 0.5, unit="datapoints", method="percentile")
    basic = claims.bootstrap_interval(draws, 0.5, unit="datapoints", method=claims.DATAPOINT_METHOD)
    assert not pct["contains_estimate"] and pct["low"] > 0.55
    assert basic["method"] == "basic bootstrap" and basic["high"] < 0.45
    assert basic["corrected"] == pytest.approx(0.5 - basic["bias"])
    assert basic["low"] < basic["corrected"] < basic["high"]
    # row_bootstrap, the datapoint bootstrap of fig1, uses it
    r = claims.row_bootstrap(200, lambda idx: float(np.unique(idx).size / 200), draws=50)
    assert r["method"] == "basic bootstrap" and r["bias"] < -0.3 and r["low"] > 1.0  # 1 + |bias| - spread
    with pytest.raises(ValueError, match="interval method must be one of"):
        claims.bootstrap_interval(draws, 0.5, unit="x", method="student")


def test_fig3_separation_is_undefined_when_a_group_holds_one_pair():
    from ccalens.experiments.fig3 import separation

    table = PairTable({("a", "b"): 0.3, ("a", "c"): 0.31, ("b", "c"): 0.29, ("d", "e"): 0.6, ("d", "f"): 0.62,
                       ("e", "f"): 0.58, **{(p, q): 0.5 for p in "abc" for q in "def"}})
    assert separation(table, ["a", "b", "c"], ["d", "e", "f"]) == pytest.approx(
        0.3 / (np.std([0.3, 0.31, 0.29]) + np.std([0.6, 0.62, 0.58])))
    # one distinct pair, repeated: its spread is rounding error, so the ratio is undefined (not 1e13)
    assert np.isnan(separation(table, ["a", "a", "b"], ["d", "e", "f"]))
    assert np.isnan(separation(table, ["a", "b", "c"], ["d", "d", "d"]))


def test_permutation_p_values_are_uniform_on_null_distances():
    from ccalens.experiments import fig5

    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(3), 5)
    ps = []
    for _ in range(150):
        pts = rng.standard_normal((15, 4))
        dist = np.linalg.norm(pts[:, None] - pts[None], axis=-1)
        ps.append(fig5.permutation_gap(dist, labels, permutations=199, seed=int(rng.integers(1 << 30)))[1])
    ps = np.array(ps)
    assert 0.01 <= np.mean(ps <= 0.05) <= 0.11
    assert 0.4 <= np.mean(ps <= 0.5) <= 0.6


# ---- fig5 -----------------------------------------------------------------------------
def _blocks(groups=(5, 5, 5, 5), within=0.1, between=0.5, apart=None, noise=0.01, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(groups)), groups)
    dist = np.where(np.equal.outer(labels, labels), within, between).astype(float)
    if apart is not None:
        far = labels == apart
        dist[far[:, None] ^ far[None, :]] = 3 * between
    dist += noise * rng.random(dist.shape)
    dist = 0.5 * (dist + dist.T)
    np.fill_diagonal(dist, 0.0)
    return dist, labels


def test_fig5_statistics_on_block_and_random_matrices():
    pytest.importorskip("sklearn")
    from ccalens.experiments import fig5

    dist, labels = _blocks()
    st = fig5.structure(dist, labels, 4)
    assert st["p_permutation"] < 0.001 and st["ari_complete"] == pytest.approx(1.0) and st["nn_recovery"] == 1.0
    assert st["gap"] == pytest.approx(0.4, abs=0.02)
    values = {**st, "all_reached_target": True}
    assert claims.decide("fig5.clusters_by_lr", values)["status"] == "held"
    assert claims.decide("fig5.clusters_by_lr", {**values, "all_reached_target": False})["status"] == "premise not met"
    shuffled = fig5.structure(dist, np.random.default_rng(3).permutation(labels), 4)
    assert claims.decide("fig5.clusters_by_lr", {**shuffled, "all_reached_target": True})["status"] == "not held"
    # one cluster far from the others, or none
    far, lab = _blocks(apart=2)
    assert fig5.apart_ratio(far, lab) == pytest.approx(3.0, rel=0.05)
    assert fig5.apart_ratio(dist, labels) == pytest.approx(1.0, rel=0.05)
    assert np.isnan(fig5.apart_ratio(dist, np.ones(len(labels))))


def test_fig5_ablation_clusters_recover_separated_groups():
    pytest.importorskip("sklearn")
    from ccalens.experiments import fig5

    rng = np.random.default_rng(0)
    nets = [{"generalisation_error": 0.1 * g + 0.005 * rng.standard_normal(),
             "ablation_robustness": 0.5 + 0.1 * g + 0.005 * rng.standard_normal()} for g in range(3) for _ in range(4)]
    from sklearn.metrics import adjusted_rand_score

    assert adjusted_rand_score(np.repeat(np.arange(3), 4), fig5.ablation_clusters(nets, 3)) == pytest.approx(1.0)


# ---- fig3 -----------------------------------------------------------------------------
def _fig3_tables(tt, rr, tr, measures=("pwcca", "mean_cca", "cosine", "euclidean", fig3.THRESHOLDED)):
    T = [f"true{i}" for i in range(4)]
    R = [f"random{i}" for i in range(4)]
    rng = np.random.default_rng(0)
    tables = {}
    for data in ("train", "test"):
        for m in measures:
            for layer in fig3.LAYERS:
                d = {}
                for group, value in ((T, tt), (R, rr)):
                    for i in range(len(group)):
                        for j in range(i + 1, len(group)):
                            d[(group[i], group[j])] = value(m, layer) + 0.001 * rng.standard_normal()
                for a in T:
                    for b in R:
                        d[(a, b)] = tr(m, layer)
                tables[(data, m, layer)] = PairTable(d)
    return tables, {"true": T, "random": R}


def test_fig3_rules_on_constructed_distances():
    late = {"conv1": 0.0, "conv2": 0.1, "conv3": 0.2, "fc1": 0.3, "logits": 0.4, "softmax": 0.4}

    def tt(m, layer):  # generalisers: close, closer again at the end with PWCCA only
        base = {"conv1": 0.05, "conv2": 0.1, "conv3": 0.2, "fc1": 0.15, "logits": 0.05, "softmax": 0.05}[layer]
        return base if m in ("pwcca", fig3.THRESHOLDED) else 0.3

    def rr(m, layer):
        return 0.05 + late[layer] if layer != "softmax" else 0.05

    tables, G = _fig3_tables(tt, rr, lambda m, layer: rr(m, layer) + 0.01)
    values = fig3.claim_values(tables, G, "pwcca", 1.0)
    decided = {rule: claims.decide(rule, values)["status"] for rule in fig3.CLAIMS}
    assert decided["fig3.early_equal"] == "held"  # 0.05 vs 0.05
    assert decided["fig3.late_generalisers_closer"] == "held"  # fc1: 0.35 vs 0.15
    assert decided["fig3.memorisers_as_close"] == "held"  # tr = rr + 0.01
    assert decided["fig3.softmax_converges_train"] == "held"
    assert decided["fig3.unweighted_blurs"] == "held"  # PWCCA drops 0.1 over the last two layers, mean CCA 0
    assert values["late_drop_pwcca"] == pytest.approx(0.2 - 0.1, abs=0.01)
    assert decided["fig3.cosine_euclid_miss"] == "held"
    # memorisers far from generalisers, and a softmax that did not converge
    tables, G = _fig3_tables(tt, lambda m, layer: 0.5, lambda m, layer: 0.9)
    values = fig3.claim_values(tables, G, "pwcca", 1.0)
    assert claims.decide("fig3.memorisers_as_close", values)["status"] == "not held"
    assert claims.decide("fig3.softmax_converges_train", values)["status"] == "not held"
    assert claims.decide("fig3.early_equal", values)["status"] == "not held"
    assert claims.decide("fig3.early_equal", {**values, "min_train_accuracy": 0.9})["status"] == "premise not met"


def test_fig3_claims_come_with_network_bootstrap_intervals():
    rows = []
    rng = np.random.default_rng(0)
    names = [f"true{i}" for i in range(5)] + [f"random{i}" for i in range(5)]
    for data, measures in (("train", fig3.MEASURES + (fig3.THRESHOLDED,)), ("test", ("pwcca", "mean_cca"))):
        for m in measures:
            for layer in fig3.LAYERS:
                for i in range(len(names)):
                    for j in range(i + 1, len(names)):
                        rows.append({"data": data, "measure": m, "layer": layer, "a": names[i], "b": names[j],
                                     "distance": float(rng.random()), "comparison": "x"})
    out = fig3.evaluate_claims(rows, {"true": names[:5], "random": names[5:]}, 1.0, draws=50)
    assert len(out) == 11 and {c["scope"] for c in out} == {"PWCCA", "PWCCA after SVD thresholding (99% of the variance)"}
    for c in out:
        assert set(c) == KEYS and c["interval"]["unit"] == "networks within their groups"
        assert c["interval"]["low"] <= c["interval"]["high"]


def test_softmax_layer_is_the_softmax_of_the_logits():
    logits = np.random.default_rng(0).standard_normal((20, 4))
    out = fig3.with_softmax({"logits": logits})["softmax"]
    np.testing.assert_allclose(out.sum(axis=1), 1.0)
    np.testing.assert_allclose(np.log(out[:, 0] / out[:, 1]), logits[:, 0] - logits[:, 1], atol=1e-12)


# ---- fig4 -----------------------------------------------------------------------------
def test_fig4_rules_on_constructed_distances():
    widths = [8, 16, 32]
    G = {w: [f"w{w}-{k}" for k in range(4)] for w in widths}
    acc = {n: 0.8 + 0.002 * w for w, ns in G.items() for n in ns}

    def tables(distance_of_width):
        out = {}
        for state in ("trained", "untrained"):
            for layer, m in ((f"{fig4.LAYER}-subsets", "pwcca"), (fig4.LAYER, "svcca_k8")):
                d = {}
                for w, ns in G.items():
                    for i in range(len(ns)):
                        for j in range(i + 1, len(ns)):
                            d[(ns[i], ns[j])] = distance_of_width(w) + 0.001 * (i + j)
                out[(state, layer, m)] = PairTable(d)
        return out

    falling = fig4.claim_values(tables(lambda w: 1.0 / w), G, acc, 8)
    assert falling["spearman"] == pytest.approx(-1.0) and falling["pearson"] < -0.9
    assert claims.decide("fig4.wider_closer", falling)["status"] == "held"
    assert claims.decide("fig4.distance_predicts_accuracy", falling)["status"] == "held"
    rising = fig4.claim_values(tables(lambda w: w / 100), G, acc, 8)
    assert claims.decide("fig4.wider_closer", rising)["status"] == "not held"
    assert claims.decide("fig4.distance_predicts_accuracy", rising)["status"] == "not held"
    assert fig4.subset_size((8, 12, 16, 24, 32)) == 16
    with pytest.raises(ValueError, match="does not fit the narrowest"):
        fig4.subset_size((4, 32))


def test_fig4_subset_distance_of_a_layer_with_itself_is_zero():
    a = np.random.default_rng(0).standard_normal((400, 12))
    assert fig4.subset_distance(a, a.copy(), 12, range(3)) == pytest.approx(0.0, abs=1e-10)
    assert 0.3 < fig4.subset_distance(a, np.random.default_rng(1).standard_normal((400, 12)), 4, range(5)) < 1


# ---- fig1 -----------------------------------------------------------------------------
def _moving_layer(n=3000, signal=4, noise=4, T=12, seed=0):
    """A layer whose first ``signal`` directions are fixed from t = 1 and whose noise directions are redrawn."""
    rng = np.random.default_rng(seed)
    fixed = rng.standard_normal((n, signal))
    mix = np.linalg.qr(rng.standard_normal((signal + noise, signal + noise)))[0]
    L = {0: rng.standard_normal((n, signal + noise))}
    for t in range(1, T + 1):
        L[t] = np.c_[fixed, rng.standard_normal((n, noise))] @ mix
    return L


def test_fig1_signal_stays_noise_decorrelates_and_the_random_control_lies_between():
    L = _moving_layer()
    T, t_early, t_half = 12, 1, 6
    rho, sim, k = fig1.signal_noise(L, T, t_early, t_half)
    assert k == 2
    after = [e for e in sim["S"] if e > t_half]
    S = np.mean([sim["S"][e] for e in after])
    B = np.mean([sim["B"][e] for e in after])
    R = np.mean([sim["R"][e] for e in after])
    assert S > 0.99 and B < 0.1 and B < R < S
    assert sim["S"][t_half] == pytest.approx(1.0) and sim["B"][t_half] == pytest.approx(1.0)  # the paper's spike
    analysis = fig1.analyse_layer(L, T, 3, t_early, t_half, performance={"accuracy": [0.5] * (T + 1)}, draws=20)
    records = fig1.decide_layer("fig1", "layer", analysis, premise={})
    assert [r["status"] for r in records] == ["held", "held"]
    assert records[1]["interval"]["low"] > 0.5 and records[1]["interval"]["unit"] == "datapoints"


def test_fig1_premise_not_met_when_the_layer_stops_changing():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((2000, 6))
    L = {t: X + (0.5 * rng.standard_normal((2000, 6)) if t < 2 else 0.0) for t in range(11)}
    analysis = fig1.analyse_layer(L, 10, 3, 1, 5, performance={"a": [0.0] * 11}, draws=10)
    records = fig1.decide_layer("fig1", "x", analysis, premise={})
    assert records[1]["status"] == "premise not met" and analysis["values"]["rho_half_vs_final"] > 0.99
    assert records[0]["status"] == "not held"  # converged at t0: no coefficient below 0.9
    late = claims.decide("fig1.unconverged", {"fraction_below_0_9": 0.5, "t0": 10, "T": 10})
    assert late["status"] == "premise not met"


def test_choose_T_takes_the_last_epoch_where_the_layer_still_changes():
    L = _moving_layer(T=12)
    frozen = {t: L[min(t, 8)] for t in range(21)}  # stops changing after epoch 8
    T, moved = fig1.choose_T({"a": frozen}, 20)
    assert T == 15 and moved["a"] < 0.9  # from T = 16 on, L[T // 2] is already the frozen L[8]
    T, moved = fig1.choose_T({"a": {t: L[1] for t in range(21)}}, 20)
    assert T == 20 and moved["a"] == pytest.approx(1.0)  # nothing changes: T_max, and the premise fails
    assert fig1.first_converged([0.1, 0.5, 0.79, 0.8], lambda v, f: v >= f - 0.01) == 2


# ---- fig2 -----------------------------------------------------------------------------
def test_fig2_svcca_between_counts_significant_violations():
    cfg = fig2.Fig2Config(n_samples=1000, signal_dims=2, noise_dims=(2, 8), seeds=(0, 1, 2, 3))
    rows = []
    for s in cfg.seeds:
        for d, (m, sv, pw) in ((2, (0.8, 0.85, 0.9)), (8, (0.5, 0.45, 0.7))):
            jitter = 0.001 * s
            rows.append({"seed": s, "ratio": 2 / d, "mean_cca": m + jitter, "svcca": sv - jitter, "pwcca": pw})
    values = fig2.claim_values(rows, cfg)
    assert values["violations"] == 1 and values["min_gap"] == pytest.approx(-0.05 - 0.003, abs=1e-9)
    assert values["mean_cca_drop"] == pytest.approx(0.3) and values["drop_ratio"] == pytest.approx(0.2 / 0.3)
    assert values["n_per_neuron"] == pytest.approx(100.0)  # 1000 datapoints, 10 neurons at the widest
    assert claims.decide("fig2.svcca_between", values)["status"] == "not held"
    assert claims.decide("fig2.svcca_between", {**values, "violations": 0})["status"] == "held"
    assert claims.decide("fig2.svcca_between", {**values, "n_per_neuron": 10})["status"] == "premise not met"


def test_fig2_regime_boundary():
    regime = [{"noise_scale": 0.1, "noise_dims": d, "noise_mass": m, "drop_from_start": drop, "seed": 0}
              for d, m, drop in ((2, 0.01, 0.0), (20, 0.1, 0.05), (200, 1.0, 0.2))]
    assert fig2.regime_boundary(regime) == pytest.approx(0.1)


# ---- fig6 -----------------------------------------------------------------------------
def _curves(delays, n=11):
    frac = np.linspace(0, 1, n)
    return {f"lstm{i + 1}": {m: list(np.clip((frac - 0.0) / d, 0, 1)) if m != "euclidean"
                             else list(1 - np.clip(frac / d, 0, 1))
                             for m in rnn.MEASURES} for i, d in enumerate(delays)}, frac


def test_fig6_ordering_stats_and_clarity():
    curves, frac = _curves([0.2, 0.4, 0.6])
    st = rnn.ordering_stats(curves, frac, "pwcca")
    np.testing.assert_allclose(st["crossing"], [0.18, 0.36, 0.54])
    assert st["gap"] == pytest.approx(0.18) and st["ordering_score"] > 0
    assert rnn.crossing(frac, np.zeros(11)) != rnn.crossing(frac, np.zeros(11))  # NaN: never reached
    assert rnn.clarity(0.2, [0.1, 0.3]) == pytest.approx(2.0)
    assert rnn.clarity(0.0, [0.0, 0.0]) == 0.0


def test_fig6_decisions_on_constructed_statistics():
    def stats_for(gap_by_measure, t90=(0.2, 0.4)):
        return {m: {"t90": list(t90), "crossing": list(t90), "ordering_score": 0.5, "gap": g, "at_init": [0, 0]}
                for m, g in gap_by_measure.items()}

    gaps = {"pwcca": 0.3, "pwcca_from_t": 0.3, "pwcca_from_final": 0.3, "mean_cca": 0.1, "cosine": 0.05,
            "euclidean": 0.02}
    stats = {"2-layer": stats_for(gaps), "4-layer": stats_for(gaps)}
    rng = np.random.default_rng(0)
    draws = {n: {m: [{"gap": g + 0.05 * rng.standard_normal(), "ordering_score": 0.5} for _ in range(50)]
                 for m, g in gaps.items()} for n in stats}
    out = rnn.decide_fig6(stats, draws, {"2-layer": True, "4-layer": True})
    assert [c["status"] for c in out] == ["held"] * 4
    assert out[2]["interval"]["low"] > 0
    out = rnn.decide_fig6(stats, draws, {"2-layer": True, "4-layer": False})
    assert [c["status"] for c in out] == ["held", "premise not met", "premise not met", "premise not met"]
    flat = {n: stats_for({**gaps, "pwcca": 0.0}, t90=(0.4, 0.2)) for n in stats}
    out = rnn.decide_fig6(flat, draws, {"2-layer": True, "4-layer": True})
    assert [c["status"] for c in out] == ["not held", "not held", "not held", "not held"]


# ---- seq ------------------------------------------------------------------------------
def test_seq_values_correct_for_chance():
    T = 6
    lag = np.abs(np.subtract.outer(np.arange(T), np.arange(T)))
    null = np.full((T, T), 0.25)
    mats = {"pwcca": 0.25 + 0.75 * np.exp(-lag / 2.0), "cosine": np.where(lag == 0, 1.0, 0.5),
            "cosine_centred": np.where(lag == 0, 1.0, 0.02)}
    nulls = {"pwcca": null, "cosine": np.full((T, T), 0.5), "cosine_centred": np.zeros((T, T))}
    values = seq.values_for(mats, nulls)
    assert values["mean_offdiag_cosine_corrected"] == pytest.approx(0.0)  # raw cosine at its chance level
    np.testing.assert_allclose(seq.corrected(mats["pwcca"], null), np.exp(-lag / 2.0))
    premise = {"plateau_reached": True, "windows_per_neuron": 60}
    out = seq.decide("lstm1", {**values, **premise})
    assert [c["status"] for c in out] == ["held", "held"]
    out = seq.decide("lstm1", {**values, **premise, "windows_per_neuron": 10})
    assert [c["status"] for c in out] == ["premise not met", "premise not met"]
    flat = seq.values_for({k: np.ones((T, T)) for k in mats}, nulls)
    assert [c["status"] for c in seq.decide("lstm1", {**flat, **premise})] == ["not held", "not held"]


# ---- committed results -----------------------------------------------------------------
def _git(*args) -> str:
    root = Path(__file__).resolve().parents[1]
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout.strip()


def test_committed_results_come_after_the_rules_that_decide_them():
    root = Path(__file__).resolve().parents[1]
    try:
        _git("rev-parse", "HEAD")
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    import json

    checked = 0
    for path in sorted(root.glob("results/*/*/claims.json")):
        doc = json.loads(path.read_text())
        for c in doc["claims"]:
            if "rule_commit" not in c:
                continue
            checked += 1
            assert re.fullmatch(r"[0-9a-f]{40}", c["rule_commit"]), (path, c["id"], c["rule_commit"])
            added = _git("log", "-1", "--format=%H", "--", str(path.relative_to(root)))
            assert c["rule_commit"] != added, f"{path}: results committed together with their rules"
            _git("merge-base", "--is-ancestor", c["rule_commit"], added)  # raises when not an ancestor
            rule = RULES[c["id"]]
            assert c["rule"]["code"] == rule.decision and c["rule"]["premise_code"] == rule.premise, (
                f"{path}: {c['id']}'s rule changed after this result; rerun it, and record the change in "
                f"results/REVISIONS.md")


def test_grouped_jackknife_interval_covers_the_mean_about_95_percent():
    rng = np.random.default_rng(11)
    covered = 0
    for _ in range(200):
        x = rng.standard_normal(300)
        r = claims.jackknife_interval(300, lambda rows, x=x: float(x[rows].mean()), groups=25,
                                      seed=int(rng.integers(1 << 30)), unit="x")
        covered += r["low"] <= 0.0 <= r["high"]
        assert r["method"] == "grouped jackknife (25 groups), t with 24 df" and r["contains_estimate"]
    assert 0.90 <= covered / 200 <= 0.99
    # the mean is unbiased: the jackknife's bias estimate is rounding
    assert abs(r["bias"]) < 1e-12
    r = claims.jackknife_interval(50, lambda rows: float("nan") if 3 not in rows else 1.0, groups=10, unit="x")
    assert r["low"] is None and "undefined" in r["reason"]


def test_seq_null_replicates_delete_windows_from_the_same_pairings():
    from ccalens.experiments import seq

    rng = np.random.default_rng(2)
    raw = [rng.standard_normal((120, 6)) for _ in range(3)]
    full = seq.null_matrices(raw, draws=2, seed=4)
    again = seq.null_matrices(raw, draws=2, seed=4, rows=np.arange(120))
    for m in seq.MEASURES:
        np.testing.assert_allclose(again[m], full[m], atol=1e-14)
    keep = np.setdiff1d(np.arange(120), np.arange(0, 120, 7))
    part = seq.null_matrices(raw, draws=1, seed=4, rows=keep)
    # by hand: timestep t's shuffle is the t-th permutation drawn from the seed
    gen = np.random.default_rng(4)
    p = [gen.permutation(120) for _ in range(3)]
    by_hand = 1.0 - seq.naive_distance(raw[0][keep], raw[1][p[1][keep]], "cosine")
    by_hand_t = 1.0 - seq.naive_distance(raw[1][keep], raw[0][p[0][keep]], "cosine")
    assert part["cosine"][0, 1] == pytest.approx(0.5 * (by_hand + by_hand_t), abs=1e-12)


def test_claim_bootstrap_intervals_refuse_bca_and_undefined_estimates():
    with pytest.raises(ValueError, match="claim intervals are percentile or basic bootstraps"):
        claims.bootstrap_interval([1.0] * 20, 1.0, unit="x", method="bca")
    r = claims.bootstrap_interval(np.linspace(0, 1, 50), float("nan"), unit="x")
    assert r["low"] is None and "undefined on the data" in r["reason"]


def test_grouped_jackknife_with_few_groups_still_covers():
    rng = np.random.default_rng(5)
    covered = sum(
        (lambda r: r["low"] <= 0.0 <= r["high"])(claims.jackknife_interval(
            200, lambda rows, x=rng.standard_normal(200): float(x[rows].mean()), groups=5,
            seed=int(rng.integers(1 << 30)), unit="x"))
        for _ in range(300))
    assert 0.91 <= covered / 300 <= 0.99  # a normal quantile covered about 0.87 at 5 groups
