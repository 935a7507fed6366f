"""What a careful user met (issue 27), each end to end in a temporary folder: nothing
silently dropped, no NaN, errors that name the real cause."""

import json

import numpy as np
import pytest

pytest.importorskip("typer")
from typer.testing import CliRunner  # noqa: E402

import ccalens  # noqa: E402
from ccalens.cli import app  # noqa: E402

runner = CliRunner()


@pytest.fixture
def arrays(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((400, 10))
    y = x[:, :6] @ rng.standard_normal((6, 8)) + rng.standard_normal((400, 8))
    np.save(tmp_path / "a.npy", x)
    np.save(tmp_path / "b.npy", y)
    return tmp_path, x, y


def compare(*args):
    return runner.invoke(app, ["compare", *map(str, args)])


def test_every_repeated_measure_is_computed(arrays):
    tmp, x, y = arrays
    res = compare(tmp / "a.npy", tmp / "b.npy", "-m", "pwcca", "-m", "cka", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)["measures"]
    assert list(out) == ["pwcca", "cka"]
    assert out["pwcca"]["similarity"] == pytest.approx(ccalens.pwcca(x, y).similarity, abs=1e-12)
    assert out["cka"]["similarity"] == pytest.approx(ccalens.cka(x, y).similarity, abs=1e-12)
    table = compare(tmp / "a.npy", tmp / "b.npy", "-m", "svcca", "-m", "cka").stdout
    assert "svcca" in table and "cka" in table
    # --symmetric needs a directed measure among them
    assert compare(tmp / "a.npy", tmp / "b.npy", "-m", "cka", "-m", "pwcca", "--symmetric").exit_code == 0
    bad = compare(tmp / "a.npy", tmp / "b.npy", "-m", "cka", "--symmetric")
    assert bad.exit_code == 1 and "--symmetric averages PWCCA's two directions" in bad.stderr


def test_all_skips_what_refuses_with_its_reason_and_computes_the_rest(tmp_path):
    rng = np.random.default_rng(1)
    np.save(tmp_path / "t.npy", rng.standard_normal((3, 5)))
    np.save(tmp_path / "u.npy", rng.standard_normal((3, 4)))
    res = compare(tmp_path / "t.npy", tmp_path / "u.npy", "-m", "all", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert "debiased CKA needs at least 4 datapoints" in out["skipped"]["cka_debiased"]
    assert "pwcca" in out["measures"] and "cka" in out["measures"]
    # asked for by name, the refusal is the answer
    named = compare(tmp_path / "t.npy", tmp_path / "u.npy", "-m", "cka_debiased")
    assert named.exit_code == 1 and "needs at least 4 datapoints" in named.stderr


def test_the_datapoint_measures_take_a_declared_seeded_subset(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((6000, 12))
    y = x[:, :8] + rng.standard_normal((6000, 8))
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    res = compare(tmp_path / "x.npy", tmp_path / "y.npy", "-m", "all", "--subset", "800", "--seed", "3", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    rows = np.sort(np.random.default_rng(3).choice(6000, size=800, replace=False))
    for m in ("cka_rbf", "rsa", "mutual_knn"):  # the n x n measures: on the subset, said so
        assert out["measures"][m]["subset"] == {"datapoints": 800, "of": 6000, "seed": 3}
        want = ccalens.core.registry.MEASURES[m].compute(x[rows], y[rows]).similarity
        assert out["measures"][m]["similarity"] == pytest.approx(want, abs=1e-12)
    assert "subset" not in out["measures"]["pwcca"]  # the factor measures: every datapoint
    assert out["measures"]["pwcca"]["similarity"] == pytest.approx(ccalens.pwcca(x, y).similarity, abs=1e-12)
    table = compare(tmp_path / "x.npy", tmp_path / "y.npy", "-m", "rsa", "--subset", "800").stdout
    assert "on a random subset of 800 of 6,000 datapoints (seed 0)" in table
    without = json.loads(compare(tmp_path / "x.npy", tmp_path / "y.npy", "-m", "all", "--json").stdout)
    assert "--subset N" in without["skipped"]["cka_rbf"]
    bad = compare(tmp_path / "x.npy", tmp_path / "y.npy", "-m", "rsa", "--subset", "2")
    assert bad.exit_code == 1 and "subset must be a whole number of datapoints, at least 3; got 2" in bad.stderr


def test_compare_models_without_torch_names_the_extra(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "torch", None)  # as if torch were not installed
    with pytest.raises(ModuleNotFoundError, match=r"install ccalens's torch extra \(pip install 'ccalens\[torch\]'"):
        ccalens.compare_models(object(), np.zeros((4, 2)))


def test_a_truncated_npy_is_named_as_cut_short_when_streamed(tmp_path):
    x = np.random.default_rng(3).standard_normal((1000, 8))
    np.save(tmp_path / "full.npy", x)
    data = (tmp_path / "full.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(data[: len(data) // 2])
    with pytest.raises(ccalens.store.StoreError, match="cut.npy is cut short: its header describes more data"):
        ccalens.stream.compare(str(tmp_path / "cut.npy"), str(tmp_path / "full.npy"))


def test_transposed_arrays_get_the_neurons_first_hint(tmp_path):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((500, 20))  # 20 datapoints of 500 neurons, stored (neurons, datapoints)
    np.save(tmp_path / "a.npy", x.T)
    np.save(tmp_path / "b.npy", (x @ rng.standard_normal((20, 20))).T)
    wrong = compare(tmp_path / "a.npy", tmp_path / "b.npy")
    assert wrong.exit_code == 0 and "if the files are (neurons, datapoints)" in wrong.stdout
    assert "add --neurons-first" in wrong.stdout
    right = compare(tmp_path / "a.npy", tmp_path / "b.npy", "--neurons-first", "--json")
    assert "neurons-first" not in " ".join(json.loads(right.stdout)["warnings"])


def test_matrix_on_a_file_says_it_is_a_file_not_a_store(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((10, 3)))
    res = runner.invoke(app, ["matrix", str(tmp_path / "x.npy"), "--out", str(tmp_path / "out")])
    assert res.exit_code == 1
    assert "x.npy is a file, not an activation store" in res.stderr and "--out " + str(tmp_path / "x.zarr") in res.stderr
    assert "--out " + str(tmp_path / "x.npy") not in res.stderr


def test_the_docs_claim_scale_invariance_and_padding_only_where_they_hold():
    from pathlib import Path

    from ccalens.core import registry

    docs = Path(__file__).resolve().parents[1] / "docs"
    numerics = " ".join((docs / "explanation" / "numerics.md").read_text().split())
    listed = numerics.split("The scale-invariant measures built from the factors (")[1].split(") take")[0]
    assert "isotropic_scaling" not in registry.MEASURES["shape"].invariant_to  # shape(10 X, Y) != shape(X, Y)
    assert "isotropic_scaling" in registry.MEASURES["shape_cca"].invariant_to
    assert "not the default shape metric" in listed and "shape_cca" in listed
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((200, 6)), rng.standard_normal((200, 5))
    assert abs(ccalens.shape_metric(10 * x, y).similarity - ccalens.shape_metric(x, y).similarity) > 1e-6
    transformers_page = " ".join((docs / "how-to" / "transformers.md").read_text().split())
    assert "So the padding length changes nothing." not in transformers_page
    assert "in float64 the padding length changes nothing" in transformers_page
    assert "PWCCA by 8e-6" in transformers_page and "model.double()" in transformers_page


@pytest.mark.parametrize("scale", [1e-300, 1e-160, 1e155, 1e300])
def test_every_measure_gives_its_value_at_any_finite_scale(scale):
    """Each registered measure, on data scaled by 1e-300 ... 1e300: the unscaled value where it
    declares scale invariance (Euclidean: the distance times the scale), never NaN."""
    import warnings

    from ccalens.core import registry

    rng = np.random.default_rng(6)
    x = rng.standard_normal((150, 6))
    y = x[:, :4] @ rng.standard_normal((4, 6)) + rng.standard_normal((150, 6))
    for name, spec in registry.MEASURES.items():
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no overflow warnings either
            base = spec.compute(x, y).similarity
            value = spec.compute(scale * x, scale * y).similarity
        assert np.isfinite(value), name
        if "isotropic_scaling" in spec.invariant_to:
            assert value == pytest.approx(base, abs=1e-9), name
        elif name == "euclidean":
            assert value / scale == pytest.approx(base, rel=1e-12), name


def test_json_never_holds_nan(tmp_path):
    from ccalens.cli import _common

    text = _common.json_text({"a": float("nan"), "b": [1.0, float("inf")], "c": {"d": -float("inf")}})
    assert json.loads(text) == {"a": None, "b": [1.0, None], "c": {"d": None}}
    x = np.random.default_rng(7).standard_normal((300, 5)) * 1e200
    np.save(tmp_path / "huge.npy", x)
    np.save(tmp_path / "hugey.npy", x[:, :4] + 1e199)
    res = compare(tmp_path / "huge.npy", tmp_path / "hugey.npy", "-m", "cka_rbf", "-m", "predictivity", "--json")
    assert res.exit_code == 0 and "NaN" not in res.stdout and "Infinity" not in res.stdout
    out = json.loads(res.stdout)["measures"]
    assert all(np.isfinite(out[m]["similarity"]) for m in ("cka_rbf", "predictivity"))


def test_matrix_outputs_of_two_measures_in_one_folder_keep_each_other(tmp_path):
    pytest.importorskip("zarr")
    import pandas as pd

    from ccalens.store import ActivationStore

    rng = np.random.default_rng(8)
    store = ActivationStore(tmp_path / "acts.zarr")
    with store.writer() as w:
        for i in range(3):
            w.append(f"net{i}", rng.standard_normal((300, 6)))
    out = tmp_path / "results"
    first = runner.invoke(app, ["matrix", str(tmp_path / "acts.zarr"), "-m", "pwcca", "--out", str(out)])
    assert first.exit_code == 0, first.output
    pwcca = pd.read_csv(out / "pwcca-pairs.csv")
    second = runner.invoke(app, ["matrix", str(tmp_path / "acts.zarr"), "-m", "cka", "--out", str(out), "--resume"])
    assert second.exit_code == 0, second.output
    assert "wrote cka-pairs.parquet, cka-pairs.csv" in second.stdout
    pd.testing.assert_frame_equal(pd.read_csv(out / "pwcca-pairs.csv"), pwcca)  # PWCCA's outputs stay
    assert (out / "pwcca-heatmap.png").exists() and (out / "cka-heatmap.png").exists()
    assert set(pd.read_csv(out / "cka-pairs.csv")["measure"] if "measure" in pwcca else ["cka"]) == {"cka"}


def test_each_measures_distance_says_what_it_is(arrays):
    tmp, _, _ = arrays
    res = compare(tmp / "a.npy", tmp / "b.npy", "-m", "procrustes", "-m", "shape", "-m", "cka", "--json")
    out = json.loads(res.stdout)["measures"]
    assert out["procrustes"]["distance_is"] == "2 - 2s (squared Procrustes)"
    assert out["shape"]["distance_is"] == "arccos s, radians"
    assert out["cka"]["distance_is"] == "1 - s"
    table = compare(tmp / "a.npy", tmp / "b.npy", "-m", "procrustes", "-m", "shape").stdout
    assert "distance is" in table and "arccos s, radians" in table and "2 - 2s" in table
    from ccalens.core import registry

    assert registry.distance_label("euclidean") == "RMS distance"
    assert all(registry.distance_label(m) != "the measure's own distance" for m in registry.names())


def test_an_interval_from_few_draws_says_so(arrays, tmp_path):
    from ccalens.core.draws import MIN_DRAWS

    tmp, x, y = arrays
    few = compare(tmp / "a.npy", tmp / "b.npy", "-m", "cka", "--bootstrap", "20", "--json")
    notes = json.loads(few.stdout)["measures"]["cka"]["ci_note"]
    assert f"only 20 jackknife groups: the interval's coverage was measured with {MIN_DRAWS} draws" in notes
    assert "only 20" in compare(tmp / "a.npy", tmp / "b.npy", "-m", "cka", "--bootstrap", "20").stdout
    enough = json.loads(compare(tmp / "a.npy", tmp / "b.npy", "-m", "cka", "--bootstrap", "100", "--json").stdout)
    assert "only" not in (enough["measures"]["cka"]["ci_note"] or "")
    assert "only 20 resamples" in (ccalens.cka(x, y, bootstrap=20, interval="percentile").bootstrap.note or "")


def test_extract_refuses_an_existing_array_before_its_pass_and_its_bar_has_a_total(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    pytest.importorskip("zarr")
    from test_cli import MODEL_SOURCE

    (tmp_path / "careful_factory.py").write_text(MODEL_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    store = tmp_path / "acts.zarr"
    args = ["extract", "careful_factory:make", "--layers", "0,3", "--data", "digits", "--limit", "300",
            "--batch-size", "100", "--out", str(store)]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "3/3" in first.stderr  # the bar knows its total (and so the time left)
    again = runner.invoke(app, args)
    assert again.exit_code == 1 and "already holds a finished array '0'" in again.stderr
    assert "extracting" not in again.stderr  # refused before the pass: no empty bar first
    from ccalens.extract.batching import batch_total

    assert batch_total(torch.zeros(250, 3), 100) == 3 and batch_total({"input_ids": torch.zeros(250, 4)}, 50) == 5
    assert batch_total(iter([1, 2]), 10) is None and batch_total([torch.zeros(2, 2)] * 4, 10) == 4


def test_model_comparisons_and_matrices_label_their_distances(tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("zarr")
    import pandas as pd

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 4))
    res = ccalens.compare_models(net, torch.randn(300, 6), measures=("procrustes", "shape", "cka"))
    labels = {r["measure"]: r["distance_is"] for r in res.table}
    assert labels == {"procrustes": "2 - 2s (squared Procrustes)", "shape": "arccos s, radians", "cka": "1 - s"}
    from ccalens.store import ActivationStore

    rng = np.random.default_rng(9)
    with ActivationStore(tmp_path / "acts.zarr").writer() as w:
        for i in range(3):
            w.append(f"net{i}", rng.standard_normal((200, 5)))
    out = tmp_path / "res"
    assert runner.invoke(app, ["matrix", str(tmp_path / "acts.zarr"), "-m", "shape", "--out", str(out)]).exit_code == 0
    assert set(pd.read_csv(out / "shape-pairs.csv")["distance_is"]) == {"arccos s, radians"}


def test_a_matrix_of_the_shape_metric_gets_its_angular_distances():
    """ccalens matrix -m shape crashed: the angular distance took only one number."""
    from ccalens.core import registry

    sims = np.array([[1.0, 0.5], [0.5, 1.0 + 1e-15]])
    np.testing.assert_allclose(registry.angular(sims), np.arccos(np.clip(sims, -1, 1)))
    assert isinstance(registry.angular(0.5), float)
    reps = [np.random.default_rng(k).standard_normal((100, 4)) for k in range(3)]
    res = ccalens.pairwise(reps, "shape")
    assert res.distance.shape == (3, 3) and np.all(np.isfinite(res.distance))
