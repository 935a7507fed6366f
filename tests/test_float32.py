"""float32 accumulation of the Gram route (compare_models(..., accumulate="float32")): for
linear CKA alone, within FLOAT32_CKA_TOLERANCE of float64 on the project's ill-conditioned
cases, with a float64 pass where the centring would magnify float32 rounding, and refused
for the measures that whiten."""

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import ccalens  # noqa: E402
from ccalens.stream.gram import FLOAT32_CKA_TOLERANCE, FLOAT32_MAX_CANCELLATION  # noqa: E402
from test_stream_datapoints import Tables  # noqa: E402  (layers whose outputs are fixed tables)


def case(name, seed=0, n=3000):
    """The project's test cases: well-conditioned; near-duplicate neurons (1e-6, 1e-8 apart);
    widely different neuron scales; dead neurons; large offsets; in float32 and float64."""
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((n, 10))
    out = []
    for w in (40, 25, 60):
        x = base @ rng.standard_normal((10, w)) + 0.6 * rng.standard_normal((n, w))
        if name.startswith("duplicates"):
            gap = {"duplicates6": 1e-6, "duplicates8": 1e-8}[name]
            x[:, 1::2] = x[:, 0:-1:2][:, : x[:, 1::2].shape[1]] + gap * rng.standard_normal((n, x[:, 1::2].shape[1]))
        if name == "scales":
            x *= 10.0 ** rng.uniform(-3, 3, w)
        if name == "dead":
            x[:, :5] = 2.5
        if name == "offset":
            x += 50.0
        out.append(x.astype(np.float32 if name != "float64" else np.float64))
    return out


CASES = ["plain", "duplicates6", "duplicates8", "scales", "dead", "offset", "float64"]


def run(xs, batch_size=500, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ccalens.compare_models(Tables(*xs), torch.arange(xs[0].shape[0]),
                                      layers=[f"parts.{k}" for k in range(len(xs))], measures="cka",
                                      batch_size=batch_size, **kw)


@pytest.mark.parametrize("name", CASES)
def test_float32_accumulation_keeps_linear_cka_within_its_tolerance(name):
    xs = case(name)
    exact = run(xs).matrix("cka", "model", "model").to_numpy()
    single = run(xs, accumulate="float32")
    assert set(single.routes.values()) == {"gram32"} and not single.notes
    error = np.abs(single.matrix("cka", "model", "model").to_numpy() - exact).max()
    assert error <= FLOAT32_CKA_TOLERANCE, (name, error)


def test_a_centring_that_cancels_sends_the_pass_back_to_float64():
    # the first batch (100 of 3,000 rows) lies far from the rest, so its means, which the
    # pass shifts every column by, are far from the column means: about a 30-fold cancellation
    xs = case("plain")
    shifted = [x + np.where(np.arange(len(x))[:, None] < 100, 100.0, 0.0).astype(np.float32) for x in xs]
    res = run(shifted, batch_size=100, accumulate="float32")
    assert set(res.routes.values()) <= {"gram", "gram2", "tsqr"}
    assert res.notes and "fell back to float64" in res.notes[0] and f"above {FLOAT32_MAX_CANCELLATION:g}" in res.notes[0]
    want = run(shifted, batch_size=100).matrix("cka", "model", "model").to_numpy()
    np.testing.assert_allclose(res.matrix("cka", "model", "model").to_numpy(), want, atol=1e-12)


def test_float32_accumulation_is_refused_where_it_would_not_be_safe():
    xs = case("plain", n=600)
    with pytest.raises(ValueError, match="accumulate='float32' serves linear CKA alone.*whiten"):
        ccalens.compare_models(Tables(*xs), torch.arange(600), layers=["parts.0", "parts.1"],
                               measures=["cka", "pwcca"], accumulate="float32")
    with pytest.raises(ValueError, match="accumulate must be 'float64' or 'float32'; got 'half'"):
        run(xs, accumulate="half")
    batches = (torch.arange(a, a + 100) for a in range(0, 600, 100))
    with pytest.raises(ValueError, match="needs data that can be read again.*one-shot"):
        ccalens.compare_models(Tables(*xs), batches, layers=["parts.0"], measures="cka", accumulate="float32")
