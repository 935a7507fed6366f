"""The pairwise engine: same numbers as pair-by-pair calls, directed PWCCA, resumable."""

import os
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest

import ccalens
from ccalens.engine import pairwise


def family(seed, k=5, n=1500, width=12):
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n, 6))
    reps = []
    for _ in range(k):
        own = latent + np.linspace(0.05, 1.0, 6) * rng.standard_normal((n, 6))
        reps.append(np.c_[own, rng.standard_normal((n, width - 6))] @ rng.standard_normal((width, width)))
    return reps


@pytest.mark.parametrize("block", [None, 2])
def test_matches_pair_by_pair_for_every_measure(block):
    reps = family(0)
    single = {"pwcca": ccalens.pwcca, "svcca": ccalens.svcca, "mean_cca": ccalens.mean_cca, "cca": ccalens.mean_cca}
    for measure, fn in single.items():
        res = pairwise(reps, measure, block=block)
        ref = np.array([[fn(a, b).similarity if i != j else 1.0 for j, b in enumerate(reps)] for i, a in enumerate(reps)])
        np.testing.assert_allclose(res.similarity, ref, atol=1e-10)
        np.testing.assert_allclose(res.distance, 1 - ref, atol=1e-10)
    assert res.computed == 10 and res.reused == 0


def test_pwcca_matrix_is_directed_and_symmetric_folds_it():
    reps = family(1)
    res = pairwise(reps)
    assert np.abs(res.similarity - res.similarity.T).max() > 1e-3  # row i uses rep i's weights
    assert res.similarity[0, 1] == pytest.approx(ccalens.pwcca(reps[0], reps[1]).similarity, abs=1e-10)
    sym = pairwise(reps, symmetric=True)
    np.testing.assert_allclose(sym.similarity, 0.5 * (res.similarity + res.similarity.T), atol=1e-12)


def test_against_others_labels_and_table(tmp_path):
    reps = family(2, k=4)
    named = {f"net{i}": r for i, r in enumerate(reps[:2])}
    res = pairwise(named, "mean_cca", others={"late": reps[2], "final": reps[3]})
    assert res.rows == ("net0", "net1") and res.columns == ("late", "final") and res.similarity.shape == (2, 2)
    assert res.similarity[1, 0] == pytest.approx(ccalens.mean_cca(reps[1], reps[2]).similarity, abs=1e-12)
    row = next(r for r in res.table if r["row"] == "net1" and r["column"] == "final")
    assert row["distance"] == pytest.approx(1 - row["similarity"]) and row["n"] == 1500 and row["row_rank"] == 12
    df = res.to_pandas() if _has("pandas") else None
    if df is not None:
        assert len(df) == 4
    np.save(tmp_path / "a.npy", reps[0])
    np.save(tmp_path / "b.npy", reps[1])
    from_files = pairwise([tmp_path / "a.npy", str(tmp_path / "b.npy")])
    assert from_files.rows == (str(tmp_path / "a.npy"), str(tmp_path / "b.npy"))
    assert from_files.similarity[0, 1] == pytest.approx(ccalens.pwcca(reps[0], reps[1]).similarity, abs=1e-10)


def _has(module):
    try:
        __import__(module)
        return True
    except ImportError:
        return False


def test_torch_representations():
    torch = pytest.importorskip("torch")
    reps = family(3, k=3)
    res = pairwise([torch.from_numpy(r) for r in reps])
    np.testing.assert_allclose(res.similarity, pairwise(reps).similarity, atol=1e-12)


def test_resume_reuses_finished_pairs(tmp_path):
    reps = family(4, k=4)
    db = tmp_path / "run.sqlite"
    first = pairwise(reps, results=db)
    again = pairwise(reps, results=db)
    assert first.computed == 6 and again.computed == 0 and again.reused == 6
    np.testing.assert_array_equal(first.similarity, again.similarity)
    other = pairwise(reps, "svcca", results=db)  # another measure is another run
    assert other.computed == 6
    changed = pairwise([r * 1.0001 + 1 for r in reps], results=db)  # other data: nothing reused
    assert changed.computed == 6


