"""Bootstrap interval methods: the formulas against scipy.stats.bootstrap, consistent reports,
the coverage the default method was chosen for, and the warning where no method covers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.stats as st

import ccalens
from ccalens.core import intervals
from ccalens.core.results import BootstrapResult
from ccalens.stats import MAX_DRAWS, bootstrap_values, progress, summarise_bootstrap


def _corr(a, b):
    return np.corrcoef(a, b)[0, 1]


@pytest.mark.parametrize("method", ["percentile", "basic", "BCa"])
def test_interval_formulas_equal_scipy_bootstrap(method):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(40)
    y = x + rng.standard_normal(40)
    ref = st.bootstrap((x, y), _corr, paired=True, vectorized=False, n_resamples=999, method=method,
                       rng=np.random.default_rng(1))
    jack = [_corr(np.delete(x, g), np.delete(y, g)) for g in intervals.jackknife_groups(40, None, groups=40)]
    low, high, note = intervals.interval_bounds(_corr(x, y), ref.bootstrap_distribution, 0.95, method.lower(),
                                                 jackknife=jack)
    assert note is None
    np.testing.assert_allclose([low, high], [ref.confidence_interval.low, ref.confidence_interval.high],
                               rtol=0, atol=1e-12)


def test_bias_corrected_interval_is_the_percentile_interval_moved_by_twice_the_bias():
    values = np.random.default_rng(2).normal(0.7, 0.01, 500)
    low, high, _ = intervals.interval_bounds(0.68, values, 0.9, "bias_corrected")
    q = np.quantile(values, [0.05, 0.95])
    bias = values.mean() - 0.68
    np.testing.assert_allclose([low, high], q - 2 * bias, atol=1e-15)
    # the basic interval reflects the percentile one about the estimate
    b_low, b_high, _ = intervals.interval_bounds(0.68, values, 0.9, "basic")
    np.testing.assert_allclose([b_low, b_high], [2 * 0.68 - q[1], 2 * 0.68 - q[0]], atol=1e-15)


def test_grouped_jackknife_partitions_the_datapoints():
    rng = np.random.default_rng(3)
    groups = intervals.jackknife_groups(1003, rng)
    assert len(groups) == intervals.JACKKNIFE_GROUPS
    assert sorted(np.concatenate(groups).tolist()) == list(range(1003))
    assert {g.size for g in groups} <= {10, 11}
    assert [g.tolist() for g in intervals.jackknife_groups(5, rng)] == [[0], [1], [2], [3], [4]]
    with pytest.raises(ValueError, match="at least 2 datapoints"):
        intervals.jackknife_groups(1, rng)


def test_bca_acceleration_is_zero_for_symmetric_jackknife_values_and_signed_otherwise():
    assert intervals.bca_acceleration([1.0, 2.0, 3.0]) == 0.0
    assert intervals.bca_acceleration([1.0, 1.0, 1.0]) == 0.0  # no spread: no acceleration, no division by 0
    skewed = intervals.bca_acceleration([0.0, 0.0, 0.0, 1.0])  # one group far below the others' mean
    d = np.array([0.25, 0.25, 0.25, -0.75])
    assert skewed == pytest.approx(np.sum(d**3) / (6 * np.sum(d**2) ** 1.5))


def test_degenerate_bca_says_so():
    values = np.linspace(0.71, 0.74, 200)  # every resample above the estimate: a bias larger than the spread
    low, high, note = intervals.interval_bounds(0.68, values, 0.95, "bca", jackknife=np.linspace(0, 1, 20))
    assert "degenerate" in note and "basic" in note
    assert 0.71 <= low <= high <= 0.74
    with pytest.raises(ValueError, match="needs jackknife values"):
        intervals.interval_bounds(0.68, values, 0.95, "bca")


def test_method_errors_name_the_choices():
    x = np.random.default_rng(4).standard_normal((60, 3))
    with pytest.raises(ValueError, match=r"interval method must be one of \('percentile', 'basic', 'bca', "
                                         r"'bias_corrected', 'subsample', 'jackknife'\); got 'student'"):
        ccalens.pwcca(x, x, bootstrap=10, interval="student")
    with pytest.raises(ValueError, match="bootstrap=2,000,000 is more than 1,000,000"):
        ccalens.cka(x, x, bootstrap=2 * MAX_DRAWS)
    with pytest.raises(ValueError, match="permutations=1,000,001 is more than"):
        ccalens.mean_cca(x, x, permutations=MAX_DRAWS + 1)


def _biased_pair(n=120, p=12, seed=5):
    """Few datapoints per neuron and a weak relation: a large upward bias of resamples."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, p))
    return x, 0.5 * x @ rng.standard_normal((p, p)) + 2.0 * rng.standard_normal((n, p))


