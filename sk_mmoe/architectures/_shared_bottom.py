"""Shared-Bottom: one MLP shared by all tasks under the task towers."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..nn._modules import BatchedMLP, MultiTaskModule


class SharedBottom(MultiTaskModule):
    """``y_k = h_k(f(x))``: one shared MLP ``f``, one tower ``h_k`` per task.

    Parameters
    ----------
    n_features : int
        Input width ``d``.
    output_widths : sequence of int
        Width of each task's output (1, or ``C`` for a ``C``-class task).
    expert_units : sequence of int
        Hidden widths of the shared MLP; the last one feeds the towers.
    tower_units : sequence of int
        Hidden widths of each task tower; may be empty.
    activation : str
        A key of ``ACTIVATIONS``.
    dropout : float
        Dropout after every hidden layer.
    """

    def __init__(
        self,
        n_features: int,
        output_widths: Sequence[int],
        expert_units: Sequence[int] = (64,),
        tower_units: Sequence[int] = (32,),
        activation: str = "relu",
        dropout: float = 0.0,
    ):
        super().__init__()
        # a batch of one MLP, so the bottom shares the experts' code
        self.experts = BatchedMLP(1, n_features, expert_units, activation, dropout, True)
        self._add_towers(int(expert_units[-1]), output_widths, tower_units, activation, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Task outputs ``(B, sum C)`` for input ``(B, d)``.

        Parameters
        ----------
        x : torch.Tensor of shape (B, d)
            Input rows.

        Returns
        -------
        out : torch.Tensor of shape (B, sum C)
            Each task's outputs (logits for classification tasks), side by side.
        """
        bottom = self.experts(x)  # (B, 1, H)
        # (B, 1, H) -> (1, B, H) -> (T, B, H)
        return self._towers_forward(bottom.transpose(0, 1).expand(self.n_tasks, -1, -1))

    def _emit_onnx(self, builder, x):
        """Shared-Bottom: ``(B, d)`` -> ``(B, sum C)``."""
        from .._onnx_graph import (  # needs onnx: imported on export only
            batched_mlp_shared_kfirst,
            expand_to_tasks,
            towers,
        )

        bottom = batched_mlp_shared_kfirst(builder, self.experts, x)  # (1, B, H)
        return towers(builder, self, expand_to_tasks(builder, self, bottom, 1))
