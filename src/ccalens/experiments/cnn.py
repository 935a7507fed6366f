"""The CNNs of the paper's Section 3 experiments: scales, architecture, seeded training.

Every network is described by a :class:`NetSpec`. Its folder under ``runs/networks/`` is
named after a hash of the spec and of the training data, so the figures share networks
they have in common (fig3's true-label group is fig4's group of the same width), and a
changed setting trains a new network instead of reusing a stale one.

Training is seeded and deterministic on the CPU: the initial weights come from
``torch.manual_seed(seed)`` and the minibatch order from a generator seeded the same way.
A checkpoint (weights, optimiser and generator state) is written atomically after every
epoch, so a killed training continues from its last finished epoch and ends with the
same weights as an uninterrupted one. Checkpoint 0 is the network at initialisation: the
untrained baseline.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from .pipeline import atomic_write_text, exclusive

LAYERS = ("conv1", "conv2", "conv3", "fc1", "logits")


@dataclass(frozen=True)
class Scale:
    """How big the CNN experiments are."""

    name: str
    dataset: str
    max_train: int | None  # training images used (None: all)
    test_points: int  # test images for test accuracy and the test-data variant
    width: int  # conv1 filters; conv2 and conv3 have 2x, fc1 4x
    epochs: int  # true labels
    epochs_random: int  # permuted labels: the most epochs a memoriser may take to reach random_target
    random_target: float  # memorisers train until this training accuracy (the paper: near-zero loss)
    lr: float  # Adam
    batch_size: int
    group: int  # networks per group (fig3, fig4)
    widths: tuple[int, ...]  # fig4
    fig5_lrs: tuple[float, ...]  # fig5, SGD with momentum 0.9
    fig5_seeds: int
    fig5_epochs: int  # the most epochs a fig5 network may take to reach fig5_target_loss
    fig5_target_loss: float  # every learning rate trains to this training loss (the paper's premise)
    fig1_epochs: int
    device: str = "cpu"
    fig1_seeds: int = 3  # fig1's replicates: independently trained networks
    description: str = ""
    bootstrap: float = 1.0  # share of each claim's bootstrap resamples (tiny: fewer, for CI's time)


SCALES = {
    "tiny": Scale("tiny", "digits", None, 360, width=8, epochs=30, epochs_random=150, random_target=0.995,
                  lr=3e-3, batch_size=64, group=3, widths=(4, 6, 8, 12, 16), fig5_lrs=(0.003, 0.01, 0.03, 0.1),
                  fig5_seeds=3, fig5_epochs=40, fig5_target_loss=0.05, fig1_epochs=30,
                  description="scikit-learn digits; a few minutes; run by CI", bootstrap=0.1),
    "small": Scale("small", "fashion-mnist", 4000, 2000, width=16, epochs=20, epochs_random=250,
                   random_target=0.995, lr=1e-3, batch_size=64, group=5, widths=(8, 12, 16, 24, 32),
                   fig5_lrs=(0.003, 0.01, 0.03, 0.1), fig5_seeds=10, fig5_epochs=80, fig5_target_loss=0.05,
                   fig1_epochs=30, fig1_seeds=5,
                   description="Fashion-MNIST, 4,000 training images; under an hour per figure on 2 CPU cores"),
    "paper": Scale("paper", "cifar10", None, 10000, width=32, epochs=60, epochs_random=300, random_target=0.995,
                   lr=1e-3, batch_size=128, group=5, widths=(32, 48, 64, 96, 128),
                   fig5_lrs=(0.001, 0.003, 0.01, 0.03, 0.1), fig5_seeds=40, fig5_epochs=150, fig5_target_loss=0.05,
                   fig1_epochs=100, device="auto",
                   description="CIFAR-10 from --data-dir, the paper's group sizes (5; 200 for fig5); GPU recommended"),
}


def get_scale(name: str, **overrides) -> Scale:
    if name not in SCALES:
        raise ValueError(f"scale must be one of {', '.join(SCALES)}; got {name!r}.")
    return replace(SCALES[name], **{k: v for k, v in overrides.items() if v is not None})


def load_split(scale: Scale, data_dir=None):
    """The scale's dataset, cut to ``max_train`` training and ``test_points`` test images."""
    from .. import datasets

    if scale.dataset == "digits":
        split = datasets.digits()
    elif scale.dataset == "fashion-mnist":
        split = datasets.fashion_mnist(data_dir)
    elif scale.dataset == "cifar10":
        if data_dir is None:
            raise ValueError("the paper scale trains on CIFAR-10: pass --data-dir pointing at cifar-10-batches-py.")
        split = datasets.cifar10(data_dir)
    else:
        raise ValueError(f"dataset must be digits, fashion-mnist or cifar10; got {scale.dataset!r}.")
    n = len(split.x_train) if scale.max_train is None else min(scale.max_train, len(split.x_train))
    return datasets.Split(split.name, split.x_train[:n], split.y_train[:n], split.x_test[: scale.test_points],
                          split.y_test[: scale.test_points], split.classes, split.meta)


