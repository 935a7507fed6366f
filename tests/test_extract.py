"""Extraction equals a manual forward pass, for every policy; errors say what to fix."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from ccalens.extract import ExtractionError, MemorySink, extract, layer_names  # noqa: E402


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.fc = nn.Linear(6 * 4 * 4, 5)
        self.unused = nn.Linear(3, 3)

    def forward(self, x):
        h1 = torch.relu(self.conv1(x))
        h2 = torch.relu(self.bn(self.conv2(nn.functional.max_pool2d(h1, 2))))
        return self.fc(nn.functional.max_pool2d(h2, 2).flatten(1))


@pytest.fixture
def cnn():
    torch.manual_seed(0)
    model = SmallCNN()
    model.train()  # extraction must switch to eval and back
    return model


@pytest.fixture
def images():
    return torch.randn(37, 1, 16, 16)


def manual(model, x):
    model.eval()
    with torch.no_grad():
        c1 = model.conv1(x)
        c2 = model.conv2(nn.functional.max_pool2d(torch.relu(c1), 2))
        h2 = torch.relu(model.bn(c2))
        out = model.fc(nn.functional.max_pool2d(h2, 2).flatten(1))
    model.train()
    return c1, c2, out


def test_spatial_mean_and_dense_match_a_manual_forward(cnn, images):
    acts = extract(cnn, images, ["conv1", "conv2", "fc"], batch_size=8)
    c1, c2, out = manual(cnn, images)
    np.testing.assert_allclose(acts["conv1"], c1.mean(dim=(2, 3)).numpy(), atol=1e-6)
    np.testing.assert_allclose(acts["conv2"], c2.mean(dim=(2, 3)).numpy(), atol=1e-6)
    np.testing.assert_allclose(acts["fc"], out.numpy(), atol=1e-6)
    assert acts["conv1"].shape == (37, 4) and acts["fc"].dtype == np.float32
    assert cnn.training and all(m.training for m in cnn.modules())  # restored


def test_flatten_and_as_samples(cnn, images):
    c1, _, _ = manual(cnn, images)
    flat = extract(cnn, images, "conv1", spatial="flatten")["conv1"]
    np.testing.assert_allclose(flat, c1.reshape(37, -1).numpy(), atol=1e-6)
    samples = extract(cnn, images, "conv1", spatial="as_samples", batch_size=10)["conv1"]
    assert samples.shape == (37 * 16 * 16, 4)
    np.testing.assert_allclose(samples, c1.permute(0, 2, 3, 1).reshape(-1, 4).numpy(), atol=1e-6)
    few = extract(cnn, images, "conv1", spatial="as_samples", positions=5, seed=3, batch_size=10)["conv1"]
    assert few.shape == (37 * 5, 4)
    # the same positions for every input, whatever the batching
    again = extract(cnn, images, "conv1", spatial="as_samples", positions=5, seed=3, batch_size=37)["conv1"]
    np.testing.assert_array_equal(few, again)
    rows = few.reshape(37, 5, 4)
    full = c1.permute(0, 2, 3, 1).reshape(37, -1, 4).numpy()
    idx = [int(np.argmin(np.abs(full[0] - r).sum(1))) for r in rows[0]]
    np.testing.assert_allclose(rows, full[:, idx], atol=1e-6)


def test_dataloader_numpy_and_custom_sink(cnn, images):
    labels = torch.arange(37)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images, labels), batch_size=6)
    from_loader = extract(cnn, loader, ["conv2"])
    from_numpy = extract(cnn, images.numpy(), ["conv2"], batch_size=11)
    np.testing.assert_allclose(from_loader["conv2"], from_numpy["conv2"], atol=1e-6)
    sink = MemorySink()
    assert extract(cnn, images, ["conv2", "fc"], batch_size=10, store=sink) is sink
    assert [b.shape[0] for b in sink.batches["fc"]] == [10, 10, 10, 7]
    assert sink.metadata["conv2"]["policy"] == "spatial=mean"




class TwoLayerLSTM(nn.Module):
    def __init__(self, batch_first=True):
        super().__init__()
        self.embed = nn.Embedding(20, 8)
        self.lstm1 = nn.LSTM(8, 6, batch_first=batch_first)
        self.lstm2 = nn.LSTM(6, 5, batch_first=batch_first)
        self.batch_first = batch_first

    def forward(self, tokens):
        e = self.embed(tokens)
        if not self.batch_first:
            e = e.transpose(0, 1)
        h1, _ = self.lstm1(e)
        h2, _ = self.lstm2(h1)
        return h2


@pytest.mark.parametrize("batch_first", [True, False])
def test_recurrent_policies(batch_first):
    torch.manual_seed(2)
    model = TwoLayerLSTM(batch_first)
    tokens = torch.randint(0, 20, (9, 7))
    with torch.no_grad():
        e = model.embed(tokens)
        e = e if batch_first else e.transpose(0, 1)
        h1, (h_n, c_n) = model.lstm1(e)
    h1 = h1 if batch_first else h1.transpose(0, 1)  # (N, T, H)
    get = lambda **kw: extract(model, tokens, "lstm1", batch_size=4, **kw)  # noqa: E731
    np.testing.assert_allclose(get(sequence="last")["lstm1"], h1[:, -1].numpy(), atol=1e-6)
    np.testing.assert_allclose(get(sequence="mean")["lstm1"], h1.mean(1).numpy(), atol=1e-6)
    np.testing.assert_allclose(get(sequence=2)["lstm1"], h1[:, 2].numpy(), atol=1e-6)
    assert get(sequence="all")["lstm1"].shape == (9 * 7, 6)
    np.testing.assert_allclose(get(sequence="all")["lstm1"], h1.reshape(-1, 6).numpy(), atol=1e-6)
    each = get(sequence="each")
    assert sorted(each) == sorted(f"lstm1@t{t}" for t in range(7))
    np.testing.assert_allclose(each["lstm1@t4"], h1[:, 4].numpy(), atol=1e-6)
    np.testing.assert_allclose(get(state="cell")["lstm1"], c_n[-1].numpy(), atol=1e-6)
    with pytest.raises(ExtractionError, match="cell state only after the last step"):
        get(state="cell", sequence="all")
    with pytest.raises(ExtractionError, match="outside the 7 timesteps"):
        get(sequence=9)


class TupleAndDict(nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = nn.Linear(4, 3)

    def forward(self, x):
        return self.pair(x)["hidden"]

    def pair(self, x):
        h = self.inner(x)
        return {"logits": h * 2, "hidden": h, "last_hidden_state": h + 1}


class ReturnsTuple(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = Block()

    def forward(self, x):
        return self.block(x)[1]


class Block(nn.Module):
    def forward(self, x):
        return (x * 3, x + 1, "not a tensor")


class ReturnsDict(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = DictBlock()

    def forward(self, x):
        return self.block(x)["hidden"]


class DictBlock(nn.Module):
    def forward(self, x):
        return {"logits": x * 2, "last_hidden_state": x + 1, "hidden": x - 1}


def test_tuple_and_dict_outputs_say_which_element_is_taken():
    x = torch.randn(5, 4)
    sink = MemorySink()
    extract(ReturnsTuple(), x, "block", store=sink)
    np.testing.assert_allclose(sink.arrays()["block"], (x * 3).numpy())
    assert sink.metadata["block"]["taken"] == "output[0]"
    chosen = extract(ReturnsTuple(), x, "block", select=1)["block"]
    np.testing.assert_allclose(chosen, (x + 1).numpy())
    sink = MemorySink()
    extract(ReturnsDict(), x, "block", store=sink)
    np.testing.assert_allclose(sink.arrays()["block"], (x + 1).numpy())
    assert sink.metadata["block"]["taken"] == "output['last_hidden_state']"
    np.testing.assert_allclose(extract(ReturnsDict(), x, "block", select="logits")["block"], (x * 2).numpy())
    with pytest.raises(ExtractionError, match="without key 'nope'"):
        extract(ReturnsDict(), x, "block", select="nope")
    with pytest.raises(ExtractionError, match="select must be an index in range"):
        extract(ReturnsTuple(), x, "block", select=7)


def test_missing_layer_lists_names_and_closest_match(cnn, images):
    with pytest.raises(ValueError, match=r"no layer named 'conv_2'\. Did you mean 'conv2'\? Available layers: conv1, conv2, bn, fc, unused"):
        extract(cnn, images, ["conv1", "conv_2"])
    assert layer_names(cnn) == ["conv1", "conv2", "bn", "fc", "unused"]


def test_a_hook_that_never_fires_is_an_error(cnn, images):
    with pytest.raises(ExtractionError, match=r"\['unused'\] never ran during the forward pass"):
        extract(cnn, images, ["conv1", "unused"])
    assert cnn.training  # restored even on failure


class Reused(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 3)

    def forward(self, x):
        return self.lin(self.lin(x))


class Sometimes(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 3)
        self.extra = nn.Linear(3, 3)

    def forward(self, x):
        return self.extra(self.lin(x)) if x.shape[0] > 2 else self.lin(x)


def test_reused_and_conditional_modules_are_errors():
    with pytest.raises(ExtractionError, match="ran 2 times in one forward pass"):
        extract(Reused(), torch.randn(4, 3), "lin")
    with pytest.raises(ExtractionError, match=r"ran in only some of the 2 batches"):
        extract(Sometimes(), torch.randn(6, 3), "extra", batch_size=4)


def test_bad_arguments(cnn, images):
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        extract(lambda x: x, images, "conv1")
    with pytest.raises(TypeError, match="data must be a torch tensor, a numpy array, a torch DataLoader or an "
                                        "iterable of batches; got int"):
        extract(cnn, 5, "conv1")
    with pytest.raises(TypeError, match="a batch must be a tensor, an array, an .inputs, labels. pair or a dict"):
        extract(cnn, [1, 2, 3], "conv1")
    with pytest.raises(ValueError, match="spatial must be one of"):
        extract(cnn, images, "conv1", spatial="max")
    with pytest.raises(ValueError, match="sequence must be one of"):
        extract(cnn, images, "conv1", sequence="middle")
    with pytest.raises(ValueError, match="positions must be a positive int"):
        extract(cnn, images, "conv1", positions=0)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        extract(cnn, images, "conv1", batch_size=0)
    with pytest.raises(ValueError, match="layers is empty"):
        extract(cnn, images, [])
    with pytest.raises(ValueError, match="data holds no datapoints"):
        extract(cnn, images[:0], "conv1")
    with pytest.raises(ExtractionError, match="not an nn.LSTM: it has no cell state"):
        extract(cnn, images, "conv1", state="cell")


def test_extracted_layers_feed_the_measures(cnn, images):
    import ccalens

    big = torch.randn(400, 1, 16, 16)
    acts = extract(cnn, big, ["conv1", "conv2"])
    res = ccalens.pwcca(acts["conv1"], acts["conv2"])
    assert 0 < res.similarity <= 1
    assert ccalens.pwcca(acts["conv1"], acts["conv1"]).similarity == pytest.approx(1.0, abs=1e-9)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_scripted_sequential_models_are_run_layer_by_layer():
    torch.manual_seed(4)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Sequential(nn.Linear(6, 5), nn.Tanh()), nn.Linear(5, 2))
    x = torch.randn(30, 4)
    plain = extract(model, x, ["0", "2.0", "2", "3"], batch_size=7)
    scripted = extract(torch.jit.script(model), x, ["0", "2.0", "2", "3"], batch_size=7)
    for name in plain:
        np.testing.assert_allclose(scripted[name], plain[name], atol=1e-6)
    with pytest.raises(ExtractionError, match="TorchScript modules do not support forward hooks"):
        extract(torch.jit.script(SmallCNN()), torch.randn(3, 1, 16, 16), ["conv1"])


def test_a_randomly_initialised_transformers_model():
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(
        vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=32,
    )
    torch.manual_seed(0)
    model = transformers.BertModel(config)  # made from a config: nothing is downloaded
    ids = torch.randint(0, 50, (12, 9))
    loader = torch.utils.data.DataLoader([{"input_ids": row} for row in ids], batch_size=5)
    sink = MemorySink()
    extract(model, loader, ["embeddings", "encoder.layer.0", "encoder"], sequence="all", store=sink)
    acts = sink.arrays()
    model.eval()
    with torch.no_grad():
        hidden = model(input_ids=ids, output_hidden_states=True).hidden_states
    for name, ref in (("embeddings", hidden[0]), ("encoder.layer.0", hidden[1]), ("encoder", hidden[-1])):
        np.testing.assert_allclose(acts[name], ref.reshape(-1, 16).numpy(), atol=1e-5)
    assert sink.metadata["encoder"]["taken"] == "output['last_hidden_state']"
    mean = extract(model, loader, ["encoder.layer.1"], sequence="mean")["encoder.layer.1"]
    np.testing.assert_allclose(mean, hidden[2].mean(1).numpy(), atol=1e-5)


def test_float64_numpy_input_takes_the_model_dtype():
    torch.manual_seed(5)
    model = nn.Sequential(nn.Linear(6, 3))
    x = np.random.default_rng(0).standard_normal((10, 6))  # float64
    out = extract(model, x, "0")["0"]
    np.testing.assert_allclose(out, model(torch.from_numpy(x).float()).detach().numpy(), atol=1e-6)


def test_bidirectional_lstm_cell_state_has_both_directions():
    torch.manual_seed(6)
    lstm = nn.LSTM(4, 5, batch_first=True, bidirectional=True)
    model = nn.Sequential()
    model.add_module("lstm", lstm)
    x = torch.randn(7, 3, 4)
    cell = extract(model, x, "lstm", state="cell")["lstm"]
    with torch.no_grad():
        _, (_, c_n) = lstm(x)
    assert cell.shape == (7, 10)
    np.testing.assert_allclose(cell, torch.cat([c_n[-2], c_n[-1]], 1).numpy(), atol=1e-6)
    assert extract(model, x, "lstm", sequence="last")["lstm"].shape == (7, 10)
