"""skorch callbacks the estimators add to their net."""

from __future__ import annotations

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
        X, y = dataset_valid.X, dataset_valid.y
        module = net.module_
        was_training = module.training
        module.eval()
        with torch.no_grad():
            outputs = torch.cat(
                [
                    module(X[i : i + self.batch_size].to(net.device, torch.float32))
                    for i in range(0, len(X), self.batch_size)
                ]
            )
            losses = net.criterion_.task_losses(outputs, y.to(net.device))
        module.train(was_training)
        for name, loss in zip(self.task_names, losses.tolist()):
            net.history.record(f"valid_loss_{name}", loss)
