"""Streaming (TSQR) factorisation agrees with the in-memory path."""

import numpy as np
import pytest

import ccalens
from ccalens import stream


def family(seed, n=3000, widths=(10, 8, 12), rotate=False):
    """Layers sharing 5 latent directions, mixed by random Gaussian matrices (condition
    numbers up to about 1e3) or, with ``rotate``, by random rotations (a few)."""
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n, 5))
    out = []
    for w in widths:
        own = latent + np.linspace(0.1, 1.0, 5) * rng.standard_normal((n, 5))
        noise = rng.standard_normal((n, w - 5))
        mix = np.linalg.qr(rng.standard_normal((w, w)))[0] if rotate else rng.standard_normal((w, w))
        out.append((np.c_[own, noise] @ mix) * rng.uniform(0.1, 10, w) + 50.0)
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
    with pytest.raises(ValueError, match=r"'cka_debiased' \(debiased linear CKA\) cannot stream: it needs each "
                                         r"datapoint's own values.*random subset.*The measures that stream are pwcca"):
        stream.compare(x, y, "cka_debiased")
    for measure, why in (("cka_rbf", "n x n kernels between datapoints"), ("rsa", "the activations themselves"),
                         ("predictivity", "regressions"), ("mutual_knn", "neighbours")):
        with pytest.raises(ValueError, match=f"{measure}.* cannot stream: it .*{why}"):
            stream.compare(x, y, measure)
    with pytest.raises(ValueError, match="unknown measure 'bogus'. The measures that stream are"):
        stream.compare(x, y, "bogus")
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


def test_cka_and_procrustes_stream_exactly():
    x, y, _ = family(5)
    for measure, fn in (("cka", ccalens.cka), ("procrustes", ccalens.procrustes)):
        for chunk in (100, 5000):
            assert stream.compare(x, y, measure, chunk_rows=chunk).similarity == pytest.approx(fn(x, y).similarity, abs=1e-12)


def test_large_offsets_cost_no_accuracy():
    x, y, _ = family(6, n=4000)
    for offset in (1e6, 1e10):
        xo, yo = x * 1e-3 + offset, y * 1e-3 + offset
        # the stored values' deviations from the offset are exact (Sterbenz), so this is the
        # true PWCCA of the data as stored
        truth = ccalens.pwcca(xo - offset, yo - offset).similarity
        for chunk in (300, 32768):
            assert stream.compare(xo, yo, chunk_rows=chunk).similarity == pytest.approx(truth, abs=1e-10)


def test_rank_deficiency_with_an_offset_keeps_the_in_memory_rank():
    x, y, _ = family(7)
    xl = np.c_[x, x[:, 0] + x[:, 1], 3 * x[:, 2] - x[:, 5]] + 100.0
    mem = ccalens.cca(xl, y)
    for chunk in (500, 32768):
        res = stream.compare(xl, y, "cca", chunk_rows=chunk)
        assert res.x_rank == mem.x_rank == 10
        np.testing.assert_allclose(res.rho, mem.rho, atol=1e-10)
        assert stream.compare(xl, y, chunk_rows=chunk).similarity == pytest.approx(ccalens.pwcca(xl, y).similarity, abs=1e-10)


def test_empty_chunks_are_skipped():
    x, y, _ = family(8, n=1000)
    res = stream.compare(iter([x[:500], x[500:500], x[500:]]), iter([y[:500], y[500:500], y[500:]]))
    assert res.similarity == pytest.approx(ccalens.pwcca(x, y).similarity, abs=1e-10)
    assert res.n_samples == 1000


