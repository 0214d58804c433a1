"""The categorical block: one integer code per column, looked up in a learned embedding."""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from ._block import InputBlock
from ._columns import codes, frequent_categories, values_from_dict, values_to_dict

#: codes are stored as float32 numbers: exact below this
MAX_CODES = 2**24
#: the "auto" embedding width: 1.6 * n_codes ** 0.56, at most this
AUTO_EMBEDDING_CAP = 32


def auto_embedding_dim(n_codes):
    """The ``embedding_dim="auto"`` width for a column with ``n_codes`` codes.

    ``round(1.6 * n_codes ** 0.56)``, between 1 and ``AUTO_EMBEDDING_CAP``: 2
    for a boolean column, 6 for 10 categories, 21 for 100, capped at 32.

    Examples
    --------
    >>> from sk_mmoe.inputs import auto_embedding_dim
    >>> auto_embedding_dim(4), auto_embedding_dim(102)
    (3, 21)
    """
    return int(min(AUTO_EMBEDDING_CAP, max(1, round(1.6 * n_codes**0.56))))


class CategoricalEmbedding(nn.Module):
    """The embeddings of all categorical columns: one flat table, one gather.

    Column ``j`` has ``cardinalities[j]`` codes and width ``dims[j]``; its
    table is the ``(cardinalities[j], dims[j])`` block of the flat
    ``weight`` starting at ``offsets[j]``. ``forward`` maps codes
    ``(B, n_columns)`` (as floats, exact integers) to the concatenated
    embeddings ``(B, sum(dims))`` with one index computation and one gather,
    however many columns there are. Entries are initialised from N(0, 1) like
    :class:`torch.nn.Embedding`, except code 1 ("other": rare or unseen
    categories), which starts at 0.
    """

    def __init__(self, cardinalities: Sequence[int], dims: Sequence[int]):
        super().__init__()
        cardinalities = [int(c) for c in cardinalities]
        dims = [int(d) for d in dims]
        sizes = [c * d for c, d in zip(cardinalities, dims)]
        offsets = [0]
        for size in sizes[:-1]:
            offsets.append(offsets[-1] + size)
        self.cardinalities, self.dims, self.offsets = cardinalities, dims, offsets
        weight = torch.randn(sum(sizes))
        for offset, dim in zip(offsets, dims):
            weight[offset + dim : offset + 2 * dim] = 0.0  # code 1 of each column
        self.weight = nn.Parameter(weight)
        # for each output position p: its column, the column's width, and
        # where position p of code 0 sits in the flat table
        column = [j for j, d in enumerate(dims) for _ in range(d)]
        self.register_buffer("column", torch.tensor(column, dtype=torch.long))
        self.register_buffer("width", torch.tensor([dims[j] for j in column], dtype=torch.long))
        base = [offsets[j] + k for j, d in enumerate(dims) for k in range(d)]
        self.register_buffer("base", torch.tensor(base, dtype=torch.long))

    def table(self, j: int) -> torch.Tensor:
        """Column ``j``'s embedding table ``(cardinalities[j], dims[j])`` (a view)."""
        start = self.offsets[j]
        size = self.cardinalities[j] * self.dims[j]
        return self.weight[start : start + size].view(self.cardinalities[j], self.dims[j])

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        codes = codes.long()  # (B, n_columns), exact: codes are below 2**24
        # (B, n_columns) -> (B, D): each output position reads its column's code
        index = codes.index_select(1, self.column) * self.width + self.base
        return self.weight[index]  # (B, D)