def test_every_method_reports_the_estimate_bias_and_corrected_value():
    x, y = _biased_pair()
    for method in intervals.METHODS:
        r = ccalens.pwcca(x, y, bootstrap=60, seed=1, interval=method)
        b = r.bootstrap
        assert b.method == method and b.estimate == r.similarity
        excess = np.mean(b.values) - r.similarity
        scale = {"bootstrap": 1.0, "subsample": 1.0, "jackknife": b.resamples - 1}[intervals.SCHEMES[method]]
        assert b.bias == pytest.approx(scale * excess)  # half of n: m / (n - m) = 1
        assert b.corrected == pytest.approx(r.similarity - b.bias)
        if intervals.SCHEMES[method] != "jackknife":
            assert b.bias > 0  # resamples and half-samples have fewer distinct datapoints: CCA-type values go up
        # the same resamples give every other method's interval
        assert b.interval(method) == (b.low, b.high)
        text = b.describe()
        if method in intervals.CENTRED_ON_CORRECTED or not b.contains_estimate:
            assert f"bias-corrected {b.corrected:.4f}" in text and f"{b.bias:+.4f}" in text
    pct = ccalens.pwcca(x, y, bootstrap=60, seed=1, interval="percentile").bootstrap
    assert not pct.contains_estimate  # the reason the methods exist: the percentile interval misses its estimate
    assert "bias-corrected" in repr(ccalens.pwcca(x, y, bootstrap=60, seed=1, interval="percentile"))
    with pytest.raises(ValueError, match="needs jackknife values"):
        pct.interval("bca")


def test_bca_through_the_measures_uses_the_grouped_jackknife():
    x, y = _biased_pair(n=150, seed=6)
    r = ccalens.mean_cca(x, y, bootstrap=80, seed=2, interval="bca")
    assert r.bootstrap.jackknife.shape == (intervals.JACKKNIFE_GROUPS,)
    same = ccalens.mean_cca(x, y, bootstrap=80, seed=2, interval="percentile").bootstrap
    np.testing.assert_array_equal(r.bootstrap.values, same.values)  # the same resamples, another interval
    low, high = r.bootstrap.interval("bca")
    assert (low, high) == (r.bootstrap.low, r.bootstrap.high)


def test_pairwise_intervals_have_the_method_and_the_bias(tmp_path):
    pytest.importorskip("pandas")
    x, y = _biased_pair(n=150, seed=7)
    z = y + 0.5 * np.random.default_rng(8).standard_normal(y.shape)
    db = tmp_path / "run.sqlite"
    pct = ccalens.pairwise([x, y, z], "mean_cca", bootstrap=40, interval="percentile", results=db)
    rows = pct.to_pandas()
    off = rows[rows["row"] != rows["column"]]
    assert {"ci_low", "ci_high", "ci_bias"} <= set(off.columns) and (off["ci_bias"] > 0).all()
    again = ccalens.pairwise([x, y, z], "mean_cca", bootstrap=40, interval="percentile", results=db)
    assert again.reused == 3 and again.computed == 0
    basic = ccalens.pairwise([x, y, z], "mean_cca", bootstrap=40, interval="basic", results=db)
    assert basic.computed == 3  # another method's intervals are other results
    b = basic.to_pandas()
    b = b[b["row"] != b["column"]]
    np.testing.assert_allclose(b["ci_bias"], off["ci_bias"], atol=1e-12)  # the same resamples
    # basic = 2 * estimate - percentile ends
    np.testing.assert_allclose(b["ci_low"], 2 * off["similarity"] - off["ci_high"], atol=1e-12)
    bca = ccalens.pairwise([x, y, z], "mean_cca", bootstrap=40, interval="bca")
    direct = ccalens.pairwise([x, y, z], "cka_rbf", bootstrap=20, interval="bca")
    for res in (bca, direct):
        t = res.to_pandas()
        t = t[t["row"] != t["column"]]
        assert t["ci_low"].notna().all() and (t["ci_low"] <= t["ci_high"]).all()


def test_progress_reports_every_draw_kind():
    x, y = _biased_pair(n=80, p=4, seed=9)
    seen = {}
    with progress(lambda kind, done, total: seen.__setitem__(kind, (done, total))):
        ccalens.pwcca(x, y, permutations=25, bootstrap=15, interval="bca")
        ccalens.cka(x, y, kernel="rbf", permutations=7)
    assert seen == {"permutations": (7, 7), "bootstrap": (15, 15), "jackknife": (80, 80)}


