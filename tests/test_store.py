"""Activation stores: round trips through every format, metadata, interrupted writes."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("zarr")
from ccalens.store import ActivationStore, StoreError, fingerprint, list_arrays, load_array  # noqa: E402


@pytest.fixture
def acts(rng):
    return rng.standard_normal((50, 6)).astype(np.float32)


def test_zarr_round_trip_with_metadata_and_batches(tmp_path, acts):
    store = ActivationStore(tmp_path / "a.zarr")
    with store.writer(prefix="net0", model="cnn", checkpoint=7, dataset=fingerprint(acts), chunk_rows=16) as w:
        for start in range(0, 50, 12):
            w.append("conv1", acts[start : start + 12], {"layer": "conv1", "policy": "spatial=mean"})
            w.append("fc", acts[start : start + 12, :3], {"layer": "fc"})
    again = ActivationStore(tmp_path / "a.zarr", mode="r")
    assert again.arrays() == ["net0/conv1", "net0/fc"]
    np.testing.assert_array_equal(again.read("net0/conv1"), acts)
    np.testing.assert_array_equal(load_array(f"{tmp_path / 'a.zarr'}:net0/fc"), acts[:, :3])
    meta = again.metadata("net0/conv1")
    assert meta["model"] == "cnn" and meta["checkpoint"] == 7 and meta["policy"] == "spatial=mean"
    assert meta["dataset"] == fingerprint(acts) and meta["complete"] is True and meta["rows"] == 50
    info = {e["name"]: e for e in again.info()}
    assert info["net0/fc"]["shape"] == (50, 3) and info["net0/fc"]["complete"]


def test_extraction_streams_into_a_store(tmp_path):
    torch = pytest.importorskip("torch")
    from ccalens.extract import extract

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    x = torch.randn(40, 5)
    store = ActivationStore(tmp_path / "s.zarr")
    extract(model, x, ["0", "2"], batch_size=7, store=store.writer(prefix="m", model="mlp"))
    direct = extract(model, x, ["0", "2"])
    # float32: torch may pick another kernel for a batch of 7 than for 40 (seen on a CPU with
    # AMX), which rounds differently; the rows must agree to float32 rounding, not bit for bit
    np.testing.assert_allclose(store.read("m/0"), direct["0"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(store.read("m/2"), direct["2"], rtol=1e-5, atol=1e-6)
    assert store.metadata("m/2")["module"] == "Linear"


def test_existing_arrays_are_not_silently_replaced(tmp_path, acts):
    store = ActivationStore(tmp_path / "a.zarr")
    with store.writer() as w:
        w.append("x", acts)
    with pytest.raises(StoreError, match="already holds a finished array 'x'.*overwrite=True"):
        store.writer().append("x", acts)
    with store.writer(overwrite=True) as w:
        w.append("x", acts[:5])
    assert store.read("x").shape == (5, 6)


def test_unfinished_writer_is_reported(tmp_path, acts):
    store = ActivationStore(tmp_path / "a.zarr")
    w = store.writer()
    w.append("x", acts[:20])  # never closed
    with pytest.raises(StoreError, match=r"'x' .* is incomplete: its writer stopped after 20 rows"):
        store.read("x")
    assert store.read("x", allow_incomplete=True).shape == (20, 6)
    assert not store.info()[0]["complete"]
    # a retry of the interrupted write just works: the unfinished array is replaced, not a blocker
    with store.writer() as again:
        again.append("x", acts[:30])
    assert store.read("x").shape == (30, 6) and store.info()[0]["complete"]


def test_a_killed_writer_leaves_a_detectably_incomplete_array(tmp_path):
    path = tmp_path / "k.zarr"
    code = f"""
import numpy as np, sys, time
from ccalens.store import ActivationStore
w = ActivationStore({str(path)!r}).writer()
for i in range(100000):
    w.append("layer", np.full((64, 8), i, dtype=np.float32))
    if i == 5:
        print("writing", flush=True)
