"""Permutation nulls and bootstrap intervals: exactness of the fast route, calibration."""

import numpy as np
import pytest
from scipy import stats as scipy_stats

import ccalens
from ccalens.engine import pairwise
from ccalens.stats import null_distribution

FUNCS = {
    "cca": lambda x, y, **kw: ccalens.cca(x, y, **kw),
    "mean_cca": lambda x, y, **kw: ccalens.mean_cca(x, y, **kw),
    "svcca": lambda x, y, **kw: ccalens.svcca(x, y, keep=0.9, **kw),
    "pwcca": lambda x, y, **kw: ccalens.pwcca(x, y, **kw),
    "cka": lambda x, y, **kw: ccalens.cka(x, y, **kw),
    "cka_debiased": lambda x, y, **kw: ccalens.cka(x, y, debiased=True, **kw),
    "cka_rbf": lambda x, y, **kw: ccalens.cka(x, y, kernel="rbf", **kw),
    "procrustes": lambda x, y, **kw: ccalens.procrustes(x, y, **kw),
    "cosine": lambda x, y, **kw: ccalens.cosine(x, y, **kw),
    "euclidean": lambda x, y, **kw: ccalens.euclidean(x, y, **kw),
}


def pair(seed, n=90, a=6, b=6, signal=1.0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, a))
    y = signal * x[:, :b] @ rng.standard_normal((b, b)) + rng.standard_normal((n, b))
    return x, y


@pytest.mark.parametrize("measure", list(FUNCS))
def test_null_values_are_the_shuffled_data_values(measure):
    """The fast route (permuted bases, cached kernels) gives exactly the similarity of the
    data with Y's rows shuffled, computed from scratch."""
    x, y = pair(0)
    fn = FUNCS[measure]
    r = fn(x, y, permutations=7, seed=11)
    rng = np.random.default_rng(11)
    expected = [fn(x, y[rng.permutation(len(y))]).similarity for _ in range(7)]
    np.testing.assert_allclose(r.null.values, expected, rtol=0, atol=1e-12)
    assert r.null.observed == r.similarity
    assert r.null.mean == pytest.approx(np.mean(expected), abs=1e-12)
    assert r.null.sd == pytest.approx(np.std(expected, ddof=1), abs=1e-12)
    assert r.null.corrected == pytest.approx(r.similarity - np.mean(expected), abs=1e-12)


def test_p_value_and_corrected_score():
    x, y = pair(1, n=200, signal=2.0)
    r = ccalens.pwcca(x, y, permutations=99, seed=0)
    assert r.null.p_value == pytest.approx(1 / 100)  # never 0: (1 + 0) / (1 + 99)
    assert r.null.adjusted == pytest.approx((r.similarity - r.null.mean) / (1 - r.null.mean))
    assert r.null.z > 5
    # identical values for every permutation (a constant-free, symmetric case) give p = 1
    same = ccalens.cosine(np.ones((6, 1)) + np.arange(6)[:, None] * 0, np.ones((6, 1)), permutations=9, seed=0)
    assert same.null.p_value == 1.0 and same.null.sd == 0.0
    assert ccalens.euclidean(x, y, permutations=5, seed=0).null.adjusted is None


@pytest.mark.parametrize("measure", ["mean_cca", "pwcca", "cka", "cka_debiased", "procrustes"])
def test_p_values_are_uniform_under_independence(measure):
    """Independent X and Y, few datapoints per neuron (where the similarity itself is far
    from 0): the permutation p-values are uniform over repeated draws."""
    rng = np.random.default_rng(123)
    p_values = []
    for k in range(150):
        x, y = rng.standard_normal((30, 5)), rng.standard_normal((30, 5))
        p_values.append(FUNCS[measure](x, y, permutations=39, seed=k).null.p_value)
    p_values = np.array(p_values)
    # discrete uniform on {1/40, ..., 40/40}: compare with a KS test after jittering within steps
    jittered = p_values - rng.uniform(0, 1 / 40, p_values.size)
    assert scipy_stats.kstest(jittered, "uniform").pvalue > 0.001
    assert 0.01 <= np.mean(p_values <= 0.05) <= 0.11


