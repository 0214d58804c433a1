"""Torch modules: batched experts, gates and towers for the three architectures.

This module imports nothing else from the package. Shapes use ``B`` for the
batch, ``d`` for input features, ``E`` for experts, ``G`` for gates, ``T`` for
tasks, ``H`` for a hidden width and ``C`` for an output width.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

ACTIVATIONS = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "selu": nn.SELU,
    "leaky_relu": nn.LeakyReLU,
    "sigmoid": nn.Sigmoid,
}

ARCHITECTURES = ("mmoe", "moe", "shared_bottom")


class BatchedLinear(nn.Module):
    """``k`` independent linear maps applied in one batched matmul.

    Input ``(B, k, in_features)``, output ``(B, k, out_features)``. Each of
    the ``k`` maps is initialised like :class:`torch.nn.Linear`
    (uniform in ``±1/sqrt(in_features)``), independently of the others.
    """

    def __init__(self, k: int, in_features: int, out_features: int):
        super().__init__()
        bound = 1.0 / math.sqrt(in_features)
        self.weight = nn.Parameter(torch.empty(k, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(k, out_features))
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, k, i) x (k, i, o) -> (B, k, o)
        return torch.einsum("bki,kio->bko", x, self.weight) + self.bias


class BatchedMLP(nn.Module):
    """``k`` MLPs of identical shape run together, no Python loop over them.

    Parameters
    ----------
    k : int
        Number of independent MLPs (experts or towers).
    in_features : int
        Input width.
    units : sequence of int
        Hidden widths; the last one is the output width. Every layer is
        followed by the activation and dropout.
    shared_input : bool
        If True the input is ``(B, in_features)``, the same for all ``k`` MLPs,
        and the first layer is one wide :class:`~torch.nn.Linear` of width
        ``k * units[0]``. If False the input is ``(B, k, in_features)``.

    Output is ``(B, k, units[-1])``.
    """

    def __init__(
        self,
        k: int,
        in_features: int,
        units: Sequence[int],
        activation: str,
        dropout: float,
        shared_input: bool,
    ):
        super().__init__()
        self.k = k
        self.shared_input = shared_input
        self.first = (
            nn.Linear(in_features, k * units[0])
            if shared_input
            else BatchedLinear(k, in_features, units[0])
        )
        self.rest = nn.ModuleList(
            BatchedLinear(k, h_in, h_out) for h_in, h_out in zip(units[:-1], units[1:])
        )
        self.act = ACTIVATIONS[activation]()
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.first(x)
        if self.shared_input:
            # (B, k * H) -> (B, k, H)
            h = h.view(h.shape[0], self.k, -1)
        h = self.drop(self.act(h))
        for layer in self.rest:
            h = self.drop(self.act(layer(h)))
        return h


class MultiTaskNetwork(nn.Module):
    """Shared-Bottom, one-gate MoE or MMoE network with one tower per task.

    Parameters
    ----------
    n_features : int
        Input width ``d``.
    output_widths : sequence of int
        One entry per task: 1 for regression and binary tasks, ``C`` for a
        ``C``-class task.
    architecture : {"mmoe", "moe", "shared_bottom"}
    n_experts : int
        Number of experts ``E`` (unused by ``"shared_bottom"``).
    expert_units : sequence of int
        Hidden widths of each expert (of the shared bottom for
        ``"shared_bottom"``); the last one is the expert output width.
    tower_units : sequence of int
        Hidden widths of each task tower; may be empty.
    activation : str
        A key of ``ACTIVATIONS``.
    dropout : float
        Dropout after every hidden layer of the experts and towers.
    gate_dropout : float
        Probability of dropping an expert from a gate's mixture during
        training; the remaining gate weights are renormalised to sum to 1.

    ``forward(x)`` maps ``(B, d)`` to the concatenated task outputs
    ``(B, sum(output_widths))``; ``gate_weights(x)`` returns ``(B, T, E)``.
    """

    def __init__(
        self,
        n_features: int,
        output_widths: Sequence[int],
        architecture: str = "mmoe",
        n_experts: int = 8,
        expert_units: Sequence[int] = (64,),
        tower_units: Sequence[int] = (32,),
        activation: str = "relu",
        dropout: float = 0.0,
        gate_dropout: float = 0.0,
    ):
        super().__init__()
        if architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {architecture!r}")
        output_widths = [int(w) for w in output_widths]
        self.architecture = architecture
        self.n_tasks = len(output_widths)
        self.gate_dropout = float(gate_dropout)
        hidden = int(expert_units[-1])

        if architecture == "shared_bottom":
            self.n_experts = 0
            self.experts = BatchedMLP(
                1, n_features, expert_units, activation, dropout, shared_input=True
            )
            self.gates = None
        else:
            self.n_experts = int(n_experts)
            self.experts = BatchedMLP(
                self.n_experts,
                n_features,
                expert_units,
                activation,
                dropout,
                shared_input=True,
            )
            n_gates = self.n_tasks if architecture == "mmoe" else 1
            # all gates in one Linear: (B, d) -> (B, G * E)
            self.gates = nn.Linear(n_features, n_gates * self.n_experts)

        tower_units = [int(u) for u in tower_units]
        self.towers = (
            BatchedMLP(self.n_tasks, hidden, tower_units, activation, dropout, False)
            if tower_units
            else None
        )
        tower_out = tower_units[-1] if tower_units else hidden
        max_width = max(output_widths)
        self.heads = BatchedLinear(self.n_tasks, tower_out, max_width)
        if all(w == max_width for w in output_widths):
            self.register_buffer("out_index", None)
        else:
            # columns of the flattened (T * C_max) head output that are real
            index = [t * max_width + j for t, w in enumerate(output_widths) for j in range(w)]
            self.register_buffer("out_index", torch.tensor(index, dtype=torch.long))

    def _mix(self, x: torch.Tensor) -> torch.Tensor:
        """Gate mixtures ``(B, G, E)``, each row summing to 1."""
        logits = self.gates(x)
        # (B, G * E) -> (B, G, E)
        weights = torch.softmax(logits.view(x.shape[0], -1, self.n_experts), dim=-1)
        if self.training and self.gate_dropout > 0:
            keep = torch.rand_like(weights) >= self.gate_dropout
            # never drop every expert of a gate: keep the heaviest one
            top = torch.nn.functional.one_hot(weights.argmax(dim=-1), self.n_experts).bool()
            keep = keep | (top & ~keep.any(dim=-1, keepdim=True))
            weights = weights * keep
            weights = weights / weights.sum(dim=-1, keepdim=True)
        return weights

    def gate_weights(self, x: torch.Tensor) -> torch.Tensor:
        """Gate weights ``(B, T, E)`` for input ``(B, d)``."""
        if self.gates is None:
            raise ValueError("the shared_bottom architecture has no gates")
        weights = self._mix(x)
        # (B, G, E) -> (B, T, E); G is 1 for "moe"
        return weights.expand(-1, self.n_tasks, -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch = x.shape[0]
        experts = self.experts(x)  # (B, E, H); E is 1 for shared_bottom
        if self.gates is None:
            mixed = experts  # (B, 1, H)
        else:
            # (B, G, E) x (B, E, H) -> (B, G, H)
            mixed = torch.einsum("bge,beh->bgh", self._mix(x), experts)
        # (B, G, H) -> (B, T, H) by broadcasting when G == 1
        mixed = mixed.expand(-1, self.n_tasks, -1)
        hidden = self.towers(mixed) if self.towers is not None else mixed
        out = self.heads(hidden)  # (B, T, C_max)
        out = out.reshape(batch, -1)  # (B, T * C_max)
        if self.out_index is not None:
            out = out.index_select(1, self.out_index)  # (B, sum C)
        return out
