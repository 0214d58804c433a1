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
    """A skorch :class:`~skorch.NeuralNet` with a lean per-batch path.

    Per-epoch logging only; the progress bar is added when ``verbose > 0``.

    skorch's loop is kept (callbacks, history, ``partial_fit``); only work
    that is the same for every batch of an epoch is hoisted out of the batch
    loop:

    - train/eval mode is set once per epoch (in :meth:`run_single_epoch`),
      not once per batch. A callback that switches the mode of (part of) the
      module inside an epoch keeps its switch until the epoch ends, where
      skorch would undo it at the next batch.

    Every batch still notifies ``on_batch_begin`` / ``on_batch_end`` and
    records ``*_loss`` and ``*_batch_size`` in the history, so the epoch's
    ``train_loss``, :class:`~skorch.callbacks.EarlyStopping`,
    :class:`~skorch.callbacks.ProgressBar` and user callbacks work as usual.
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

    def run_single_epoch(self, iterator, training, prefix, step_fn, **fit_params):
        if iterator is None:
            return
        self._set_training(training)
        history = self.history
        loss_key, size_key = prefix + "_loss", prefix + "_batch_size"
        batch_count = 0
        for batch in iterator:
            self.notify("on_batch_begin", batch=batch, training=training)
            step = step_fn(batch, **fit_params)
            history.record_batch(loss_key, step["loss"].item())
            history.record_batch(size_key, len(batch[0]))
            self.notify("on_batch_end", batch=batch, training=training, **step)
            batch_count += 1
        history.record(prefix + "_batch_count", batch_count)

    def validation_step(self, batch, **fit_params):
        # the module is already in eval mode (set by run_single_epoch)
        Xi, yi = batch
        with torch.no_grad():
            y_pred = self.infer(Xi, **fit_params)
            loss = self.get_loss(y_pred, yi, X=Xi, training=False)
        return {"loss": loss, "y_pred": y_pred}

    def train_step_single(self, batch, **fit_params):
        # the module is already in train mode (set by run_single_epoch)
        Xi, yi = batch
        y_pred = self.infer(Xi, **fit_params)
        loss = self.get_loss(y_pred, yi, X=Xi, training=True)
        loss.backward()
        return {"loss": loss, "y_pred": y_pred}


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
