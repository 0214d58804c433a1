"""Funnel tasks (``task_sequence``, ESMM): the target side and the loss side.

A funnel is a sequence of binary tasks (click, then conversion, ...) where a
later step can only be positive where every earlier one is. The network
outputs each step's conditional logit; :class:`FunnelTargets` (a base of
``TaskEncoder``) checks the sequence and the labels and turns conditionals
into joint probabilities; :class:`FunnelLoss` (a base of ``MultiTaskLoss``)
trains each later step on its joint probability over all rows (Ma et al.,
SIGIR 2018, "Entire Space Multi-Task Model").
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .._task_types import BINARY, REGRESSION


class FunnelTargets:
    """The funnel methods of ``TaskEncoder`` (``self.sequence``: task indices, or ())."""

    def resolve_sequence(self, task_sequence, target_names):
        """The task indices of ``task_sequence`` (names of ``target_names``); () for None.

        Raises ``ValueError`` for an unknown or repeated name, fewer than two
        steps, or a step that is not a binary task (after :meth:`fit`).
        """
        if task_sequence is None:
            return ()
        names = [str(n) for n in target_names]
        steps = list(task_sequence)
        if isinstance(task_sequence, str) or len(steps) < 2:
            raise ValueError(
                f"task_sequence must list at least 2 task names in funnel order, "
                f"got {task_sequence!r}."
            )
        unknown = [n for n in steps if not isinstance(n, str) or n not in names]
        if unknown:
            raise ValueError(
                f"task_sequence names {unknown}, which are not tasks; the tasks are {names}."
            )
        if len(set(steps)) != len(steps):
            raise ValueError(f"task_sequence repeats a task: {steps}.")
        sequence = tuple(names.index(n) for n in steps)
        for j in sequence:
            if self.task_types[j] != BINARY:
                classes = (
                    ""
                    if self.task_types[j] == REGRESSION
                    else (f" with classes {self.encoders_[j].classes_.tolist()}")
                )
                raise ValueError(
                    f"task_sequence step {names[j]!r} is a {self.task_types[j]} task"
                    f"{classes}; every funnel step must be a binary task."
                )
        return sequence

    def check_sequence_labels(self, encoded):
        """Raise ``ValueError`` where a later funnel step is positive and an earlier one negative.

        ``encoded`` is :meth:`transform`'s matrix (1 for the positive class,
        NaN where missing); a missing label contradicts nothing.
        """
        for position, later in enumerate(self.sequence):
            for earlier in self.sequence[:position]:
                bad = (encoded[:, later] == 1) & (encoded[:, earlier] == 0)
                n_bad = int(bad.sum())
                if n_bad:
                    positive = self.encoders_[later].classes_.tolist()[1]
                    negative = self.encoders_[earlier].classes_.tolist()[0]
                    raise ValueError(
                        f"task_sequence: {n_bad} row(s) have task {self.names[later]} "
                        f"positive ({positive!r}) but the earlier step {self.names[earlier]} "
                        f"negative ({negative!r}); a later step can only be positive "
                        "where every earlier one is."
                    )

    def _joint(self, proba):
        """The joint probability ``(n,)`` of each funnel step from the per-task ``proba``."""
        joint = [proba[self.sequence[0]][:, 1]]
        for j in self.sequence[1:]:
            joint.append(joint[-1] * proba[j][:, 1])
        return joint

    def _decode_funnel(self, blocks):
        """:meth:`decode` with a funnel: a later step is positive where its joint exceeds 0.5."""
        labels = [self._decode_task(j, block) for j, block in enumerate(blocks)]
        proba = {j: self.probabilities(j, blocks[j]) for j in self.sequence}
        joint = self._joint(proba)
        for j, p in zip(self.sequence[1:], joint[1:]):
            labels[j] = self.encoders_[j].classes_[(p > 0.5).astype(np.intp)]
        return labels


class FunnelLoss:
    """The funnel methods of ``MultiTaskLoss``."""

    def _init_funnel(self, sequence, task_types, starts):
        """Buffers of the funnel ``sequence`` (task indices); None without one."""
        sequence = [int(t) for t in sequence]
        # None: no funnel (a None buffer is not in the state dict)
        self.register_buffer("funnel_steps", None)
        self.register_buffer("funnel_cols", None)
        if not sequence:
            return
        if len(set(sequence)) != len(sequence) or len(sequence) < 2:
            raise ValueError(f"a funnel needs at least 2 distinct tasks, got {sequence}.")
        not_binary = [t for t in sequence if task_types[t] != BINARY]
        if not_binary:
            raise ValueError(
                f"every funnel step must be a binary task; tasks {not_binary} are not."
            )
        self.funnel_steps = torch.tensor(sequence, dtype=torch.long)
        self.funnel_cols = torch.tensor([starts[t] for t in sequence], dtype=torch.long)

    def _funnel_losses(self, y_pred: torch.Tensor, targets: torch.Tensor, losses: torch.Tensor):
        """``losses (B, T)`` with each later funnel step's loss replaced by ESMM's.

        For the steps' conditional logits ``z_1..z_k`` the joint probability
        of steps ``1..j`` is ``P_j = prod_{i<=j} sigmoid(z_i)``, kept as logs:
        ``log P_j = sum_{i<=j} logsigmoid(z_i)`` and, by
        ``1 - P_j = (1 - P_{j-1}) + P_{j-1} (1 - sigmoid(z_j))``,
        ``log(1 - P_j) = logaddexp(log(1 - P_{j-1}), log P_{j-1} + logsigmoid(-z_j))``
        from ``log(1 - P_1) = logsigmoid(-z_1)``. Every term stays finite
        however large the logits: ``log1mexp(log P_j)`` would give ``-inf``
        (and a NaN gradient) once ``log P_j`` rounds to 0. The loss of step
        ``j`` is ``-(y_j log P_j + (1 - y_j) log(1 - P_j))``.
        """
        logits = y_pred.index_select(1, self.funnel_cols)  # (B, k) conditional logits
        labels = targets.index_select(1, self.funnel_steps)  # (B, k), 0 / 1
        log_yes = F.logsigmoid(logits)  # (B, k): log sigmoid(z_i)
        log_no = F.logsigmoid(-logits)  # (B, k): log (1 - sigmoid(z_i))
        log_joint = log_yes[:, 0]  # (B,): log P_1
        log_not_joint = log_no[:, 0]  # (B,): log (1 - P_1)
        later = []
        for j in range(1, logits.shape[1]):  # the funnel's steps: a handful
            log_not_joint = torch.logaddexp(log_not_joint, log_joint + log_no[:, j])
            log_joint = log_joint + log_yes[:, j]
            y = labels[:, j]
            later.append(-(y * log_joint + (1.0 - y) * log_not_joint))
        # (B, k - 1) written over the later steps' ordinary losses
        return losses.index_copy(1, self.funnel_steps[1:], torch.stack(later, dim=1))
