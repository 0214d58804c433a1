"""The one-hot block: one integer code per column, expanded to one-hot vectors in the network."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ._categorical import CategoryCodes


class OneHot(nn.Module):
    """The one-hot vectors of all its categorical columns: one gather, one comparison.

    Column ``j`` has ``cardinalities[j]`` codes (its categories plus
    "missing" and "other", so both are categories of their own) and takes
    that many output positions. ``forward`` maps codes ``(B, n_columns)``
    (as floats, exact integers) to the concatenated one-hot vectors
    ``(B, sum(cardinalities))`` in the codes' dtype.

    How: two fixed buffers give each output position ``p`` its column
    ``column[p]`` and the code it stands for ``code[p]``; the output is
    ``codes[:, column] == code``. That is one gather and one comparison for
    all columns, with no Python loop over columns (``torch.nn.functional.one_hot``
    takes one width for all) and no in-place ``scatter_`` into a zero
    matrix; the ONNX graph is the same three operators (Gather, Equal,
    Cast), and a code out of range gives a row of zeros, never an index
    error. The buffers are rebuilt from ``cardinalities``, so they are not in
    ``state_dict``: the module has no weights at all, its one-hot vectors
    feed the experts' and gates' first linear layer, which acts as the
    embedding.

    Parameters
    ----------
    cardinalities : sequence of int
        The number of codes of each column.

    Examples
    --------
    >>> import torch
    >>> from sk_mmoe.inputs import OneHot
    >>> OneHot([3, 2])(torch.tensor([[2.0, 0.0], [0.0, 1.0]]))
    tensor([[0., 0., 1., 1., 0.],
            [1., 0., 0., 0., 1.]])
    """

    def __init__(self, cardinalities: Sequence[int]):
        super().__init__()
        self.cardinalities = [int(c) for c in cardinalities]
        column = [j for j, c in enumerate(self.cardinalities) for _ in range(c)]
        code = [k for c in self.cardinalities for k in range(c)]
        self.register_buffer("column", torch.tensor(column, dtype=torch.long), persistent=False)
        self.register_buffer("code", torch.tensor(code, dtype=torch.long), persistent=False)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        # (B, n_columns) -> (B, D): each output position reads its column's code
        per_position = codes.long().index_select(1, self.column)
        return (per_position == self.code).to(codes.dtype)  # (B, D)


class OneHotBlock(CategoryCodes):
    """Categorical columns as codes (0 missing, 1 "other", 2 + i), one-hot inside the network.

    The encoded matrix holds one code per column, as for
    :class:`~sk_mmoe.inputs.CategoricalEmbeddingBlock` (so it stays narrow
    whatever the number of categories); the module :class:`OneHot` expands
    them to ``sum(cardinalities)`` columns of 0 and 1. Reads
    ``min_frequency`` from the settings. The encoder gives this block the
    columns with at most ``one_hot_max_categories`` categories.

    Attributes
    ----------
    categories_ : list of ndarray
        The categories of each column that have their own code, in code
        order (code ``2 + i`` is ``categories_[j][i]``).
    embedding_dims_ : list of int
        The width of each column's one-hot vector (its number of codes),
        named as the embedding block's widths so both read alike.
    """

    kind = "one_hot"
    module_name = "one_hot"

    @property
    def embedding_dims_(self):
        return self.cardinalities

    @property
    def n_outputs(self):
        return sum(self.cardinalities)

    def module_spec(self):
        return OneHot, {"cardinalities": self.cardinalities}

    def size_hints(self):
        return list(self.cardinalities)

    @staticmethod
    def emit_module(builder, module, x):
        """float codes ``(B, n_columns)`` -> one-hot ``(B, D)``: as in torch."""
        from ._onnx import FLOAT, position_codes

        per_position = position_codes(builder, module, x)  # (B, D)
        hot = builder.node("Equal", [per_position, builder.const(module.code, "code")])
        return builder.node("Cast", [hot], "one_hot", to=FLOAT)
