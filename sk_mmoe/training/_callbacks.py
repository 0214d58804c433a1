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
        with torch.no_grad():
            outputs, targets = [], []
            for X, y in _batches(dataset_valid, self.batch_size):
                outputs.append(module(X.to(net.device, torch.float32)))
                targets.append(y)
            losses = net.criterion_.task_losses(
                torch.cat(outputs), torch.cat(targets).to(net.device)
            )
        module.train(was_training)
        for name, loss in zip(self.task_names, losses.tolist()):
            net.history.record(f"valid_loss_{name}", loss)


def _batches(dataset, size):
    """``(X, y)`` batches of a validation set, in order (a streamed one makes its own)."""
    if hasattr(dataset, "batches"):
        yield from dataset.batches(size)
        return
    for start in range(0, len(dataset), size):
        yield dataset.take(slice(start, start + size))


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


class TaskWeightHistory(Callback):
    """Record the task weights each epoch trained with; move DWA to the next epoch.

    Adds ``task_weights`` (a list, one weight per task) to each epoch of
    ``net.history``, for the learned weightings (``"uncertainty"``:
    ``exp(-s_k)``; ``"dwa"``; ``"gradnorm"``: the weights at the epoch's end),
    then calls the criterion's ``end_epoch`` (DWA's weights for the next
    epoch).
    """

    def on_epoch_end(self, net, **kwargs):
        net.history.record("task_weights", net.criterion_.end_epoch().tolist())


class TaskConflict(Callback):
    """Record how the tasks' gradients on the shared parameters agree, each epoch.

    Its ``needs_task_gradients`` makes the net compute each task's gradient
    ``w_k g_k`` (its weighted loss's gradient) on the module's shared
    parameters at every training step. Adds to each epoch of
    ``net.history``:

    - ``task_grad_cosine``: ``(T, T)`` nested list, the cosine similarity of
      each pair of task gradients, averaged over the epoch's batches
      (batches where a task has no label are left out of its entries);
    - ``task_grad_conflict``: ``(T, T)`` nested list, the share of those
      batches where the pair's cosine was negative (the steps where
      ``task_weights="pcgrad"`` projects);
    - ``task_grad_norm``: ``T`` list, each task's gradient norm averaged over
      the batches.
    """

    needs_task_gradients = True

    def on_epoch_begin(self, net, **kwargs):
        self.sums_ = None

    def on_batch_end(self, net, training=False, task_grad_cosine=None, **kwargs):
        if not training or task_grad_cosine is None:
            return
        cosine = task_grad_cosine.detach()
        norms = kwargs["task_grad_norm"].detach()
        finite = torch.isfinite(cosine)
        parts = (
            torch.where(finite, cosine, 0.0),
            finite.to(cosine.dtype),
            (cosine < 0).to(cosine.dtype),
            norms,
        )
        if self.sums_ is None:
            self.sums_ = [part.clone() for part in parts]
        else:
            for total, part in zip(self.sums_, parts):
                total += part

    def on_epoch_end(self, net, **kwargs):
        if getattr(self, "sums_", None) is None:
            return
        cosine, counts, conflicts, norms = self.sums_
        batches = net.history[-1, "train_batch_count"]
        mean = torch.where(counts > 0, cosine / counts.clamp_min(1), float("nan"))
        share = torch.where(counts > 0, conflicts / counts.clamp_min(1), float("nan"))
        net.history.record("task_grad_cosine", mean.tolist())
        net.history.record("task_grad_conflict", share.tolist())
        net.history.record("task_grad_norm", (norms / batches).tolist())
        self.sums_ = None
