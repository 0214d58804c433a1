"""The multi-task training loss (a torch criterion for skorch).

``y_true`` is ``(B, T + 1)``: the ``T`` encoded targets (standardised values
for regression, class indices for classification, NaN where a label is
missing) followed by the per-row sample weight. It may also be ``(B, T)``,
the targets alone, when no label is missing and every weight is 1 (the
training iterator passes that form for such data, which spares the
masking and weighting work on every batch). ``y_pred`` is the network's
concatenated output ``(B, sum C)``. This module imports nothing else from the
package but the task type names.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ._task_types import BINARY, MULTICLASS, REGRESSION


class MultiTaskLoss(nn.Module):
    """Weighted sum of per-task losses with missing labels masked out.

    Each task's loss is the sample-weighted mean over the rows where that
    task is labelled: squared error for regression, binary cross-entropy on
    one logit for binary tasks, cross-entropy for multiclass tasks. The total
    is ``sum_k w_k * L_k``, or with ``uncertainty=True``
    ``sum_k exp(-s_k) * L_k + s_k`` with a learned log-variance ``s_k`` per
    task (Kendall et al., 2018).

    Parameters
    ----------
    task_types : list of {"regression", "binary", "multiclass"}
    output_widths : list of int
        Width of each task's block of ``y_pred``.
    task_weights : list of float or None
        Fixed per-task weights (None: all 1). Ignored when ``uncertainty``.
    uncertainty : bool
        Learn the task weights as homoscedastic uncertainties.
    """

    def __init__(self, task_types, output_widths, task_weights=None, uncertainty=False):
        super().__init__()
        n_tasks = len(task_types)
        self.n_tasks = n_tasks
        starts = [0]
        for width in output_widths[:-1]:
            starts.append(starts[-1] + int(width))
        reg = [t for t, k in enumerate(task_types) if k == REGRESSION]
        binary = [t for t, k in enumerate(task_types) if k == BINARY]
        self.multiclass = [
            (t, starts[t], int(output_widths[t]))
            for t, k in enumerate(task_types)
            if k == MULTICLASS
        ]
        order = reg + binary + [t for t, _, _ in self.multiclass]
        self.register_buffer("reg_task", torch.tensor(reg, dtype=torch.long))
        self.register_buffer("reg_col", torch.tensor([starts[t] for t in reg], dtype=torch.long))
        self.register_buffer("bin_task", torch.tensor(binary, dtype=torch.long))
        self.register_buffer(
            "bin_col", torch.tensor([starts[t] for t in binary], dtype=torch.long)
        )
        # columns of the grouped loss matrix back in task order
        self.register_buffer("inverse_order", torch.argsort(torch.tensor(order, dtype=torch.long)))
        weights = [1.0] * n_tasks if task_weights is None else [float(w) for w in task_weights]
        self.register_buffer("task_weights", torch.tensor(weights, dtype=torch.float32))
        self.log_vars = nn.Parameter(torch.zeros(n_tasks)) if uncertainty else None
        # The same selections as plain slices where they are contiguous (the
        # common case): a view costs far less than an indexed copy, in the
        # forward pass and in autograd, and the loss runs once per batch.
        self._reg_cols = _slice([starts[t] for t in reg])
        self._reg_tasks = _slice(reg)
        # binary columns only when they are all of y_pred: BCE's backward
        # rounds differently on a strided view than on the contiguous copy
        self._bin_cols = _slice([starts[t] for t in binary], whole=sum(output_widths))
        self._bin_tasks = _slice(binary)
        self._in_order = order == list(range(n_tasks))
        # every task a regression of width 1 with weight 1: with unweighted
        # y_true the loss is one fused mse_loss
        self._plain_mse = (
            not uncertainty
            and len(reg) == n_tasks
            and sum(int(w) for w in output_widths) == n_tasks
            and all(w == 1.0 for w in weights)
        )

    def task_losses(self, y_pred: torch.Tensor, y_true: torch.Tensor) -> torch.Tensor:
        """Per-task weighted mean losses ``(T,)``; 0 for a task with no label."""
        if y_true.shape[1] == self.n_tasks:
            # targets alone: no label missing, every weight 1
            return self._row_losses(y_pred, y_true).mean(0)
        targets = y_true[:, : self.n_tasks]  # (B, T)
        weight = y_true[:, self.n_tasks]  # (B,)
        labelled = targets == targets  # (B, T), False where NaN
        losses = self._row_losses(y_pred, torch.where(labelled, targets, 0.0))
        row_weight = labelled * weight.unsqueeze(1)  # (B, T)
        total = row_weight.sum(0)
        return (losses * row_weight).sum(0) / total.clamp_min(torch.finfo(total.dtype).tiny)

    def _row_losses(self, y_pred: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Unweighted losses ``(B, T)`` in task order; ``targets (B, T)`` has no NaN."""
        blocks = []
        if len(self.reg_task):
            pred = _take(y_pred, self._reg_cols, self.reg_col)  # (B, T_reg)
            diff = pred - _take(targets, self._reg_tasks, self.reg_task)
            blocks.append(diff * diff)
        if len(self.bin_task):
            blocks.append(
                F.binary_cross_entropy_with_logits(
                    _take(y_pred, self._bin_cols, self.bin_col),
                    _take(targets, self._bin_tasks, self.bin_task),
                    reduction="none",
                )
            )
        for t, start, width in self.multiclass:
            logits = y_pred[:, start : start + width]  # (B, C_t)
            ce = F.cross_entropy(logits, targets[:, t].long(), reduction="none")
            blocks.append(ce.unsqueeze(1))
        # (B, T) in task order
        losses = blocks[0] if len(blocks) == 1 else torch.cat(blocks, dim=1)
        if not self._in_order:
            losses = losses.index_select(1, self.inverse_order)
        return losses

    def forward(self, y_pred: torch.Tensor, y_true: torch.Tensor) -> torch.Tensor:
        if self._plain_mse and y_true.shape[1] == self.n_tasks:
            # sum over tasks of the mean squared error, in one op
            return F.mse_loss(y_pred, y_true, reduction="sum") / len(y_true)
        losses = self.task_losses(y_pred, y_true)
        if self.log_vars is not None:
            return (torch.exp(-self.log_vars) * losses + self.log_vars).sum()
        return (self.task_weights * losses).sum()


def _slice(columns, whole=None):
    """``slice`` equal to the index list ``columns`` if it is contiguous, else None.

    With ``whole``, only a slice over all ``whole`` columns is returned.
    """
    if not columns or columns != list(range(columns[0], columns[0] + len(columns))):
        return None
    if whole is not None and (columns[0] != 0 or len(columns) != whole):
        return None
    return slice(columns[0], columns[0] + len(columns))


def _take(matrix: torch.Tensor, columns: slice | None, index: torch.Tensor) -> torch.Tensor:
    """Columns of ``matrix``: a view for a contiguous ``columns`` slice, else a copy."""
    if columns is None:
        return matrix.index_select(1, index)
    if columns.start == 0 and columns.stop == matrix.shape[1]:
        return matrix
    return matrix[:, columns]
