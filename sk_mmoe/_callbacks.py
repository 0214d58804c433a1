"""skorch callbacks the estimators add to their net."""

from __future__ import annotations

import numpy as np
import torch
from skorch.callbacks import Callback


class TaskValidationLoss(Callback):
    """Record each task's validation loss in the history every epoch.

    Adds ``valid_loss_<task name>`` to each epoch of ``net.history``: the
    task's loss (the same per-task loss that training minimises, before task
    weighting) over the whole validation split.

    Parameters
    ----------
    task_names : list of str
    batch_size : int
        Rows per forward pass.
    """

    def __init__(self, task_names, batch_size=4096):
        self.task_names = task_names
        self.batch_size = batch_size

    def on_epoch_end(self, net, dataset_valid=None, **kwargs):
        if dataset_valid is None:
            return
        module = net.module_
        was_training = module.training
        module.eval()
        n, size = len(dataset_valid), self.batch_size
        with torch.no_grad():
            outputs, targets = [], []
            for start in range(0, n, size):
                X, y = dataset_valid.take(slice(start, start + size))
                outputs.append(module(X.to(net.device, torch.float32)))
                targets.append(y)
            losses = net.criterion_.task_losses(
                torch.cat(outputs), torch.cat(targets).to(net.device)
            )
        module.train(was_training)
        for name, loss in zip(self.task_names, losses.tolist()):
            net.history.record(f"valid_loss_{name}", loss)


class DivergenceGuard(Callback):
    """Stop training with a clear error when the loss blows up.

    Raises ``ValueError`` at the end of an epoch whose training loss is not
    finite, or exceeds ``factor`` times ``baseline``: the loss of predicting
    each task's mean / class frequencies, known in advance because targets
    are standardised (1 per regression task, ``log C`` per ``C``-class task).

    Parameters
    ----------
    baseline : float or None
        None checks finiteness only (e.g. learned task weights).
    lr : float
        Named in the message.
    factor : float
    """

    def __init__(self, baseline, lr, factor=1e6):
        self.baseline = baseline
        self.lr = lr
        self.factor = factor

    def on_epoch_end(self, net, **kwargs):
        loss = net.history[-1, "train_loss"]
        too_large = self.baseline is not None and loss > self.factor * self.baseline
        if np.isfinite(loss) and not too_large:
            return
        what = f"became {loss}" if not np.isfinite(loss) else f"reached {loss:.3g}"
        raise ValueError(
            f"Training diverged: the training loss {what} at epoch {len(net.history)} "
            f"(a constant prediction scores about {self.baseline or 1:.3g}). Lower the "
            f"learning rate (lr={self.lr}) or standardise X (e.g. StandardScaler in "
            "a Pipeline)."
        )