def data_fingerprint(split) -> str:
    from ..store import fingerprint

    return hashlib.sha256("".join(fingerprint(a) for a in (split.x_train, split.y_train, split.x_test,
                                                          split.y_test)).encode()).hexdigest()[:16]


def spec_key(spec, data_print: str) -> str:
    """A short hash of a (dataclass) training spec and its data's fingerprint: a folder key."""
    blob = json.dumps({**asdict(spec), "data": data_print}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:10]


@dataclass(frozen=True)
class NetSpec:
    """Everything that determines a trained network, given its training data."""

    width: int
    seed: int
    epochs: int
    lr: float
    labels: str = "true"  # or "random": one fixed permutation of the training labels
    label_seed: int = 1234
    optimizer: str = "adam"  # or "sgd" (momentum 0.9)
    batch_size: int = 64
    pool_first: bool = True  # max-pool after conv1 too (cheaper on 28x28 and 32x32 images)
    # Stop early once the whole training set (eval mode, the labels trained on) reaches a
    # target: ``epochs`` is then the most epochs allowed. None: train all ``epochs``.
    target_accuracy: float | None = None
    target_loss: float | None = None

    @property
    def name(self) -> str:
        target = ""
        if self.target_accuracy is not None:
            target += f"-acc{self.target_accuracy:g}"
        if self.target_loss is not None:
            target += f"-loss{self.target_loss:g}"
        return f"w{self.width}-{self.labels}-{self.optimizer}{self.lr:g}-e{self.epochs}{target}-s{self.seed}"

    def reached(self, metrics: dict) -> bool:
        """Whether one epoch's training ``metrics`` (loss, accuracy) meet every target set."""
        return (self.target_accuracy is not None or self.target_loss is not None) and (
            (self.target_accuracy is None or metrics["accuracy"] >= self.target_accuracy)
            and (self.target_loss is None or metrics["loss"] <= self.target_loss))

    def key(self, data_print: str) -> str:
        return spec_key(self, data_print)


def build_cnn(width: int, in_channels: int, image: int, classes: int, pool_first: bool = False):
    """Three conv blocks (conv, batch norm, ReLU), a flatten head (capacity to memorise), logits.

    Each named layer's output is taken after its nonlinearity. Layer widths: conv1 ``width``,
    conv2 and conv3 ``2 * width``, fc1 ``4 * width``, logits ``classes``.
    """
    from torch import nn

    def block(cin, cout):
        return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU())

    class CNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = block(in_channels, width)
            self.conv2 = block(width, 2 * width)
            self.conv3 = block(2 * width, 2 * width)
            side = image // 4 if pool_first else image // 2
            self.fc1 = nn.Sequential(nn.Linear(2 * width * side * side, 4 * width), nn.ReLU())
            self.logits = nn.Linear(4 * width, classes)

        def forward(self, x):
            pool = nn.functional.max_pool2d
            h = self.conv1(x)
            if pool_first:
                h = pool(h, 2)
            h = pool(self.conv2(h), 2)
            return self.logits(self.fc1(self.conv3(h).flatten(1)))

    return CNN()


def layer_widths(width: int, classes: int) -> dict[str, int]:
    return {"conv1": width, "conv2": 2 * width, "conv3": 2 * width, "fc1": 4 * width, "logits": classes}


def evaluate(model, x, y, batch_size: int = 1024) -> dict:
    """Mean cross-entropy loss and accuracy on (x, y), in eval mode (the mode is restored)."""
    import torch

    was = model.training
    model.eval()
    device = next(model.parameters()).device
    correct, loss = 0, 0.0
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            logits = model(x[start : start + batch_size].to(device)).cpu()
            yb = y[start : start + batch_size]
            correct += int((logits.argmax(1) == yb).sum())
            loss += float(torch.nn.functional.cross_entropy(logits.double(), yb, reduction="sum"))
    model.train(was)
    return {"loss": loss / len(x), "accuracy": correct / len(x)}


def accuracy(model, x, y, batch_size: int = 1024) -> float:
    return evaluate(model, x, y, batch_size)["accuracy"]


def _optimizer(model, name: str, lr: float):
    import torch

    if name == "adam":
        return torch.optim.Adam(model.parameters(), lr=lr)
    if name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    raise ValueError(f"optimizer must be 'adam' or 'sgd'; got {name!r}.")


