"""Progressive Layered Extraction (PLE) and its one-level case, CGC (Tang et al., RecSys 2020).

Every level has ``S`` shared experts and ``K`` experts of each task, all
``E = S + T * K`` of them one batched MLP. Task ``k``'s gate mixes the shared
experts and task ``k``'s own; below the last level a shared gate mixes all
``E``. Gate outputs are *streams*: task ``k``'s stream feeds task ``k``'s
experts and gate at the next level (its tower after the last), the shared
stream feeds the next level's shared experts and shared gate. At the first
level every stream is the input ``x``.

Shapes: ``B`` rows, ``d`` input features, ``T`` tasks, ``G`` gates of a level
(``T``, plus one shared gate below the last level), ``E`` experts of a level,
``W`` logits per gate (``E``, widened to 16 for the CPU softmax kernel), ``H``
the expert output width, ``n`` a level's gate parameters (``T * (S + K)``
task logits, then ``E`` for the shared gate).
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import torch
from torch import nn

from ..nn._modules import (
    _BMM_BLAS_SIZE,
    _SOFTMAX_MIN_WIDTH,
    BatchedMLP,
    MultiTaskModule,
    _batched_affine,
    _drop_experts,
    _linear_pair,
    _mix_experts,
    _mix_experts_rows_last,
)


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
    gate_entropy_bonus : float
        Weight of the gates' entropy (all gates of all levels), subtracted
        from the training loss (see ``MultiTaskModule.auxiliary_loss``).

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
        gate_entropy_bonus: float = 0.0,
    ):
        super().__init__()
        n_tasks = len(output_widths)
        n_shared, per_task, n_levels = int(n_experts), int(n_task_experts), int(n_levels)
        self.n_levels = n_levels
        self.n_experts = n_shared + n_tasks * per_task
        self.gate_dropout = float(gate_dropout)
        self.gate_entropy_bonus = float(gate_entropy_bonus)
        self.expert_names = [f"shared_{i}" for i in range(n_shared)] + [
            f"task_{t}_{i}" for t in range(n_tasks) for i in range(per_task)
        ]
        self._n_shared = n_shared
        self._per_task = per_task
        # gate weights are computed this wide: the -inf entries beyond E cost the
        # softmax nothing and spare the CPU kernel's slow narrow rows (_softmax)
        self._gate_width = max(self.n_experts, _SOFTMAX_MIN_WIDTH)
        width = int(expert_units[-1])
        # the stream each expert reads above the first level: the shared stream is T
        stream = [n_tasks] * n_shared + [t for t in range(n_tasks) for _ in range(per_task)]
        self.register_buffer("expert_stream", torch.tensor(stream), persistent=False)
        # the same as a 0/1 matrix (E, T + 1) for the rows-last layout
        select = (self.expert_stream.unsqueeze(1) == torch.arange(n_tasks + 1)).float()
        self.register_buffer("expert_stream_select", select, persistent=False)
        # training rows last for small per-row mixtures (module docstring)
        n_gates = n_tasks + int(n_levels > 1)
        self._rows_last = n_gates * self.n_experts * width < _BMM_BLAS_SIZE
        self.experts = nn.ModuleList()
        self.gates = nn.ModuleList()
        for level in range(n_levels):
            shared_gate = level < n_levels - 1
            first = level == 0
            # the first level's experts all read x: their first layer is one wide Linear
            self.experts.append(
                BatchedMLP(
                    self.n_experts,
                    n_features if first else width,
                    expert_units,
                    activation,
                    dropout,
                    shared_input=first,
                )
            )
            # every gate's logits over the experts it reaches: (in, n), no other parameter
            n_logits = n_tasks * (n_shared + per_task) + (self.n_experts if shared_gate else 0)
            self.gates.append(nn.Linear(n_features if first else width, n_logits))
            index = self._gate_index(n_tasks, n_shared, per_task, self._gate_width, shared_gate)
            self.register_buffer(f"gate_index_{level}", index, persistent=False)
            # rows last the softmax needs no padding: each gate's E logits
            index = self._gate_index(n_tasks, n_shared, per_task, self.n_experts, shared_gate)
            select, mask = self._gate_selection(index, n_logits)
            self.register_buffer(f"rows_last_select_{level}", select, persistent=False)
            self.register_buffer(f"rows_last_mask_{level}", mask, persistent=False)
        self._add_towers(width, output_widths, tower_units, activation, dropout)

    @staticmethod
    def _gate_index(n_tasks, n_shared, per_task, gate_width, shared_gate):
        """Which of a level's ``n`` gate logits each ``(gate, expert)`` weight takes.

        Gate ``t < T`` has ``S + K`` logits from ``t * (S + K)`` (the shared
        experts', then task ``t``'s own); the shared gate has ``E`` from
        ``T * (S + K)``. The index, of length ``G * W``, points at those, or
        at ``n``, an appended ``-inf`` logit (weight exactly 0): for the other
        tasks' experts and for the columns beyond ``E``.
        """
        n_experts = n_shared + n_tasks * per_task
        n_gates = n_tasks + int(shared_gate)
        stride = n_shared + per_task
        n_logits = n_tasks * stride + (n_experts if shared_gate else 0)
        index = torch.full((n_gates, gate_width), n_logits, dtype=torch.long)
        for t in range(n_tasks):
            own = n_shared + t * per_task
            index[t, :n_shared] = t * stride + torch.arange(n_shared)
            index[t, own : own + per_task] = t * stride + n_shared + torch.arange(per_task)
        if shared_gate:
            index[n_tasks, :n_experts] = n_tasks * stride + torch.arange(n_experts)
        return index.flatten()  # (G * W,)

    @staticmethod
    def _gate_selection(index: torch.Tensor, n_logits: int):
        """``index`` as a matmul: a 0/1 matrix ``(G * E, n)`` and a ``(G * E, 1)`` 0/-inf bias.

        ``mask + select @ logits`` places the ``(n, B)`` logits as the gates'
        ``(G * E, B)``, exactly (each row one logit times 1, or none and
        ``-inf``): one matmul, whose gradient is one matmul too (a gather
        would cost a concatenation, and zeros and a scatter backwards).
        """
        # (G * E, 1) == (n,) -> (G * E, n): no row matches the index n
        select = (index.unsqueeze(1) == torch.arange(n_logits)).float()
        mask = torch.where(index < n_logits, 0.0, float("-inf")).unsqueeze(1)
        return select, mask

    def _stream_logits(self, gates: nn.Linear, index: torch.Tensor, streams: torch.Tensor):
        """Logits ``(G, B, W)`` of the gates above the first level, each on its stream.

        The masked layout is built on the weights, not on the ``B`` rows: the
        ``(G, H, W)`` weight takes each gate's columns from ``gates`` and
        zeros elsewhere, the bias ``-inf`` elsewhere; then one batched matmul
        of the streams ``(T + 1, B, H)`` (the task gates' first).
        """
        weight, bias = _masked_gates(gates, index, self._gate_width)
        n_gates = len(weight)
        # (G, B, H) x (G, H, W) + (G, W) -> (G, B, W)
        return _batched_affine(streams[:n_gates], weight.transpose(1, 2), bias)

    def _weights(self, full: torch.Tensor, n_rows: int) -> torch.Tensor:
        """Gate weights ``(..., E)`` from masked logits ``(..., W)`` of ``n_rows`` rows."""
        weights = torch.softmax(full, dim=-1)[..., : self.n_experts]  # 0 where -inf
        self._add_gate_entropy(weights, n_rows)
        if self.training and self.gate_dropout > 0:
            weights = _drop_experts(weights, self.gate_dropout)
        return weights

    def _levels_rows_last(self, x: torch.Tensor) -> torch.Tensor:
        """The towers' input ``(T, H, B)`` computed with the rows last (training only).

        The same function as :meth:`_levels`, laid out ``(..., B)``. A
        level's gate logits come out as ``(n, B)``, in the order of its gate
        parameters, whatever stream each gate reads; one matmul places them
        (and ``-inf`` where a gate cannot reach) as ``(G, E, B)``
        (:meth:`_gate_selection`), and the softmax runs over axis 1.
        """
        n_rows = x.shape[0]
        streams = None  # (G, H, B) from the level below
        for level, (experts, gates) in enumerate(zip(self.experts, self.gates)):
            if level == 0:
                outputs = experts.forward_rows_last(x)  # (E, H, B)
                # (n, d) x (d, B) -> (n, B)
                logits = [torch.addmm(gates.bias.unsqueeze(1), gates.weight, x.t())]
            else:
                # each expert reads its stream: (G, H, B) -> (E, H, B)
                # (E, G) x (G, H * B) -> (E, H * B) -> (E, H, B), exactly
                inputs = self.expert_stream_select.mm(streams.view(len(streams), -1))
                outputs = experts.forward_rows_last(inputs.view(self.n_experts, -1, n_rows))
                logits = self._stream_logits_rows_last(gates, streams)
            select = getattr(self, f"rows_last_select_{level}")
            mask = getattr(self, f"rows_last_mask_{level}")
            logits = logits[0] if len(logits) == 1 else torch.cat(logits)  # (n, B)
            # (G * E, 1) + (G * E, n) x (n, B) -> (G * E, B) -> (G, E, B)
            full = torch.addmm(mask, select, logits).view(-1, self.n_experts, n_rows)
            weights = torch.softmax(full, dim=1)
            self._add_gate_entropy(weights, n_rows)  # 0 where -inf
            if self.gate_dropout > 0:
                # (G, E, B) -> (G, B, E): dropped along the experts -> (G, E, B)
                weights = _drop_experts(weights.transpose(1, 2), self.gate_dropout)
                weights = weights.transpose(1, 2)
            streams = _mix_experts_rows_last(weights, outputs)  # (G, H, B)
        return streams  # the last level has the T task gates only: (T, H, B)

    def _stream_logits_rows_last(self, gates: nn.Linear, streams: torch.Tensor) -> list:
        """A level's gate logits, each gate on its stream ``(G, H, B)``: ``(n, B)`` in pieces.

        Task ``t``'s ``S + K`` weights are rows of ``gates`` (a view, no
        gather): one batched matmul over the task streams; the shared gate's
        ``E`` rows, below the last level, one matmul on the shared stream.
        """
        n_tasks, n_rows = self.n_tasks, streams.shape[2]
        n_task = n_tasks * (self._n_shared + self._per_task)  # the task gates' logits
        weight, bias = gates.weight, gates.bias
        shared_gate = gates.out_features > n_task  # below the last level
        if shared_gate:  # (sliced only then: each slice costs the backward pass a copy)
            weight, bias = weight[:n_task], bias[:n_task]
        # (T, S + K, 1) + (T, S + K, H) x (T, H, B) -> (T, S + K, B)
        tasks = torch.baddbmm(
            bias.view(n_tasks, -1, 1), weight.view(n_tasks, -1, weight.shape[1]), streams[:n_tasks]
        )
        logits = [tasks.view(n_task, n_rows)]
        if shared_gate:  # (E, H) x (H, B) -> (E, B)
            shared = gates.bias[n_task:].unsqueeze(1)
            logits.append(torch.addmm(shared, gates.weight[n_task:], streams[n_tasks]))
        return logits

    def _levels(self, x: torch.Tensor, stop: int | None = None) -> torch.Tensor:
        """The towers' input ``(T, B, H)``, or the gate weights ``(B, G, E)`` of level ``stop``."""
        streams = None  # (G, B, H) from the level below
        for level, (experts, gates) in enumerate(zip(self.experts, self.gates)):
            index = getattr(self, f"gate_index_{level}")
            if level == 0:
                first, logits = _linear_pair(x, experts.first, gates, self.training)
                outputs = experts.forward_from_first(first)  # (B, E, H)
                batch = logits.shape[0]
                masked = logits.new_full((batch, 1), float("-inf"))
                # (B, n) -> (B, n + 1) -> (B, G * W) -> (B, G, W) -> (B, G, E)
                full = torch.cat([logits, masked], dim=1).index_select(1, index)
                weights = self._weights(full.view(batch, -1, self._gate_width), batch)
            else:
                # each expert reads its stream: (G, B, H) -> (E, B, H)
                inputs = streams.index_select(0, self.expert_stream)
                outputs = experts.forward_kfirst(inputs).transpose(0, 1)  # (E, B, H) -> (B, E, H)
                # (G, B, W) -> (G, B, E) -> (B, G, E)
                logits = self._stream_logits(gates, index, streams)  # (G, B, W)
                weights = self._weights(logits, logits.shape[1]).transpose(0, 1)
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
        if self.training and self._rows_last:
            return self._towers_forward_rows_last(self._levels_rows_last(x))
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
        labels = self.expert_names[: self._n_shared] + [
            f"{name}_{i}" for name in task_names for i in range(self._per_task)
        ]
        return labels if len(set(labels)) == len(labels) else list(self.expert_names)

    def last_shared_parameters(self) -> list[nn.Parameter]:
        """The last layer of the last level's experts (GradNorm's shared layer).

        It holds the shared experts and every task's own experts of that
        level (one batched weight); a task's gradient reaches its own experts
        and the shared ones.

        Returns
        -------
        params : list of torch.nn.Parameter
            The one weight tensor.
        """
        return [self.experts[-1].last_layer.weight]

    def _emit_onnx(self, builder, x):
        """PLE / CGC: ``(B, d)`` -> ``(B, sum C)``, level by level.

        Each level's gates are one matmul whose weight already holds the fixed
        mask: the columns of the ``-inf`` logits (other tasks' experts, and the
        padding to ``W``) get zero weights and a ``-inf`` bias, as the torch
        module's stream gates do.
        """
        return _ple_onnx(builder, self, x)


