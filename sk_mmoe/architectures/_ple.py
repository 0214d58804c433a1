"""Progressive Layered Extraction (PLE) and its one-level case, CGC (Tang et al., RecSys 2020).

Every level has ``S`` shared experts and ``K`` experts of each task, all
``E = S + T * K`` of them one batched MLP. Task ``k``'s gate mixes the shared
experts and task ``k``'s own; below the last level a shared gate mixes all
``E``. Gate outputs are *streams*: task ``k``'s stream feeds task ``k``'s
experts and gate at the next level (its tower after the last), the shared
stream feeds the next level's shared experts and shared gate. At the first
level every stream is the input ``x``.

Shapes: ``B`` rows, ``d`` input features, ``T`` tasks, ``G`` gates of a level
(``T``, plus one shared gate below the last level), ``W`` logits per gate
before the mask, ``H`` the expert output width.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import torch
from torch import nn

from .._modules import (
    BatchedLinear,
    BatchedMLP,
    MultiTaskModule,
    _batched_affine,
    _drop_experts,
    _linear_pair,
    _mix_experts,
    _softmax,
)


class _StreamGates(nn.Module):
    """The gates of a level above the first, each reading its own stream.

    ``T`` task gates of ``S + K`` logits and, optionally, a shared gate of
    ``E`` logits; each is initialised like :class:`torch.nn.Linear` and has
    no parameter for an expert it cannot reach. ``forward`` maps the streams
    ``(T + 1, B, H)`` to ``(G, B, W)`` logits in one batched matmul: the task
    gates' weights are zero-padded to the shared gate's ``E`` columns for it.
    """

    def __init__(self, n_tasks: int, in_features: int, task_width: int, shared_width: int):
        super().__init__()
        self.task = BatchedLinear(n_tasks, in_features, task_width)
        self.shared = BatchedLinear(1, in_features, shared_width) if shared_width else None

    def forward(self, streams: torch.Tensor) -> torch.Tensor:
        if self.shared is None:
            # the task streams only: (T + 1, B, H) -> (T, B, H) -> (T, B, S + K)
            return self.task.forward_kfirst(streams[: self.task.weight.shape[0]])
        pad = (0, self.shared.weight.shape[-1] - self.task.weight.shape[-1])
        # (T, H, S + K) -> (T, H, E), stacked with (1, H, E) -> (T + 1, H, E)
        weight = torch.cat([nn.functional.pad(self.task.weight, pad), self.shared.weight])
        bias = torch.cat([nn.functional.pad(self.task.bias, pad), self.shared.bias])
        return _batched_affine(streams, weight, bias)  # (T + 1, B, E)


class ProgressiveLayeredExtraction(MultiTaskModule):
    """PLE: ``n_levels`` levels of shared and task-specific experts; CGC is one level.

    Parameters
    ----------
    n_features : int
        Input width ``d``.
    output_widths : sequence of int
        Width of each task's output (1, or ``C`` for a ``C``-class task).
    n_levels : int
        Number of extraction levels ``L`` (1: CGC).
    n_experts : int
        Shared experts per level ``S``.
    n_task_experts : int
        Experts of each task per level ``K``.
    expert_units : sequence of int
        Hidden widths of each expert; the last one is the width ``H`` of the
        streams and of the towers' input.
    tower_units : sequence of int
        Hidden widths of each task tower; may be empty.
    activation : str
        A key of ``ACTIVATIONS``.
    dropout : float
        Dropout after every hidden layer of the experts and towers.
    gate_dropout : float
        Probability of dropping an expert from a gate's mixture during
        training; the gate's remaining weights are renormalised.

    Attributes
    ----------
    expert_names : list of str
        ``"shared_0"``, ..., then ``"task_0_0"``, ``"task_0_1"``, ...: the
        experts of every level in the order of ``gate_weights``' last axis.

    Notes
    -----
    The restriction of task ``k``'s gate to the shared experts and its own is
    a fixed index: its ``S + K`` logits are placed among ``-inf`` for the
    other tasks' experts, so after the softmax those weights are exactly 0.
    """

    has_gates = True

    def __init__(
        self,
        n_features: int,
        output_widths: Sequence[int],
        n_levels: int = 2,
        n_experts: int = 8,
        n_task_experts: int = 1,
        expert_units: Sequence[int] = (64,),
        tower_units: Sequence[int] = (32,),
        activation: str = "relu",
        dropout: float = 0.0,
        gate_dropout: float = 0.0,
    ):
        super().__init__()
        n_tasks = len(output_widths)
        n_shared, per_task, n_levels = int(n_experts), int(n_task_experts), int(n_levels)
        self.n_levels = n_levels
        self.n_experts = n_shared + n_tasks * per_task
        self.gate_dropout = float(gate_dropout)
        self.expert_names = [f"shared_{i}" for i in range(n_shared)] + [
            f"task_{t}_{i}" for t in range(n_tasks) for i in range(per_task)
        ]
        self._n_shared = n_shared
        width = int(expert_units[-1])
        # the stream each expert reads above the first level: the shared stream is T
        stream = [n_tasks] * n_shared + [t for t in range(n_tasks) for _ in range(per_task)]
        self.register_buffer("expert_stream", torch.tensor(stream), persistent=False)
        self.experts = nn.ModuleList()
        self.gates = nn.ModuleList()
        task_width = n_shared + per_task
        for level in range(n_levels):
            shared_width = self.n_experts if level < n_levels - 1 else 0
            if level == 0:
                # every stream is x: all experts' first layers and all gates read it
                self.experts.append(
                    BatchedMLP(self.n_experts, n_features, expert_units, activation, dropout, True)
                )
                # (B, d) -> (B, T * (S + K) + shared_width)
                self.gates.append(nn.Linear(n_features, n_tasks * task_width + shared_width))
                stride, n_logits = task_width, n_tasks * task_width + shared_width
            else:
                self.experts.append(
                    BatchedMLP(self.n_experts, width, expert_units, activation, dropout, False)
                )
                self.gates.append(_StreamGates(n_tasks, width, task_width, shared_width))
                stride = max(task_width, shared_width)
                n_logits = (n_tasks + int(shared_width > 0)) * stride
            index = self._gate_index(
                n_tasks, n_shared, per_task, stride, n_logits, shared_width > 0
            )
            self.register_buffer(f"gate_index_{level}", index, persistent=False)
        self._add_towers(width, output_widths, tower_units, activation, dropout)

    @staticmethod
    def _gate_index(n_tasks, n_shared, per_task, stride, n_logits, shared_gate):
        """Where each ``(gate, expert)`` weight's logit is in a level's flat logits.

        The flat logits ``(B, n_logits)`` hold gate ``g``'s logits from
        column ``g * stride``; the index (length ``G * E``) points at those,
        or at column ``n_logits``, the ``-inf`` appended for an expert the
        gate cannot reach.
        """
        n_experts = n_shared + n_tasks * per_task
        n_gates = n_tasks + int(shared_gate)
        index = torch.full((n_gates, n_experts), n_logits, dtype=torch.long)
        for t in range(n_tasks):
            own = n_shared + t * per_task
            index[t, :n_shared] = t * stride + torch.arange(n_shared)
            index[t, own : own + per_task] = t * stride + n_shared + torch.arange(per_task)
        if shared_gate:
            index[n_tasks] = n_tasks * stride + torch.arange(n_experts)
        return index.flatten()  # (G * E,)

    def _gate_mix(self, logits: torch.Tensor, level: int) -> torch.Tensor:
        """Gate weights ``(B, G, E)`` from a level's flat logits ``(B, G * stride)``."""
        batch = logits.shape[0]
        masked = logits.new_full((batch, 1), float("-inf"))
        index = getattr(self, f"gate_index_{level}")
        # (B, G * stride + 1) -> (B, G * E) -> (B, G, E)
        full = (
            torch.cat([logits, masked], dim=1)
            .index_select(1, index)
            .view(batch, -1, self.n_experts)
        )
        weights = _softmax(full)  # exactly 0 where the logit is -inf
        if self.training and self.gate_dropout > 0:
            weights = _drop_experts(weights, self.gate_dropout)
        return weights

    def _levels(self, x: torch.Tensor, stop: int | None = None) -> torch.Tensor:
        """The towers' input ``(T, B, H)``, or the gate weights of level ``stop``."""
        streams = None  # (G, B, H) from the level below
        for level, (experts, gates) in enumerate(zip(self.experts, self.gates)):
            if level == 0:
                first, logits = _linear_pair(x, experts.first, gates, self.training)
                outputs = experts.forward_from_first(first)  # (B, E, H)
            else:
                # each expert reads its stream: (G, B, H) -> (E, B, H)
                inputs = streams.index_select(0, self.expert_stream)
                outputs = experts.forward_kfirst(inputs).transpose(0, 1)  # (E, B, H) -> (B, E, H)
                # (G, B, W) -> (B, G, W) -> (B, G * W)
                logits = gates(streams).transpose(0, 1).flatten(1)
            weights = self._gate_mix(logits, level)  # (B, G, E)
            if level == stop:
                return weights
            # (B, G, E) x (B, E, H) -> (B, G, H) -> (G, B, H)
            streams = _mix_experts(weights, outputs).transpose(0, 1)
        return streams  # the last level has the T task gates only: (T, B, H)

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
        return self._towers_forward(self._levels(x))

    def gate_weights(self, x: torch.Tensor, level: int = -1) -> torch.Tensor:
        """The gate weights of one level over its experts.

        Parameters
        ----------
        x : torch.Tensor of shape (B, d)
            Input rows.
        level : int, default=-1
            The level, from 0 (the first) to ``n_levels - 1``; negative
            values count from the last.

        Returns
        -------
        weights : torch.Tensor of shape (B, G, E)
            Rows summing to 1: the ``T`` task gates, then, below the last
            level, the shared gate (``G = T + 1``). A task gate is exactly
            zero on the other tasks' experts.
        """
        if isinstance(level, bool) or not isinstance(level, numbers.Integral):
            raise TypeError(f"level must be an int, got {level!r}.")
        if not -self.n_levels <= level < self.n_levels:
            raise ValueError(
                f"level must be in [{-self.n_levels}, {self.n_levels - 1}] for this "
                f"{self.n_levels}-level network, got {level}."
            )
        return self._levels(x, stop=int(level) % self.n_levels)

    def expert_labels(self, task_names: Sequence[str]) -> list[str]:
        """``"shared_0"``, ..., then ``"<task name>_0"``, ... for each task's experts.

        Parameters
        ----------
        task_names : sequence of str
            The name of each task, in the order of the outputs.

        Returns
        -------
        labels : list of str
            One label per expert; ``expert_names`` if the task names would
            make two labels equal.
        """
        per_task = (self.n_experts - self._n_shared) // self.n_tasks
        labels = self.expert_names[: self._n_shared] + [
            f"{name}_{i}" for name in task_names for i in range(per_task)
        ]
        return labels if len(set(labels)) == len(labels) else list(self.expert_names)