def test_the_compare_command_prints_what_the_interval_belongs_to(tmp_path):
    pytest.importorskip("typer")
    from typer.testing import CliRunner

    from ccalens.cli import app

    x, y = _biased_pair()
    np.save(tmp_path / "a.npy", x)
    np.save(tmp_path / "b.npy", y)
    runner = CliRunner()
    args = ["compare", str(tmp_path / "a.npy"), str(tmp_path / "b.npy"), "-m", "pwcca", "--bootstrap", "60", "--seed", "1"]
    out = runner.invoke(app, [*args, "--interval", "percentile"])
    assert out.exit_code == 0, out.output
    b = ccalens.pwcca(x, y, bootstrap=60, seed=1, interval="percentile").bootstrap
    assert not b.contains_estimate
    assert "percentile CI" in out.output and f"around {b.corrected:.4f}" in out.output
    js = json.loads(runner.invoke(app, [*args, "--interval", "basic", "--json"]).output)["measures"]["pwcca"]
    assert js["ci_method"] == "basic" and js["ci_corrected"] == pytest.approx(js["similarity"] - js["ci_bias"])
    bad = runner.invoke(app, [*args, "--interval", "student"])
    assert bad.exit_code != 0 and "student" in bad.output


def test_summaries_of_stored_values_need_no_data():
    values = np.array([0.5, 0.6, 0.7, 0.8])
    r = summarise_bootstrap(0.6, values, 0.5, "percentile")
    assert isinstance(r, BootstrapResult) and r.resamples == 4 and r.bias == pytest.approx(0.05)


def test_bootstrap_values_are_the_public_measure_on_resampled_rows():
    x, y = _biased_pair(n=50, p=3, seed=10)
    vals = bootstrap_values("cka", (x, y), {}, 3, np.random.default_rng(0))
    rng = np.random.default_rng(0)
    for v in vals:
        rows = rng.integers(0, 50, 50)
        assert v == pytest.approx(ccalens.cka(x[rows], y[rows]).similarity, abs=1e-12)


def _population_sample(n, p, rep):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import bootstrap_coverage

    return bootstrap_coverage.sample(n, p, np.random.default_rng([n, p, rep, 99])), bootstrap_coverage.population(p)[3]


COVERAGE = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "interval_coverage.json"


def _coverage_benchmark():
    import sys

    sys.path.insert(0, str(COVERAGE.parents[1]))
    import interval_coverage

    return interval_coverage, json.loads(COVERAGE.read_text())


def test_the_default_of_every_family_is_the_committed_benchmarks_decision():
    """benchmarks/interval_coverage.py decided each family's default by its committed rule;
    the library's defaults and its notes on missed regimes are that decision."""
    from ccalens.core import registry

    _, result = _coverage_benchmark()
    families = result["decision"]["families"]
    assert set(families) == set(registry.FAMILIES)
    for family, d in families.items():
        assert intervals.DEFAULT_BY_FAMILY[family] == d["default"], family
        missed, noted = set(d["missed_populations"]), set(intervals.MISSED_TARGET.get(family, {}))
        # a miss on the plainest population is one note for every data set
        assert noted == missed or ("separated" in missed and noted == {"separated"}), family
        assert intervals.COVERAGE_AT_10[family] == tuple(d["coverage_at_10"]), family
    for name, spec in registry.MEASURES.items():
        assert ccalens.stats.default_method(name) == families[spec.family]["default"]


@pytest.mark.parametrize("measure, pop, ratio", [("cka", "separated", 30), ("pwcca", "dead_dup", 30),
                                                 ("procrustes", "heavy", 100)])
