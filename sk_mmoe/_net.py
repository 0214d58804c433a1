"""The skorch side: an in-memory dataset, a whole-batch iterator, the net.

skorch runs the training loop; this module only swaps in a fast iterator
(tensor slicing instead of row-by-row collation) and a lean set of default
callbacks. It imports nothing else from the package.
"""

from __future__ import annotations

import contextlib
import warnings

import numpy as np
import torch
from skorch import NeuralNet
from skorch.callbacks import EpochTimer, PassthroughScoring, PrintLog, ProgressBar


class TensorDataset(torch.utils.data.Dataset):
    """Rows of an input tensor ``X (n, d)`` and a target tensor ``y (n, T + 1)``."""

    def __init__(self, X: torch.Tensor, y: torch.Tensor | None = None):
        self.X = X
        self.y = y

    def __len__(self) -> int:
        return len(self.X)

    def __getitem__(self, i):
        return self.X[i], (self.y[i] if self.y is not None else torch.empty(0))


class BatchIterator:
    """Yield ``(X_batch, y_batch)`` tensors by slicing a :class:`TensorDataset`.

    With ``shuffle=True`` a fresh permutation is drawn from torch's
    (forked, seeded) generator each epoch. Batches are cast to float32.
    """

    def __init__(self, dataset: TensorDataset, batch_size: int, shuffle: bool = False):
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = shuffle

    def __len__(self) -> int:
        return -(-len(self.dataset) // self.batch_size)

    def __iter__(self):
        X, y = self.dataset.X, self.dataset.y
        n, size = len(X), self.batch_size
        if self.shuffle:
            perm = torch.randperm(n)
            for start in range(0, n, size):
                idx = perm[start : start + size]
                yield X[idx].float(), (y[idx] if y is not None else None)
        else:
            for start in range(0, n, size):
                stop = start + size
                yield X[start:stop].float(), (y[start:stop] if y is not None else None)


class MMoENet(NeuralNet):
    """A skorch :class:`~skorch.NeuralNet` with lean default callbacks.

    Per-epoch logging only; the progress bar is added when ``verbose > 0``.
    """

    @property
    def _default_callbacks(self):
        callbacks = [
            ("epoch_timer", EpochTimer()),
            ("train_loss", PassthroughScoring(name="train_loss", on_train=True)),
            ("valid_loss", PassthroughScoring(name="valid_loss")),
        ]
        if self.verbose:
            callbacks += [
                ("progress_bar", ProgressBar(detect_notebook=False)),
                ("print_log", PrintLog()),
            ]
        return callbacks


def as_tensor(X: np.ndarray) -> torch.Tensor:
    """A CPU tensor sharing memory with ``X`` where possible (read-only too).

    The tensor is only ever read, so a read-only array (e.g. a memmap) is
    safe to share.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.as_tensor(X)


@contextlib.contextmanager
def seeded(seed: int, device):
    """Run with torch's RNG seeded, restoring the caller's RNG state after."""
    device = torch.device(device)
    if device.type == "cpu":
        fork = torch.random.fork_rng(devices=[])
    else:
        module = getattr(torch, device.type)
        index = device.index if device.index is not None else module.current_device()
        fork = torch.random.fork_rng(devices=[index], device_type=device.type)
    with fork:
        torch.manual_seed(seed)
        yield
