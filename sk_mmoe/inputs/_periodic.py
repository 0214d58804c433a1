"""The periodic numeric embedding (PLR): standardised values through learnt frequencies.

Gorishniy et al. (NeurIPS 2022): ``ReLU(Linear([cos(2 pi c x), sin(2 pi c x)]))``
per column, with frequencies ``c`` initialised from N(0, ``frequency_scale``)
(see :class:`~sk_mmoe.inputs._numeric_layers.PeriodicEmbedding`). The values
are standardised first (mean and scale learnt in ``fit``).
"""

from __future__ import annotations

from ._numeric import NumericScaling
from ._piecewise_linear import FlatEmbedding, emit_flat


class PeriodicBlock(NumericScaling):
    """Numeric columns standardised, then embedded by periodic functions (PLR).

    Reads ``numeric_embedding_dim`` and ``frequency_scale``.
    """

    kind = "periodic"
    role = "numeric"
    module_name = "numeric_embedding"

    def __init__(self, names, settings=None):
        settings = settings or {}
        super().__init__(names, {"numeric_scaling": "standard"})
        self.d_embedding = int(settings.get("numeric_embedding_dim", 16))
        self.frequency_scale = float(settings.get("frequency_scale", 0.01))

    @property
    def n_outputs(self):
        return self.n_columns * self.d_embedding

    def module_spec(self):
        return FlatEmbedding, {
            "kind": self.kind,
            "n_features": self.n_columns,
            "d_embedding": self.d_embedding,
            "frequency_scale": self.frequency_scale,
        }

    def size_hints(self):
        return [self.d_embedding]

    emit_module = staticmethod(emit_flat)

    def to_dict(self):
        return {
            **super().to_dict(),
            "d_embedding": self.d_embedding,
            "frequency_scale": self.frequency_scale,
        }

    @classmethod
    def from_dict(cls, names, data):
        settings = {
            "numeric_embedding_dim": data["d_embedding"],
            "frequency_scale": data["frequency_scale"],
        }
        block = cls(names, settings)
        scaled = NumericScaling.from_dict(names, data)
        block.mean_, block.scale_ = scaled.mean_, scaled.scale_
        return block