def test_default_intervals_replicate_their_benchmarked_coverage_on_fresh_seeds(measure, pop, ratio):
    """The default interval, through the library's own call (``bootstrap=`` on the measure),
    on 100 fresh samples of a cell of the grid: its coverage of the committed reference
    value equals the benchmark's within Monte Carlo error (the difference of two binomial
    shares of 100, at 99 %)."""
    bench, result = _coverage_benchmark()
    group = next(g for g, names in bench.GROUPS.items() if measure in names)
    ref = next(r["reference"][measure]["value"] for r in result["references"]
               if r["pop"] == pop and r["group"] == group)
    method = ccalens.stats.default_method(measure)
    benchmarked = next(r["coverage"] for r in result["decision"]["rows"]
                       if (r["measure"], r["pop"], r["ratio"], r["method"]) == (measure, pop, ratio, method))
    n = ratio * bench.larger_rank(pop)
    covered = 0
    for s in range(100):
        x, y = bench.sample(pop, n, np.random.default_rng([31, s]))
        b = getattr(ccalens, measure)(x, y, bootstrap=bench.DRAWS, seed=s).bootstrap
        assert b.method == method
        covered += b.low <= ref <= b.high
    pooled = (covered / 100 + benchmarked) / 2
    margin = 2.58 * np.sqrt(2 * max(pooled * (1 - pooled), 0.01) / 100)
    assert abs(covered / 100 - benchmarked) <= margin, (covered / 100, benchmarked)


def test_few_datapoints_per_neuron_are_said_in_the_result_and_the_output(tmp_path):
    pytest.importorskip("typer")
    (x, y), truth = _population_sample(300, 20, 0)  # 15 datapoints per neuron
    b = ccalens.mean_cca(x, y, bootstrap=50, seed=0).bootstrap
    assert b.note is not None and "15 datapoints per neuron" in b.note and "below 30" in b.note
    low, high = intervals.COVERAGE_AT_10["cca"]
    assert f"the jackknife interval of this family covered {low:.0%}-{high:.0%} at 10 per neuron" in b.note
    (x30, y30), _ = _population_sample(300, 10, 0)
    note30 = ccalens.mean_cca(x30, y30, bootstrap=20, seed=0).bootstrap.note
    assert note30 is None or "below 30 per neuron" not in note30  # (10 correlations 0.09 apart: a tied-regime note)
    from typer.testing import CliRunner

    from ccalens.cli import app

    np.save(tmp_path / "a.npy", x)
    np.save(tmp_path / "b.npy", y)
    out = CliRunner().invoke(app, ["compare", str(tmp_path / "a.npy"), str(tmp_path / "b.npy"), "-m", "mean_cca",
                                   "--bootstrap", "50"])
    assert out.exit_code == 0 and "15 datapoints per neuron" in " ".join(out.output.split())


def test_the_delete_one_jackknife_interval_of_a_mean_is_the_t_interval():
    """Closed form: leave-one-out means have no bias and Tukey's error s / sqrt(n), so the
    jackknife interval of a mean is the one-sample t interval."""
    x = np.random.default_rng(11).standard_normal(40) * 2 + 1
    n = x.size
    loo = (x.sum() - x) / (n - 1)
    low, high, _ = intervals.interval_bounds(x.mean(), loo, 0.95, "jackknife", n_samples=n)
    t_low, t_high = st.t.interval(0.95, n - 1, loc=x.mean(), scale=x.std(ddof=1) / np.sqrt(n))
    assert (low, high) == pytest.approx((t_low, t_high), abs=1e-12)
    assert intervals.estimate_bias("jackknife", x.mean(), loo, n) == pytest.approx(0.0, abs=1e-12)


def test_jackknife_and_half_sample_bias_corrections_unbias_the_plug_in_variance():
    """Closed form: the plug-in variance (ddof 0) has bias -sigma^2 / n. The delete-one
    jackknife corrects it to the unbiased variance exactly; half-samples without
    replacement, scaled by m / (n - m), do so in expectation over the half-samples."""
    x = np.random.default_rng(12).standard_normal(60)
    n = x.size
    loo = np.array([np.delete(x, i).var() for i in range(n)])
    jack = x.var() - intervals.estimate_bias("jackknife", x.var(), loo, n)
    assert jack == pytest.approx(x.var(ddof=1), rel=1e-12)
    rng = np.random.default_rng(13)
    halves = np.array([x[r].var() for r in intervals.draw_rows("subsample", n, 20000, rng)])
    half = x.var() - intervals.estimate_bias("subsample", x.var(), halves, n)
    assert half == pytest.approx(x.var(ddof=1), rel=0.01)


def test_half_samples_rescaled_give_the_standard_error_of_a_mean():
    """Without replacement a half-sample's mean has variance (1 - m/n) s^2 / m (the
    finite-population correction), which the rescaling sqrt(m / (n - m)) turns into the
    sample mean's s^2 / n."""
    x = np.random.default_rng(14).standard_normal(101)
    n = x.size
    rng = np.random.default_rng(15)
    means = np.array([x[r].mean() for r in intervals.draw_rows("subsample", n, 40000, rng)])
    m = intervals.subsample_size(n)
    fpc = np.sqrt((1 - m / n) * x.var(ddof=1) / m)  # the half-sample mean's exact sd
    assert means.std(ddof=1) == pytest.approx(fpc, rel=0.02)
    assert intervals.standard_error("subsample", means, n) == pytest.approx(x.std(ddof=1) / np.sqrt(n), rel=0.03)


