"""Streaming (TSQR) factorisation agrees with the in-memory path."""

import numpy as np
import pytest

import ccalens
from ccalens import stream


def family(seed, n=3000, widths=(10, 8, 12)):
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n, 5))
    out = []
    for w in widths:
        own = latent + np.linspace(0.1, 1.0, 5) * rng.standard_normal((n, 5))
        out.append((np.c_[own, rng.standard_normal((n, w - 5))] @ rng.standard_normal((w, w))) * rng.uniform(0.1, 10, w) + 50.0)
    return out


@pytest.mark.parametrize("chunk_rows", [100, 997, 5000])
def test_compare_matches_in_memory(chunk_rows):
    x, y, _ = family(0)
    for measure, fn in (("pwcca", ccalens.pwcca), ("svcca", ccalens.svcca), ("mean_cca", ccalens.mean_cca)):
        streamed = stream.compare(x, y, measure, chunk_rows=chunk_rows)
        assert streamed.similarity == pytest.approx(fn(x, y).similarity, abs=1e-10)
    res = stream.compare(x, y, "cca", chunk_rows=chunk_rows)
    np.testing.assert_allclose(res.rho, ccalens.cca(x, y).rho, atol=1e-10)
    assert res.n_samples == 3000
    sym = stream.compare(x, y, "pwcca", symmetric=True, chunk_rows=chunk_rows)
    assert sym.similarity == pytest.approx(ccalens.pwcca(x, y, symmetric=True).similarity, abs=1e-10)


def test_from_a_zarr_store_and_chunk_iterators(tmp_path):
    pytest.importorskip("zarr")
    from ccalens.store import ActivationStore

    x, y, z = family(1)
    store = ActivationStore(tmp_path / "big.zarr")
    with store.writer(chunk_rows=500) as w:
        for start in range(0, 3000, 700):
            w.append("x", x[start : start + 700])
            w.append("y", y[start : start + 700])
    spec = str(tmp_path / "big.zarr")
    res = stream.compare(f"{spec}:x", f"{spec}:y", chunk_rows=800)
    assert res.similarity == pytest.approx(ccalens.pwcca(x, y).similarity, abs=1e-10)
    chunks = lambda a: (a[i : i + 256] for i in range(0, len(a), 256))  # noqa: E731
    res = stream.compare(chunks(x), chunks(y), "mean_cca")
    assert res.similarity == pytest.approx(ccalens.mean_cca(x, y).similarity, abs=1e-10)
    many = stream.pairwise({"x": f"{spec}:x", "y": f"{spec}:y", "z": z}, "pwcca", chunk_rows=900)
    ref = ccalens.pairwise({"x": x, "y": y, "z": z}, "pwcca")
    np.testing.assert_allclose(many.similarity, ref.similarity, atol=1e-10)
    assert many.table[0]["n"] == 3000


def test_streaming_warns_with_the_true_sample_size():
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((60, 20)), rng.standard_normal((60, 20))
    with pytest.warns(ccalens.SmallSampleWarning, match="only 60 datapoints"):
        stream.compare(x, y, chunk_rows=16)


def test_stream_errors(tmp_path):
    x, y, _ = family(3, n=500)
    with pytest.raises(ValueError, match="every source needs the same datapoints"):
        stream.compare(x, y[:400])
    chunks = lambda a, s: (a[i : i + s] for i in range(0, len(a), s))  # noqa: E731
    with pytest.raises(ValueError, match="chunks of different lengths arrived together"):
        stream.compare(chunks(x, 100), chunks(y, 120))
    with pytest.raises(ValueError, match="ran out of chunks at different points"):
        stream.compare(chunks(x, 100), chunks(y[:300], 100))
    bad = x.copy()
    bad[321, 4] = np.nan
    with pytest.raises(ValueError, match="non-finite value at datapoint 321, neuron 4"):
        stream.compare(bad, y, chunk_rows=100)
    with pytest.raises(ValueError, match="not available when streaming"):
        stream.compare(x, y, compat="svcca")
    with pytest.raises(ValueError, match="measure must be one of"):
        stream.compare(x, y, "cka")
    with pytest.raises(TypeError, match="a source must be"):
        stream.compare(3, y)


def test_dead_neurons_are_dropped_as_in_memory():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((300, 4))
    y = x @ rng.standard_normal((4, 4)) + rng.standard_normal((300, 4))
    x[:, 1] = 2.5
    for chunk in (5, 23, 300, 1000):
        for measure, fn in (("mean_cca", ccalens.mean_cca), ("pwcca", ccalens.pwcca)):
            assert stream.compare(x, y, measure, chunk_rows=chunk).similarity == pytest.approx(fn(x, y).similarity, abs=1e-10)
    np.testing.assert_allclose(stream.compare(x, y, "cca").rho, ccalens.cca(x, y).rho, atol=1e-10)