def test_options_that_need_the_datapoints_are_refused():
    x, y, _ = family(9, n=400)
    refused = {
        "permutations": (dict(permutations=20), "a permutation null shuffles datapoints"),
        "bootstrap": (dict(bootstrap=20), "a bootstrap resamples datapoints"),
        "variates": (dict(variates=True), "canonical variates have one value per datapoint"),
        "compat": (dict(compat="svcca"), "the reference code.s algorithm needs the raw activations"),
    }
    with pytest.raises(ValueError, match="layout='neurons_first' is not available when streaming: .*Transpose the chunks"):
        stream.compare(x, y, layout="neurons_first")
    for key, (kw, why) in refused.items():
        with pytest.raises(ValueError, match=f"{key}=.* is not available when streaming: {why}.*random subset"):
            stream.compare(x, y, "cca" if key == "variates" else "mean_cca", **kw)
    with pytest.raises(ValueError, match="debiased CKA needs each datapoint's norm"):
        stream.compare(x, y, "cka", debiased=True)
    with pytest.raises(ValueError, match="RBF CKA needs the distances"):
        stream.compare(x, y, "cka", kernel="rbf")
    with pytest.raises(TypeError, match="unknown option colour= for streaming; the measures' options it takes are epsilon"):
        stream.compare(x, y, colour="red")
    with pytest.raises(ValueError, match="permutations=5 is not available when streaming"):
        stream.pairwise([x, y], "pwcca", permutations=5)
    with pytest.raises(ValueError, match="cosine.* cannot stream: it works on the activations themselves"):
        stream.pairwise([x, y], "cosine")
    with pytest.raises(ValueError, match="n_components= is a single-pair option; streaming takes epsilon, keep, symmetric, rtol"):
        stream.pairwise([x, y], "svcca", n_components=3)
    # idle options and their defaults are accepted
    assert stream.compare(x, y, "pwcca", permutations=0, seed=3, confidence=0.9).similarity == pytest.approx(
        ccalens.pwcca(x, y).similarity, abs=1e-10)


def test_more_stream_errors():
    x, y, _ = family(10, n=600)
    gen = lambda a, s: (a[i : i + s] for i in range(0, len(a), s))  # noqa: E731
    g = gen(x, 100)
    with pytest.raises(ValueError, match="sources 0 and 1 are the same iterator"):
        stream.compare(g, g)
    with pytest.raises(ValueError, match=r"source 0 gave a chunk of shape \(10,\); chunks must be 2-D"):
        stream.compare(x.tolist(), y.tolist())
    for bad in (0, -5, 2.5, True):
        with pytest.raises(ValueError, match="chunk_rows must be a positive int"):
            stream.compare(x, y, chunk_rows=bad)
    with pytest.raises(ValueError, match=r"source 0 has no neurons \(its chunks are \(600, 0\)\)"):
        stream.compare(np.zeros((600, 0)), y)
    with pytest.raises(ValueError, match="source 0 has no varying neuron: all 3 neuron.* constant over the 600 datapoints"):
        stream.compare(np.ones((600, 3)), y)
    with pytest.raises(TypeError, match="Wrap one chunk iterator in a list"):
        stream.compress(gen(x, 100))
    with pytest.raises(ValueError, match="set chunk_rows to the iterators' chunk length"):
        stream.compare(x, gen(y, 100))
    assert stream.compare(x, gen(y, 100), chunk_rows=100).similarity == pytest.approx(ccalens.pwcca(x, y).similarity, abs=1e-10)


def test_small_sample_warning_counts_varying_neurons_as_in_memory():
    import warnings

    rng = np.random.default_rng(11)
    x = np.c_[rng.standard_normal((300, 10)), np.full((300, 10), 2.0)]  # 10 dead neurons
    y = x[:, :10] @ rng.standard_normal((10, 10)) + rng.standard_normal((300, 10))
    with warnings.catch_warnings():
        warnings.simplefilter("error", ccalens.SmallSampleWarning)  # a warning fails the test
        mem = ccalens.pwcca(x, y)  # 300 datapoints are enough for 10 varying neurons
        streamed = stream.compare(x, y, chunk_rows=64)
    assert streamed.similarity == pytest.approx(mem.similarity, abs=1e-10)


def test_streamed_pairwise_others_labels_npy_and_resume(tmp_path):
    pytest.importorskip("zarr")
    from ccalens.store import ActivationStore

    x, y, z = family(12, n=1500)
    store = ActivationStore(tmp_path / "s.zarr")
    with store.writer(chunk_rows=500) as w:
        w.append("a", x)
        w.append("b", y)
    spec = str(tmp_path / "s.zarr")
    np.save(tmp_path / "z.npy", z)
    res = stream.pairwise([f"{spec}:a", f"{spec}:b"], "pwcca", others={"z": str(tmp_path / "z.npy")}, chunk_rows=400)
    assert res.rows == (f"{spec}:a", f"{spec}:b") and res.columns == ("z",)
    ref = ccalens.pairwise({"a": x, "b": y}, "pwcca", others={"z": z})
    np.testing.assert_allclose(res.similarity, ref.similarity, atol=1e-10)
    assert {row["n"] for row in res.table} == {1500}
    # a results store keyed by the sources' content: adding a source reuses the pairs done
    db = tmp_path / "r.sqlite"
    first = stream.pairwise({"x": x, "y": y}, "cka", results=db, chunk_rows=700)
    assert (first.computed, first.reused) == (1, 0)
    second = stream.pairwise({"x": x, "y": y, "z": z}, "cka", results=db, chunk_rows=300)
    assert (second.computed, second.reused) == (2, 1)
    np.testing.assert_allclose(second.similarity, ccalens.pairwise({"x": x, "y": y, "z": z}, "cka").similarity, atol=1e-10)
    with pytest.raises(ValueError, match=r"the names \['x'\] are used in both sources and others"):
        stream.pairwise({"x": x}, others={"x": y})


