"""Efficient ensembles (``n_ensemble``): ``k`` members of one architecture in one pass.

The members share every weight and differ by rank-1 multiplicative adapters
(BatchEnsemble, Wen et al., ICLR 2020), as in TabM (Gorishniy et al., ICLR
2025): each member's input is ``x * r_m`` (``r_m`` ones at first), each
member has its own scale of every task's tower input (random signs at first)
and its own scale and bias of every task's head output
(``MultiTaskModule.add_members``). The experts' and gates' weights are
shared by all members.

TabM puts the random signs on the first adapter, the input's. Here they are
on the towers' inputs: with them on the input, the shared experts and gates
must serve every member's sign-flipped copy of ``x``, and the ensemble
trained worse than the plain network (``make_mmoe_tasks``, 20,000 rows x 50
features, 15 epochs at the defaults, three seeds: held-out R² 0.966, 0.987,
0.945 with 4 members against 0.986, 0.989, 0.964 for one network), while
with the signs on the towers' inputs it trained better (0.990, 0.989,
0.976). Training minimises the mean of the members' losses (the targets are
repeated for each member, see ``MultiTaskLoss``); a prediction is the mean of
the members' predictions, each task in its own space: values for regression,
probabilities for classification.

Shapes: ``B`` rows, ``k`` members, ``d`` input features, ``T`` tasks, ``C``
a task's outputs; the members' rows are stacked member-major, ``(k * B, .)``:
member ``m``'s rows are ``m * B`` to ``(m + 1) * B``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from .._task_types import BINARY, MULTICLASS, REGRESSION
from ._modules import NetworkWrapper


class EnsembleNetwork(NetworkWrapper):
    """``k`` members of an architecture, trained and run in one forward pass.

    The input ``(B, d)`` becomes ``(k * B, d)``, member ``m``'s copy scaled by
    its adapter ``input_scale[m]``; the architecture runs once on all of
    them, its towers and heads applying each member's own adapters. In
    training mode the output is every member's, ``(k * B, sum C)``; in
    evaluation mode it is the members' mean ``(B, sum C)``, in each task's
    own space: the mean value of a regression task; for a binary task the
    logit of the mean probability; for a multiclass task the log of the mean
    probabilities (whose softmax is that mean). So every consumer of the
    outputs (decoding, validation loss, ONNX) reads them as a single
    network's.

    Parameters
    ----------
    n_features : int
        Input width ``d``.
    output_widths : sequence of int
        The tasks' output widths.
    architecture : type
        The architecture's module class (a ``MultiTaskModule``), built as
        ``architecture(n_features, output_widths, **architecture_params)``.
    n_ensemble : int
        Number of members ``k``, at least 2.
    output_kinds : sequence of {"regression", "binary", "multiclass"}
        Each task's type: how its members are averaged.
    **architecture_params
        The architecture's arguments.

    Attributes
    ----------
    network : MultiTaskModule
        The architecture, with ``k`` members (``add_members``).
    input_scale : torch.nn.Parameter of shape (k, d)
        Each member's input adapter (ones at first; the members' random
        signs are on the towers' inputs, see the module docstring).

    Notes
    -----
    The cost is that of the architecture on ``k`` times the rows; the
    parameters grow by ``k * (d + T * (H + 2 * C_max))`` only.
    """

    def __init__(
        self,
        n_features: int,
        output_widths: Sequence[int],
        architecture: type,
        n_ensemble: int,
        output_kinds: Sequence[str],
        **architecture_params,
    ):
        super().__init__()
        k = int(n_ensemble)
        if k < 2:
            raise ValueError(f"n_ensemble must be at least 2 for an ensemble, got {n_ensemble}.")
        if len(output_kinds) != len(output_widths):
            raise ValueError(f"{len(output_kinds)} output kinds for {len(output_widths)} tasks.")
        self.network = architecture(n_features, output_widths, **architecture_params)
        self.network.add_members(k)
        self.n_members = k
        self.input_scale = nn.Parameter(torch.ones(k, n_features))
        # each task's block of the outputs and how its members are averaged
        self.outputs = []  # (kind, start, stop)
        start = 0
        for kind, width in zip(output_kinds, output_widths):
            if kind not in (REGRESSION, BINARY, MULTICLASS):
                raise ValueError(f"unknown output kind {kind!r}.")
            self.outputs.append((kind, start, start + int(width)))
            start += int(width)

    def _members(self, x: torch.Tensor) -> torch.Tensor:
        """Every member's input: ``(B, d)`` -> ``(k * B, d)``, member-major."""
        # (1, B, d) * (k, 1, d) -> (k, B, d) -> (k * B, d)
        return (x.unsqueeze(0) * self.input_scale.unsqueeze(1)).view(-1, x.shape[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Every member's outputs in training, their mean in evaluation mode.

        Parameters
        ----------
        x : torch.Tensor of shape (B, d)
            Input rows.

        Returns
        -------
        out : torch.Tensor of shape (k * B, sum C) or (B, sum C)
            Training: member ``m``'s outputs in rows ``m * B`` to
            ``(m + 1) * B``. Evaluation: the members' mean, each task in its
            own space (see the class docstring), as logits for
            classification tasks.
        """
        out = self.network(self._members(x))  # (k * B, sum C)
        if self.training:
            return out
        return self.average(out.view(self.n_members, x.shape[0], -1))

    def average(self, members: torch.Tensor) -> torch.Tensor:
        """The members' mean ``(B, sum C)`` of their outputs ``(k, B, sum C)``.

        Parameters
        ----------
        members : torch.Tensor of shape (k, B, sum C)
            Each member's outputs.

        Returns
        -------
        out : torch.Tensor of shape (B, sum C)
            Regression: the mean. Binary: ``logit(mean_m sigmoid(z_m))``,
            computed as ``logsumexp_m log sigmoid(z_m) - logsumexp_m log
            sigmoid(-z_m)``, finite for any finite logits. Multiclass:
            ``log(mean_m softmax(z_m))``.
        """
        log_k = math.log(self.n_members)
        pieces = []
        for kind, start, stop in self.outputs:
            block = members[:, :, start:stop]  # (k, B, C_t)
            if kind == REGRESSION:
                pieces.append(block.mean(0))
            elif kind == BINARY:
                positive = torch.logsumexp(F.logsigmoid(block), dim=0)  # log sum_m p_m
                negative = torch.logsumexp(F.logsigmoid(-block), dim=0)  # log sum_m (1 - p_m)
                pieces.append(positive - negative)
            else:
                pieces.append(torch.logsumexp(F.log_softmax(block, dim=-1), dim=0) - log_k)
        return pieces[0] if len(pieces) == 1 else torch.cat(pieces, dim=1)

    def gate_weights(self, x: torch.Tensor, level: int = -1) -> torch.Tensor:
        """The members' mean gate weights.

        Parameters
        ----------
        x : torch.Tensor of shape (B, d)
            Input rows.
        level : int, default=-1
            Which level of gates (see the architecture's ``gate_weights``).

        Returns
        -------
        weights : torch.Tensor of shape (B, G, E)
            Each gate's weights averaged over the members; rows sum to 1.
        """
        weights = self.network.gate_weights(self._members(x), level=level)  # (k * B, G, E)
        # (k * B, G, E) -> (k, B, G, E) -> mean over k -> (B, G, E)
        return weights.view(self.n_members, x.shape[0], *weights.shape[1:]).mean(0)

    def own_shared_parameters(self) -> list[nn.Parameter]:
        """The members' input adapters: every task reads them."""
        return [self.input_scale]
