"""Mixture-of-experts networks: MMoE (one gate per task) and MoE (one shared gate)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..nn._modules import (
    BatchedMLP,
    MultiTaskModule,
    _drop_experts,
    _linear_pair,
    _mix_experts,
    _softmax,
)


class MixtureOfExperts(MultiTaskModule):
    """Experts shared by all tasks, mixed by softmax gates, one tower per task.

    With ``per_task_gates=True`` this is MMoE (Ma et al., KDD 2018): task
    ``k`` reads ``sum_i g_k(x)_i f_i(x)``. With ``False`` it is the one-gate
    MoE baseline: every task reads the same mixture.

    Parameters
    ----------
    n_features : int
        Input width ``d``.
    output_widths : sequence of int
        One entry per task: 1 for regression and binary tasks, ``C`` for a
        ``C``-class task.
    per_task_gates : bool
        One gate per task (MMoE) or one gate for all (MoE).
    n_experts : int
        Number of experts ``E``.
    expert_units : sequence of int
        Hidden widths of each expert; the last one is the expert output width.
    tower_units : sequence of int
        Hidden widths of each task tower; may be empty.
    activation : str
        A key of ``ACTIVATIONS``.
    dropout : float
        Dropout after every hidden layer of the experts and towers.
    gate_dropout : float
        Probability of dropping an expert from a gate's mixture during
        training; the remaining gate weights are renormalised to sum to 1.
    gate_entropy_bonus : float
        Weight of the gates' entropy, subtracted from the training loss (see
        ``MultiTaskModule.auxiliary_loss``).

    Notes
    -----
    ``forward(x)`` maps ``(B, d)`` to the concatenated task outputs
    ``(B, sum(output_widths))``; ``gate_weights(x)`` returns ``(B, T, E)``.
    """

    has_gates = True

    def __init__(
        self,
        n_features: int,
        output_widths: Sequence[int],
        per_task_gates: bool = True,
        n_experts: int = 8,
        expert_units: Sequence[int] = (64,),
        tower_units: Sequence[int] = (32,),
        activation: str = "relu",
        dropout: float = 0.0,
        gate_dropout: float = 0.0,
        gate_entropy_bonus: float = 0.0,
    ):
        super().__init__()
        n_tasks = len(output_widths)
        self.gate_dropout = float(gate_dropout)
        self.gate_entropy_bonus = float(gate_entropy_bonus)
        self.n_experts = int(n_experts)
        self.expert_names = [f"expert_{e}" for e in range(self.n_experts)]
        self.experts = BatchedMLP(
            self.n_experts, n_features, expert_units, activation, dropout, shared_input=True
        )
        n_gates = n_tasks if per_task_gates else 1
        # all gates in one Linear: (B, d) -> (B, G * E)
        self.gates = nn.Linear(n_features, n_gates * self.n_experts)
        self._add_towers(int(expert_units[-1]), output_widths, tower_units, activation, dropout)

    def _first_layer(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The experts' first layer ``(B, E * H)`` and the gate logits ``(B, G * E)``.

        One stacked matmul in eval mode, for batch invariance (``_linear_pair``).
        """
        return _linear_pair(x, self.experts.first, self.gates, self.training)

    def _mix(self, logits: torch.Tensor) -> torch.Tensor:
        """Gate mixtures ``(B, G, E)`` from logits ``(B, G * E)``, rows summing to 1."""
        # (B, G * E) -> (B, G, E)
        weights = _softmax(logits.view(logits.shape[0], -1, self.n_experts))
        self._add_gate_entropy(weights, logits.shape[0])
        if self.training and self.gate_dropout > 0:
            weights = _drop_experts(weights, self.gate_dropout)
        return weights

    def gate_weights(self, x: torch.Tensor, level: int = -1) -> torch.Tensor:
        """Each task's gate weights over the experts.

        Parameters
        ----------
        x : torch.Tensor of shape (B, d)
            Input rows.
        level : {0, -1}, default=-1
            The one level of gates.

        Returns
        -------
        weights : torch.Tensor of shape (B, T, E)
            Rows summing to 1; every task's row is the same for ``"moe"``.
        """
        if level not in (0, -1):
            raise ValueError(f"level must be 0 or -1 for this one-level network, got {level}.")
        weights = self._mix(self._first_layer(x)[1])
        # (B, G, E) -> (B, T, E); G is 1 for "moe"
        return weights.expand(-1, self.n_tasks, -1)

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
        first, logits = self._first_layer(x)
        experts = self.experts.forward_from_first(first)  # (B, E, H)
        # (B, G, E) x (B, E, H) -> (B, G, H) -> (G, B, H)
        mixed = _mix_experts(self._mix(logits), experts).transpose(0, 1)
        # (G, B, H) -> (T, B, H) by broadcasting when G == 1
        return self._towers_forward(mixed.expand(self.n_tasks, -1, -1))

    def _emit_onnx(self, builder, x):
        """MMoE / MoE: ``(B, d)`` -> ``(B, sum C)``."""
        from .._onnx_graph import (  # needs onnx: imported on export only
            batched_mlp_shared_kfirst,
            emit,
            expand_to_tasks,
            towers,
        )

        experts = builder.node(
            "Transpose", [batched_mlp_shared_kfirst(builder, self.experts, x)], perm=[1, 0, 2]
        )  # (E, B, H) -> (B, E, H)
        n_gates = self.gates.out_features // self.n_experts
        logits = emit(builder, self.gates, x)  # (B, G * E)
        logits = builder.node("Reshape", [logits, builder.shape([-1, n_gates, self.n_experts])])
        weights = builder.node("Softmax", [logits], "gate_weights", axis=-1)  # (B, G, E)
        mixed = builder.node("MatMul", [weights, experts], "mixed")  # (B, G, H)
        mixed = builder.node("Transpose", [mixed], perm=[1, 0, 2])  # (G, B, H)
        return towers(builder, self, expand_to_tasks(builder, self, mixed, n_gates))