def test_draws_of_each_scheme_and_their_errors():
    rng = np.random.default_rng(0)
    boot = list(intervals.draw_rows("basic", 10, 3, rng))
    assert len(boot) == 3 and all(r.size == 10 for r in boot)
    half = list(intervals.draw_rows("subsample", 11, 4, rng))
    assert all(r.size == 5 and np.unique(r).size == 5 for r in half)
    jack = list(intervals.draw_rows("jackknife", 10, 100, rng))  # min(n, draws) groups: leave one out
    assert len(jack) == 10 and all(r.size == 9 for r in jack)
    assert sorted(set(range(10)) - set(r) for r in jack) == [{i} for i in range(10)]
    assert intervals.draw_count("jackknife", 10, 100) == 10 and intervals.draw_count("subsample", 10, 7) == 7
    with pytest.raises(ValueError, match="subsampling needs at least 4 datapoints; got 3"):
        list(intervals.draw_rows("subsample", 3, 2, rng))
    with pytest.raises(ValueError, match="at least 2 groups; got bootstrap=1"):
        list(intervals.draw_rows("jackknife", 10, 1, rng))
    with pytest.raises(ValueError, match="the subsample interval needs the number of datapoints"):
        intervals.interval_bounds(0.5, np.ones(5), 0.95, "subsample")
    b = ccalens.cka(*_biased_pair()[:2], bootstrap=20, interval="jackknife").bootstrap
    with pytest.raises(ValueError, match="a basic interval needs bootstrap draws, and these are jackknife draws"):
        b.interval("basic")
    assert "jackknife groups" in intervals.draws_text("jackknife", 20)


def test_every_registered_measure_names_a_family_and_unknown_families_are_refused():
    from ccalens.core import registry

    assert {s.family for s in registry.MEASURES.values()} == set(registry.FAMILIES)
    with pytest.raises(ValueError, match=r"family must be None or one of \('cca'"):
        registry.register(registry.MeasureSpec("tmp", "tmp", "raw", frozenset(), ccalens.cosine, family="cnn"))
    assert "tmp" not in registry.MEASURES


def test_the_regime_detectors_on_data_built_to_show_each_regime():
    from ccalens.core import regimes

    rng = np.random.default_rng(21)
    x = rng.standard_normal((400, 4))
    assert regimes.detect(x, x @ rng.standard_normal((4, 4)) + rng.standard_normal((400, 4))) == set()
    assert "unequal" in regimes.detect(x, rng.standard_normal((400, 8)))
    dead = np.c_[x, np.ones(400), x[:, 0]]
    assert "dead_dup" in regimes.detect(dead, x) and "unequal" not in regimes.detect(dead, x)
    assert "heavy" in regimes.detect(rng.standard_t(3, (400, 4)) * [1, 1, 1, 8], x)
    assert regimes.tied([0.9, 0.6, 0.3], 400) is False and regimes.tied([0.6, 0.59, 0.3], 400) is True
    assert "tied" in regimes.detect(x, x, rho=[0.6, 0.59]) and "tied" not in regimes.detect(x, x)


def test_a_missed_regime_puts_its_measured_note_on_the_default_interval(monkeypatch):
    monkeypatch.setitem(intervals.MISSED_TARGET, "cca", {"heavy": "heavy tails: measured 0.80"})
    monkeypatch.setitem(intervals.DEFAULT_BY_FAMILY, "cca", "basic")
    rng = np.random.default_rng(22)
    heavy = rng.standard_t(3, (300, 4)) * [1, 1, 1, 8]
    r = ccalens.pwcca(heavy, heavy + rng.standard_normal((300, 4)), bootstrap=100)
    assert "heavy tails: measured 0.80" in r.bootstrap.note
    x = rng.standard_normal((300, 4))
    assert ccalens.pwcca(x, x @ rng.standard_normal((4, 4)) + rng.standard_normal((300, 4)), bootstrap=100).bootstrap.note is None
    other = ccalens.pwcca(heavy, heavy + rng.standard_normal((300, 4)), bootstrap=100, interval="percentile")
    assert other.bootstrap.note is None  # a method the user chose was not the one measured short