def test_bootstrap_sd_matches_the_sampling_spread():
    """The bootstrap standard error of one dataset estimates the spread of the measure over
    fresh datasets from the same distribution."""
    rng = np.random.default_rng(7)
    mixing = rng.standard_normal((4, 4))

    def draw(n=300):
        x = rng.standard_normal((n, 4))
        return x, np.tanh(x @ mixing) + rng.standard_normal((n, 4))

    truth = np.std([ccalens.cka(*draw()).similarity for _ in range(200)])
    boot = np.mean([ccalens.cka(*draw(), bootstrap=150, seed=s).bootstrap.sd for s in range(6)])
    assert 0.7 < boot / truth < 1.4


def test_bootstrap_interval():
    x, y = pair(2, n=150)
    default = ccalens.cka(x, y, bootstrap=200, confidence=0.9, seed=3).bootstrap
    assert default.method == "jackknife" and default.resamples == 150  # min(n, draws) groups: leave one out
    r = ccalens.cka(x, y, bootstrap=200, confidence=0.9, seed=3, interval="basic")
    b = r.bootstrap
    assert b.resamples == 200 and b.values.shape == (200,) and b.confidence == 0.9
    # the basic interval: the percentile ends reflected about the estimate
    q = np.quantile(b.values, [0.05, 0.95])
    assert b.method == "basic"
    assert b.low == pytest.approx(2 * r.similarity - q[1]) and b.high == pytest.approx(2 * r.similarity - q[0])
    assert b.interval("percentile") == pytest.approx(tuple(q))
    assert b.low < b.corrected < b.high
    # the same seed gives the same interval
    assert ccalens.cka(x, y, bootstrap=200, confidence=0.9, seed=3, interval="basic").bootstrap.low == b.low
    assert ccalens.cka(x, y, bootstrap=200, confidence=0.9, seed=3).bootstrap.low == default.low
    assert "ci90=" in repr(r)


def test_neurons_first_layout_and_compat_mode():
    x, y = pair(3)
    r = ccalens.pwcca(x.T, y.T, layout="neurons_first", permutations=5, bootstrap=5, seed=1)
    s = ccalens.pwcca(x, y, permutations=5, bootstrap=5, seed=1)
    np.testing.assert_allclose(r.null.values, s.null.values, atol=1e-12)
    np.testing.assert_allclose(r.bootstrap.values, s.bootstrap.values, atol=1e-12)
    c = ccalens.pwcca(x, y, compat="svcca", permutations=5, seed=1)
    assert c.null.values.shape == (5,) and np.all(np.isfinite(c.null.values))


def test_torch_null_matches_numpy():
    torch = pytest.importorskip("torch")
    x, y = pair(4)
    a = ccalens.pwcca(torch.from_numpy(x), torch.from_numpy(y), permutations=6, seed=2)
    b = ccalens.pwcca(x, y, permutations=6, seed=2)
    np.testing.assert_allclose(a.null.values, b.null.values, atol=1e-12)


