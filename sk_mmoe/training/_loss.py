"""The multi-task training loss (a torch criterion for skorch).

``y_true`` is ``(B, T + 1)``: the ``T`` encoded targets (standardised values
for regression, class indices for classification, NaN where a label is
missing) followed by the per-row sample weight. It may also be ``(B, T)``,
the targets alone, when no label is missing and every weight is 1 (the
training iterator passes that form for such data, which spares the
masking and weighting work on every batch). ``y_pred`` is the network's
concatenated output ``(B, sum C)``. This module imports nothing else from the
package but the task type names.

An ensemble of ``k`` members (``n_members``) gives ``y_pred`` of ``(k * B,
sum C)`` in training, every member's outputs member-major; the targets are
then repeated for each member, so that each task's loss is the mean of the
members' losses. In evaluation mode its ``y_pred`` is the members' mean
``(B, sum C)``, scored as one network's.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .._task_types import BINARY, MULTICLASS, REGRESSION
from ._funnel import FunnelLoss

#: ``method`` values of :class:`MultiTaskLoss` beyond fixed weights
METHODS = ("uncertainty", "dwa", "gradnorm", "pcgrad")


class MultiTaskLoss(FunnelLoss, nn.Module):
    """Weighted sum of per-task losses with missing labels masked out.

    Each task's loss is the sample-weighted mean over the rows where that
    task is labelled: squared error for regression, binary cross-entropy on
    one logit for binary tasks, cross-entropy for multiclass tasks. The total
    is ``sum_k w_k * L_k`` where the weights depend on ``method``:

    - None: the fixed ``task_weights``;
    - ``"uncertainty"``: ``sum_k exp(-s_k) * L_k + s_k`` with a learned
      log-variance ``s_k`` per task (Kendall et al., 2018), summed over the
      tasks labelled in the batch (so ``s_k`` settles at ``log L_k`` however
      rarely task ``k`` is labelled);
    - ``"dwa"``: Dynamic Weight Average (Liu et al., CVPR 2019): at each epoch
      ``w_k = T * softmax_k(r_k / temperature)`` with ``r_k`` the ratio of task
      ``k``'s mean training loss over the last two epochs (all 1 for the first
      two epochs); :meth:`end_epoch` moves to the next epoch;
    - ``"gradnorm"``: GradNorm (Chen et al., ICML 2018): learned weights
      (``gradnorm_weights``, summing to ``T``), trained by the net's step on
      :func:`~sk_mmoe.training._balancing.gradnorm_loss`;
    - ``"pcgrad"``: the fixed weights; the net's step combines the task
      gradients by gradient surgery (Yu et al., NeurIPS 2020).

    In evaluation mode (validation loss, early stopping) the learned methods
    (``"uncertainty"``, ``"dwa"``, ``"gradnorm"``) sum the task losses
    unweighted, so that epochs compare on one scale while the weights move
    (uncertainty's own objective falls as its log-variances grow, and early
    stopping on it let fits overfit).

    Parameters
    ----------
    task_types : list of {"regression", "binary", "multiclass"}
    output_widths : list of int
        Width of each task's block of ``y_pred``.
    task_weights : list of float or None
        Fixed per-task weights (None: all 1). Ignored by the learned methods.
    method : {None, "uncertainty", "dwa", "gradnorm", "pcgrad"}
    dwa_temperature : float
        DWA's temperature: larger is closer to equal weights.
    gradnorm_alpha : float
        GradNorm's asymmetry ``alpha``.
    n_members : int
        Ensemble members ``k``: a ``y_pred`` of ``k`` times the rows of
        ``y_true`` holds each member's outputs (member-major), and each task's
        loss is the mean of its members' losses.
    sequence : sequence of int
        A funnel (``task_sequence``): indices of binary tasks in funnel order,
        or empty for none. Each step's logit is that of its probability given
        the earlier step; step ``j``'s loss (after the first) is the binary
        cross-entropy of the joint probability ``P(steps 1..j)``, the product
        of the conditionals, against step ``j``'s label, over every row
        labelled for step ``j`` (ESMM, Ma et al., SIGIR 2018). The first
        step's loss is its ordinary one.
    """

    def __init__(
        self,
        task_types,
        output_widths,
        task_weights=None,
        method=None,
        dwa_temperature=2.0,
        gradnorm_alpha=1.5,
        n_members=1,
        sequence=(),
    ):
        super().__init__()
        if method is not None and method not in METHODS:
            raise ValueError(f"method must be None or one of {METHODS}, got {method!r}.")
        n_tasks = len(task_types)
        self.n_tasks = n_tasks
        self.n_members = int(n_members)
        self.method = method
        self.dwa_temperature = float(dwa_temperature)
        self.gradnorm_alpha = float(gradnorm_alpha)
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
        learned = method in ("uncertainty", "dwa", "gradnorm")
        weights = (
            [1.0] * n_tasks
            if task_weights is None or learned
            else [float(w) for w in task_weights]
        )
        # the fixed weights; DWA's current ones (updated by end_epoch)
        self.register_buffer("task_weights", torch.tensor(weights, dtype=torch.float32))
        self._init_method_state(method, n_tasks)
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
        self._init_funnel(sequence, task_types, starts)
        # every task a regression of width 1 with weight 1: with unweighted
        # y_true the loss is one fused mse_loss
        self._plain_mse = (
            method in (None, "pcgrad")
            and len(reg) == n_tasks
            and sum(int(w) for w in output_widths) == n_tasks
            and all(w == 1.0 for w in weights)
        )

    def _init_method_state(self, method, n_tasks):
        """The learned weights and running statistics of the weighting ``method``."""
        uncertainty = method == "uncertainty"
        self.log_vars = nn.Parameter(torch.zeros(n_tasks)) if uncertainty else None
        if method == "dwa":
            # mean task losses of the last two epochs (NaN: not trained yet),
            # and this epoch's running sum and count of batch losses
            self.register_buffer("dwa_losses", torch.full((2, n_tasks), float("nan")))
            self.register_buffer("epoch_loss_sum", torch.zeros(n_tasks))
            self.register_buffer("epoch_batches", torch.zeros(n_tasks))
        self.gradnorm_weights = nn.Parameter(torch.ones(n_tasks)) if method == "gradnorm" else None
        if method == "gradnorm":
            # each task's loss on the first batch that labels it (NaN: none yet)
            self.register_buffer("initial_losses", torch.full((n_tasks,), float("nan")))

    @property
    def needs_task_gradients(self) -> bool:
        """Whether training needs each task's gradient (GradNorm, PCGrad)."""
        return self.method in ("gradnorm", "pcgrad")

    def task_losses(self, y_pred: torch.Tensor, y_true: torch.Tensor) -> torch.Tensor:
        """Per-task weighted mean losses ``(T,)``; 0 for a task with no label."""
        return self.labelled_task_losses(y_pred, y_true)[0]

    def labelled_task_losses(self, y_pred: torch.Tensor, y_true: torch.Tensor):
        """:meth:`task_losses` and which tasks have a label (bool ``(T,)``, None: all)."""
        y_true = self._member_targets(y_pred, y_true)
        if y_true.shape[1] == self.n_tasks:
            # targets alone: no label missing, every weight 1
            return self._row_losses(y_pred, y_true).mean(0), None
        targets = y_true[:, : self.n_tasks]  # (B, T)
        weight = y_true[:, self.n_tasks]  # (B,)
        labelled = targets == targets  # (B, T), False where NaN
        losses = self._row_losses(y_pred, torch.where(labelled, targets, 0.0))
        row_weight = labelled * weight.unsqueeze(1)  # (B, T)
        total = row_weight.sum(0)  # (T,)
        present = total > 0
        # a task without a label divides 0 by 1, not by a tiny clamp: the
        # backward pass would scale its zero by 1 / tiny, and any weight above
        # about 4 overflows that to inf * 0 = NaN
        mean = (losses * row_weight).sum(0) / torch.where(present, total, 1.0)
        return mean, present

    def _member_targets(self, y_pred: torch.Tensor, y_true: torch.Tensor) -> torch.Tensor:
        """``y_true (B, .)`` repeated for each member when ``y_pred`` is ``(k * B, .)``.

        Every row's weight is repeated too, so the weighted mean over the
        ``k * B`` rows of a task is the mean over the members of each
        member's weighted mean: the mean of the members' losses.
        """
        if self.n_members > 1 and y_pred.shape[0] == self.n_members * y_true.shape[0]:
            # (B, T + 1) -> (k * B, T + 1), member-major like y_pred
            return y_true.repeat(self.n_members, 1)
        return y_true

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
        if self.funnel_steps is not None:
            losses = self._funnel_losses(y_pred, targets, losses)
        return losses

    def weights(self) -> torch.Tensor:
        """The factor of each task's loss in the training loss ``(T,)``, detached."""
        if self.method == "uncertainty":
            return torch.exp(-self.log_vars.detach())
        if self.method == "gradnorm":
            return self.gradnorm_weights.detach()
        return self.task_weights

    def total(self, losses: torch.Tensor, present: torch.Tensor | None = None) -> torch.Tensor:
        """The loss from the task losses ``(T,)`` (see the class docstring).

        In training mode ``"dwa"`` also adds the batch's losses of the
        labelled tasks (``present``; None: all) to the epoch's means.
        """
        if self.method in ("uncertainty", "dwa", "gradnorm") and not self.training:
            # validation: one scale for every epoch, whatever the weights did
            return losses.sum()
        if self.log_vars is not None:
            terms = torch.exp(-self.log_vars) * losses + self.log_vars  # (T,)
            if present is not None:
                # a task without a label in the batch adds nothing, its
                # log-variance included: else ``s_k`` is pushed up in every
                # such batch and settles at ``log(f_k L_k)`` instead of
                # ``log L_k``, with ``f_k`` the share of batches labelling it
                terms = torch.where(present, terms, 0.0)
            return terms.sum()
        if self.method == "dwa":
            with torch.no_grad():
                counted = 1.0 if present is None else present.to(losses.dtype)
                self.epoch_loss_sum += losses.detach() * counted
                self.epoch_batches += counted
        return (self.weights() * losses).sum()

    def forward(self, y_pred: torch.Tensor, y_true: torch.Tensor) -> torch.Tensor:
        y_true = self._member_targets(y_pred, y_true)
        if self._plain_mse and y_true.shape[1] == self.n_tasks:
            # sum over tasks of the mean squared error, in one op
            return F.mse_loss(y_pred, y_true, reduction="sum") / len(y_true)
        return self.total(*self.labelled_task_losses(y_pred, y_true))

    @torch.no_grad()
    def end_epoch(self):
        """DWA: the next epoch's weights from the mean task losses of the last two.

        A task without a label in an epoch keeps its previous mean. Returns
        the weights ``(T,)`` the epoch just ended trained with (for the other
        methods, :meth:`weights` as they are).
        """
        used = self.weights().clone()
        if self.method != "dwa":
            return used
        batches = self.epoch_batches
        mean = torch.where(
            batches > 0, self.epoch_loss_sum / batches.clamp_min(1), self.dwa_losses[1]
        )
        self.dwa_losses[0] = self.dwa_losses[1]
        self.dwa_losses[1] = mean
        self.epoch_loss_sum.zero_()
        self.epoch_batches.zero_()
        previous, last = self.dwa_losses
        if bool(torch.isfinite(self.dwa_losses).all()):
            ratio = last / previous.clamp_min(torch.finfo(previous.dtype).tiny)  # (T,)
            self.task_weights.copy_(
                self.n_tasks * torch.softmax(ratio / self.dwa_temperature, dim=0)
            )
        return used

    @torch.no_grad()
    def start_gradnorm_step(self, losses: torch.Tensor, present: torch.Tensor):
        """GradNorm: remember each task's first loss (``L_k(0)``) as it is labelled."""
        first = torch.isnan(self.initial_losses) & present
        self.initial_losses.copy_(
            torch.where(
                first,
                losses.detach().clamp_min(torch.finfo(losses.dtype).tiny),
                self.initial_losses,
            )
        )

    @torch.no_grad()
    def after_step(self):
        """GradNorm: renormalise the weights to sum to ``T`` after an optimizer step.

        Weights are kept positive (at least ``1e-3`` before renormalising).
        """
        if self.method == "gradnorm":
            w = self.gradnorm_weights.clamp_(min=1e-3)
            w.mul_(self.n_tasks / w.sum())


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