def train(model, x, y, *, epochs: int, batch_size: int, lr: float, seed: int, optimizer: str = "adam",
          folder: Path | None = None, keep: tuple[int, ...] = (), progress: str | None = None,
          on_epoch=None, stop=None) -> list[dict]:
    """Seeded, deterministic minibatch training; returns the per-epoch training metrics.

    After every epoch the whole training set is evaluated (eval mode): the history has one
    ``{"epoch", "loss", "accuracy"}`` per epoch. With ``stop(metrics) -> bool``, training ends
    after the first epoch whose metrics satisfy it (``epochs`` is then the most allowed).
    With ``folder``, the state after every epoch (history included) is written to
    ``folder/resume.pt`` (and kept as ``folder/epoch{e}.pt`` for the epochs in ``keep``); a
    rerun continues from it, and one killed after its stopping epoch does not train further.
    ``on_epoch(epoch, model)`` is called after every epoch.
    """
    import torch

    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    opt = _optimizer(model, optimizer, lr)
    history: list[dict] = []
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        resume = folder / "resume.pt"
        if resume.exists():
            state = torch.load(resume, weights_only=False, map_location=device)
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            gen.set_state(state["generator"])
            history = list(state.get("history", []))
    start_epoch = len(history)
    done = bool(history) and stop is not None and stop(history[-1])
    model.train()
    epoch_iter = range(start_epoch, start_epoch if done else epochs)
    if progress:
        from tqdm.auto import tqdm

        epoch_iter = tqdm(epoch_iter, desc=progress, unit="epoch", leave=False, initial=start_epoch, total=epochs)
    for epoch in epoch_iter:
        order = torch.randperm(len(x), generator=gen)
        for start in range(0, len(x), batch_size):
            idx = order[start : start + batch_size]
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x[idx].to(device)), y[idx].to(device))
            loss.backward()
            opt.step()
        history.append({"epoch": epoch + 1, **evaluate(model, x, y)})
        if folder is not None:
            state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "generator": gen.get_state(),
                     "epoch": epoch + 1, "history": history}
            if epoch + 1 in keep:
                _atomic_save(state["model"], folder / f"epoch{epoch + 1}.pt")
            _atomic_save(state, folder / "resume.pt")
        if on_epoch is not None:
            on_epoch(epoch + 1, model)
        if stop is not None and stop(history[-1]):
            break
    return history


def _atomic_save(obj, path: Path) -> None:
    import torch

    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _device(name: str):
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def train_labels(split, spec: NetSpec) -> np.ndarray:
    if spec.labels == "true":
        return split.y_train
    if spec.labels == "random":
        return np.random.default_rng(spec.label_seed).permutation(split.y_train)
    raise ValueError(f"labels must be 'true' or 'random'; got {spec.labels!r}.")


def network_folder(root: Path, spec: NetSpec, split) -> Path:
    return Path(root) / "networks" / f"{spec.name}-{spec.key(data_fingerprint(split))}"


def finished_record(folder: Path, wanted: list[Path], name: str, log=print) -> dict | None:
    """The record of a finished training whose ``wanted`` checkpoint files all exist, or None.

    When the record exists but a wanted checkpoint does not (it was not kept, or was
    deleted), the record and the resume state are removed so that training starts again.
    """
    record_path = folder / "record.json"
    if not record_path.exists():
        return None
    missing = [p.name for p in wanted if not p.exists()]
    if not missing:
        return json.loads(record_path.read_text())
    log(f"  {name}: retraining, checkpoints {missing} are missing")
    record_path.unlink()
    (folder / "resume.pt").unlink(missing_ok=True)
    return None


def train_network(spec: NetSpec, split, root: Path, *, keep: tuple[int, ...] = (), device: str = "cpu",
                  log=print, progress: bool = False, on_epoch=None) -> dict:
    """Train (or finish training) one network; returns its record (accuracies, epochs, time).

    The folder holds ``epoch0.pt`` (initialisation), ``epoch{e}.pt`` for ``e`` in ``keep``,
    ``final.pt`` and ``record.json``; a network whose record exists is not trained again.
    Two processes asked for the same network do not both train it: the second waits for
    the first (:func:`.pipeline.exclusive`) and then reads its record.
    """
    with exclusive(network_folder(root, spec, split), spec.name, log):
        return _train_network(spec, split, root, keep=keep, device=device, log=log, progress=progress,
                              on_epoch=on_epoch)


