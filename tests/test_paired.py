"""Paired differences: shared draws, p-values that invert the interval, calibration under
exchangeability, a real difference found, row/column/store paths, the command line and
every error."""

import json

import numpy as np
import pytest
from scipy import stats

pytest.importorskip("typer")

import ccalens  # noqa: E402
from ccalens.core import intervals  # noqa: E402
from ccalens.core.paired import invert_for_p  # noqa: E402
from ccalens.core.registry import MEASURES  # noqa: E402


def _triple(seed=0, n=200, p=5, noise_y=1.0, noise_z=1.0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, p))
    mix = rng.standard_normal((p, p))
    return x, x @ mix + noise_y * rng.standard_normal((n, p)), x @ mix + noise_z * rng.standard_normal((n, p))


@pytest.mark.parametrize("method", intervals.METHODS)
def test_the_difference_is_taken_on_the_same_draws_for_both_terms(method):
    x, y, z = _triple()
    d = ccalens.paired_difference(x, y, z, "cka", bootstrap=30, interval=method, seed=3)
    assert d.difference == pytest.approx(ccalens.cka(x, y).similarity - ccalens.cka(x, z).similarity, abs=1e-12)
    rng = np.random.default_rng(3)
    rows = list(intervals.draw_rows(method, len(x), 30, rng))
    expected = [ccalens.cka(x[r], y[r]).similarity - ccalens.cka(x[r], z[r]).similarity for r in rows]
    np.testing.assert_allclose(d.values, expected, atol=1e-12)
    assert d.draws == len(rows) and d.method == method and d.n_samples == len(x)


def test_shared_noise_cancels_in_the_difference():
    x, y, z = _triple(seed=1, noise_y=0.8, noise_z=1.0)
    d = ccalens.paired_difference(x, y, z, "cka", bootstrap=200, interval="basic")
    sd_y = ccalens.cka(x, y, bootstrap=200, interval="basic").bootstrap.sd
    sd_z = ccalens.cka(x, z, bootstrap=200, interval="basic").bootstrap.sd
    assert d.sd < 0.5 * np.hypot(sd_y, sd_z)  # independent intervals would add the shared spread (0.008 vs 0.028)


@pytest.mark.parametrize("method", [m for m in intervals.METHODS if m != "bca"])  # BCa's jackknife is not kept
def test_the_p_value_is_at_most_the_level_exactly_when_the_interval_excludes_zero(method):
    decided = set()
    for seed, noise_z in ((0, 1.0), (2, 1.15), (4, 1.3), (6, 3.0)):
        x, y, z = _triple(seed=seed, noise_z=noise_z)
        d = ccalens.paired_difference(x, y, z, "cka", bootstrap=99, interval=method, seed=seed)
        for level in (0.90, 0.95):
            low, high, _ = intervals.interval_bounds(d.difference, d.values, level, method, n_samples=d.n_samples)
            excluded = not low <= 0 <= high
            decided.add(excluded)
            assert (d.p_value <= 1 - level + 1e-6) == excluded
        assert d.p_floor <= d.p_value <= 1
    assert decided == {True, False}  # both outcomes were checked


def test_the_jackknife_p_value_is_the_t_test_of_the_corrected_difference():
    x, y, z = _triple(seed=5, noise_z=1.1)
    d = ccalens.paired_difference(x, y, z, "mean_cca", bootstrap=40, interval="jackknife")
    t = abs(d.corrected) / d.sd
    assert d.p_value == pytest.approx(2 * stats.t.sf(t, d.draws - 1), rel=1e-4)
    assert d.p_floor == 0.0


def test_p_text_names_the_floor_of_the_draws():
    x, y, z = _triple(seed=6, noise_z=4.0)
    d = ccalens.paired_difference(x, y, z, "cka", bootstrap=49, interval="percentile")
    assert d.p_value == d.p_floor == pytest.approx(2 / 50) and d.p_text == "p <= 0.04"
    assert "p <= 0.04" in d.describe() and "(49 resamples)" in d.describe()
    assert invert_for_p(0.0, np.zeros(10), "basic") == 1.0  # no difference at all: p = 1


def test_shared_second_puts_the_shared_side_second():
    x, y, z = _triple(seed=7)
    first = ccalens.paired_difference(x, y, z, "pwcca", bootstrap=20)
    second = ccalens.paired_difference(x, y, z, "pwcca", bootstrap=20, shared="second")
    assert first.difference == pytest.approx(ccalens.pwcca(x, y).similarity - ccalens.pwcca(x, z).similarity)
    assert second.difference == pytest.approx(ccalens.pwcca(y, x).similarity - ccalens.pwcca(z, x).similarity)
    assert "s(Y, X) - s(Z, X)" in second.describe() and "s(X, Y) - s(X, Z)" in first.describe()