def test_a_killed_run_resumes_to_the_same_matrix(tmp_path):
    """kill -9 a real run midway; the resumed matrix equals an uninterrupted one bit for bit.

    Every run is a fresh process with one BLAS thread setting: on some CPUs (this SkylakeX
    OpenBLAS) the thread count changes the last bits of a product, and an earlier test's Dask
    cluster leaves OMP_NUM_THREADS behind in this process.
    """
    db = tmp_path / "run.sqlite"
    env = {**os.environ, "OMP_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2"}

    def script(results, save=None):
        return f"""
import sys
sys.path.insert(0, {os.path.dirname(__file__)!r})
import numpy as np
from test_pairwise import family
from ccalens.engine import pairwise
res = pairwise(family(5, k=80, n=1200, width=30), results={results!r}, block=5)
if {save!r}:
    np.save({save!r}, res.similarity)
    print(res.reused, res.computed)
"""

    proc = subprocess.Popen([sys.executable, "-c", script(str(db))], env=env)
    deadline = time.time() + 120
    count = 0
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
        if db.exists():
            try:
                with sqlite3.connect(db) as con:
                    count = con.execute("SELECT COUNT(*) FROM pair_values").fetchone()[0]
            except sqlite3.OperationalError:
                continue
            if count >= 100:
                break
    assert proc.poll() is None, "the run finished before it could be killed; make it longer"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    out = subprocess.run([sys.executable, "-c", script(str(db), str(tmp_path / "resumed.npy"))], env=env,
                         capture_output=True, text=True, check=True)
    reused, computed = map(int, out.stdout.split())
    total = 80 * 79 // 2
    assert reused >= 100 and computed == total - reused and computed > 0
    subprocess.run([sys.executable, "-c", script(None, str(tmp_path / "fresh.npy"))], env=env, check=True)
    np.testing.assert_array_equal(np.load(tmp_path / "resumed.npy"), np.load(tmp_path / "fresh.npy"))


def test_errors():
    reps = family(6, k=3)
    with pytest.raises(ValueError, match="measure must be one of"):
        pairwise(reps, "kendall")
    with pytest.raises(ValueError, match="symmetric=True folds PWCCA"):
        pairwise(reps, "svcca", symmetric=True)
    with pytest.raises(ValueError, match="reps is empty"):
        pairwise([])
    with pytest.raises(ValueError, match="every representation needs the same datapoints"):
        pairwise([reps[0], reps[1][:100]])
    with pytest.raises(ValueError, match="names must be unique"):
        pairwise(reps, names=["a", "a", "b"])
    with pytest.raises(ValueError, match="names has 2 entries for 3"):
        pairwise(reps, names=["a", "b"])
    with pytest.raises(TypeError, match="pass arrays, tensors or store paths"):
        pairwise([ccalens.factorize(reps[0]), reps[1]])
    with pytest.raises(ValueError, match="used in both reps and others"):
        pairwise({"a": reps[0]}, others={"a": reps[1]})


def test_dask_local_cluster_matches_the_local_path(tmp_path):
    pytest.importorskip("distributed")
    from dask.distributed import Client, LocalCluster

    from ccalens.store import ActivationStore

    reps = family(7, k=6, n=800, width=10)
    store = ActivationStore(tmp_path / "acts.zarr")
    with store.writer() as w:
        for i, r in enumerate(reps[:3]):
            w.append(f"net{i}", r)
    mixed = {f"net{i}": f"{tmp_path / 'acts.zarr'}:net{i}" for i in range(3)}  # read by the workers
    mixed.update({f"mem{i}": r for i, r in enumerate(reps[3:])})  # scattered to the workers
    local = pairwise(mixed, block=2)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, Client(cluster) as client:
        assert len(client.scheduler_info()["workers"]) == 2
        remote = pairwise(mixed, block=2, scheduler=client, results=tmp_path / "run.sqlite")
        # the measures computed from the activations, and per-pair nulls, run there too
        extra = {"permutations": 4, "bootstrap": 3, "seed": 5}
        remote_cos = pairwise(mixed, "cosine", block=2, scheduler=client, **extra)
        remote_cka = pairwise(mixed, "cka", block=2, scheduler=client, **extra)
    for measure, res in (("cosine", remote_cos), ("cka", remote_cka)):
        here = pairwise(mixed, measure, block=2, **extra)
        np.testing.assert_allclose(res.similarity, here.similarity, atol=1e-12)
        cols = ["null_mean", "p_value", "ci_low", "ci_high"]
        np.testing.assert_allclose(res.to_pandas()[cols].to_numpy(float), here.to_pandas()[cols].to_numpy(float),
                                   atol=1e-12)
    np.testing.assert_allclose(remote.similarity, local.similarity, atol=1e-12)
    assert remote.computed == 15
    resumed = pairwise(mixed, block=2, results=tmp_path / "run.sqlite")
    assert resumed.computed == 0 and resumed.reused == 15