# --- the Gram route and its Householder pass -------------------------------------------


def conditioned(rng, n, a, kappa):
    """Centred-rank-a data whose singular values span 1 .. 1/kappa, plus an offset."""
    u, _ = np.linalg.qr(rng.standard_normal((n, a)))
    v, _ = np.linalg.qr(rng.standard_normal((a, a)))
    return (u * np.geomspace(1, 1 / kappa, a)) @ v.T * 100.0 + 7.0


def routes(sources, chunk_rows=700, **kw):
    return stream.summarise(sources, chunk_rows=chunk_rows, **kw).routes


MEASURES_AND_FUNCTIONS = (("cca", None), ("pwcca", ccalens.pwcca), ("mean_cca", ccalens.mean_cca),
                          ("svcca", ccalens.svcca), ("cka", ccalens.cka), ("procrustes", ccalens.procrustes),
                          ("shape", ccalens.shape_metric))


def assert_streams_as_in_memory(x, y, atol, chunk_rows=700):
    for measure, fn in MEASURES_AND_FUNCTIONS:
        for route in stream.ROUTES:
            got = stream.compare(x, y, measure, chunk_rows=chunk_rows, route=route)
            if measure == "cca":
                np.testing.assert_allclose(got.rho, ccalens.cca(x, y).rho, atol=atol)
            else:
                assert got.similarity == pytest.approx(fn(x, y).similarity, abs=atol), (measure, route)


def test_well_conditioned_sources_take_the_gram_route_and_agree_to_1e_10():
    x, y, z = family(20, rotate=True)
    assert routes([x, y, z]) == ["gram", "gram", "gram"]
    assert routes(family(20)) == ["gram", "gram", "gram2"]  # a random mixing matrix: kappa about 1e3
    assert routes([x, y, z], route="tsqr") == ["tsqr"] * 3
    assert_streams_as_in_memory(x, y, 1e-10)
    many = stream.pairwise({"x": x, "y": y, "z": z}, "pwcca", chunk_rows=640)
    np.testing.assert_allclose(many.similarity, ccalens.pairwise({"x": x, "y": y, "z": z}, "pwcca").similarity, atol=1e-10)


@pytest.mark.parametrize("kappa, route", [(3e3, "gram2"), (1e5, "gram2"), (1e7, "tsqr")])
def test_ill_conditioned_sources_take_a_second_pass(kappa, route):
    rng = np.random.default_rng(21)
    x = conditioned(rng, 3000, 40, kappa)
    y = x[:, :30] @ rng.standard_normal((30, 30)) + 50 * rng.standard_normal((3000, 30)) * x[:, :30].std(0)
    _, _, z = family(22)
    # only the ill-conditioned source takes the second pass's whitening (moderate
    # conditioning) or QR; the others keep their first-pass Gram blocks
    assert routes([x, y, z]) == [route, "gram", "gram"]
    assert_streams_as_in_memory(x, y, 1e-10 if kappa < 1e6 else 1e-8)
    assert_streams_as_in_memory(y, x, 1e-10 if kappa < 1e6 else 1e-8)
    many = stream.pairwise({"y": y, "x": x, "z": z}, "pwcca", chunk_rows=640)
    np.testing.assert_allclose(many.similarity, ccalens.pairwise({"y": y, "x": x, "z": z}, "pwcca").similarity,
                               atol=1e-10 if kappa < 1e6 else 1e-8)


@pytest.mark.parametrize("gap", [1e-4, 1e-6, 1e-8])
def test_near_duplicate_neurons_stream_as_in_memory(gap):
    from conftest import related_pair

    rng = np.random.default_rng(23)
    x, y = related_pair(rng, n=4000, a=20, b=15)
    x = np.c_[x, x[:, :5] + gap * rng.standard_normal((4000, 5)) * x[:, :5].std(0)]
    assert routes([x, y]) == ["gram2" if gap == 1e-4 else "tsqr", "gram"]  # as in memory
    assert_streams_as_in_memory(x, y, 1e-8)