def test_pairwise_nulls_and_intervals_survive_resume(tmp_path):
    pytest.importorskip("pandas")
    reps = {f"r{i}": pair(10 + i, n=120)[1] for i in range(4)}
    db = tmp_path / "pairs.sqlite"
    first = pairwise(reps, "pwcca", permutations=20, bootstrap=10, results=db)
    table = first.to_pandas()
    off = table[table.row != table.column]
    assert off[["null_mean", "null_sd", "p_value", "corrected", "ci_low", "ci_high"]].notna().all().all()
    # directed PWCCA: each direction has its own null
    ab = off[(off.row == "r0") & (off.column == "r1")].iloc[0]
    ba = off[(off.row == "r1") & (off.column == "r0")].iloc[0]
    assert ab.similarity != ba.similarity and ab.null_mean != ba.null_mean
    again = pairwise(reps, "pwcca", permutations=20, bootstrap=10, results=db)
    assert again.computed == 0
    import pandas as pd

    pd.testing.assert_frame_equal(again.to_pandas(), table)
    # other names for the same data: rows are stored by fingerprint, the orientation follows
    renamed = pairwise({k.upper(): v for k, v in reversed(reps.items())}, "pwcca", permutations=20, bootstrap=10, results=db)
    assert renamed.computed == 0
    t2 = renamed.to_pandas().set_index(["row", "column"])
    assert t2.loc[("R1", "R0"), "null_mean"] == ba.null_mean and t2.loc[("R0", "R1"), "ci_low"] == ab.ci_low
    # the pairwise null of one pair equals the single-pair route with the same permutations
    fx, fy = ccalens.factorize(reps["r0"]), ccalens.factorize(reps["r1"])
    values = null_distribution("cka", (reps["r0"], reps["r1"]), {}, 5, np.random.default_rng(0), factors=(fx, fy))
    direct = null_distribution("cka", (reps["r0"], reps["r1"]), {}, 5, np.random.default_rng(0))
    np.testing.assert_allclose(values, direct, atol=1e-12)


def test_pairwise_symmetric_pwcca_null_is_the_null_of_the_folded_value():
    pytest.importorskip("pandas")
    reps = {f"r{i}": pair(30 + i, n=120)[1] for i in range(3)}
    folded = pairwise(reps, "pwcca", symmetric=True, permutations=15, bootstrap=6, seed=2).to_pandas()
    directed = pairwise(reps, "pwcca", permutations=15, bootstrap=6, seed=2).to_pandas()
    f = folded.set_index(["row", "column"])
    d = directed.set_index(["row", "column"])
    # the folded similarity is the mean of the two directions, both ways round
    assert f.loc[("r0", "r1"), "similarity"] == pytest.approx(0.5 * (d.loc[("r0", "r1"), "similarity"]
                                                                    + d.loc[("r1", "r0"), "similarity"]))
    assert f.loc[("r0", "r1"), "null_mean"] == pytest.approx(f.loc[("r1", "r0"), "null_mean"])
    # same permutations: the mean of the averaged null is the average of the two nulls' means
    assert f.loc[("r0", "r1"), "null_mean"] == pytest.approx(0.5 * (d.loc[("r0", "r1"), "null_mean"]
                                                                   + d.loc[("r1", "r0"), "null_mean"]), abs=1e-12)
    # (resamples repeat datapoints, so CCA-type values of a resample sit above the original's)
    assert f.loc[("r0", "r1"), "ci_low"] < f.loc[("r0", "r1"), "ci_high"]
    assert f.loc[("r0", "r1"), "ci_low"] == pytest.approx(f.loc[("r1", "r0"), "ci_low"])


@pytest.mark.parametrize("measure", ["cka_rbf", "cosine", "euclidean", "cka", "procrustes", "cka_debiased"])
def test_pairwise_new_measures_equal_the_single_pair_functions(measure):
    pytest.importorskip("pandas")
    reps = [pair(20 + i, n=100)[1] for i in range(3)]
    res = pairwise(reps, measure, permutations=4, seed=1)
    for i in range(3):
        for j in range(3):
            if i != j:
                assert res.similarity[i, j] == pytest.approx(FUNCS[measure](reps[i], reps[j]).similarity, abs=1e-12)
    table = res.to_pandas()
    assert table.p_value.notna().sum() == 6


