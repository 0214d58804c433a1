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


#: torch's CPU softmax kernel is slow along a last dim narrower than one
#: AVX-512 vector (16 floats): about 6x slower for 8 experts than for 16
_SOFTMAX_MIN_WIDTH = 16


def _softmax(logits: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dim; on CPU a narrow dim is padded with -inf first.

    The padded entries get probability exactly 0, so the result is the
    softmax of ``logits``; only the CPU kernel's slow narrow-row path is
    avoided.
    """
    width = logits.shape[-1]
    if logits.device.type != "cpu" or width >= _SOFTMAX_MIN_WIDTH:
        return torch.softmax(logits, dim=-1)
    # (..., E) -> (..., 16) -> softmax -> (..., E)
    padded = nn.functional.pad(logits, (0, _SOFTMAX_MIN_WIDTH - width), value=float("-inf"))
    return torch.softmax(padded, dim=-1)[..., :width]


#: torch's CPU bmm switches from its own scalar small-matrix loop to BLAS
#: once ``in * rows * out`` reaches this
_BMM_BLAS_SIZE = 400
#: a batched layer with ``in * out`` below this would switch between the two
#: at 64 rows (the fewest the estimators predict at once) and more, so a
#: row's prediction would depend on how many rows came with it
_BMM_MIN_SIZE = -(-_BMM_BLAS_SIZE // 64)


def _mix_experts(weights: torch.Tensor, experts: torch.Tensor) -> torch.Tensor:
    """Each row's gate mixtures of its experts: ``(B, G, E) x (B, E, H) -> (B, G, H)``.

    One ``bmm`` over the rows; for tiny per-row products (``G * E * H`` below
    torch's BLAS threshold, where bmm loops in scalar code) a broadcast
    multiply and a sum over the experts instead, about 30% faster.
    """
    n_gates, n_experts = weights.shape[1:]
    if n_gates * n_experts * experts.shape[2] >= _BMM_BLAS_SIZE:
        return torch.bmm(weights, experts)
    # (B, G, E, 1) * (B, 1, E, H) -> (B, G, E, H) -> sum over E -> (B, G, H)
    return (weights.unsqueeze(-1) * experts.unsqueeze(1)).sum(2)


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
        # (B, k, i) -> (k, B, i) -> (k, B, o) -> (B, k, o)
        return self.forward_kfirst(x.transpose(0, 1)).transpose(0, 1)

    def forward_kfirst(self, x: torch.Tensor) -> torch.Tensor:
        """The same maps on ``(k, B, in_features)``, giving ``(k, B, out_features)``.

        One ``baddbmm`` (bias added inside the matmul call), no permutes.
        """
        if self.weight.shape[1] * self.weight.shape[2] < _BMM_MIN_SIZE:
            # (k, B, i, 1) * (k, 1, i, o) -> sum over i -> (k, B, o)
            out = (x.unsqueeze(-1) * self.weight.unsqueeze(1)).sum(-2)
            return out + self.bias.unsqueeze(1)
        # bias (k, o) -> (k, 1, o); (k, B, i) x (k, i, o) -> (k, B, o)
        return torch.baddbmm(self.bias.unsqueeze(1), x, self.weight)


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
        self.dropout = float(dropout)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_from_first(self.first(x))

    def forward_from_first(self, h: torch.Tensor) -> torch.Tensor:
        """The MLP from the output ``h`` of its first layer's matmul on."""
        if self.shared_input:
            # (B, k * H) -> (B, k, H)
            h = h.view(h.shape[0], self.k, -1)
        h = self._activate(h)
        for layer in self.rest:
            h = self._activate(layer(h))
        return h

    def forward_kfirst(self, x: torch.Tensor) -> torch.Tensor:
        """``(k, B, in_features)`` to ``(k, B, units[-1])``; only for ``shared_input=False``."""
        h = self._activate(self.first.forward_kfirst(x))
        for layer in self.rest:
            h = self._activate(layer.forward_kfirst(h))
        return h

    def _activate(self, h: torch.Tensor) -> torch.Tensor:
        h = self.act(h)
        return self.drop(h) if self.dropout else h


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

    def train(self, mode: bool = True):
        # nn.Module.train sets the flag on every submodule through the slow
        # nn.Module.__setattr__; the estimators call eval() on every predict,
        # so skip that walk when every flag is already ``mode``
        if isinstance(mode, bool) and all(m.training is mode for m in self.modules()):
            return self
        return super().train(mode)

    def _first_layer(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The experts' first layer ``(B, E * H)`` and the gate logits ``(B, G * E)``.

        In eval mode both are one matmul, the two weights stacked
        ``(E * H + G * E, d)``: this keeps the gate logits out of the narrow
        matmuls whose BLAS kernel depends on the number of rows (which would
        make a row's prediction depend on how many rows came with it). In
        training mode they are two matmuls, which are cheaper to
        differentiate than the stacking.
        """
        first = self.experts.first
        if self.training:
            return first(x), self.gates(x)
        weight = torch.cat([first.weight, self.gates.weight])
        bias = torch.cat([first.bias, self.gates.bias])
        out = nn.functional.linear(x, weight, bias)  # (B, E * H + G * E)
        return out.split([first.out_features, self.gates.out_features], dim=1)

    def _mix(self, logits: torch.Tensor) -> torch.Tensor:
        """Gate mixtures ``(B, G, E)`` from logits ``(B, G * E)``, rows summing to 1."""
        # (B, G * E) -> (B, G, E)
        weights = _softmax(logits.view(logits.shape[0], -1, self.n_experts))
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
        weights = self._mix(self._first_layer(x)[1])
        # (B, G, E) -> (B, T, E); G is 1 for "moe"
        return weights.expand(-1, self.n_tasks, -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch = x.shape[0]
        if self.gates is None:
            experts = self.experts(x)  # (B, 1, H)
            mixed = experts.transpose(0, 1)  # (B, 1, H) -> (1, B, H)
        else:
            first, logits = self._first_layer(x)
            experts = self.experts.forward_from_first(first)  # (B, E, H)
            # (B, G, E) x (B, E, H) -> (B, G, H) -> (G, B, H)
            mixed = _mix_experts(self._mix(logits), experts).transpose(0, 1)
        # (G, B, H) -> (T, B, H) by broadcasting when G == 1
        mixed = mixed.expand(self.n_tasks, -1, -1)
        # task-major from here: each tower and head is one baddbmm over T
        hidden = self.towers.forward_kfirst(mixed) if self.towers is not None else mixed
        out = self.heads.forward_kfirst(hidden)  # (T, B, C_max)
        out = out.transpose(0, 1).reshape(batch, -1)  # (B, T, C_max) -> (B, T * C_max)
        if self.out_index is not None:
            out = out.index_select(1, self.out_index)  # (B, sum C)
        return out