def test_mixed_widths_use_the_per_pair_path_with_the_same_numbers():
    rng = np.random.default_rng(9)
    latent = rng.standard_normal((1200, 4))
    reps = [np.c_[latent + 0.3 * rng.standard_normal((1200, 4)), rng.standard_normal((1200, w))] for w in (3, 6, 9)]
    for measure, fn in (("pwcca", ccalens.pwcca), ("mean_cca", ccalens.mean_cca)):
        res = pairwise(reps, measure, block=2)
        ref = np.array([[fn(a, b).similarity if i != j else 1.0 for j, b in enumerate(reps)] for i, a in enumerate(reps)])
        np.testing.assert_allclose(res.similarity, ref, atol=1e-10)


def test_gpu_check_script_dry_run_on_the_cpu():
    pytest.importorskip("torch")
    script = os.path.join(os.path.dirname(__file__), "..", "benchmarks", "gpu_check.py")
    out = subprocess.run(
        [sys.executable, script, "--device", "cpu", "--k", "5", "--n", "1500", "--width", "16", "--block", "2", "--sample", "4",
         "--images", "300"],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert '"results_stay_on_device": true' in out.stdout
    assert '"max_difference_vs_cpu": 0.0' in out.stdout and '"models_back_on_cpu": true' in out.stdout


def test_describing_a_store_array_reads_no_data(tmp_path, monkeypatch):
    pytest.importorskip("zarr")
    from ccalens.engine.sources import describe as _describe
    from ccalens.store import ActivationStore

    x = family(8, k=1, n=500, width=6)[0]
    store = ActivationStore(tmp_path / "s.zarr")
    with store.writer() as w:
        w.append("x", x)
    monkeypatch.setattr(ActivationStore, "read", lambda *a, **k: pytest.fail("the client read the array"))
    shape, print_a, backend = _describe(f"{tmp_path / 's.zarr'}:x", "x")
    assert shape == (500, 6) and backend == "numpy" and len(print_a) == 16
    monkeypatch.undo()
    with store.writer(overwrite=True) as w:  # new content: a new fingerprint
        w.append("x", x * 2)
    assert _describe(f"{tmp_path / 's.zarr'}:x", "x")[1] != print_a


def test_adding_representations_reuses_the_pairs_already_computed(tmp_path):
    reps = family(10, k=4)
    db = tmp_path / "run.sqlite"
    first = pairwise(reps[:3], results=db)
    more = pairwise({"w": reps[0], "x": reps[1], "y": reps[2], "z": reps[3]}, results=db)  # other names too
    assert first.computed == 3 and more.reused == 3 and more.computed == 3
    np.testing.assert_allclose(more.similarity[:3, :3], first.similarity, atol=1e-13)
    swapped = pairwise([reps[2], reps[0]], results=db)  # reversed orientation is looked up correctly
    assert swapped.computed == 0
    assert swapped.similarity[0, 1] == pytest.approx(first.similarity[2, 0], abs=1e-13)


def test_rewritten_store_arrays_are_not_reused(tmp_path):
    pytest.importorskip("zarr")
    from ccalens.store import ActivationStore

    x, y, z = family(11, k=3, n=600)
    store = ActivationStore(tmp_path / "s.zarr")
    with store.writer() as w:
        w.append("x", x)
        w.append("y", y)
    paths = [f"{tmp_path / 's.zarr'}:x", f"{tmp_path / 's.zarr'}:y"]
    db = tmp_path / "run.sqlite"
    before = pairwise(paths, "mean_cca", results=db)
    y2 = y.copy()
    y2[1:-1] = z[1:-1]  # same first and last rows, other data in between
    with store.writer(overwrite=True) as w:
        w.append("y", y2)
    after = pairwise(paths, "mean_cca", results=db)
    assert after.computed == 1
    assert after.similarity[0, 1] == pytest.approx(ccalens.mean_cca(x, y2).similarity, abs=1e-12)
    assert before.similarity[0, 1] != pytest.approx(after.similarity[0, 1], abs=1e-6)
    single = ActivationStore(tmp_path / "one.zarr")
    with single.writer() as w:
        w.append("only", x)
    res = pairwise([str(tmp_path / "one.zarr"), y])  # a store with one array needs no key
    assert res.similarity[0, 1] == pytest.approx(ccalens.pwcca(x, y).similarity, abs=1e-10)


def test_option_errors_and_numpy_scalars(tmp_path):
    reps = family(20, k=3, n=400, width=6)
    for kw, msg in ((dict(rtol=-1.0), "rtol must be None"), (dict(rtol=5.0), "rtol must be None"),
                    (dict(rtol="a"), "rtol must be None"), (dict(keep=0), "keep must be a share of variance"),
                    (dict(keep=1.5), "keep must be a share of variance"), (dict(keep="x"), "keep must be a share"),
                    (dict(block=0), "block must be None .* or a positive int"),
                    (dict(block=-1), "block must be None"), (dict(other_names=["z"]), "pass others too")):
        with pytest.raises(ValueError, match=msg):
            pairwise(reps, "svcca", **kw)
    with pytest.raises(TypeError, match="symmetric must be True or False"):
        pairwise(reps, "pwcca", symmetric="yes")
    with pytest.raises(ValueError, match="cannot be used as a SQLite results file.*new file in an existing folder"):
        pairwise(reps, results=tmp_path)
    with pytest.raises(ValueError, match="cannot be used as a SQLite results file"):
        pairwise(reps, results=tmp_path / "missing" / "run.sqlite")
    # numpy scalars as options: the same numbers as Python floats, with a results store too
    plain = pairwise(reps, "svcca", keep=0.9, rtol=1e-3, results=tmp_path / "a.sqlite")
    scalars = pairwise(reps, "svcca", keep=np.float32(0.9), rtol=np.float64(1e-3), results=tmp_path / "b.sqlite")
    np.testing.assert_allclose(scalars.similarity, plain.similarity, atol=1e-6)  # float32(0.9) != 0.9
    pairwise(reps, "pwcca", bootstrap=3, confidence=np.float32(0.9))


def test_non_finite_and_zero_inputs_are_named_for_the_direct_measures(tmp_path):
    a, b = family(21, k=2, n=300, width=6)
    bad = a.copy()
    bad[0, 0] = np.nan
    for measure in ("cosine", "euclidean", "cka_rbf"):
        with pytest.raises(ValueError, match=r"bad contains 1 non-finite value\(s\) .*datapoint 0, neuron 0"):
            pairwise({"bad": bad, "b": b}, measure, results=tmp_path / "r.sqlite")
    with pytest.raises(ValueError, match="b .X. against zeros .Y.: cosine similarity is undefined: Y is all zeros"):
        pairwise({"zeros": np.zeros_like(a), "b": b}, "cosine")


def test_svcca_components_follow_the_row(tmp_path):
    rng = np.random.default_rng(22)
    a = rng.standard_normal((500, 8)) * np.geomspace(1, 1e-3, 8)
    f = rng.standard_normal((500, 6))
    for results in (None, tmp_path / "r.sqlite", tmp_path / "r.sqlite"):  # fresh, stored, reused
        res = pairwise({"A": a, "F": f}, "svcca", keep=0.9, results=results)
        rows = {(row["row"], row["column"]): row for row in res.table}
        for r, c, x, y in (("A", "F", a, f), ("F", "A", f, a)):
            single = ccalens.svcca(x, y, keep=0.9)
            assert (rows[(r, c)]["x_components"], rows[(r, c)]["y_components"]) == (single.x_components, single.y_components)
        assert rows[("A", "F")]["x_components"] != rows[("F", "A")]["x_components"]


def test_seeded_pairs_do_not_depend_on_names_or_resuming(tmp_path):
    a, b, c = family(23, k=3, n=400, width=6)
    db = tmp_path / "r.sqlite"
    pairwise({"a": a, "b": b}, "pwcca", results=db, permutations=15, bootstrap=5, seed=1)
    resumed = pairwise({"z": a, "y": b, "x": c}, "pwcca", results=db, permutations=15, bootstrap=5, seed=1)
    assert resumed.reused == 1
    fresh = pairwise({"z": a, "y": b, "x": c}, "pwcca", permutations=15, bootstrap=5, seed=1)
    cols = ["null_mean", "null_sd", "p_value"]
    for r1, r0 in zip(resumed.table, fresh.table):
        assert [r1.get(k) for k in ["row", "column"] + cols] == [r0.get(k) for k in ["row", "column"] + cols]
        # the (basic) interval is reflected about the pair's value, which a 2- and a 3-array
        # block compute with other products: equal to rounding, not bitwise
        for k in ("ci_low", "ci_high", "ci_bias"):
            assert (r1.get(k) is None) == (r0.get(k) is None)
            if r1.get(k) is not None:
                assert r1[k] == pytest.approx(r0[k], abs=1e-12)


def test_a_pair_stored_as_null_is_computed_again(tmp_path):
    reps = family(24, k=3, n=400, width=6)
    db = tmp_path / "r.sqlite"
    first = pairwise(reps, "cka", results=db)
    with sqlite3.connect(db) as con:
        con.execute("UPDATE pair_values SET value = NULL WHERE rowid = 1")
    again = pairwise(reps, "cka", results=db)
    assert (again.computed, again.reused) == (1, 2)
    np.testing.assert_array_equal(again.similarity, first.similarity)


def test_pairs_with_uncertainty_are_committed_one_by_one(tmp_path, monkeypatch):
    from ccalens.engine.uncertainty import Uncertainty

    reps = family(25, k=4, n=300, width=8)  # one block of 6 pairs
    real, calls = Uncertainty.factor_pair, []

    def dies_at_the_fourth(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt  # the run is killed while the fourth pair's null runs
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Uncertainty, "factor_pair", dies_at_the_fourth)
    db = tmp_path / "r.sqlite"
    with pytest.raises(KeyboardInterrupt):
        pairwise(reps, "pwcca", results=db, permutations=5)
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT COUNT(*) FROM pair_values").fetchone()[0] == 3
    monkeypatch.setattr(Uncertainty, "factor_pair", real)
    resumed = pairwise(reps, "pwcca", results=db, permutations=5)
    assert (resumed.computed, resumed.reused) == (3, 3)
    fresh = pairwise(reps, "pwcca", permutations=5)
    assert [r.get("p_value") for r in resumed.table] == [r.get("p_value") for r in fresh.table]


def test_representations_are_factorised_side_by_side_as_in_turn():
    # 10,000 x 128 is above the size where centring splits its rows over the pool: inside a
    # pool worker it must run on its own (waiting on the occupied pool would deadlock)
    import threading

    from ccalens.core import validate
    from ccalens.core.factor import factorize_matrix
    from ccalens.core.pairs import factorize_each

    rng = np.random.default_rng(40)
    reps = [rng.standard_normal((10_000, 128)) @ rng.standard_normal((128, 128)) + 3.0 for _ in range(5)]
    make = lambda x: factorize_matrix(x, validate.make_ops(x, None), None, "X")  # noqa: E731
    side = factorize_each(make, reps)
    for f, x in zip(side, reps):
        g = make(x)
        assert f.method == g.method and f.rank == g.rank
        # one BLAS thread adds in another order: equal to rounding (these layers' conditioning is about 1e3)
        np.testing.assert_allclose(f.singular_values, g.singular_values, rtol=1e-10)
    before = threading.active_count()
    bad = [x.copy() for x in reps]
    bad[1][7, 3] = np.nan
    bad[3][2, 2] = np.inf
    with pytest.raises(ValueError, match=r"rep1 .*non-finite|rep1.*NaN|NaN.*rep1"):
        ccalens.pairwise(bad, "mean_cca")
    assert threading.active_count() <= before + 2  # the pool's workers at most, no thread per call
    res = ccalens.pairwise(reps, "pwcca")
    np.testing.assert_allclose(res.similarity[0, 1], ccalens.pwcca(reps[0], reps[1]).similarity, atol=1e-12)