def _train_network(spec: NetSpec, split, root: Path, *, keep, device, log, progress, on_epoch) -> dict:
    import torch

    folder = network_folder(root, spec, split)
    record_path = folder / "record.json"
    wanted = [folder / "final.pt"] + [folder / f"epoch{e}.pt" for e in sorted(set(keep) | {0}) if e != spec.epochs]
    record = finished_record(folder, wanted, spec.name, log)
    if record is not None:
        return record
    folder.mkdir(parents=True, exist_ok=True)
    dev = _device(device)
    x, _, xt, yt = split.torch()
    y = torch.from_numpy(train_labels(split, spec))
    torch.manual_seed(spec.seed)
    model = build_cnn(spec.width, x.shape[1], x.shape[2], split.classes, spec.pool_first).to(dev)
    if not (folder / "epoch0.pt").exists():
        _atomic_save(model.state_dict(), folder / "epoch0.pt")
    started = time.perf_counter()
    targeted = spec.target_accuracy is not None or spec.target_loss is not None
    history = train(model, x, y, epochs=spec.epochs, batch_size=spec.batch_size, lr=spec.lr, seed=spec.seed,
                    optimizer=spec.optimizer, folder=folder, keep=tuple(keep),
                    progress=f"training {spec.name}" if progress else None, on_epoch=on_epoch,
                    stop=spec.reached if targeted else None)
    test = evaluate(model, xt, yt)
    _atomic_save(model.state_dict(), folder / "final.pt")
    last = history[-1]
    record = {"name": spec.name, "spec": asdict(spec), "folder": folder.name, "epochs": last["epoch"],
              "max_epochs": spec.epochs, "target_reached": spec.reached(last) if targeted else None,
              "train_accuracy": last["accuracy"], "train_loss": last["loss"], "test_accuracy": test["accuracy"],
              "test_loss": test["loss"], "history": history, "kept": sorted(set(keep) | {0, last["epoch"]}),
              "seconds_this_run": round(time.perf_counter() - started, 1), "device": str(dev),
              "torch_threads": torch.get_num_threads()}  # bitwise reproducible for the same device and threads
    atomic_write_text(record_path, json.dumps(record, indent=1))
    target = "" if not targeted else f"; target {'reached' if record['target_reached'] else 'NOT reached'}"
    log(f"  trained {spec.name}: {last['epoch']} epochs, train accuracy {last['accuracy']:.3f}, loss "
        f"{last['loss']:.4f} ({spec.labels} labels{target}), test accuracy {test['accuracy']:.3f} "
        f"({record['seconds_this_run']} s)")
    return record


def load_network(spec: NetSpec, split, root: Path, epoch: int | None = None):
    """The trained network (or its state at a kept ``epoch``; 0 is initialisation), in eval mode."""
    import torch

    folder = network_folder(root, spec, split)
    path = folder / ("final.pt" if epoch is None or epoch == spec.epochs else f"epoch{epoch}.pt")
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: train the network first (train_network).")
    model = build_cnn(spec.width, split.x_train.shape[1], split.x_train.shape[2], split.classes, spec.pool_first)
    model.load_state_dict(torch.load(path, weights_only=True, map_location="cpu"))
    return model.eval()


def ablation_curve(model, x, y, layer: str, fractions, *, seed: int = 0, batch_size: int = 1024) -> np.ndarray:
    """Accuracy as a growing random subset of ``layer``'s units is zeroed (cumulative ablation).

    The units are removed in one fixed random order (``seed``), so the subset at a larger
    fraction contains the subset at a smaller one. A conv layer's unit is a whole channel.
    Returns the accuracy at each fraction.
    """
    import torch

    module = dict(model.named_modules()).get(layer)
    if module is None:
        raise ValueError(f"no layer named {layer!r}; the model has {[n for n, _ in model.named_modules() if n]}.")
    mask: list[torch.Tensor] = []

    def hook(_module, _inputs, output):
        shape = (1, -1) + (1,) * (output.dim() - 2)
        return output * mask[0].to(output.device, output.dtype).view(shape)

    probe = {}

    def measure(_module, _inputs, output):
        probe["units"] = output.shape[1]

    handle = module.register_forward_hook(measure)
    with torch.no_grad():
        model.eval()
        model(x[:1].to(next(model.parameters()).device))
    handle.remove()
    units = probe["units"]
    order = torch.from_numpy(np.random.default_rng(seed).permutation(units))
    handle = module.register_forward_hook(hook)
    accs = []
    try:
        for fraction in fractions:
            if not 0.0 <= fraction <= 1.0:
                raise ValueError(f"ablation fractions must lie in [0, 1]; got {fraction!r}.")
            keep = torch.ones(units)
            keep[order[: int(round(fraction * units))]] = 0.0
            mask[:] = [keep]
            accs.append(accuracy(model, x, y, batch_size))
    finally:
        handle.remove()
    return np.array(accs)
