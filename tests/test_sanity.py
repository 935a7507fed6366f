"""``ccalens sanity`` end to end at tiny size, and its tests on inputs with known answers."""

import numpy as np
import pytest

pd = pytest.importorskip("pandas")
pytest.importorskip("typer")
from typer.testing import CliRunner  # noqa: E402

from ccalens.cli import app
from ccalens.core import registry
from ccalens.experiments import sanity

runner = CliRunner()


def two_networks(seed=0, n=400, layers=3, width=6):
    """Layer i of net1 is a rotated, noisy copy of layer i of net0; layers are independent."""
    rng = np.random.default_rng(seed)
    reps = {"net0": {}, "net1": {}}
    for i in range(layers):
        base = rng.standard_normal((n, width)) * np.linspace(3, 0.5, width)
        rotation = np.linalg.qr(rng.standard_normal((width, width)))[0]
        reps["net0"][f"l{i}"] = base
        reps["net1"][f"l{i}"] = base @ rotation + 0.2 * rng.standard_normal((n, width))
    return reps


def test_specificity_finds_corresponding_layers():
    scores = sanity.specificity(two_networks(), measures=("pwcca", "cka", "procrustes", "cosine"))
    for m in ("pwcca", "cka", "procrustes"):
        assert scores[m] == {"accuracy": 1.0, "cases": 6}
    # cosine compares neuron j with neuron j: a rotation hides the correspondence
    assert scores["cosine"]["accuracy"] < 1.0


def test_sensitivity_rewards_measures_that_track_the_probe():
    """Two layers. In "top" the labels live in the top principal component, which deletion
    (lowest variance first) never reaches: the probe loses nothing. In "low" they live in
    the lowest-variance component, the first deleted: the probe drops to chance at once,
    and later deletions remove large components. CKA's distance follows variance, so it is
    small where the probe loses nothing and large where it loses everything."""
    rng = np.random.default_rng(1)
    n, d = 800, 6
    labels = rng.integers(0, 2, n)
    signal = 2.0 * (labels - 0.5) + 0.3 * rng.standard_normal(n)
    top = np.c_[4.0 * signal, rng.standard_normal((n, d - 1))]
    low = np.c_[rng.standard_normal((n, d - 1)) * np.linspace(2.0, 1.0, d - 1), 0.05 * signal]
    scores, points = sanity.sensitivity({"top": top, "low": low}, labels, measures=("cka", "mean_cca"))
    assert len(points) == 2 * (d - 1)
    drops = {p["layer"]: [q["probe_drop"] for q in points if q["layer"] == p["layer"]] for p in points}
    assert max(abs(v) for v in drops["top"]) < 0.03 and min(drops["low"]) > 0.3
    cka = {layer: [q["cka"] for q in points if q["layer"] == layer] for layer in ("top", "low")}
    assert max(cka["top"]) < 0.01 and cka["low"][-1] > 0.2  # small where nothing is lost
    assert scores["cka"]["spearman"] > 0.3
    # a deleted layer is a linear image of the original: every kept canonical correlation is
    # 1, so mean CCA's distance is 0 for every deletion and it cannot rank them
    assert all(abs(p["mean_cca"]) < 1e-12 for p in points)
    assert np.isnan(scores["mean_cca"]["spearman"]) and "distance constant (0)" in scores["mean_cca"]["note"]


def test_invariances_agree_with_the_registry():
    reps = two_networks(2, width=5)
    result = sanity.invariances(reps["net0"]["l0"], np.tanh(reps["net1"]["l0"]))
    for measure, row in result.items():
        assert set(row) == set(registry.TRANSFORMS)
        assert all(cell["agrees"] for cell in row.values()), (measure, row)