class CategoryCodes(InputBlock):
    """Base of the blocks that read categorical columns as codes (0 missing, 1 "other", 2 + i).

    Owns what every such block shares: the categories kept in fit (those
    seen in at least ``min_frequency`` rows, read from the settings), the
    encoded matrix (one float32 code per column), its ONNX emitter and the
    categories' file codec. A subclass adds its module and its own fitted
    widths. Not registered itself.

    Attributes
    ----------
    categories_ : list of ndarray
        The categories of each column that have their own code, in code
        order (code ``2 + i`` is ``categories_[j][i]``).
    """

    role = "categorical"

    def __init__(self, names, settings=None):
        super().__init__(names)
        settings = settings or {}
        self.min_frequency = int(settings.get("min_frequency", 1))

    @property
    def cardinalities(self):
        """Codes of each column: its categories plus "missing" and "other"."""
        return [len(c) + 2 for c in self.categories_]

    def fit(self, data, categories=None):
        """Learn each column's categories (or take ``categories``, one array per column).

        The encoder passes ``categories`` when it has already counted them
        (to choose between blocks), so the columns are counted once.
        """
        if categories is None:
            categories = [
                frequent_categories(col, name, self.min_frequency)
                for col, name in zip(data, self.names)
            ]
        self.categories_ = list(categories)
        for cats, name in zip(self.categories_, self.names):
            if len(cats) + 2 > MAX_CODES:
                raise ValueError(
                    f"X column {name!r} has {len(cats)} categories; an embedding indexes at "
                    f"most {MAX_CODES - 2}. Raise min_frequency to group rare ones."
                )
        return self

    def transform(self, data):
        out = np.empty((len(data[0]) if data else 0, len(data)), dtype=np.float32)
        for j, (col, cats) in enumerate(zip(data, self.categories_)):
            out[:, j] = codes(col, cats, self.names[j])
        return out

    def emit_encoding(self, builder, columns):
        from ._onnx import FLOAT, category_codes, concat

        pieces = [
            category_codes(builder, column, cats, name)
            for column, cats, name in zip(columns, self.categories_, self.names)
        ]
        return builder.node("Cast", [concat(builder, pieces, "codes")], "codes", to=FLOAT)

    def to_dict(self):
        return {
            "min_frequency": self.min_frequency,
            "categories": [values_to_dict(c) for c in self.categories_],
        }

    @classmethod
    def from_dict(cls, names, data):
        block = cls(names, {"min_frequency": data["min_frequency"]})
        block.categories_ = [values_from_dict(c) for c in data["categories"]]
        if len(block.categories_) != len(block.names):
            raise ValueError("the categorical columns do not match their categories")
        return block


class CategoricalEmbeddingBlock(CategoryCodes):
    """Categorical columns as codes (0 missing, 1 "other", 2 + i), embedded by the network.

    Reads ``embedding_dim`` and ``min_frequency`` from the settings.

    Attributes
    ----------
    categories_ : list of ndarray
        The categories of each column that have their own code, in code
        order (code ``2 + i`` is ``categories_[j][i]``).
    embedding_dims_ : list of int
        Embedding width of each column.
    """

    kind = "embedding"
    module_name = "embedding"

    def __init__(self, names, settings=None):
        super().__init__(names, settings)
        self.embedding_dim = (settings or {}).get("embedding_dim", "auto")

    @property
    def n_outputs(self):
        return sum(self.embedding_dims_)

    def fit(self, data, categories=None):
        super().fit(data, categories)
        self.embedding_dims_ = self._dims()
        return self

    def module_spec(self):
        return CategoricalEmbedding, {
            "cardinalities": self.cardinalities,
            "dims": self.embedding_dims_,
        }

    def size_hints(self):
        return [*self.cardinalities, *self.embedding_dims_]

    @staticmethod
    def emit_module(builder, module, x):
        """float codes ``(B, n_columns)`` -> embeddings ``(B, D)``: one gather, as in torch."""
        from ._onnx import position_codes

        per_position = position_codes(builder, module, x)  # (B, D)
        index = builder.node("Mul", [per_position, builder.const(module.width, "width")])
        index = builder.node("Add", [index, builder.const(module.base, "base")])
        weight = builder.const(module.weight, "embedding_table", np.float32)
        return builder.node("Gather", [weight, index], "embedded", axis=0)

    def to_dict(self):
        return {"embedding_dims": list(self.embedding_dims_), **super().to_dict()}

    @classmethod
    def from_dict(cls, names, data):
        block = super().from_dict(names, data)
        block.embedding_dims_ = [int(d) for d in data["embedding_dims"]]
        if len(block.embedding_dims_) != len(block.categories_):
            raise ValueError("the categorical columns do not match their categories")
        return block

    # ------------------------------------------------------------- internals
    def _dims(self):
        spec = self.embedding_dim
        names = list(self.names)
        if isinstance(spec, dict):
            unknown = sorted(set(map(str, spec)) - set(names))
            if unknown:
                raise ValueError(
                    f"embedding_dim names columns {unknown} that are not categorical; the "
                    f"categorical columns are {names}."
                )
            spec = {str(k): v for k, v in spec.items()}
        dims = []
        for name, n_codes in zip(names, self.cardinalities):
            value = spec.get(name, "auto") if isinstance(spec, dict) else spec
            if value == "auto":
                value = auto_embedding_dim(n_codes)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(
                    f"embedding_dim for column {name!r} must be a positive int or 'auto', "
                    f"got {value!r}."
                )
            dims.append(int(value))
        return dims
