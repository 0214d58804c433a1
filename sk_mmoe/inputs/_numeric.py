"""The numeric block: numeric columns standardised (mean and scale learnt in fit) or as given."""

from __future__ import annotations

import numpy as np

from ._block import InputBlock


class NumericScaling(InputBlock):
    """Numeric columns fed to the experts as numbers: standardised, or as given.

    Standardised when ``numeric_scaling`` is not None (the estimator creates
    this block only when scaling is on or ``X`` has categorical columns).
    No module: the encoded columns are the network's inputs.

    Attributes
    ----------
    mean_, scale_ : ndarray of shape (n_columns,) or None
        The standardisation (None when the columns are used as given); a
        constant column has scale 1.
    """

    kind = "numeric"
    role = "numeric"

    def __init__(self, names, settings=None):
        super().__init__(names)
        self.scale = settings is None or settings.get("numeric_scaling") is not None
        self.mean_ = self.scale_ = None

    def fit(self, data):
        if self.scale and data.shape[1]:
            self.mean_ = data.mean(axis=0)
            std = data.std(axis=0)
            self.scale_ = np.where(std > 0, std, 1.0)
        return self

    def transform(self, data):
        if self.mean_ is None:
            return data
        return (data - self.mean_) / self.scale_

    def emit_encoding(self, builder, columns):
        from ._onnx import DOUBLE, FLOAT, as_numbers, concat

        x = concat(
            builder, [as_numbers(builder, c, DOUBLE, "numeric") for c in columns], "numeric"
        )
        if self.mean_ is not None:
            x = builder.node("Sub", [x, builder.const(self.mean_, "mean", np.float64)])
            x = builder.node("Div", [x, builder.const(self.scale_, "scale", np.float64)])
        return builder.node("Cast", [x], "numeric", to=FLOAT)

    def to_dict(self):
        return {
            "mean": None if self.mean_ is None else self.mean_.tolist(),
            "scale": None if self.scale_ is None else self.scale_.tolist(),
        }

    @classmethod
    def from_dict(cls, names, data):
        block = cls(names)
        for key in ("mean", "scale"):
            value = data[key]
            value = None if value is None else np.asarray(value, dtype=np.float64)
            if value is not None and value.shape != (len(block.names),):
                raise ValueError(f"numeric {key} does not match its columns")
            setattr(block, f"{key}_", value)
        block.scale = block.mean_ is not None
        return block
