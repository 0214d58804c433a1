"""The network wrapper that runs the input blocks' modules before an architecture."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..nn._modules import NetworkWrapper


class InputNetwork(NetworkWrapper):
    """An architecture whose inputs pass through the input blocks' modules first.

    The input ``(B, n_features)`` is the encoded matrix: each block's encoded
    columns in block order (see :class:`sk_mmoe.inputs.InputEncoder`). Each
    block with a module maps its columns to ``(B, width)``; a block without
    one passes its columns on. The pieces are concatenated in block order
    and read by the experts and gates of ``network`` (any architecture,
    built here as ``network(sum of widths, output_widths, **network_params)``).

    Parameters
    ----------
    n_features : int
        Width of the encoded matrix.
    output_widths : sequence of int
        The tasks' output widths.
    blocks : list of tuple
        Per block ``(kind, module_name, n_encoded, width, module_class,
        module_kwargs)``; ``module_name`` and ``module_class`` are None for a
        block without module. The module is the attribute ``module_name``
        (so its weights are ``<module_name>.*`` in ``state_dict``).
    network : type
        The architecture's module class.
    **network_params
        The architecture's arguments.
    """

    def __init__(
        self,
        n_features: int,
        output_widths: Sequence[int],
        blocks: Sequence[tuple],
        network: type,
        **network_params,
    ):
        super().__init__()
        if n_features != sum(int(b[2]) for b in blocks):
            raise ValueError(
                f"n_features={n_features} is not the blocks' {sum(int(b[2]) for b in blocks)} "
                "encoded columns"
            )
        self.blocks = []  # (kind, module name or None, start, stop)
        start = 0
        for kind, name, n_encoded, _, module_class, module_kwargs in blocks:
            if module_class is not None:
                setattr(self, name, module_class(**module_kwargs))
            self.blocks.append(
                (kind, name if module_class is not None else None, start, start + n_encoded)
            )
            start += n_encoded
        width = sum(int(b[3]) for b in blocks)
        self.network = network(width, output_widths, **network_params)

    def input_modules(self) -> list[nn.Module]:
        """The blocks' modules, in block order."""
        return [getattr(self, name) for _, name, _, _ in self.blocks if name is not None]

    def _inputs(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, n_features)`` encoded -> the network's input ``(B, sum of widths)``."""
        pieces = []
        for _, name, start, stop in self.blocks:
            piece = x[:, start:stop]  # (B, n_encoded) of this block
            pieces.append(piece if name is None else getattr(self, name)(piece))
        return pieces[0] if len(pieces) == 1 else torch.cat(pieces, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(self._inputs(x))

    def gate_weights(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        return self.network.gate_weights(self._inputs(x), **kwargs)

    def own_shared_parameters(self) -> list[nn.Parameter]:
        """The input blocks' parameters: they feed every task."""
        return [p for module in self.input_modules() for p in module.parameters()]