def test_cli_tiny_digits_run(tmp_path):
    out = tmp_path / "sanity"
    # small networks that learn (test accuracy about 0.5 against chance 0.1): the tables are results
    res = runner.invoke(app, ["sanity", "--networks", "2", "--depth", "3", "--width", "8", "--epochs", "40",
                              "--max-train", "300", "--grid", "2", "--out", str(out)], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    table = pd.read_csv(out / "sanity.csv")
    assert list(table.measure) == list(sanity.MEASURES)
    assert table.docs_agree.all()
    assert table.specificity.between(0, 1).all() and (table.specificity_cases == 6).all()
    assert table.sensitivity.dropna().between(-1, 1).all() and (table.sensitivity_points > 0).all()
    # the CCA family sees a PC-deleted layer as identical (a linear image), and says so
    cca_family = table[table.measure.isin(["pwcca", "svcca", "mean_cca"])]
    assert cca_family.sensitivity.isna().all() and cca_family.sensitivity_note.str.contains("constant").all()
    assert (out / "sanity.png").stat().st_size > 10_000 and (out / "sensitivity_points.csv").exists()
    assert "docs ok" in res.stdout and "pwcca" in res.stdout


def test_cli_with_a_store_and_labels(tmp_path):
    from ccalens.store import ActivationStore

    reps = two_networks(3, n=300)
    store = ActivationStore(tmp_path / "acts.zarr")
    with store.writer() as w:
        for net, layers in reps.items():
            for layer, x in layers.items():
                w.append(f"{net}/{layer}", x)
    labels = (reps["net0"]["l0"][:, 0] > 0).astype(int)
    np.save(tmp_path / "labels.npy", labels)
    out = tmp_path / "res"
    res = runner.invoke(app, ["sanity", "--store", str(tmp_path / "acts.zarr"), "--labels", str(tmp_path / "labels.npy"),
                              "--measures", "cka,pwcca", "--out", str(out)])
    assert res.exit_code == 0, res.output
    table = pd.read_csv(out / "sanity.csv").set_index("measure")
    assert list(table.index) == ["cka", "pwcca"]
    import json

    def no_nan(token):
        raise AssertionError(f"sanity.json holds {token}, which is not JSON")

    saved = json.loads((out / "sanity.json").read_text(), parse_constant=no_nan)
    assert any(row.get("sensitivity") is None for row in saved["table"])  # PWCCA's n/a is null
    assert (table.specificity == 1.0).all()
    res = runner.invoke(app, ["sanity", "--store", str(tmp_path / "acts.zarr"), "--measures", "cka", "--out", str(out)])
    assert res.exit_code == 0 and "sensitivity test is skipped" in res.stdout
    np.save(tmp_path / "short.npy", labels[:10])
    res = runner.invoke(app, ["sanity", "--store", str(tmp_path / "acts.zarr"), "--labels", str(tmp_path / "short.npy")])
    assert res.exit_code == 1 and "--labels has 10 entries for 300 datapoints" in res.stderr


def test_errors(tmp_path):
    res = runner.invoke(app, ["sanity", "--networks", "1"])
    assert res.exit_code == 1 and "--networks must be at least 2" in res.stderr
    res = runner.invoke(app, ["sanity", "--labels", "x.npy"])
    assert res.exit_code == 1 and "--labels goes with --store" in res.stderr
    from ccalens.store import ActivationStore

    store = ActivationStore(tmp_path / "one.zarr")
    with store.writer() as w:
        w.append("net0/l0", np.random.default_rng(0).standard_normal((50, 3)))
    res = runner.invoke(app, ["sanity", "--store", str(tmp_path / "one.zarr")])
    assert res.exit_code == 1 and "needs arrays named NETWORK/LAYER for at least 2 networks" in res.stderr
    with pytest.raises(ValueError, match="measure must be one of"):
        sanity.run(store=str(tmp_path / "one.zarr"), measures=("kendall",))
    with store.writer() as w:
        w.append("net1/l1", np.random.default_rng(1).standard_normal((50, 3)))
    res = runner.invoke(app, ["sanity", "--store", str(tmp_path / "one.zarr")])
    assert res.exit_code == 1 and "every network needs the same layers as the first (['l0'])" in res.stderr
    with pytest.raises(ValueError, match="grid=3 must divide the 8x8 feature maps"):
        sanity._pool(np.zeros((2, 4 * 64)), 4, 3)


def test_cli_on_a_tiny_cifar10_folder(tmp_path):
    from test_datasets import write_cifar_batch

    rng = np.random.default_rng(0)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for i in range(1, 6):
        write_cifar_batch(folder / f"data_batch_{i}", rng, 8)
    write_cifar_batch(folder / "test_batch", rng, 4)
    out = tmp_path / "res"
    res = runner.invoke(app, ["sanity", "--dataset", "cifar10", "--data-dir", str(tmp_path), "--networks", "2",
                              "--depth", "2", "--width", "3", "--epochs", "1", "--measures", "cka,procrustes",
                              "--out", str(out)])
    assert res.exit_code == 0, res.output
    table = pd.read_csv(out / "sanity.csv")
    assert list(table.measure) == ["cka", "procrustes"]
    assert "sanity: cifar10, 40 datapoints" in res.stdout
    # random images with random labels: the networks cannot learn, and the run says so
    assert "premise not met" in res.stdout and table.specificity.isna().all() and table.sensitivity.isna().all()
    res = runner.invoke(app, ["sanity", "--dataset", "cifar10"])
    assert res.exit_code == 1 and "cifar10 needs --data-dir" in res.stderr


def test_networks_that_did_not_learn_are_said_so_and_give_no_tables(tmp_path):
    """Untrained networks (learning rate 0) stay at chance: the run says its premise is not
    met and reports no specificity or sensitivity (issue 27: 0.102 accuracy was reported as if
    the tables meant something)."""
    lines = []
    cfg = sanity.SanityConfig(networks=2, depth=3, width=4, epochs=1, lr=0.0, max_train=150, grid=2)
    result = sanity.run(cfg, measures=("cka", "pwcca"), log=lines.append)
    assert result["premise_not_met"].startswith("the networks did not learn: test accuracy net0 ")
    assert "not reported" in result["premise_not_met"] and any(line.startswith("premise not met") for line in lines)
    for row in result["table"]:
        assert np.isnan(row["specificity"]) and np.isnan(row["sensitivity"])
        assert row["sensitivity_note"] == "not a result: the networks did not learn"
        assert row["docs_agree"]  # the invariance checks do not depend on training
    assert sanity.not_learned([{"network": "n", "test_accuracy": 0.9, "chance": 0.1, "test_datapoints": 360}]) is None
    assert sanity.not_learned([{"network": "n", "test_accuracy": 0.11, "chance": 0.1, "test_datapoints": 360}])