def test_the_default_method_is_the_families_paired_default():
    x, y, z = _triple()
    for measure in ("pwcca", "cka", "procrustes", "rsa"):
        d = ccalens.paired_difference(x, y, z, measure, bootstrap=10)
        assert d.method == intervals.paired_default_method(MEASURES[measure].family)


@pytest.mark.parametrize("measure", ["cka", "pwcca"])
def test_under_exchangeable_sides_the_interval_covers_zero_at_its_level(measure):
    """Y and Z independent copies from one population given X: the difference is 0 in
    expectation, and the default interval must cover it at its level (within Monte Carlo
    error: 100 samples, 99 % binomial margin)."""
    covered, rejected, reps = 0, 0, 100
    for s in range(reps):
        x, y, z = _triple(seed=1000 + s, n=120, p=4)
        d = ccalens.paired_difference(x, y, z, measure, bootstrap=100, seed=s)
        covered += d.low <= 0 <= d.high
        rejected += d.p_value <= 0.05
    assert covered / reps >= 0.95 - 2.58 * np.sqrt(0.95 * 0.05 / reps)
    assert rejected == reps - covered  # the p-value inverts the interval


def test_a_real_difference_is_found():
    found = 0
    for s in range(10):
        x, y, z = _triple(seed=2000 + s, n=200, p=4, noise_y=0.7, noise_z=1.4)
        d = ccalens.paired_difference(x, y, z, "pwcca", bootstrap=100, seed=s)
        found += d.low > 0
    assert found >= 9


def test_paired_differences_of_several_sides_share_one_set_of_draws():
    x, y, z = _triple(seed=8)
    w = z + 0.1
    out = ccalens.paired_differences(x, {"y": y, "z": z, "w": w}, "cka", bootstrap=30, seed=2)
    assert [(r.first, r.second) for r in out] == [("y", "z"), ("y", "w"), ("z", "w")]
    one = ccalens.paired_difference(x, y, z, "cka", bootstrap=30, seed=2, names=("y", "z"))
    np.testing.assert_allclose(out[0].values, one.values, atol=1e-12)
    np.testing.assert_allclose(out[2].values, 0.0, atol=1e-10)  # a shift changes no CKA


def test_paired_row_along_a_row_a_column_and_from_store_paths(tmp_path):
    x, y, z = _triple(seed=9)
    reps = {"x": x, "y": y, "z": z}
    row = ccalens.paired_row(reps, "x", "pwcca", bootstrap=20, seed=1)
    direct = ccalens.paired_difference(x, y, z, "pwcca", bootstrap=20, seed=1)
    assert row.loc[0, "difference"] == pytest.approx(direct.difference)
    assert row.loc[0, "low"] == pytest.approx(direct.low) and row.loc[0, "p_value"] == pytest.approx(direct.p_value)
    col = ccalens.paired_row(reps, column="x", measure="pwcca", bootstrap=20, seed=1)
    assert col.loc[0, "difference"] == pytest.approx(
        ccalens.pwcca(y, x).similarity - ccalens.pwcca(z, x).similarity)
    paths = []
    for name, arr in reps.items():
        np.save(tmp_path / f"{name}.npy", arr)
        paths.append(str(tmp_path / f"{name}.npy"))
    from_files = ccalens.paired_row(paths, paths[0], "pwcca", bootstrap=20, seed=1)
    assert from_files.loc[0, "difference"] == pytest.approx(direct.difference)
    assert from_files.loc[0, "first"] == paths[1]


def test_paired_row_errors():
    x, y, z = _triple()
    reps = {"x": x, "y": y, "z": z}
    with pytest.raises(ValueError, match="exactly one of row= .* and column="):
        ccalens.paired_row(reps, "x", column="y")
    with pytest.raises(ValueError, match="exactly one of row="):
        ccalens.paired_row(reps)
    with pytest.raises(ValueError, match=r"'q' is not one of the representations \['x', 'y', 'z'\]"):
        ccalens.paired_row(reps, "q")
    with pytest.raises(ValueError, match=r"others names \['q'\], which are not among"):
        ccalens.paired_row(reps, "x", others=["y", "q"])
    with pytest.raises(ValueError, match="others includes the shared representation 'x'"):
        ccalens.paired_row(reps, "x", others=["x", "y"])
    with pytest.raises(ValueError, match=r"at least two other representations; got \['y'\]"):
        ccalens.paired_row(reps, "x", others=["y"])