def test_a_second_pass_source_with_dead_neurons_among_its_columns():
    # the weak directions map every column of their source, with zero rows for the constant
    # ones (which the second pass reads as one slice of the block): dead neurons at the
    # start, in the middle and at the end change nothing
    from conftest import related_pair

    rng = np.random.default_rng(31)
    x, y = related_pair(rng, n=4000, a=20, b=15)
    near = np.c_[x, x[:, :5] + 1e-4 * rng.standard_normal((4000, 5)) * x[:, :5].std(0)]
    dead = np.c_[np.full(4000, -2.0), near[:, :12], np.full(4000, 7.5), near[:, 12:], np.zeros(4000)]
    assert routes([dead, y]) == ["gram2", "gram"]
    assert_streams_as_in_memory(dead, y, 1e-10)
    assert_streams_as_in_memory(y, dead, 1e-10)


def test_all_three_routes_in_one_pass():
    from conftest import related_pair

    rng = np.random.default_rng(30)
    x, y = related_pair(rng, n=4000, a=20, b=15)
    near = np.c_[x, x[:, :5] + 1e-4 * rng.standard_normal((4000, 5)) * x[:, :5].std(0)]  # gram2
    dup = np.c_[y, y[:, :3] + 1e-8 * rng.standard_normal((4000, 3)) * y[:, :3].std(0)]  # tsqr
    dead = np.c_[x[:, :10] @ rng.standard_normal((10, 10)), np.full(4000, 3.0)]  # gram, one dead neuron
    reps = {"near": near, "dup": dup, "dead": dead, "y": y}
    assert routes(list(reps.values())) == ["gram2", "tsqr", "gram", "gram"]
    for measure in ("pwcca", "cka", "shape"):
        np.testing.assert_allclose(stream.pairwise(reps, measure, chunk_rows=500).similarity,
                                   ccalens.pairwise(reps, measure).similarity, atol=1e-8)


def test_every_source_ill_conditioned_is_one_householder_pass_again():
    rng = np.random.default_rng(24)
    x = conditioned(rng, 2000, 12, 1e7)
    related = x[:, :4] + 0.1 * rng.standard_normal((2000, 4))
    y = np.c_[related, related + 1e-7 * rng.standard_normal((2000, 4))]  # near-duplicate pairs
    assert routes([x, y]) == ["tsqr", "tsqr"]
    assert_streams_as_in_memory(x, y, 1e-8)
    few = rng.standard_normal((30, 40))  # more neurons than datapoints: the QR's rank, not the Gram's
    assert routes([few, few[:, :10]], chunk_rows=7) == ["tsqr", "gram"]
    with pytest.warns(ccalens.SmallSampleWarning):
        assert stream.compare(few, few[:, :10], "cca", chunk_rows=7).x_rank == ccalens.cca(few, few[:, :10]).x_rank == 29


def test_an_unrepresentative_first_chunk_sends_the_source_to_the_householder_pass():
    # the Gram route shifts by the first chunk's means; two far-out first rows leave the
    # shifted sums of squares about 2,000 times the centred ones, which the check weighs
    # against the conditioning: that source is read again with a QR, and stays exact
    x, y, _ = family(25, n=4000, rotate=True)
    x = x.copy()
    x[:2] += 40 * x.std(0) * np.sqrt(2000)
    assert routes([x, y], chunk_rows=2) == ["tsqr", "gram"]
    assert routes([x, y], chunk_rows=400) == ["gram", "gram"]  # a larger first chunk's means are close enough
    assert_streams_as_in_memory(x, y, 1e-10, chunk_rows=400)
    for measure, fn in (("pwcca", ccalens.pwcca), ("cka", ccalens.cka)):  # 2,000 chunks: two measures only
        assert stream.compare(x, y, measure, chunk_rows=2).similarity == pytest.approx(fn(x, y).similarity, abs=1e-10)


def test_identical_and_overlapping_sources_make_a_singular_joint_gram():
    x, y, _ = family(26, rotate=True)
    both = np.c_[x, y]
    assert routes([x, x, both]) == ["gram"] * 3
    res = stream.pairwise({"a": x, "b": x, "c": both}, "mean_cca", chunk_rows=900)
    np.testing.assert_allclose(res.similarity, ccalens.pairwise({"a": x, "b": x, "c": both}, "mean_cca").similarity,
                               atol=1e-10)
    assert res.similarity[0, 1] == pytest.approx(1.0, abs=1e-12)


def test_one_pass_iterators_take_the_householder_route():
    x, y, _ = family(27, n=1200)
    gen = lambda a: (a[i : i + 300] for i in range(0, len(a), 300))  # noqa: E731
    assert routes([gen(x), gen(y)], chunk_rows=300) == ["tsqr", "tsqr"]
    assert routes([x, gen(y)], chunk_rows=300) == ["tsqr", "tsqr"]


