"""ccalens.stream.compute: every measure and pair of a summary, each source factorised once;
from the Gram matrix and its eigendecompositions when every source took the Gram route,
from the small matrices otherwise; both equal to the in-memory measures."""

import warnings

import numpy as np
import pytest

from ccalens import stream
from ccalens.core import registry
from ccalens.stream import compute
from ccalens.stream.kept import Summary

STREAMED = [registry.MEASURES[m] for m in stream.MEASURES]


def layers(seed=0, n=700, widths=(6, 9, 4), offset=0.0, scale=1.0):
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((n, 5))
    out = []
    for w in widths:
        x = base @ rng.standard_normal((5, w)) + 0.7 * rng.standard_normal((n, w))
        out.append(scale * (x * rng.uniform(0.2, 5.0, w)) + offset)
    return out


def summarise(xs):
    return stream.summarise(list(xs), chunk_rows=128)


def in_memory(spec, x, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = spec.compute(x, y)
    return r.similarity


def without_gram(summary):
    """The same summary, seen only through its small matrices (the route for gram2 and tsqr)."""
    return Summary(summary.matrices, summary.n, summary.varying, None, summary.routes)


@pytest.mark.parametrize("scale", [1.0, 1e-60, 1e60])
def test_gram_route_equals_the_in_memory_measures(scale):
    xs = layers(scale=scale, offset=3.0 * scale)
    summary = summarise(xs)
    assert summary.gram is not None and summary.routes == ["gram"] * 3
    rtol = stream.default_rtol({}, summary.n, summary.varying)
    values = compute.all_pairs(summary, STREAMED, rtol=rtol)
    worst = 0.0
    for (i, j), by_measure in values.items():
        for spec in STREAMED:
            v_ab, v_ba = by_measure[spec.name]
            if i == j and spec.identical is not None:
                assert v_ab == v_ba == spec.identical
                continue
            worst = max(worst, abs(v_ab - in_memory(spec, xs[i], xs[j])), abs(v_ba - in_memory(spec, xs[j], xs[i])))
    assert worst < 1e-10, worst


def test_the_gram_path_and_the_small_matrix_path_agree():
    summary = summarise(layers(seed=3))
    rtol = stream.default_rtol({}, summary.n, summary.varying)
    fast = compute.all_pairs(summary, STREAMED, rtol=rtol)
    slow = compute.all_pairs(without_gram(summary), STREAMED, rtol=rtol)
    assert fast.keys() == slow.keys()
    for key in fast:
        for name, (a, b) in fast[key].items():
            assert slow[key][name] == pytest.approx((a, b), abs=1e-11), (key, name)


def test_ill_conditioned_sources_take_the_small_matrices_and_stay_exact():
    xs = layers(seed=5)
    rng = np.random.default_rng(9)
    near = np.column_stack([xs[0], xs[0][:, 0] + 1e-7 * rng.standard_normal(len(xs[0]))])  # a near-duplicate neuron
    xs = [near, xs[1], xs[2]]
    summary = summarise(xs)
    assert summary.routes[0] != "gram" and summary.gram is None
    rtol = stream.default_rtol({}, summary.n, summary.varying)
    values = compute.all_pairs(summary, STREAMED, rtol=rtol)
    for spec in STREAMED:
        v_ab, v_ba = values[(0, 1)][spec.name]
        assert v_ab == pytest.approx(in_memory(spec, xs[0], xs[1]), abs=1e-8), spec.name
        assert v_ba == pytest.approx(in_memory(spec, xs[1], xs[0]), abs=1e-8), spec.name


def test_each_source_is_factorised_once_for_every_measure_and_pair(monkeypatch):
    xs = layers(seed=2, widths=(5, 7, 3, 6))
    summary = summarise(xs)
    calls = {"factorise": 0, "correlation": 0}
    real_factorise, real_correlation = compute.factorize_matrix, compute.SourceFactors._correlation

    def counting_factorise(*args, **kwargs):
        calls["factorise"] += 1
        return real_factorise(*args, **kwargs)

    def counting_correlation(self, i, j):
        calls["correlation"] += 1
        return real_correlation(self, i, j)

    monkeypatch.setattr(compute, "factorize_matrix", counting_factorise)
    monkeypatch.setattr(compute.SourceFactors, "_correlation", counting_correlation)
    compute.all_pairs(summary, STREAMED, rtol=None)
    # the Gram path factorises nothing; one cross block per unordered pair of distinct sources
    # (a source with itself is 1 for every measure here), whatever the number of measures
    assert calls == {"factorise": 0, "correlation": 6}
    compute.all_pairs(without_gram(summary), STREAMED, rtol=None)
    assert calls["factorise"] == 4


def test_linear_cka_needs_no_factorisation(monkeypatch):
    summary = summarise(layers(seed=4))

    def refuse(*args, **kwargs):
        raise AssertionError("linear CKA took a cross product of bases")

    monkeypatch.setattr(compute.SourceFactors, "cross", refuse)
    values = compute.all_pairs(summary, [registry.MEASURES["cka"]], rtol=None)
    assert 0.0 < values[(0, 1)]["cka"][0] < 1.0


def test_a_factor_from_principal_components_equals_the_factorised_matrix():
    """core.factor.from_components (the datapoint route's factors, made from an
    eigendecomposition without another SVD) gives every streamed measure the value that
    factorising U diag(sigma), padded with zero neurons, gives."""
    from ccalens.core.factor import factorize
    from ccalens.core.pairs import from_components

    rng = np.random.default_rng(4)
    u = rng.standard_normal((300, 12))
    u, _ = np.linalg.qr(u - u.mean(0))  # orthonormal columns of centred data
    sigma = np.sort(rng.uniform(0.5, 4.0, 12))[::-1]
    other = layers(seed=9, n=300, widths=(7,))[0]
    z = np.hstack([u * sigma, np.zeros((300, 3))])
    for spec in STREAMED:
        want = in_memory(spec, z, other)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            got = spec.compute(from_components(u, sigma, 15), factorize(other)).similarity
        assert got == pytest.approx(want, abs=1e-10), spec.name
    with pytest.raises(ValueError, match="descending positive singular values"):
        from_components(u, sigma[::-1])
    with pytest.raises(ValueError, match="n_neurons >= r"):
        from_components(u, sigma, 5)