def test_paired_difference_errors():
    x, y, z = _triple()
    with pytest.raises(ValueError, match="Z has 150 datapoints and X has 200: a paired difference needs the same "
                                         "datapoints, in the same order, on every side"):
        ccalens.paired_difference(x, y, z[:150])
    bad = z.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="far"):
        ccalens.paired_difference(x, y, bad, names=("near", "far"))
    with pytest.raises(ValueError, match=r"bootstrap must be a whole number >= 2 .*; got 1"):
        ccalens.paired_difference(x, y, z, bootstrap=1)
    with pytest.raises(ValueError, match=r"bootstrap must be a whole number >= 2 .*; got True"):
        ccalens.paired_difference(x, y, z, bootstrap=True)
    with pytest.raises(ValueError, match="order must be 'first'"):
        ccalens.paired_differences(x, {"y": y, "z": z}, order="middle")
    with pytest.raises(ValueError, match="shared"):
        ccalens.paired_difference(x, y, z, shared="middle")
    with pytest.raises(ValueError, match="others must map at least two names"):
        ccalens.paired_differences(x, {"y": y})
    with pytest.raises(ValueError, match="names must be two different names"):
        ccalens.paired_difference(x, y, z, names=("a", "a"))
    with pytest.raises(ValueError, match="interval method must be one of"):
        ccalens.paired_difference(x, y, z, interval="student")
    with pytest.raises(ValueError, match="confidence must be a level in"):
        ccalens.paired_difference(x, y, z, confidence=95)
    with pytest.raises(ValueError, match="cosine compares neuron i with neuron i: Z has 3 neurons and X has 5"):
        ccalens.paired_difference(x, y, z[:, :3], "cosine")
    with pytest.raises(ValueError, match="measure must be one of"):
        ccalens.paired_difference(x, y, z, "nope")


def test_compare_versus_on_the_command_line(tmp_path):
    from typer.testing import CliRunner

    from ccalens.cli import app

    runner = CliRunner()
    x, y, z = _triple(seed=11, noise_y=0.5, noise_z=2.0)
    for name, arr in (("a", x), ("b", y), ("c", z), ("short", z[:50])):
        np.save(tmp_path / f"{name}.npy", arr)
    a, b, c = (str(tmp_path / f"{n}.npy") for n in "abc")
    res = runner.invoke(app, ["compare", a, b, "--versus", c, "--bootstrap", "50"])
    assert res.exit_code == 0, res.output
    assert "Is B or C closer to A?" in res.output and "closer to A" in res.output
    method = intervals.paired_default_method("cca")
    assert f"({method}, {intervals.draws_text(method, 50)})" in res.output
    res = runner.invoke(app, ["compare", a, b, "--versus", c, "--bootstrap", "50", "-m", "cka", "--json"])
    assert res.exit_code == 0, res.output
    payload = json.loads(res.output)
    d = payload["measures"]["cka"]
    expected = ccalens.paired_difference(x, y, z, "cka", bootstrap=50)
    assert d["difference"] == pytest.approx(expected.difference) and d["low"] == pytest.approx(expected.low)
    assert payload["difference"] == "s(A, B) - s(A, C)" and d["first"] == f"B ({b})"
    res = runner.invoke(app, ["compare", a, b, "--versus", str(tmp_path / "short.npy")])
    assert res.exit_code != 0 and "A and C must have the same number of datapoints" in res.output
    assert "Traceback" not in res.output
    res = runner.invoke(app, ["compare", a, b, "--versus", c, "--permutations", "10"])
    assert res.exit_code != 0 and "--permutations (a null of one similarity) does not apply" in res.output
    res = runner.invoke(app, ["compare", a, b, "--versus", c, "--compat", "svcca"])
    assert res.exit_code != 0 and "--compat" in res.output


def test_the_paired_defaults_are_the_calibration_benchmarks_decision():
    """benchmarks/paired_calibration.py decided each family's paired default by its
    committed rule; the library's paired defaults and notes are that decision."""
    from pathlib import Path

    from ccalens.core import registry

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "paired_calibration.json"
    decision = json.loads(path.read_text())["decision"]
    assert set(decision) == set(registry.FAMILIES)
    for family, d in decision.items():
        assert intervals.paired_default_method(family) == d["default"], family
        assert (family in intervals.PAIRED_MISSED_TARGET) == (not d["target_met"]), family