class Shifting:
    """An array-like whose rows change after its first full read (a file rewritten in between)."""

    def __init__(self, a):
        self.a, self.shape, self.reads = a, a.shape, 0

    def __getitem__(self, index):
        if index.start == 0:
            self.reads += 1
        return self.a[index] + (1e-9 if self.reads > 1 else 0.0)


def test_sources_that_change_between_the_passes_are_refused():
    rng = np.random.default_rng(28)
    x, (y, _, _) = conditioned(rng, 2000, 10, 1e7), family(28, n=2000)
    with pytest.raises(ValueError, match="the sources changed between the two passes.*route='tsqr'"):
        stream.compare(Shifting(x), y, chunk_rows=500)
    assert stream.compare(Shifting(x), y, chunk_rows=500, route="tsqr").similarity == pytest.approx(
        ccalens.pwcca(x, y).similarity, abs=1e-9)


def test_route_is_checked_and_a_failing_reader_stops_cleanly():
    import threading

    x, y, _ = family(29, n=1000)
    with pytest.raises(ValueError, match="route must be one of 'auto', 'tsqr'; got 'gram'"):
        stream.compare(x, y, route="gram")

    class Broken:
        shape = x.shape

        def __getitem__(self, index):
            if index.start >= 400:
                raise OSError("disk gone")
            return x[index]

    before = threading.active_count()
    with pytest.raises(OSError, match="disk gone"):
        stream.compare(Broken(), y, chunk_rows=100)
    bad = np.tile(x, (20, 1))
    bad[15_750, 2] = np.inf
    with pytest.raises(ValueError, match="non-finite value at datapoint 15750, neuron 2") as kept:
        stream.compare(bad, np.tile(y, (20, 1)), chunk_rows=100)  # raised while the reader is ahead
    # the reader and the read pool are stopped and joined even while the error is kept (as
    # Jupyter keeps the last one): nothing holds threads or chunks
    assert threading.active_count() == before and kept.value is not None


def test_the_callers_iterators_and_array_likes_are_read_in_its_thread_in_turn():
    import io
    import threading

    x, y, _ = family(31, n=2000)
    seen = set()

    def chunks(a):
        for i in range(0, len(a), 250):
            seen.add(threading.current_thread().name)
            yield a[i : i + 250]

    assert stream.compare(chunks(x), chunks(y), "cca").similarity == pytest.approx(ccalens.cca(x, y).similarity,
                                                                                   abs=1e-10)
    assert seen == {threading.current_thread().name}

    class OneHandle:  # two views over one file handle (seek, then read): not safe side by side
        handle = io.BytesIO(np.c_[x, y].astype(np.float64).tobytes())

        def __init__(self, lo, width):
            self.lo, self.width, self.shape = lo, width, (2000, width)

        def __getitem__(self, index):
            rows = range(*index.indices(2000))
            out = np.empty((len(rows), self.width))
            for k, r in enumerate(rows):
                self.handle.seek((r * 18 + self.lo) * 8)  # rows of x's 10 and y's 8 columns
                out[k] = np.frombuffer(self.handle.read(8 * self.width))
            return out

    for route in stream.ROUTES:
        got = stream.compare(OneHandle(0, 10), OneHandle(10, 8), "pwcca", chunk_rows=300, route=route)
        assert got.similarity == pytest.approx(ccalens.pwcca(x, y).similarity, abs=1e-10)


def test_a_source_whose_squares_overflow_beside_ordinary_ones():
    # its Gram block holds inf: it takes the Householder pass, and the inf never reaches the
    # other sources' summary (it once turned it into NaN and gave CCA 1.0 instead of 0.71)
    rng = np.random.default_rng(32)
    x = rng.standard_normal((1000, 3))
    big, other = 1e160 * x, x + rng.standard_normal((1000, 3))
    assert routes([big, other]) == ["tsqr", "gram"]
    for measure, fn in (("cca", ccalens.cca), ("pwcca", ccalens.pwcca)):
        assert stream.compare(big, other, measure).similarity == pytest.approx(fn(big, other).similarity, abs=1e-12)
    from ccalens.core.linalg import psd_root

    with pytest.raises(ValueError, match="psd_root needs a finite matrix"):
        psd_root(np.full((2, 2), np.nan))
    with pytest.raises(TypeError, match="a chunk mixes torch tensors and numpy arrays"):
        torch = pytest.importorskip("torch")
        stream.RowSummary().add([torch.zeros((4, 2)), np.zeros((4, 2))])
