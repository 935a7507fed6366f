"""Every CLI command end to end in a temporary folder."""

import json

import numpy as np
import pytest

pytest.importorskip("typer")
from typer.testing import CliRunner  # noqa: E402

from ccalens.cli import app  # noqa: E402

runner = CliRunner()


@pytest.fixture
def pair(tmp_path, rng):
    x = rng.standard_normal((600, 8))
    y = np.c_[x[:, :4] @ rng.standard_normal((4, 4)), rng.standard_normal((600, 3))]
    np.save(tmp_path / "x.npy", x)
    np.savez(tmp_path / "acts.npz", x=x, y=y)
    return tmp_path, x, y


def test_compare_json_matches_the_library(pair):
    import ccalens

    tmp, x, y = pair
    res = runner.invoke(app, ["compare", str(tmp / "x.npy"), f"{tmp / 'acts.npz'}:y", "--measure", "all", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["n_samples"] == 600
    assert out["measures"]["pwcca"]["similarity"] == pytest.approx(ccalens.pwcca(x, y).similarity, abs=1e-12)
    assert out["measures"]["mean_cca"]["distance"] == pytest.approx(ccalens.mean_cca(x, y).distance, abs=1e-12)
    assert out["measures"]["svcca"]["similarity"] == pytest.approx(ccalens.svcca(x, y).similarity, abs=1e-12)
    assert out["measures"]["cca"]["x_rank"] == 8


def test_compare_table_symmetric_compat_and_layout(pair):
    import ccalens

    tmp, x, y = pair
    res = runner.invoke(app, ["compare", f"{tmp / 'acts.npz'}:x", f"{tmp / 'acts.npz'}:y", "--symmetric"])
    assert res.exit_code == 0 and "pwcca" in res.stdout and "similarity" in res.stdout
    assert f"{ccalens.pwcca(x, y, symmetric=True).similarity:.6f}" in res.stdout
    res = runner.invoke(app, ["compare", f"{tmp / 'acts.npz'}:x", f"{tmp / 'acts.npz'}:y", "--compat", "svcca", "--json"])
    assert json.loads(res.stdout)["measures"]["pwcca"]["similarity"] == pytest.approx(
        ccalens.pwcca(x, y, compat="svcca").similarity, abs=1e-12
    )
    np.save(tmp / "xt.npy", x.T)
    np.save(tmp / "yt.npy", y.T)
    res = runner.invoke(app, ["compare", str(tmp / "xt.npy"), str(tmp / "yt.npy"), "--neurons-first", "--json"])
    assert json.loads(res.stdout)["measures"]["pwcca"]["similarity"] == pytest.approx(ccalens.pwcca(x, y).similarity, abs=1e-12)


def test_compare_reports_warnings_and_errors_without_tracebacks(pair, rng):
    tmp, x, y = pair
    np.save(tmp / "few.npy", rng.standard_normal((20, 8)))
    np.save(tmp / "few2.npy", rng.standard_normal((20, 5)))
    res = runner.invoke(app, ["compare", str(tmp / "few.npy"), str(tmp / "few2.npy")])
    assert res.exit_code == 0 and "biased upward" in res.stdout
    res = runner.invoke(app, ["compare", str(tmp / "x.npy"), str(tmp / "few.npy")])
    assert res.exit_code == 1
    assert "error: A and B must have the same number of datapoints" in res.stderr and "Traceback" not in res.output
    res = runner.invoke(app, ["compare", str(tmp / "x.npy"), str(tmp / "missing.npy")])
    assert res.exit_code == 1 and "no such file or store" in res.stderr
    res = runner.invoke(app, ["compare", str(tmp / "x.npy"), str(tmp / "acts.npz")])
    assert res.exit_code == 1 and "holds 2 arrays; name one as" in res.stderr
    res = runner.invoke(app, ["compare", str(tmp / "x.npy"), f"{tmp / 'acts.npz'}:y", "--measure", "svcca", "--compat", "svcca"])
    assert res.exit_code == 1 and "--compat applies to pwcca and mean_cca only" in res.stderr
    res = runner.invoke(app, ["--debug", "compare", str(tmp / "x.npy"), str(tmp / "few.npy")])
    assert res.exit_code != 0 and isinstance(res.exception, ValueError)


MODEL_SOURCE = '''
import torch
from torch import nn

def make():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 10))
'''


def test_extract_then_info_then_compare(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    (tmp_path / "cli_model_factory.py").write_text(MODEL_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    import cli_model_factory

    torch.save(cli_model_factory.make().state_dict(), tmp_path / "w.pt")
    store = tmp_path / "acts.zarr"
    res = runner.invoke(app, ["extract", "cli_model_factory:make", "--list-layers"])
    assert res.exit_code == 0 and res.stdout.split() == ["0", "1", "2", "3"]
    args = ["extract", "cli_model_factory:make", "--state-dict", str(tmp_path / "w.pt"), "--layers", "0,3",
            "--data", "digits", "--limit", "500", "--out", str(store), "--prefix", "net0", "--checkpoint", "epoch-3"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "wrote 2 array(s) for 500 datapoints" in res.stdout
    res = runner.invoke(app, ["info", str(store)])
    assert res.exit_code == 0 and "net0/0" in res.stdout and "(500, 4)" in res.stdout and "spatial=mean" in res.stdout
    from ccalens.store import ActivationStore, fingerprint
    from ccalens import datasets

    meta = ActivationStore(store, mode="r").metadata("net0/3")
    assert meta["checkpoint"] == "epoch-3" and meta["layer"] == "3" and meta["datapoints"] == 500
    assert meta["dataset_fingerprint"] == fingerprint(datasets.digits().x_train[:500])
    res = runner.invoke(app, ["compare", f"{store}:net0/0", f"{store}:net0/3", "--json"])
    assert res.exit_code == 0 and 0 < json.loads(res.stdout)["measures"]["pwcca"]["similarity"] <= 1
    res = runner.invoke(app, args)  # the arrays exist now
    assert res.exit_code == 1 and "already holds a finished array 'net0/0'" in res.stderr
    res = runner.invoke(app, ["extract", "cli_model_factory:make", "--layers", "conv9", "--out", str(store)])
    assert res.exit_code == 1 and "no layer named 'conv9'" in res.stderr
    res = runner.invoke(app, ["extract", "no_such_module:make", "--layers", "0"])
    assert res.exit_code == 1 and "cannot load model factory" in res.stderr


def test_extract_from_files_and_model_file_errors(tmp_path):
    torch = pytest.importorskip("torch")
    model = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh())
    torch.save(model, tmp_path / "whole.pt")
    np.save(tmp_path / "inputs.npy", np.random.default_rng(0).standard_normal((40, 3)).astype(np.float32))
    base = ["extract", str(tmp_path / "whole.pt"), "--layers", "0", "--data", str(tmp_path / "inputs.npy"), "--out", str(tmp_path / "s.zarr")]
    res = runner.invoke(app, base)
    assert res.exit_code == 1 and "pass --trust-pickle if you trust it" in res.stderr
    res = runner.invoke(app, base + ["--trust-pickle"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["extract", str(tmp_path / "nope.pt"), "--layers", "0"])
    assert res.exit_code == 1 and "no such model file" in res.stderr
    res = runner.invoke(app, ["extract", str(tmp_path / "whole.pt"), "--trust-pickle", "--layers", "0", "--data", "cifar10"])
    assert res.exit_code == 1 and "cifar10 needs --data-dir" in res.stderr


def test_info_on_files_and_interrupted_stores(tmp_path, pair):
    from ccalens.store import ActivationStore

    tmp, x, y = pair
    res = runner.invoke(app, ["info", str(tmp / "acts.npz")])
    assert res.exit_code == 0 and "(600, 8)" in res.stdout and "(600, 7)" in res.stdout
    store = ActivationStore(tmp / "cut.zarr")
    store.writer().append("layer", x[:100])  # never closed
    res = runner.invoke(app, ["info", str(tmp / "cut.zarr")])
    assert res.exit_code == 0 and "NO (interrupted)" in res.stdout
    res = runner.invoke(app, ["compare", f"{tmp / 'cut.zarr'}:layer", str(tmp / "x.npy")])
    assert res.exit_code == 1 and "is incomplete" in res.stderr
    res = runner.invoke(app, ["info", str(tmp / "missing.zarr")])
    assert res.exit_code == 1 and "no such file or store" in res.stderr


def test_reproduce_fig2(tmp_path):
    res = runner.invoke(app, ["reproduce", "fig2", "--out", str(tmp_path), "--seeds", "1", "--n", "2000"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "fig2" / "fig2.png").exists() and (tmp_path / "fig2" / "claims.json").exists()
    res = runner.invoke(app, ["reproduce", "fig9"])
    assert res.exit_code == 1 and "unknown figure(s) ['fig9']" in res.stderr


def test_help_lists_every_command():
    res = runner.invoke(app, ["--help"])
    assert res.exit_code == 0
    for command in ("compare", "info", "extract", "reproduce"):
        assert command in res.stdout


def test_demo_at_a_reduced_size(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    res = runner.invoke(app, ["demo", "--out", str(tmp_path / "demo"), "--networks", "2", "--epochs", "2", "--max-train", "400", "--width", "4"])
    assert res.exit_code == 0, res.output
    assert "per-layer distances" in res.stdout and "true-random" in res.stdout
    for name in ("demo.png", "distances.csv", "demo.json"):
        assert (tmp_path / "demo" / name).exists()
    meta = json.loads((tmp_path / "demo" / "demo.json").read_text())
    assert len(meta["networks"]) == 4 and all("train_accuracy" in n for n in meta["networks"])
    assert set(meta["summary"]) == {"true-true", "random-random", "true-random", "untrained"}
    res = runner.invoke(app, ["demo", "--networks", "1"])
    assert res.exit_code == 1 and "--networks must be at least 2" in res.stderr
    res = runner.invoke(app, ["demo", "--dataset", "cifar10"])
    assert res.exit_code == 1 and "needs --data-dir" in res.stderr


def test_matrix_writes_table_heatmap_dendrogram_and_resumes(tmp_path, rng):
    pytest.importorskip("pandas")
    import pandas as pd

    from ccalens.store import ActivationStore

    store = ActivationStore(tmp_path / "acts.zarr")
    with store.writer() as w:
        for group in ("a", "b"):  # two families, each sharing its own latent directions
            latent = rng.standard_normal((900, 6))
            for i in range(3):
                own = latent + 0.3 * rng.standard_normal((900, 6))
                w.append(f"{group}{i}/layer", np.c_[own, rng.standard_normal((900, 2))] @ rng.standard_normal((8, 8)))
    out = tmp_path / "results"
    res = runner.invoke(app, ["matrix", str(tmp_path / "acts.zarr"), "--measure", "mean_cca", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "15 pairs computed, 0 reused" in res.stdout
    for name in ("pairs.parquet", "pairs.csv", "clusters.csv", "matrix_reordered.csv", "heatmap.png", "dendrogram.png"):
        assert (out / f"mean_cca-{name}").exists(), name
    table = pd.read_parquet(out / "mean_cca-pairs.parquet")
    assert len(table) == 36 and {"row", "column", "similarity", "distance", "n"} <= set(table.columns)
    clusters = pd.read_csv(out / "mean_cca-clusters.csv")
    assert clusters.groupby(clusters["array"].str[0])["cluster"].nunique().max() == 1  # a* together, b* together
    assert clusters["cluster"].nunique() == 2
    res = runner.invoke(app, ["matrix", str(tmp_path / "acts.zarr"), "--measure", "mean_cca", "--out", str(out), "--resume"])
    assert "0 pairs computed, 15 reused" in res.stdout
    res = runner.invoke(app, ["matrix", str(tmp_path / "acts.zarr"), "--arrays", "a0*"])
    assert res.exit_code == 1 and "a matrix needs at least 2" in res.stderr


def test_compare_every_measure_with_null_and_interval(pair):
    import ccalens

    tmp, x, y = pair
    res = runner.invoke(app, ["compare", f"{tmp / 'acts.npz'}:x", f"{tmp / 'acts.npz'}:y", "--measure", "all",
                              "--permutations", "19", "--bootstrap", "20", "--seed", "3", "--json"])
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout)
    out = payload["measures"]
    from ccalens.core import registry

    assert set(out) == set(registry.MEASURES) - {"cosine", "euclidean"}  # every registered measure that can run
    # x and y differ in width: the matched-neuron controls are skipped, and the output says why
    assert set(payload["skipped"]) == {"cosine", "euclidean"} and "different widths" in payload["skipped"]["cosine"]
    lib = ccalens.cka(x, y, permutations=19, bootstrap=20, seed=3)
    assert out["cka"]["similarity"] == pytest.approx(lib.similarity, abs=1e-12)
    assert out["cka"]["null_mean"] == pytest.approx(lib.null.mean, abs=1e-12)
    assert out["cka"]["ci_low"] == pytest.approx(lib.bootstrap.low, abs=1e-12)
    for m in out.values():
        assert m["ci_low"] <= m["ci_high"] and 1 / 20 <= m["p_value"] <= 1 and m["permutations"] == 19
    res = runner.invoke(app, ["compare", f"{tmp / 'acts.npz'}:x", f"{tmp / 'acts.npz'}:y", "-m", "procrustes",
                              "--permutations", "9", "--bootstrap", "10"], env={"COLUMNS": "220"})
    assert res.exit_code == 0, res.output
    from ccalens.core.intervals import draws_text
    from ccalens.core.resampling import default_method

    method = default_method("procrustes")
    assert "null mean ± sd (9 perms)" in res.stdout and f"95% {method} CI ({draws_text(method, 10)})" in res.stdout
    # same shapes: the matched-neuron controls join "all"
    np.save(tmp / "y.npy", y[:, : x.shape[1]] if y.shape[1] >= x.shape[1] else np.c_[y, y][:, : x.shape[1]])
    res = runner.invoke(app, ["compare", str(tmp / "x.npy"), str(tmp / "y.npy"), "-m", "all", "--json"])
    assert {"cosine", "euclidean"} <= set(json.loads(res.stdout)["measures"])
    res = runner.invoke(app, ["compare", str(tmp / "x.npy"), str(tmp / "y.npy"), "-m", "cka", "--permutations", "-2"])
    assert res.exit_code == 1 and "permutations must be a whole number >= 0" in res.stderr
    res = runner.invoke(app, ["compare", str(tmp / "x.npy"), str(tmp / "y.npy"), "-m", "cka", "--compat", "svcca"])
    assert res.exit_code == 1 and "--compat applies to pwcca and mean_cca only" in res.stderr


def test_matrix_with_another_measure_and_uncertainty(tmp_path, rng):
    import pandas as pd

    from ccalens.store import ActivationStore

    store = ActivationStore(tmp_path / "acts.zarr")
    with store.writer() as w:
        latent = rng.standard_normal((300, 5))
        for i in range(3):
            w.append(f"n{i}", latent @ rng.standard_normal((5, 5)) + 0.5 * rng.standard_normal((300, 5)))
    out = tmp_path / "res"
    res = runner.invoke(app, ["matrix", str(tmp_path / "acts.zarr"), "-m", "euclidean", "--out", str(out),
                              "--permutations", "9", "--bootstrap", "5"])
    assert res.exit_code == 0, res.output
    from ccalens.core.intervals import draws_text
    from ccalens.core.resampling import default_method

    method = default_method("euclidean")
    assert "permutation null (9 per pair)" in res.stdout
    assert f"{method} intervals ({draws_text(method, 5)} per pair)" in res.stdout
    # 9 permutations cannot give p <= 0.05 (the smallest is 1/10): said, not counted as "0 of 3"
    assert "no p-value can reach 0.05 with 9 permutations (the smallest possible is 1/10 = 0.100; use at least " \
           "19)" in res.stdout and "in 3 pairs" in res.stdout  # a symmetric measure: each pair once
    table = pd.read_csv(out / "euclidean-pairs.csv")
    off = table[table.row != table.column]
    assert (off.distance > 0).all() and (off.similarity == -off.distance).all()
    assert off[["p_value", "ci_low", "ci_high"]].notna().all().all()
    res = runner.invoke(app, ["matrix", str(tmp_path / "acts.zarr"), "-m", "kendall", "--out", str(out)])
    assert res.exit_code == 1 and "measure must be one of" in res.stderr
    res = runner.invoke(app, ["matrix", str(tmp_path / "acts.zarr"), "--out", str(out), "--permutations", "19",
                              "--overwrite"])
    assert "of 6 directed pairs with p <= 0.05" in res.stdout  # PWCCA: each direction
    res = runner.invoke(app, ["matrix", str(tmp_path / "acts.zarr"), "--out", str(out), "--clusters", "0"])
    assert res.exit_code == 1 and "number of clusters must be an int from 1 to 3" in res.stderr


def test_any_error_is_one_line_and_bad_inputs_are_explained(pair, rng):
    torch = pytest.importorskip("torch")
    tmp, x, y = pair
    (tmp / "bad.npz").write_bytes(b"PK\x03\x04 truncated")
    (tmp / "dir.npy").mkdir()
    torch.save({"meta": 3, "acts": torch.as_tensor(x)}, tmp / "mixed.pt")
    torch.save(torch.as_tensor(x).to(torch.bfloat16), tmp / "bf.pt")
    np.save(tmp / "one.npy", x[:, 0])
    for args, needle in (
        ([str(tmp / "bad.npz"), str(tmp / "x.npy")], "error: "),
        ([str(tmp / "dir.npy"), str(tmp / "x.npy")], "error: "),
        ([f"{tmp / 'mixed.pt'}:meta", str(tmp / "x.npy")], "holds a int, not a tensor"),
        ([str(tmp / "one.npy"), str(tmp / "one.npy"), "--neurons-first"], "A has shape (600,); compare needs 2-D arrays"),
        ([str(tmp / "x.npy"), str(tmp / "x.npy"), "-m", "cka", "--symmetric"], "--symmetric averages PWCCA's two directions"),
    ):
        res = runner.invoke(app, ["compare", *args])
        assert res.exit_code == 1, (args, res.output)
        assert needle in res.stderr and "Traceback" not in res.output and len(res.stderr.strip().splitlines()) == 1
    res = runner.invoke(app, ["compare", str(tmp / "bf.pt"), str(tmp / "x.npy"), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["measures"]["pwcca"]["similarity"] > 0.99  # bfloat16 copy of x against x


def test_counts_and_out_folders_are_checked_before_any_work(tmp_path):
    (tmp_path / "afile").write_text("")
    for args, needle in (
        (["extract", "m:f", "--layers", "a", "--limit", "-1400"], "--limit must be at least 1; got -1400"),
        (["extract", "m:f", "--layers", "a", "--limit", "0"], "--limit must be at least 1; got 0"),
        (["demo", "--epochs", "-1"], "--epochs must be at least 1"),
        (["demo", "--max-train", "-5"], "--max-train must be at least 1"),
        (["demo", "--out", str(tmp_path / "afile")], "is a file; give a folder"),
        (["sanity", "--grid", "0"], "--grid must be at least 1"),
        (["sanity", "--measures", ","], "--measures names no measure"),
        (["reproduce", "fig2", "--seeds", "0"], "--seeds must be at least 1"),
        (["reproduce", "fig2", "--n", "-5"], "--n must be at least 1"),
    ):
        res = runner.invoke(app, args)
        assert res.exit_code == 1 and needle in res.stderr, (args, res.output)


def test_matrix_checks_options_before_touching_earlier_results(tmp_path, rng):
    from ccalens.store import ActivationStore

    store = ActivationStore(tmp_path / "acts.zarr")
    with store.writer() as w:
        for i in range(3):
            w.append(f"n{i}", rng.standard_normal((200, 4)))
    out = tmp_path / "res"
    assert runner.invoke(app, ["matrix", str(tmp_path / "acts.zarr"), "--out", str(out)]).exit_code == 0
    for args, needle in ((["--permutations", "-1"], "permutations must be"), (["-m", "bogus"], "measure must be one of"),
                         (["-m", "svcca", "--symmetric"], "--symmetric folds PWCCA"), (["--clusters", "7"], "from 1 to 3")):
        res = runner.invoke(app, ["matrix", str(tmp_path / "acts.zarr"), "--out", str(out), *args])
        assert res.exit_code == 1 and needle in res.stderr, (args, res.output)
        assert (out / "pairs.sqlite").exists()
    res = runner.invoke(app, ["matrix", str(tmp_path / "acts.zarr"), "--out", str(out), "--resume"])
    assert "0 pairs computed, 3 reused" in res.stdout
    (tmp_path / "afile").write_text("")
    res = runner.invoke(app, ["matrix", str(tmp_path / "acts.zarr"), "--out", str(tmp_path / "afile")])
    assert res.exit_code == 1 and "is a file; give a folder" in res.stderr


def test_matrix_never_deletes_earlier_results_implicitly(tmp_path, rng):
    from ccalens.store import ActivationStore

    store = ActivationStore(tmp_path / "acts.zarr")
    with store.writer() as w:
        for i in range(3):
            w.append(f"n{i}", rng.standard_normal((200, 4)))
    out = tmp_path / "res"
    args = ["matrix", str(tmp_path / "acts.zarr"), "--out", str(out)]
    assert runner.invoke(app, args).exit_code == 0
    before = (out / "pairs.sqlite").read_bytes()
    res = runner.invoke(app, args)  # a rerun without --resume used to wipe the finished pairs
    assert res.exit_code == 1 and "already holds the results of an earlier run" in res.stderr
    assert "--resume" in res.stderr and "--overwrite" in res.stderr
    assert (out / "pairs.sqlite").read_bytes() == before
    res = runner.invoke(app, [*args, "--resume", "--overwrite"])
    assert res.exit_code == 1 and "pass one of them" in res.stderr
    res = runner.invoke(app, [*args, "--overwrite"])
    assert res.exit_code == 0 and "3 pairs computed, 0 reused" in res.stdout  # PWCCA: 3 pairs, both directions each


def test_a_second_matrix_on_the_same_folder_refuses_while_the_first_runs(tmp_path, rng):
    """Two real processes on one --out: the second refuses with a clear message, the first finishes intact."""
    import subprocess
    import sys
    import time

    from ccalens.store import ActivationStore

    store = ActivationStore(tmp_path / "acts.zarr")
    with store.writer() as w:
        for i in range(4):
            w.append(f"n{i}", rng.standard_normal((3000, 24)))
    out = tmp_path / "res"
    first = subprocess.Popen([sys.executable, "-m", "ccalens", "matrix", str(tmp_path / "acts.zarr"), "--out",
                              str(out), "-m", "procrustes", "--permutations", "400"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (out / "pairs.sqlite").exists():
        assert first.poll() is None and time.time() < deadline, first.communicate()
        time.sleep(0.05)
    res = runner.invoke(app, ["matrix", str(tmp_path / "acts.zarr"), "--out", str(out), "--resume"])
    running = first.poll() is None
    stdout, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr
    assert running, "the first run ended before the second started; make it longer"
    assert res.exit_code == 1 and "another ccalens matrix run is writing to" in res.stderr
    assert "6 pairs computed" in stdout
    res = runner.invoke(app, ["matrix", str(tmp_path / "acts.zarr"), "--out", str(out), "-m", "procrustes",
                              "--permutations", "400", "--resume"])
    assert res.exit_code == 0 and "0 pairs computed, 6 reused" in res.stdout


def test_version_and_python_m_entry_point():
    import subprocess
    import sys

    import ccalens

    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0 and res.stdout.strip() == f"ccalens {ccalens.__version__}"
    out = subprocess.run([sys.executable, "-m", "ccalens", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == f"ccalens {ccalens.__version__}"


def test_the_command_without_the_cli_extra_says_what_to_install():
    import subprocess
    import sys

    code = ("import sys; sys.modules['typer'] = None\n"
            "from ccalens.__main__ import main\nmain()")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "needs the 'cli' extra (typer is not installed): pip install 'ccalens[cli]'" in out.stderr


def test_the_package_is_typed_and_licensed():
    from importlib import resources
    from pathlib import Path

    assert resources.files("ccalens").joinpath("py.typed").is_file()
    licence = Path(__file__).resolve().parents[1] / "LICENSE"
    assert "Apache License" in licence.read_text() and "Version 2.0" in licence.read_text()


def test_extract_imports_factories_from_the_current_folder_and_explains_weight_mismatches(tmp_path, monkeypatch):
    """The README's 'extract mypkg.models:make_cnn', run where mypkg lives, as python -m would."""
    import subprocess
    import sys

    torch = pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    (tmp_path / "mypkg").mkdir()
    (tmp_path / "mypkg" / "__init__.py").write_text("")
    (tmp_path / "mypkg" / "models.py").write_text(MODEL_SOURCE + "\n\ndef other():\n    return torch.nn.Linear(3, 2)\n")
    out = subprocess.run([sys.executable, "-m", "ccalens", "extract", "mypkg.models:make", "--list-layers"],
                         cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.split() == ["0", "1", "2", "3"], out.stderr
    monkeypatch.chdir(tmp_path)
    torch.save(torch.nn.Linear(3, 2).state_dict(), tmp_path / "linear.pt")
    torch.save({"0.weight": torch.zeros(4, 1, 5, 5)}, tmp_path / "wrong_shape.pt")
    res = runner.invoke(app, ["extract", "mypkg.models:make", "--state-dict", "linear.pt", "--layers", "0"])
    assert res.exit_code == 1 and "missing keys 0.weight, 0.bias, 3.weight, 3.bias" in res.stderr
    assert "unexpected keys weight, bias" in res.stderr
    res = runner.invoke(app, ["extract", "mypkg.models:make", "--state-dict", "wrong_shape.pt", "--layers", "0"])
    assert res.exit_code == 1 and "size mismatch for 0.weight" in res.stderr and "\n" not in res.stderr.strip()


def test_measure_names_are_the_librarys_in_every_command(pair):
    from ccalens.core.registry import MEASURES

    tmp, x, y = pair
    res = runner.invoke(app, ["compare", str(tmp / "x.npy"), f"{tmp / 'acts.npz'}:y", "-m", "mean_cca"])
    assert res.exit_code == 0 and "mean_cca" in res.stdout
    res = runner.invoke(app, ["compare", str(tmp / "x.npy"), f"{tmp / 'acts.npz'}:y", "-m", "all"])
    assert res.exit_code == 0 and "skipped cosine: A and B have different widths" in res.stdout
    res = runner.invoke(app, ["compare", "--help"], env={"COLUMNS": "300"})
    assert all(name in res.stdout for name in MEASURES)


def test_errors_speak_the_command_lines_language_and_debug_goes_anywhere(tmp_path, rng):
    import subprocess
    import sys

    np.save(tmp_path / "a.npy", rng.standard_normal((50, 4)))
    np.save(tmp_path / "b.npy", rng.standard_normal((40, 4)))
    res = runner.invoke(app, ["compare", str(tmp_path / "a.npy"), str(tmp_path / "b.npy")])
    assert res.exit_code == 1 and "add --neurons-first" in res.stderr and "layout=" not in res.stderr
    out = subprocess.run([sys.executable, "-m", "ccalens", "compare", str(tmp_path / "a.npy"),
                          str(tmp_path / "b.npy"), "--debug"], capture_output=True, text=True)
    assert out.returncode != 0 and "Traceback" in out.stderr and "ValueError" in out.stderr
    from ccalens.cli._common import cli_words

    assert cli_words("results='/x/p.sqlite' cannot be used") == "the results file '/x/p.sqlite' cannot be used"
    assert cli_words("use symmetric=False with compat, or compat=None") == "use no --symmetric with compat, or no --compat"
    assert cli_words("a keep= of 2; epsilon=1e-6 drops") == "a --keep= of 2; --epsilon=1e-6 drops"
    assert cli_words("if (neurons, datapoints), pass layout='neurons_first'.") == \
        "if (neurons, datapoints), pass --neurons-first."


def test_compare_of_npy_files_does_not_import_torch(tmp_path, rng):
    import subprocess
    import sys

    np.save(tmp_path / "a.npy", rng.standard_normal((60, 3)))
    code = ("import sys\nsys.argv = ['ccalens', 'compare', sys.argv[1], sys.argv[1]]\n"
            "from ccalens.__main__ import main\ntry:\n    main()\nexcept SystemExit:\n    pass\n"
            "print('torch imported' if 'torch' in sys.modules else 'no torch')")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "a.npy")], capture_output=True, text=True)
    assert out.stdout.strip().endswith("no torch"), out.stdout + out.stderr
