"""Measures of the datapoints with a per-representation part (RDM ranks, neighbour sets):
the many-representation engine prepares each representation once, and every pair from the
prepared parts equals the measure's own function."""

import numpy as np
import pytest

import ccalens
from ccalens.core import registry

PREPARED = [name for name, spec in registry.MEASURES.items() if spec.prepare is not None]


def reps(k=5, n=120, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((n, 4))
    return {f"r{i}": base @ rng.standard_normal((4, 6 + i)) + 0.5 * rng.standard_normal((n, 6 + i))
            for i in range(k)}


def test_the_datapoint_measures_declare_their_parts():
    assert set(PREPARED) == {"rsa", "rsa_euclidean", "mutual_knn", "cknna"}


@pytest.mark.parametrize("name", PREPARED)
def test_the_cache_returns_what_the_uncached_path_does(name):
    data = reps()
    res = ccalens.pairwise(data, name)
    spec = registry.MEASURES[name]
    for i, a in enumerate(res.rows):
        for j, b in enumerate(res.columns):
            if i < j:  # each pair in the engine's computing orientation (CKNNA's authors' HSIC is not symmetric)
                assert res.similarity[i, j] == spec.compute(data[a], data[b]).similarity, (name, a, b)
                assert res.similarity[j, i] == res.similarity[i, j]


@pytest.mark.parametrize("name", PREPARED)
def test_each_representation_is_prepared_once(name, monkeypatch):
    spec = registry.MEASURES[name]
    calls = []
    real = spec.prepare

    def counting(x, label, **kw):
        calls.append(label)
        return real(x, label, **kw)

    import dataclasses

    monkeypatch.setitem(registry.MEASURES, name, dataclasses.replace(spec, prepare=counting))
    ccalens.pairwise(reps(k=6), name)
    assert sorted(calls) == [f"r{i}" for i in range(6)]


def test_a_prepared_part_names_its_representation_in_errors():
    data = reps(k=3)
    data["r1"] = np.zeros_like(data["r1"])
    data["r1"][:, 0] = 1.0  # every datapoint the same activation in each neuron... a constant RDM
    with pytest.raises(ValueError, match="r1"):
        ccalens.pairwise(data, "rsa")
    with pytest.raises(ValueError, match="r1: datapoint 0"):
        data["r1"][:] = 0.0
        ccalens.pairwise(data, "mutual_knn")


def test_registering_half_a_prepared_measure_is_refused():
    with pytest.raises(ValueError, match="give prepare and from_prepared together"):
        registry.register(registry.MeasureSpec("half", "half", "raw", frozenset(), lambda X, Y: None,
                                               prepare=lambda x, name: x))
