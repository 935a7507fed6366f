"""Measures that a summary cannot give exactly but batches can estimate: debiased linear
CKA by the unbiased HSIC of each batch, averaged over batches, then normalised (Nguyen,
Raghu & Kornblith 2021), for every pair of recorded layers at once, on the device. The
HSIC itself is :func:`ccalens.core.hsic.hsic_unbiased_centred`, the estimator
:class:`ccalens.MinibatchCKA` uses for one pair."""

from __future__ import annotations

import numpy as np

from ..core.hsic import hsic_unbiased_centred

__all__ = ["LayerMinibatchCKA"]


class LayerMinibatchCKA:
    """Unbiased HSIC (Song et al. 2012) of every layer pair, summed over batches.

    The estimator is exactly invariant to a shift of the features (it U-centres the
    kernels), so each layer is centred on its batch before the kernels are formed: uncentred
    features (logits, post-ReLU units) otherwise lose digits to cancellation, and centred
    kernels need only their traces and row norms (:func:`hsic_unbiased_centred`).
    """

    def __init__(self):
        self.hsic = None
        self.batches = 0
        self.held = None

    def add(self, mats) -> None:
        """Hold each batch until the next arrives: a batch of fewer than 4 rows (a dataset's
        short last batch) joins the one before it, since the unbiased HSIC needs 4."""
        import torch

        if self.held is not None and int(mats[0].shape[0]) < 4:
            self.held = [torch.cat([h, x]) for h, x in zip(self.held, mats)]
            return
        if self.held is not None:
            self._add(self.held)
        self.held = list(mats)

    def _add(self, mats) -> None:
        import torch

        n = int(mats[0].shape[0])
        if n < 4:
            raise ValueError(f"cka_minibatch needs at least 4 datapoints per batch (unbiased HSIC); the data hold "
                             f"{n}. Pass more datapoints.")
        kernels = []
        for x in mats:
            x = x.to(torch.float64)
            x = x - x.mean(dim=0)
            kernels.append(x @ x.T)
        k = torch.stack(kernels)  # (L, n, n)
        del kernels
        flat = k.reshape(len(mats), -1)
        traces = flat @ flat.T  # tr(K_i K_j) (symmetric K)
        norms = torch.diagonal(k, dim1=1, dim2=2)  # each datapoint's squared norm, (L, n)
        h = hsic_unbiased_centred(traces, norms, norms)
        self.hsic = h if self.hsic is None else self.hsic + h
        self.batches += 1

    def finish(self) -> None:
        if self.held is not None:
            self._add(self.held)
            self.held = None

    def values(self) -> np.ndarray:
        h = self.hsic.cpu().numpy()
        d = np.sqrt(np.clip(np.diag(h), 0.0, None))
        with np.errstate(divide="ignore", invalid="ignore"):
            out = h / np.outer(d, d)
        return out