def _masked_gates(gates: nn.Linear, index: torch.Tensor, width: int):
    """A level's gates as ``(G, width, in)`` weights and ``(G, width)`` biases, masked.

    Each gate's row ``j`` takes the logit ``index[g * width + j]`` of
    ``gates``; where the index is ``n`` (an expert the gate cannot reach, or
    padding), a zero weight and a ``-inf`` bias, so that the softmax gives
    exactly 0 there.
    """
    zero = gates.weight.new_zeros(1, gates.in_features)
    masked = gates.bias.new_full((1,), float("-inf"))
    n_gates = len(index) // width
    # (n + 1, in) -> (G * width, in) -> (G, width, in)
    weight = torch.cat([gates.weight, zero]).index_select(0, index).view(n_gates, width, -1)
    # (n + 1,) -> (G * width,) -> (G, width)
    bias = torch.cat([gates.bias, masked]).index_select(0, index).view(n_gates, width)
    return weight, bias


def _ple_onnx(builder, module, x):
    """The PLE / CGC module as ONNX nodes: see ``ProgressiveLayeredExtraction._emit_onnx``."""
    from .._onnx_graph import (  # needs onnx: imported on export only
        batched_mlp_kfirst,
        batched_mlp_shared_kfirst,
        towers,
    )

    width, n_experts = module._gate_width, module.n_experts
    streams = None  # (G, B, H)
    for level, (experts, gates) in enumerate(zip(module.experts, module.gates)):
        # (G, W, in) and (G, W): zero weights and -inf biases where masked
        weight, bias = _masked_gates(gates, getattr(module, f"gate_index_{level}"), width)
        n_gates = len(weight)
        if level == 0:
            outputs = batched_mlp_shared_kfirst(builder, experts, x)  # (E, B, H)
            # (G * W, in) and (G * W,): one Linear
            weight, bias = weight.flatten(0, 1), bias.flatten()
            logits = builder.linear(x, weight, bias, "gate_logits")  # (B, G * W)
            logits = builder.node("Reshape", [logits, builder.shape([-1, n_gates, width])])
        else:
            # each expert reads its stream: (G, B, H) -> (E, B, H)
            inputs = builder.node(
                "Gather", [streams, builder.const(module.expert_stream, "expert_stream")], axis=0
            )
            outputs = batched_mlp_kfirst(builder, experts, inputs)  # (E, B, H)
            # (G, W, H) -> (G, H, W); bias (G, 1, W)
            weight = weight.transpose(1, 2)
            streams = builder.slice(streams, 0, n_gates, 0, "gated_streams")
            logits = builder.node(
                "Add",
                [
                    builder.node("MatMul", [streams, builder.const(weight, "gate_weight")]),
                    builder.const(bias.view(n_gates, 1, width), "gate_bias"),
                ],
            )  # (G, B, W)
            logits = builder.node("Transpose", [logits], perm=[1, 0, 2])  # (B, G, W)
        weights = builder.node("Softmax", [logits], "gate_weights", axis=-1)
        weights = builder.slice(weights, 0, n_experts, 2, "gate_weights")  # (B, G, E)
        outputs = builder.node("Transpose", [outputs], perm=[1, 0, 2])  # (B, E, H)
        mixed = builder.node("MatMul", [weights, outputs], "mixed")  # (B, G, H)
        streams = builder.node("Transpose", [mixed], perm=[1, 0, 2])  # (G, B, H)
    return towers(builder, module, streams)  # the last level: T streams
