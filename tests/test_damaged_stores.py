"""A damaged store is refused on every read path, never read as if intact.

Deleting one chunk file once made ``compare`` print PWCCA 0.507 instead of 1.0 (the missing
chunk read as zeros) and a chunk copied over another gave CKA 0.641, both with exit code 0.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

pytest.importorskip("zarr")
from typer.testing import CliRunner  # noqa: E402

from ccalens import stream  # noqa: E402
from ccalens.cli import app  # noqa: E402
from ccalens.engine import pairwise  # noqa: E402
from ccalens.store import ActivationStore, StoreError, load_array  # noqa: E402

runner = CliRunner()


def _store(tmp_path, rng, name="d.zarr"):
    store = ActivationStore(tmp_path / name)
    base = rng.standard_normal((1000, 6))
    with store.writer(chunk_rows=256) as w:
        w.append("netA/3", base)
        w.append("netB/3", base @ rng.standard_normal((6, 6)))
    return tmp_path / name


def _chunk(path, array="netA/3", index=2):
    return path / array / "c" / str(index) / "0"


DAMAGES = {
    "deleted": lambda p: _chunk(p).unlink(),
    "copied over": lambda p: shutil.copyfile(_chunk(p, index=0), _chunk(p, index=2)),
    "bytes flipped": lambda p: _chunk(p).write_bytes(bytes(b ^ 0xFF for b in _chunk(p).read_bytes())),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_every_read_path_refuses_a_damaged_array(tmp_path, rng, damage):
    path = _store(tmp_path, rng)
    good = load_array(f"{path}:netA/3")
    assert ActivationStore(path, mode="r").verify() == {"netA/3": "ok", "netB/3": "ok"}
    DAMAGES[damage](path)
    spec = f"{path}:netA/3"
    with pytest.raises(StoreError, match=r"array 'netA/3' in .*d.zarr is damaged: .* Extract it again"):
        load_array(spec)
    with pytest.raises(StoreError, match="is damaged"):
        pairwise({"a": spec, "b": f"{path}:netB/3"}, "pwcca")
    with pytest.raises(StoreError, match="is damaged"):
        stream.compare(spec, f"{path}:netB/3", "pwcca", chunk_rows=300)
    res = runner.invoke(app, ["compare", spec, f"{path}:netB/3"])
    assert res.exit_code == 1 and "is damaged" in res.stderr
    res = runner.invoke(app, ["matrix", str(path), "--out", str(tmp_path / "m")])
    assert res.exit_code == 1 and "is damaged" in res.stderr
    res = runner.invoke(app, ["info", str(path), "--verify"])
    assert res.exit_code == 1 and "1 damaged array(s)" in res.stderr and "netA/3" in res.stderr
    assert "damaged" in res.stdout and "ok" in res.stdout  # netB/3 is still fine
    assert load_array(f"{path}:netB/3").shape == good.shape


def test_the_dask_workers_refuse_a_damaged_array(tmp_path, rng):
    pytest.importorskip("distributed")
    from dask.distributed import Client, LocalCluster

    path = _store(tmp_path, rng)
    DAMAGES["copied over"](path)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        with pytest.raises(StoreError, match="is damaged"):
            pairwise({"a": f"{path}:netA/3", "b": f"{path}:netB/3"}, "pwcca", scheduler=client)


def test_a_zarr_array_object_is_verified_as_it_streams(tmp_path, rng):
    import zarr

    path = _store(tmp_path, rng)
    DAMAGES["copied over"](path)
    group = zarr.open_group(str(path), mode="r")
    with pytest.raises(StoreError, match="array 'netA/3' is damaged"):
        stream.compare(group["netA/3"], group["netB/3"], "mean_cca", chunk_rows=300)


def test_intact_stores_read_and_verify(tmp_path, rng):
    path = _store(tmp_path, rng)
    st = ActivationStore(path, mode="r")
    np.testing.assert_array_equal(st.read("netA/3"), load_array(f"{path}:netA/3"))
    res = runner.invoke(app, ["info", str(path), "--verify"])
    assert res.exit_code == 0 and res.stdout.count("ok") >= 2
