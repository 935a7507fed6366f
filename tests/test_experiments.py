"""The CNN reproductions: pipeline steps, training, ablation, claims logic, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ccalens.experiments import fig1, fig3, fig4, fig5
from ccalens.experiments.common import naive_distance
from ccalens.experiments.pipeline import Pipeline, file_hash
from ccalens.experiments.report import write_index

torch = pytest.importorskip("torch")
cnn = pytest.importorskip("ccalens.experiments.cnn")


# ---- pipeline ---------------------------------------------------------------------------
def test_pipeline_skips_reruns_and_notices_changes(tmp_path):
    calls = []
    src = tmp_path / "in.txt"
    src.write_text("a")
    out = tmp_path / "out.txt"

    def make():
        calls.append(1)
        out.write_text(src.read_text() * 2)

    def step(pipe, cfg):
        return pipe.step("double", config=cfg, inputs=[src], outputs=[out], run=make)

    pipe = Pipeline(tmp_path, log=lambda m: None)
    assert step(pipe, {"k": 1}) is True
    assert step(Pipeline(tmp_path, log=lambda m: None), {"k": 1}) is False  # the lock survives a new process
    assert step(pipe, {"k": 2}) is True  # changed configuration
    src.write_text("b")
    assert step(pipe, {"k": 2}) is True  # changed input
    out.write_text("tampered")
    assert step(pipe, {"k": 2}) is True  # changed output
    out.unlink()
    assert step(pipe, {"k": 2}) is True  # missing output
    assert out.read_text() == "bb" and len(calls) == 5


def test_pipeline_errors(tmp_path):
    pipe = Pipeline(tmp_path, log=lambda m: None)
    with pytest.raises(FileNotFoundError, match="step input .* is missing"):
        pipe.step("x", config={}, inputs=[tmp_path / "nope"], outputs=[], run=lambda: None)
    with pytest.raises(RuntimeError, match="finished without writing"):
        pipe.step("y", config={}, outputs=[tmp_path / "never"], run=lambda: None)
    assert not (tmp_path / "lock.json").exists()  # a failed step is never recorded


def test_file_hash_of_folder_sees_contents(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a").write_text("1")
    first = file_hash(tmp_path / "d")
    (tmp_path / "d" / "a").write_text("2")
    assert file_hash(tmp_path / "d") != first


# ---- training -----------------------------------------------------------------------------
def _tiny_data(n=96):
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.random((n, 1, 8, 8), dtype=np.float32))
    y = torch.from_numpy(rng.integers(0, 3, n))
    return x, y


def test_training_is_deterministic_and_resumes_exactly(tmp_path):
    x, y = _tiny_data()

    def model():
        torch.manual_seed(3)
        return cnn.build_cnn(2, 1, 8, 3, pool_first=True)

    args = dict(epochs=4, batch_size=16, lr=1e-2, seed=3)
    straight = model()
    cnn.train(straight, x, y, **args)

    class Killed(Exception):
        pass

    def die_after_two(epoch, _model):
        if epoch == 2:
            raise Killed

    resumed = model()
    with pytest.raises(Killed):
        cnn.train(resumed, x, y, folder=tmp_path, keep=(1,), on_epoch=die_after_two, **args)
    assert (tmp_path / "epoch1.pt").exists()
    resumed = model()  # a fresh process: new model, state read from resume.pt
    cnn.train(resumed, x, y, folder=tmp_path, **args)
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


def test_training_errors():
    x, y = _tiny_data()
    with pytest.raises(ValueError, match="optimizer must be 'adam' or 'sgd'"):
        cnn.train(cnn.build_cnn(2, 1, 8, 3), x, y, epochs=1, batch_size=8, lr=0.1, seed=0, optimizer="rmsprop")
    with pytest.raises(ValueError, match="labels must be 'true' or 'random'"):
        cnn.train_labels(type("S", (), {"y_train": np.arange(3)})(), cnn.NetSpec(2, 0, 1, 0.1, labels="shuffled"))
    with pytest.raises(ValueError, match="scale must be one of tiny, small, paper"):
        cnn.get_scale("huge")
    with pytest.raises(ValueError, match="pass --data-dir pointing at cifar-10-batches-py"):
        cnn.load_split(cnn.get_scale("paper"))


def test_random_labels_are_one_fixed_permutation():
    split = type("S", (), {"y_train": np.repeat(np.arange(5), 20)})()
    a = cnn.train_labels(split, cnn.NetSpec(2, 0, 1, 0.1, labels="random"))
    b = cnn.train_labels(split, cnn.NetSpec(2, 9, 1, 0.1, labels="random"))
    assert np.array_equal(a, b) and not np.array_equal(a, split.y_train)
    assert np.array_equal(np.sort(a), np.sort(split.y_train))


# ---- ablation ------------------------------------------------------------------------------
class Redundant(torch.nn.Module):
    """Every hidden unit carries the whole answer: x > 0 is class 1, otherwise class 0."""

    def __init__(self, units=10):
        super().__init__()
        self.hidden = torch.nn.Linear(1, units)
        with torch.no_grad():
            self.hidden.weight.fill_(1.0)
            self.hidden.bias.zero_()
        self.out = torch.nn.Linear(units, 2)
        with torch.no_grad():
            self.out.weight.copy_(torch.stack([torch.zeros(units), torch.ones(units)]))
            self.out.bias.copy_(torch.tensor([0.0, 0.0]))

    def forward(self, x):
        return self.out(torch.relu(self.hidden(x)))


def test_ablation_curve_known_answer():
    x = torch.tensor([[-2.0], [-1.0], [1.0], [2.0], [3.0]])
    y = torch.tensor([0, 0, 1, 1, 1])
    curve = cnn.ablation_curve(Redundant(), x, y, "hidden", [0.0, 0.3, 0.9, 1.0])
    # any surviving unit keeps every answer; with none, the logits tie and argmax says class 0
    np.testing.assert_allclose(curve, [1.0, 1.0, 1.0, 0.4])
    assert fig5.robustness(np.array([1.0, 1.0, 1.0])) == pytest.approx(1.0)
    assert fig5.robustness(np.array([1.0, 0.5, 0.0])) == pytest.approx(0.5)


def test_ablation_removes_units_cumulatively():
    """Each unit alone adds its share, so accuracy falls in steps as the order is applied."""
    model = Redundant(4)
    with torch.no_grad():  # unit j answers class 1 only when x > j
        model.hidden.bias.copy_(-torch.arange(4.0))
    x = torch.tensor([[0.5], [1.5], [2.5], [3.5]])
    y = torch.tensor([1, 1, 1, 1])
    curve = cnn.ablation_curve(model, x, y, "hidden", [0.0, 0.25, 0.5, 0.75, 1.0], seed=1)
    assert curve[0] == 1.0 and curve[-1] == 0.0
    assert np.all(np.diff(curve) <= 0)  # a larger fraction's removed set contains a smaller one's


def test_ablation_errors():
    x, y = torch.zeros((2, 1)), torch.zeros(2, dtype=torch.long)
    with pytest.raises(ValueError, match="no layer named 'nope'"):
        cnn.ablation_curve(Redundant(), x, y, "nope", [0.0])
    with pytest.raises(ValueError, match=r"ablation fractions must lie in \[0, 1\]"):
        cnn.ablation_curve(Redundant(), x, y, "hidden", [1.5])


# ---- figure helpers (the claims logic is in test_claims.py) ------------------------------
def test_fig3_comparison_names():
    assert fig3.comparison_of("true0", "true3") == "true-true"
    assert fig3.comparison_of("random1", "true0") == "true-random"
    assert fig3.comparison_of("untrained0", "untrained2") == "untrained"


def test_unit_subset():
    keep = fig4.unit_subset(32, 8)
    assert len(set(keep)) == 8 and keep.max() < 32 and np.array_equal(keep, fig4.unit_subset(32, 8))
    with pytest.raises(ValueError, match=r"subset size must be in \[1, 4\]"):
        fig4.unit_subset(4, 5)


def test_naive_distances_closed_forms():
    a = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert naive_distance(a, a, "cosine") == pytest.approx(0.0)
    assert naive_distance(a, -a, "cosine") == pytest.approx(2.0)
    assert naive_distance(a, np.zeros_like(a) + 1, "euclidean") == pytest.approx(1.0)  # sqrt(2 / 2)
    with pytest.raises(ValueError, match="cosine distance needs equal shapes"):
        naive_distance(a, a[:, :1], "cosine")
    with pytest.raises(ValueError, match="measure must be one of"):
        naive_distance(a, a, "manhattan")


def test_index_page_lists_claims(tmp_path):
    (tmp_path / "fig3").mkdir()
    (tmp_path / "fig3" / "fig3.png").write_bytes(b"png")
    doc = {"figure": "fig3", "scale": {"name": "tiny"}, "dataset": "digits", "command": "ccalens reproduce fig3",
           "claims": [{"name": "early_layers_equal", "claim": "Early <layers>", "rule": "|tt - rr| <= 0.05",
                       "statistic": {"tt": 0.1}, "held": False}]}
    (tmp_path / "fig3" / "claims.json").write_text(json.dumps(doc))
    page = write_index(tmp_path).read_text()
    assert "early_layers_equal" in page and "not held" in page and "fig3/fig3.png" in page
    assert "Early &lt;layers&gt;" in page  # escaped
    # the claim record: status, value, interval (with its bias when it misses the estimate), no raw JSON
    from ccalens.experiments.claims import decide

    record = decide("fig3.early_equal", {"conv1_diff_minus_spread": 0.01234567, "conv1_diff_plus_spread": 0.05,
                                         "min_train_accuracy": 0.9},
                    intervals={"conv1_diff_minus_spread": {"low": 0.02, "high": 0.05, "unit": "networks", "bias": 0.025,
                                                           "contains_estimate": False},
                               "conv1_diff_plus_spread": None}, scope="PWCCA")
    doc["claims"] = [record]
    (tmp_path / "fig3" / "claims.json").write_text(json.dumps(doc))
    page = write_index(tmp_path).read_text()
    assert "premise not met" in page and "0.0123" in page and "[0.02, 0.05]" in page and "bootstrap bias +0.025" in page
    assert "fig3.early_equal" in page and "min_train_accuracy" not in page  # values stay in claims.json
    assert "scale: tiny; dataset: digits; command: ccalens reproduce fig3" in page
    from ccalens.experiments.report import claims_markdown

    table = claims_markdown(tmp_path).splitlines()
    assert table[2] == "| `fig3.early_equal` | PWCCA | 0.0123 | [0.02, 0.05] | premise not met | confirmatory |"
    assert record["analysis"] == "confirmatory" and record["post_hoc"] is None and "CIFAR" in record["caveats"]
    blurs = decide("fig3.unweighted_blurs", {k: 0.1 for k in ("fc1_fall_pwcca", "fc1_fall_pwcca_minus_mean_cca",
                                                             "logits_fall_pwcca", "logits_fall_pwcca_minus_mean_cca")}
                   | {"min_train_accuracy": 1.0}, intervals=dict.fromkeys(("fc1_fall_pwcca",
                   "fc1_fall_pwcca_minus_mean_cca", "logits_fall_pwcca", "logits_fall_pwcca_minus_mean_cca")))
    assert blurs["analysis"] == "exploratory" and "after its outcome" in blurs["post_hoc"]
    doc["claims"] = [record, blurs]
    (tmp_path / "fig3" / "claims.json").write_text(json.dumps(doc))
    assert claims_markdown(tmp_path).splitlines()[3].endswith("| inconclusive | exploratory |")
    assert "exploratory" in write_index(tmp_path).read_text()
    doc.pop("scale"), doc.pop("command")
    (tmp_path / "fig3" / "claims.json").write_text(json.dumps(doc))
    assert "scale: ;" not in write_index(tmp_path).read_text()  # no empty facts


def test_collect_copies_the_small_record(tmp_path):
    from ccalens.experiments.report import collect

    runs = tmp_path / "runs"
    (runs / "fig4" / "activations").mkdir(parents=True)
    (runs / "fig4" / "activations" / "big.bin").write_bytes(b"x" * 100)
    for name, body in (("fig4.png", "png"), ("fig4.csv", "a,b\n"), ("claims.json", json.dumps(
            {"figure": "fig4", "claims": [{"name": "w", "claim": "c", "rule": "r", "statistic": {}, "held": True}]}))):
        (runs / "fig4" / name).write_text(body)
    copied = collect(runs, tmp_path / "results")
    names = sorted(p.relative_to(tmp_path / "results").as_posix() for p in copied)
    assert names == ["fig4/claims.json", "fig4/fig4.csv", "fig4/fig4.png", "index.html"]
    assert "held" in (tmp_path / "results" / "index.html").read_text()


def _hold_lock(folder, seconds, marker):
    import time

    from ccalens.experiments.pipeline import exclusive

    with exclusive(folder, "first", log=lambda m: None):
        (folder / "started").write_text("1")
        time.sleep(seconds)
        (folder / marker).write_text("done")


def test_a_second_process_waits_for_the_first_to_finish_training(tmp_path):
    """Two runs asked for the same network: the second waits for the first, then sees its result
    (two processes once trained the same LSTM into the same folder at the same time)."""
    import multiprocessing
    import time

    from ccalens.experiments.pipeline import exclusive

    folder = tmp_path / "net"
    ctx = multiprocessing.get_context("spawn")
    first = ctx.Process(target=_hold_lock, args=(folder, 1.5, "record.json"))
    first.start()
    deadline = time.time() + 60
    while not (folder / "started").exists():
        assert time.time() < deadline and first.is_alive()
        time.sleep(0.05)
    said = []
    with exclusive(folder, "second", log=said.append):
        assert (folder / "record.json").read_text() == "done"  # it waited for the whole of the first
    first.join()
    assert said and "another process holds" in said[0] and "waiting" in said[0]
    with exclusive(folder, "third", log=said.append):  # a lock whose holder has ended blocks no one
        pass
    assert len(said) == 1
