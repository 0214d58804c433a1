"""Torch building blocks: batched experts, gate mixing, and the task towers.

The architectures (:mod:`sk_mmoe.architectures`) are built from these. This
module imports nothing else from the package. Shapes use ``B`` for the
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


def _mix_experts_rows_last(weights: torch.Tensor, experts: torch.Tensor) -> torch.Tensor:
    """The same mixtures with the rows last: ``(G, E, B) x (E, H, B) -> (G, H, B)``.

    A broadcast multiply and a sum over the experts whose every elementwise
    pass, forward and backward, runs along the ``B`` contiguous rows: for
    small per-row mixtures (``G * E * H`` below ``_BMM_BLAS_SIZE``) much
    cheaper than the row-major layout, whose inner loops are ``H`` long.
    """
    # (G, E, 1, B) * (1, E, H, B) -> (G, E, H, B) -> sum over E -> (G, H, B)
    return (weights.unsqueeze(2) * experts.unsqueeze(0)).sum(1)


def _drop_experts(weights: torch.Tensor, p: float) -> torch.Tensor:
    """Drop each expert from each gate's mixture with probability ``p``; renormalise.

    ``(B, G, E) -> (B, G, E)``, rows summing to 1 again. Experts a gate gives
    no weight (masked, or an underflowed softmax) do not count as kept, and a
    gate never loses every expert: its heaviest one stays.
    """
    n_experts = weights.shape[-1]
    keep = (torch.rand_like(weights) >= p) & (weights > 0)
    top = nn.functional.one_hot(weights.argmax(dim=-1), n_experts).bool()
    keep = keep | (top & ~keep.any(dim=-1, keepdim=True))
    weights = weights * keep
    return weights / weights.sum(dim=-1, keepdim=True)


def _linear_pair(
    x: torch.Tensor, first: nn.Linear, second: nn.Linear, training: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """``first(x)`` and ``second(x)``: two matmuls in training, one in eval mode.

    In eval mode the two weights are stacked ``(out_1 + out_2, d)`` and run
    as one matmul: this keeps a narrow output (gate logits) out of the narrow
    matmuls whose BLAS kernel depends on the number of rows (which would make
    a row's prediction depend on how many rows came with it). In training
    mode they are two matmuls, which are cheaper to differentiate than the
    stacking.
    """
    if training:
        return first(x), second(x)
    weight = torch.cat([first.weight, second.weight])
    bias = torch.cat([first.bias, second.bias])
    out = _row_stable_linear(x, weight, bias)  # (B, out_1 + out_2)
    return out.split([first.out_features, second.out_features], dim=1)


def _row_stable_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``nn.functional.linear`` whose result for a row does not depend on the other rows.

    On AVX-512, BLAS gave a row of ``(B, in) x (in, out)`` a result that
    depended on the number of rows (64 or 400) for most ``in`` not a
    multiple of 4 and for ``out`` below 16 (e.g. 17 inputs to 8 units). The
    matmul is run with zero columns added to reach ``in`` a multiple of 4
    and ``out`` a multiple of 4 of at least 16, and the extra outputs are
    sliced off: the same numbers, from a kernel that treats every row alike.
    Used in eval mode only (training has no such promise).
    """
    n_out, n_in = weight.shape
    pad_in = -n_in % 4
    pad_out = max(16, n_out + (-n_out % 4)) - n_out
    if pad_in or pad_out:
        # (out, in) -> (out + pad_out, in + pad_in); x (B, in) -> (B, in + pad_in)
        weight = nn.functional.pad(weight, (0, pad_in, 0, pad_out))
        bias = nn.functional.pad(bias, (0, pad_out))
        x = nn.functional.pad(x, (0, pad_in))
    return nn.functional.linear(x, weight, bias)[:, :n_out]


#: output widths of a batched matmul that are computed wider (zero columns,
#: sliced off): on AVX-512 the BLAS kernels for widths 5-7 and 9-11 gave a
#: row a result that depended on its position among the rows (so on how rows
#: were batched); widths 1-4, 8 and 12 to 40 did not
_BMM_PADDED_WIDTHS = {5: 8, 6: 8, 7: 8, 9: 12, 10: 12, 11: 12}


def _batched_affine(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``k`` affine maps at once: ``(k, B, in) x (k, in, out) + (k, out) -> (k, B, out)``.

    One ``baddbmm`` (bias added inside the matmul call), no permutes; a map
    with ``in * out`` below ``_BMM_MIN_SIZE`` is a broadcast multiply and sum
    instead, so that no row count switches it between kernels. An output
    width that BLAS would handle row-position-dependently is padded
    (``_BMM_PADDED_WIDTHS``).
    """
    n_out = weight.shape[2]
    if weight.shape[1] * n_out < _BMM_MIN_SIZE:
        # (k, B, i, 1) * (k, 1, i, o) -> sum over i -> (k, B, o)
        out = (x.unsqueeze(-1) * weight.unsqueeze(1)).sum(-2)
        return out + bias.unsqueeze(1)
    pad = _BMM_PADDED_WIDTHS.get(n_out, n_out) - n_out
    if n_out == 1 and weight.shape[0] == 1:
        pad = 1  # one matrix-vector product: BLAS's gemv, row-position-dependent too
    if pad:
        # (k, i, o) -> (k, i, o + pad) and (k, o) -> (k, o + pad), zeros
        weight = nn.functional.pad(weight, (0, pad))
        bias = nn.functional.pad(bias, (0, pad))
    # bias (k, o) -> (k, 1, o); (k, B, i) x (k, i, o) -> (k, B, o)
    out = torch.baddbmm(bias.unsqueeze(1), x, weight)
    return out[..., :n_out] if pad else out


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
        return _batched_affine(x, self.weight, self.bias)

    def forward_rows_last(self, x: torch.Tensor) -> torch.Tensor:
        """The same maps with the rows last: ``(k, in_features, B)`` to ``(k, out_features, B)``.

        One ``baddbmm`` of the transposed weights (a view); for training,
        where no row-stable kernel is needed (see ``_batched_affine``).
        """
        # (k, o, 1) + (k, o, i) x (k, i, B) -> (k, o, B)
        return torch.baddbmm(self.bias.unsqueeze(2), self.weight.transpose(1, 2), x)


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
        if self.shared_input and not self.training:
            return self.forward_from_first(
                _row_stable_linear(x, self.first.weight, self.first.bias)
            )
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

    def forward_rows_last(self, h: torch.Tensor) -> torch.Tensor:
        """The MLP with the rows last, to ``(k, units[-1], B)``.

        ``h`` is ``(k, in_features, B)``, or for ``shared_input=True`` the
        input rows ``(B, in_features)``, which the wide first layer takes
        transposed.
        """
        if self.shared_input:
            # (k * H, in) x (in, B) -> (k * H, B) -> (k, H, B)
            h = torch.addmm(self.first.bias.unsqueeze(1), self.first.weight, h.t())
            h = self._activate(h).view(self.k, -1, h.shape[1])
        else:
            h = self._activate(self.first.forward_rows_last(h))
        for layer in self.rest:
            h = self._activate(layer.forward_rows_last(h))
        return h

    def _activate(self, h: torch.Tensor) -> torch.Tensor:
        h = self.act(h)
        return self.drop(h) if self.dropout else h

    @property
    def last_layer(self) -> nn.Module:
        """The last layer (a :class:`~torch.nn.Linear` or :class:`BatchedLinear`)."""
        return self.rest[-1] if len(self.rest) else self.first


class QuickTrainToggle:
    """``train`` / ``eval`` that skip the walk over submodules when nothing changes.

    ``nn.Module.train`` sets the flag on every submodule through the slow
    ``nn.Module.__setattr__``; the estimators call ``eval()`` on every
    predict, so the walk is skipped when every flag is already ``mode``. A
    base of every module the estimators hold at the top (the architectures,
    the input and ensemble wrappers).
    """

    def train(self, mode: bool = True):
        """Set training (``mode=True``) or evaluation mode, as :meth:`torch.nn.Module.train`.

        Parameters
        ----------
        mode : bool, default=True
            Training mode if True, evaluation mode if False.

        Returns
        -------
        self : torch.nn.Module
            This module.
        """
        # nn.Module.train sets the flag on every submodule through the slow
        # nn.Module.__setattr__; the estimators call eval() on every predict,
        # so skip that walk when every flag is already ``mode``
        if isinstance(mode, bool) and all(m.training is mode for m in self.modules()):
            return self
        return super().train(mode)


class NetworkWrapper(QuickTrainToggle, nn.Module):
    """A module around an architecture (``self.network``): what it does not add, it passes on.

    The gate and expert descriptions, the task parameters, GradNorm's layer
    and the auxiliary loss are the architecture's; the shared parameters are
    the wrapper's own (:meth:`own_shared_parameters`, which every task reads)
    and then the architecture's. Subclasses: the input blocks'
    ``InputNetwork``, the ensemble's ``EnsembleNetwork``.
    """

    @property
    def has_gates(self) -> bool:
        return self.network.has_gates

    @property
    def expert_names(self) -> list:
        return self.network.expert_names

    def expert_labels(self, task_names: Sequence[str]) -> list[str]:
        """The architecture's expert labels (see ``MultiTaskModule.expert_labels``)."""
        return self.network.expert_labels(task_names)

    def own_shared_parameters(self) -> list[nn.Parameter]:
        """The wrapper's own parameters; every task reads them."""
        return []

    def task_parameters(self) -> list[nn.Parameter]:
        """The architecture's towers and heads (see ``MultiTaskModule``)."""
        return self.network.task_parameters()

    def shared_parameters(self) -> list[nn.Parameter]:
        """The wrapper's own parameters, then the architecture's shared ones."""
        return [*self.own_shared_parameters(), *self.network.shared_parameters()]

    def last_shared_parameters(self) -> list[nn.Parameter]:
        """The architecture's last shared layer (GradNorm's)."""
        return self.network.last_shared_parameters()

    def auxiliary_loss(self) -> torch.Tensor | None:
        """The architecture's extra training-loss term (the gates' entropy bonus)."""
        return self.network.auxiliary_loss()


class MultiTaskModule(QuickTrainToggle, nn.Module):
    """Base of every architecture: the task towers and heads, and the contract.

    A subclass builds its bottom (experts, gates) in ``__init__`` first, then
    calls :meth:`_add_towers` (parameters are created, and so randomly
    initialised, in that order), and implements ``forward(x)`` mapping
    ``(B, d)`` to ``(B, sum C)``, usually ending with :meth:`_towers_forward`.

    The contract, by who needs it:

    - **training** (``sk_mmoe.training._net``, the loss): ``forward``; in training
      mode, :meth:`auxiliary_loss` (the gates' entropy term, or None);
    - **task balancing** (GradNorm, PCGrad, conflict tracking):
      :meth:`task_parameters` (towers and heads), :meth:`shared_parameters`
      (the rest) and :meth:`last_shared_parameters` (GradNorm's layer);
    - **gate diagnostics** (``gate_weights``, ``gate_summary``, the collapse
      warning, plots): ``has_gates``, ``expert_names``, :meth:`expert_labels`
      and :meth:`gate_weights` ``(B, T, E)``;
    - **the in-model ensemble** (``n_ensemble``): the towers made by
      :meth:`_add_towers` and run by :meth:`_towers_forward` (members' adapters
      live there, so an architecture needs nothing more);
    - **ONNX export** (``sk_mmoe.onnx``): ``_emit_onnx`` (called by
      :meth:`emit_onnx`), the eval-mode
      ``forward`` written as ONNX nodes, beside the module's own ``forward``
      (the helpers of ``sk_mmoe._onnx_graph``, imported inside the method, end
      with its ``towers``).

    Attributes
    ----------
    has_gates : bool
        Whether the architecture has gates; if so it implements
        ``gate_weights(x, level=-1)`` returning ``(B, T, E)`` and sets
        ``expert_names`` (one label per expert, in the order of ``E``).
    """

    has_gates = False
    expert_names: list = []
    #: ensemble members served by one forward pass (:meth:`add_members`)
    n_members = 1
    #: weight of the gates' entropy subtracted from the training loss
    #: (``gate_entropy_bonus``); gated architectures set it
    gate_entropy_bonus = 0.0
    _gate_entropy = None  # the gates' entropy in the last training forward pass

    def _add_gate_entropy(self, weights: torch.Tensor, n_rows: int):
        """In training with a bonus: add the entropy of gate weights ``(..., E)``.

        ``weights`` holds some gates' weights for ``n_rows`` rows (in any
        layout); each gate's entropy is averaged over the rows and the gates
        summed. A gated architecture calls this on every set of gate weights it
        computes; zero weights (masked experts) add nothing.
        """
        if not (self.training and self.gate_entropy_bonus > 0):
            return
        tiny = torch.finfo(weights.dtype).tiny
        entropy = -(weights * weights.clamp_min(tiny).log()).sum() / n_rows
        if self._gate_entropy is not None:
            entropy = entropy + self._gate_entropy
        self._gate_entropy = entropy

    def auxiliary_loss(self) -> torch.Tensor | None:
        """The training loss's extra term from the last training forward pass, once.

        ``-gate_entropy_bonus * H``, with ``H`` the sum over the gates (of
        every level) of each gate's entropy in nats averaged over the rows;
        None without a bonus. The record is cleared, so each forward pass's
        term is taken once.

        Returns
        -------
        term : torch.Tensor or None
            A scalar to add to the loss.
        """
        entropy, self._gate_entropy = self._gate_entropy, None
        return None if entropy is None else -self.gate_entropy_bonus * entropy

    def _add_towers(
        self,
        in_features: int,
        output_widths: Sequence[int],
        tower_units: Sequence[int],
        activation: str,
        dropout: float,
    ):
        """One tower per task over its ``(B, in_features)`` input, then a head each.

        Heads are one batched linear map to ``C_max`` outputs per task; the
        real ``sum C`` columns are picked by ``out_index`` when the widths
        differ.
        """
        output_widths = [int(w) for w in output_widths]
        self.n_tasks = len(output_widths)
        tower_units = [int(u) for u in tower_units]
        self.towers = (
            BatchedMLP(self.n_tasks, in_features, tower_units, activation, dropout, False)
            if tower_units
            else None
        )
        tower_out = tower_units[-1] if tower_units else in_features
        max_width = max(output_widths)
        self.heads = BatchedLinear(self.n_tasks, tower_out, max_width)
        if all(w == max_width for w in output_widths):
            self.register_buffer("out_index", None)
        else:
            # columns of the flattened (T * C_max) head output that are real
            index = [t * max_width + j for t, w in enumerate(output_widths) for j in range(w)]
            self.register_buffer("out_index", torch.tensor(index, dtype=torch.long))

    def add_members(self, n_members: int):
        """Make the towers and heads serve ``n_members`` ensemble members at once.

        Adds each member's rank-1 adapters (created after every other
        parameter, so a network without members is unchanged): a
        multiplicative scale of each task's tower input, ``tower_scale``
        ``(T, k, 1, H)``, initialised with random signs (±1: what makes the
        members differ from the start, as TabM's first adapter), and a scale
        and a bias of each task's head output, ``head_scale`` and
        ``head_bias`` ``(T, k, 1, C_max)`` (ones and zeros at first). The
        towers' and heads' weights stay shared. From
        then on :meth:`_towers_forward` reads ``(T, k * B, H)``, the rows
        member-major (member ``m``'s rows are ``m * B`` to ``(m + 1) * B``).

        Parameters
        ----------
        n_members : int
            Number of members ``k``, at least 2.
        """
        if self.n_members != 1:
            raise ValueError(f"the network already has {self.n_members} members.")
        if int(n_members) < 2:
            raise ValueError(f"n_members must be at least 2, got {n_members}.")
        k = int(n_members)
        n_in = self.towers.first.weight.shape[1] if self.towers is not None else None
        n_in = self.heads.weight.shape[1] if n_in is None else n_in
        n_out = self.heads.weight.shape[2]
        self.n_members = k
        # the unit axis broadcasts over the B rows of each member
        signs = torch.randint(0, 2, (self.n_tasks, k, 1, n_in), dtype=torch.float32) * 2 - 1
        self.tower_scale = nn.Parameter(signs)
        self.head_scale = nn.Parameter(torch.ones(self.n_tasks, k, 1, n_out))
        self.head_bias = nn.Parameter(torch.zeros(self.n_tasks, k, 1, n_out))

    def member_parameters(self) -> list[nn.Parameter]:
        """The members' adapters of the towers and heads (none without members).

        Returns
        -------
        params : list of torch.nn.Parameter
            ``tower_scale``, ``head_scale``, ``head_bias``.
        """
        if self.n_members == 1:
            return []
        return [self.tower_scale, self.head_scale, self.head_bias]

    def _towers_forward(self, mixed: torch.Tensor) -> torch.Tensor:
        """Task outputs ``(R, sum C)`` from each task's tower input ``(T, R, H)``.

        ``R`` is the batch ``B``, or ``k * B`` member-major rows once the
        network has ``k`` members (:meth:`add_members`).
        """
        n_rows = mixed.shape[1]
        k = self.n_members
        if k > 1:
            n_tasks, _, width = mixed.shape
            # (T, k * B, H) -> (T, k, B, H), times each member's scale (T, k, 1, H)
            scaled = mixed.reshape(n_tasks, k, -1, width) * self.tower_scale
            mixed = scaled.view(n_tasks, n_rows, width)  # -> (T, k * B, H)
        # task-major from here: each tower and head is one baddbmm over T
        hidden = self.towers.forward_kfirst(mixed) if self.towers is not None else mixed
        out = self.heads.forward_kfirst(hidden)  # (T, R, C_max)
        if k > 1:
            n_tasks, _, width = out.shape
            # (T, k * B, C_max) -> (T, k, B, C_max); each member's scale and bias
            out = torch.addcmul(self.head_bias, out.view(n_tasks, k, -1, width), self.head_scale)
            # (T, k, B, C_max) -> (k, B, T, C_max) -> (k * B, T * C_max)
            out = out.permute(1, 2, 0, 3).reshape(n_rows, -1)
        else:
            out = out.transpose(0, 1).reshape(n_rows, -1)  # (B, T, C_max) -> (B, T * C_max)
        if self.out_index is not None:
            out = out.index_select(1, self.out_index)  # (R, sum C)
        return out

    def _towers_forward_rows_last(self, mixed: torch.Tensor) -> torch.Tensor:
        """Task outputs ``(B, sum C)`` from tower inputs laid out rows last, ``(T, H, B)``.

        The towers and heads run rows last as well (training layouts, see
        :func:`_mix_experts_rows_last`); with ensemble members, through
        :meth:`_towers_forward` on the transposed view.
        """
        if self.n_members > 1:
            return self._towers_forward(mixed.transpose(1, 2))  # (T, B, H), a view
        hidden = self.towers.forward_rows_last(mixed) if self.towers is not None else mixed
        out = self.heads.forward_rows_last(hidden)  # (T, C_max, B)
        # (T, C_max, B) -> (B, T, C_max) -> (B, T * C_max)
        out = out.permute(2, 0, 1).reshape(mixed.shape[2], -1)
        if self.out_index is not None:
            out = out.index_select(1, self.out_index)  # (B, sum C)
        return out

    def task_parameters(self) -> list[nn.Parameter]:
        """The parameters of one task only: the towers and heads (and their adapters).

        Returns
        -------
        params : list of torch.nn.Parameter
            Each is reached by one task's loss alone.
        """
        towers = [] if self.towers is None else list(self.towers.parameters())
        return towers + list(self.heads.parameters()) + self.member_parameters()

    def shared_parameters(self) -> list[nn.Parameter]:
        """The parameters the tasks share: everything below the towers.

        Task balancing (``task_weights="pcgrad"``) and the task-conflict
        diagnostics compare the tasks' gradients on these. An architecture
        whose bottom holds parameters of a single task may narrow this.

        Returns
        -------
        params : list of torch.nn.Parameter
            In registration order.
        """
        own = {id(p) for p in self.task_parameters()}
        return [p for p in self.parameters() if id(p) not in own]

    def last_shared_parameters(self) -> list[nn.Parameter]:
        """The weight of the last shared layer, whose task gradient norms GradNorm balances.

        Here the last layer of ``self.experts`` (a :class:`BatchedMLP`); an
        architecture without one overrides this.

        Returns
        -------
        params : list of torch.nn.Parameter
            Usually one weight tensor, a subset of :meth:`shared_parameters`.
        """
        experts = getattr(self, "experts", None)
        if not isinstance(experts, BatchedMLP):
            raise NotImplementedError(
                f"{type(self).__name__} does not say which is its last shared layer "
                "(last_shared_parameters), which task_weights='gradnorm' needs."
            )
        return [experts.last_layer.weight]

    def expert_labels(self, task_names: Sequence[str]) -> list[str]:
        """One label per expert for users: ``expert_names``, where the tasks have names.

        Parameters
        ----------
        task_names : sequence of str
            The name of each task, in the order of the outputs.

        Returns
        -------
        labels : list of str
            Here ``expert_names``; architectures with task-specific experts
            name their owners.
        """
        return list(self.expert_names)

    def gate_weights(self, x: torch.Tensor, level: int = -1) -> torch.Tensor:
        """Gate weights ``(B, T, E)``; architectures without gates raise ValueError.

        Parameters
        ----------
        x : torch.Tensor of shape (B, d)
            Input rows.
        level : int, default=-1
            Which level of gates, for architectures with several.

        Returns
        -------
        weights : torch.Tensor of shape (B, T, E)
            Each task's gate weights over the experts.
        """
        raise ValueError(f"the {type(self).__name__} architecture has no gates")

    def emit_onnx(self, builder, x: str) -> str:
        """Write the eval-mode ``forward`` as ONNX nodes; the output's name.

        Parameters
        ----------
        builder : sk_mmoe._onnx_graph.GraphBuilder
            Where the nodes go.
        x : str
            Name of the input tensor ``(B, d)``.

        Returns
        -------
        name : str
            Name of the output tensor ``(B, sum C)``.
        """
        return self._emit_onnx(builder, x)

    def _emit_onnx(self, builder, x: str) -> str:
        """:meth:`emit_onnx` of this architecture: each one implements it."""
        raise TypeError(
            f"sk_mmoe cannot write the {type(self).__name__} architecture to ONNX: it does "
            "not implement _emit_onnx (see CONTRIBUTING.md, 'Adding an architecture')."
        )