"""
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    time.sleep(0.3)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with pytest.raises(StoreError, match="incomplete"):
        load_array(f"{path}:layer")
    partial = ActivationStore(path, mode="r").read("layer", allow_incomplete=True)
    assert partial.shape[0] >= 6 * 64


@pytest.mark.parametrize("fmt", ["npy", "npz", "safetensors", "pt", "h5"])
def test_file_formats_round_trip(tmp_path, acts, fmt):
    path = tmp_path / f"acts.{fmt}"
    other = acts[:, :2] * 2
    if fmt == "npy":
        np.save(path, acts)
        spec, keys = str(path), [""]
    elif fmt == "npz":
        np.savez(path, conv=acts, fc=other)
        spec, keys = f"{path}:conv", ["conv", "fc"]
    elif fmt == "safetensors":
        from safetensors.numpy import save_file

        save_file({"conv": acts, "fc": other}, str(path))
        spec, keys = f"{path}:conv", ["conv", "fc"]
    elif fmt == "pt":
        torch = pytest.importorskip("torch")
        torch.save({"conv": torch.from_numpy(acts), "fc": torch.from_numpy(other)}, path)
        spec, keys = f"{path}:conv", ["conv", "fc"]
    else:
        import h5py

        with h5py.File(path, "w") as f:
            f["conv"] = acts
            f["group/fc"] = other
        spec, keys = f"{path}:conv", ["conv", "group/fc"]
    np.testing.assert_array_equal(load_array(spec), acts)
    assert sorted(list_arrays(path)) == sorted(keys)
    if len(keys) > 1:
        with pytest.raises(StoreError, match=r"holds 2 arrays; name one as .*:KEY"):
            load_array(path)
        with pytest.raises(StoreError, match=r"has no array 'nope'"):
            load_array(f"{path}:nope")


def test_reader_errors(tmp_path):
    with pytest.raises(StoreError, match="no such file or store"):
        load_array(tmp_path / "missing.npy")
    bad = tmp_path / "acts.txt"
    bad.write_text("1 2 3")
    with pytest.raises(StoreError, match=r"expected a Zarr activation store or a .npy, .npz"):
        load_array(bad)
    with pytest.raises(StoreError, match="is not an activation store"):
        ActivationStore(tmp_path / "nothing.zarr", mode="r")
    store = ActivationStore(tmp_path / "a.zarr")
    with pytest.raises(StoreError, match=r"has no array 'x'; it holds: nothing"):
        store.read("x")
    with pytest.raises(StoreError, match="store arrays are \\(datapoints, neurons\\)"):
        store.writer().append("x", np.ones(3))
    w = store.writer()
    w.append("y", np.ones((2, 3)))
    with pytest.raises(StoreError, match="has 3 neurons but a batch of 4 arrived"):
        w.append("y", np.ones((2, 4)))


def test_fingerprint_depends_on_content_shape_and_dtype():
    a = np.arange(12, dtype=np.float32)
    assert fingerprint(a) == fingerprint(a.copy())
    assert fingerprint(a) != fingerprint(a.reshape(3, 4))
    assert fingerprint(a) != fingerprint(a.astype(np.float64))
    b = a.copy()
    b[5] += 1
    assert fingerprint(a) != fingerprint(b) and len(fingerprint(a)) == 16


def test_names_with_colons(tmp_path, acts):
    store = ActivationStore(tmp_path / "a.zarr")
    with pytest.raises(StoreError, match="array names cannot contain ':'"):
        store.writer().append("a:b", acts)
    np.savez(tmp_path / "k.npz", **{"x:1": acts})
    np.testing.assert_array_equal(load_array(f"{tmp_path / 'k.npz'}:x:1"), acts)


def test_writer_records_a_content_hash(tmp_path, acts):
    store = ActivationStore(tmp_path / "a.zarr")
    with store.writer() as w:
        w.append("x", acts[:20])
        w.append("x", acts[20:])
    first = store.metadata("x")["content_sha256"]
    with store.writer(overwrite=True) as w:
        w.append("x", acts)
    assert store.metadata("x")["content_sha256"] == first  # same content, however it was batched
    with store.writer(overwrite=True) as w:
        w.append("x", acts * 2)
    assert store.metadata("x")["content_sha256"] != first


def test_damaged_or_foreign_npy_files_are_named_and_explained(tmp_path):
    (tmp_path / "text.npy").write_text("hello world\n")
    with pytest.raises(StoreError, match=r"text.npy is not a .npy file \(it does not start with numpy's header"):
        load_array(tmp_path / "text.npy")
    np.save(tmp_path / "good.npy", np.arange(500.0).reshape(100, 5))
    (tmp_path / "cut.npy").write_bytes((tmp_path / "good.npy").read_bytes()[:1000])
    with pytest.raises(StoreError, match=r"cut.npy is damaged: .*Save it again"):
        load_array(tmp_path / "cut.npy")
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(StoreError, match="objects.npy holds Python objects .* never unpickles"):
        load_array(tmp_path / "objects.npy")
    assert load_array(tmp_path / "good.npy").shape == (100, 5)
