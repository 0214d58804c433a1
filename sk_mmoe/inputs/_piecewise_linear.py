"""The piecewise-linear numeric embedding: quantile bins learnt in ``fit``, a vector per column.

Gorishniy et al. (NeurIPS 2022), "On Embeddings for Numerical Features in
Tabular Deep Learning", as TabM uses it: each value is encoded against its
column's bin edges and mapped to a ``numeric_embedding_dim`` vector (see
:class:`~sk_mmoe.inputs._numeric_layers.PiecewiseLinearEmbedding`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ._block import InputBlock
from ._numeric_layers import PeriodicEmbedding, PiecewiseLinearEmbedding, fit_bins


class FlatEmbedding(nn.Module):
    """A numeric embedding ``(B, F) -> (B, F, D)``, flattened to ``(B, F * D)`` for the experts.

    Parameters
    ----------
    kind : {"piecewise_linear", "periodic"}
        Which embedding.
    **kwargs
        The embedding module's arguments.
    """

    def __init__(self, kind, **kwargs):
        super().__init__()
        self.kind = kind
        layer = PiecewiseLinearEmbedding if kind == "piecewise_linear" else PeriodicEmbedding
        if kind == "piecewise_linear":
            kwargs = {**kwargs, "bins": [np.asarray(b, dtype=np.float32) for b in kwargs["bins"]]}
        self.embedding = layer(**kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embedding(x).flatten(1)  # (B, F, D) -> (B, F * D)


def emit_flat(builder, module, x):
    """ONNX nodes for :class:`FlatEmbedding`: ``(B, F)`` -> ``(B, F * D)``."""
    from ._numeric_layers import emit_periodic, emit_piecewise_linear

    emit = emit_piecewise_linear if module.kind == "piecewise_linear" else emit_periodic
    out = emit(builder, module.embedding, x)  # (B, F, D)
    width = module.embedding.n_features * module.embedding.d_embedding
    return builder.node("Reshape", [out, builder.shape([-1, width])], "numeric_embedded")


class PiecewiseLinearBlock(InputBlock):
    """Numeric columns through piecewise-linear embeddings of quantile bins.

    Reads ``n_bins`` and ``numeric_embedding_dim``. ``n_bins="auto"`` gives
    each column ``min(48, distinct values - 1)`` bins; an int is used for
    every column and must not exceed a column's distinct values. A constant
    column cannot be binned and is refused.

    Attributes
    ----------
    bins_ : list of ndarray
        The bin edges of each column (float32, increasing), learnt in ``fit``.
    """

    kind = "piecewise_linear"
    role = "numeric"
    module_name = "numeric_embedding"
    #: the bins of each column with ``n_bins="auto"``, at most
    AUTO_BINS = 48

    def __init__(self, names, settings=None):
        super().__init__(names)
        settings = settings or {}
        self.n_bins = settings.get("n_bins", "auto")
        self.d_embedding = int(settings.get("numeric_embedding_dim", 16))

    @property
    def n_outputs(self):
        return self.n_columns * self.d_embedding

    def fit(self, data):
        if self.n_bins == "auto":
            self.bins_ = []
            for j, name in enumerate(self.names):
                distinct = len(np.unique(data[:, j].astype(np.float32)))
                n_bins = max(2, min(self.AUTO_BINS, distinct - 1))
                self.bins_ += fit_bins(data[:, [j]], n_bins, [name])
        else:
            self.bins_ = fit_bins(data, int(self.n_bins), list(self.names))
        return self

    def transform(self, data):
        return data  # the bins are in the columns' own units

    def module_spec(self):
        kwargs = {"bins": [b.tolist() for b in self.bins_], "d_embedding": self.d_embedding}
        return FlatEmbedding, {"kind": self.kind, **kwargs}

    def size_hints(self):
        return [self.d_embedding, *(len(b) for b in self.bins_)]

    def emit_encoding(self, builder, columns):
        from ._onnx import FLOAT, as_numbers, concat

        pieces = [as_numbers(builder, c, FLOAT, "numeric") for c in columns]
        return concat(builder, pieces, "numeric")  # (B, n_columns) float

    emit_module = staticmethod(emit_flat)

    def to_dict(self):
        return {
            "d_embedding": self.d_embedding,
            "bins": [b.tolist() for b in self.bins_],
        }

    @classmethod
    def from_dict(cls, names, data):
        block = cls(names, {"numeric_embedding_dim": data["d_embedding"]})
        block.bins_ = [np.asarray(b, dtype=np.float32) for b in data["bins"]]
        if len(block.bins_) != len(block.names):
            raise ValueError("the numeric embedding's bins do not match its columns")
        return block