def test_errors():
    x, y = pair(5)
    with pytest.raises(ValueError, match="permutations must be a whole number >= 0"):
        ccalens.pwcca(x, y, permutations=-1)
    with pytest.raises(ValueError, match="bootstrap must be a whole number >= 0"):
        ccalens.cka(x, y, bootstrap=2.5)
    with pytest.raises(ValueError, match="confidence must be a level in .0, 1."):
        ccalens.procrustes(x, y, bootstrap=5, confidence=95)
    with pytest.raises(ValueError, match="seed must be None, a non-negative int or a numpy Generator"):
        ccalens.mean_cca(x, y, permutations=3, seed="abc")
    # factors hold what the factor measures need: their resamples come from the factors,
    # as from the arrays; a fixed number of SVCCA components still needs the activations
    from_factors = ccalens.cca(ccalens.factorize(x), ccalens.factorize(y), bootstrap=3, seed=0).bootstrap
    from_arrays = ccalens.cca(x, y, bootstrap=3, seed=0).bootstrap
    np.testing.assert_allclose(from_factors.values, from_arrays.values, atol=1e-12)
    with pytest.raises(TypeError, match="the bootstrap needs the activations"):
        ccalens.svcca(ccalens.factorize(x), ccalens.factorize(y), n_components=2, bootstrap=3)
    with pytest.raises(ValueError, match="seed must be an int"):
        pairwise([x, y], permutations=3, seed=1.5)
    with pytest.raises(ValueError, match="every representation needs the same width"):
        pairwise([x, y[:, :3]], "cosine")


def test_constant_null_gives_a_signed_infinite_z():
    from ccalens.stats import summarise_null

    assert summarise_null("cka", 0.9, np.array([0.5])).z == np.inf
    assert summarise_null("cka", 0.1, np.array([0.5])).z == -np.inf
    assert summarise_null("cka", 0.5, np.array([0.5, 0.5])).z == 0.0


def test_a_bootstrap_resample_that_cannot_be_measured_is_named_as_such():
    x = np.r_[np.zeros((4, 2)), np.ones((1, 2))]
    y = np.arange(10.0).reshape(5, 2)
    assert ccalens.cosine(x, y).similarity > 0  # the data themselves are fine
    with pytest.raises(ValueError, match=r"bootstrap resample \d+ of 20 \(the 5 datapoints drawn with replacement\) "
                                         r"cannot be measured: cosine similarity is undefined: X is all zeros.*"
                                         r"Use more datapoints, or leave out bootstrap="):
        ccalens.cosine(x, y, bootstrap=20, seed=0, interval="basic")
    with pytest.raises(ValueError, match=r"jackknife group \d+ of 5 \(the 5 datapoints without one group\) "
                                         r"cannot be measured: cosine similarity is undefined: X is all zeros"):
        ccalens.cosine(x, y, bootstrap=20, seed=0)  # the default: leaving out the one nonzero datapoint
    rng = np.random.default_rng(1)
    with pytest.raises(ValueError, match=r"bootstrap resample \d+ of 30 .*cannot be measured"):
        ccalens.cka(rng.standard_normal((3, 2)), rng.standard_normal((3, 2)), bootstrap=30, seed=0, interval="basic")


def test_small_cka_edge_cases():
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    with pytest.raises(ValueError, match="debiased CKA needs at least 4 datapoints"):
        ccalens.cka(x, y, kernel="rbf", debiased=True)
    x, y = rng.standard_normal((30, 3)), rng.standard_normal((30, 3))
    assert ccalens.cka(x, y, debiased=np.True_).similarity == ccalens.cka(x, y, debiased=True).similarity
    acc = ccalens.MinibatchCKA().update(np.ones((8, 3)), rng.standard_normal((8, 3)))
    assert "undefined" in repr(acc)
    with pytest.raises(ValueError, match="this minibatch has 4 and 3 neurons, earlier ones had 3 and 3"):
        acc.update(rng.standard_normal((8, 4)), rng.standard_normal((8, 3)))
    big = np.full((50, 7), 2**52, dtype=np.int64) + np.arange(7)
    assert ccalens.cosine(big, big).similarity <= 1.0
    with pytest.raises(ValueError, match="seed must be None, a non-negative int"):
        ccalens.pwcca(x, y, permutations=3, seed=-1)
