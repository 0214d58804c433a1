"""ONNX helpers of the input blocks' encodings (imported by their emitters only: needs onnx)."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto
from skl2onnx.common.data_types import (
    BooleanTensorType,
    Int32TensorType,
    Int64TensorType,
    StringTensorType,
)

from ._columns import MISSING, OTHER

FLOAT, DOUBLE, INT64 = TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.INT64


def is_string(variable):
    return isinstance(variable.type, StringTensorType)


def as_numbers(builder, variable, to, hint):
    """``variable`` cast to ONNX type ``to``; strings are parsed as numbers.

    skl2onnx's ColumnTransformer casts all its outputs to the type of the
    first one, so numbers can reach the estimator as strings; they are
    parsed back (exact to float32 rounding).
    """
    return builder.node("Cast", [variable.onnx_name], hint, to=to)


class Selected:
    """A tensor name with the type of the input it was taken from."""

    def __init__(self, onnx_name, source):
        self.onnx_name = onnx_name
        self.type = source.type


def concat(builder, pieces, hint):
    if len(pieces) == 1:
        return pieces[0]
    return builder.node("Concat", pieces, hint, axis=1)


def position_codes(builder, module, x):
    """float codes ``(B, n_columns)`` -> int64 ``(B, D)``: each output position's column code.

    ``module.column`` gives each output position's column, as the
    categorical modules' forward reads it.
    """
    codes = builder.node("Cast", [x], "codes", to=INT64)
    return builder.node("Gather", [codes, builder.const(module.column, "column")], axis=1)


def category_codes(builder, column, categories, name):
    """int64 codes ``(B, 1)`` of one categorical column: 0 missing, 1 other, 2 + i."""
    codes = {value: 2 + i for i, value in enumerate(categories.tolist())}
    numeric = [k for k in codes if not isinstance(k, str)]
    if numeric if is_string(column) else len(numeric) < len(codes):
        raise TypeError(
            f"categorical column {name!r} had categories {categories.tolist()[:5]!r} in fit "
            f"but reaches the estimator as a {'string' if is_string(column) else 'numeric'} "
            "tensor. "
            "skl2onnx's ColumnTransformer casts all its outputs to the type of the first "
            "transformer's: list the columns passed through as strings first."
        )
    if is_string(column):
        keys = list(codes)
        values = [codes[k] for k in keys]
        if "" not in codes:
            keys, values = [*keys, ""], [*values, MISSING]
        return label_encoder(builder, column.onnx_name, "strings", keys, values)
    if isinstance(column.type, (Int64TensorType, Int32TensorType, BooleanTensorType)):
        integral = [k for k in numeric if float(k).is_integer()]
        value = builder.node("Cast", [column.onnx_name], "category", to=TensorProto.INT64)
        return label_encoder(
            builder, value, "int64s", [int(k) for k in integral], [codes[k] for k in integral]
        )
    # floats: matched as float32 (LabelEncoder's float keys); NaN is missing
    keys = np.asarray(numeric, dtype=np.float32)
    if len(np.unique(keys)) < len(keys):
        raise ValueError(
            f"the categories {numeric!r} are not distinct as float32 numbers, which is how "
            "ONNX matches a float column; pass the column as integers or strings."
        )
    value = as_numbers(builder, column, TensorProto.FLOAT, "category")
    matched = label_encoder(builder, value, "floats", keys.tolist(), [codes[k] for k in numeric])
    missing = builder.node("IsNaN", [value], "missing")
    return builder.node("Where", [missing, builder.const(np.int64(MISSING), "missing"), matched])


def label_encoder(builder, value, kind, keys, values):
    """``ai.onnx.ml.LabelEncoder`` from ``keys_<kind>`` to codes; "other" by default."""
    if not keys:  # the operator needs a key: one that is no category, mapped to "other"
        keys, values = [{"strings": "", "int64s": 0, "floats": 0.0}[kind]], [OTHER]
    return builder.node(
        "LabelEncoder",
        [value],
        "codes",
        domain="ai.onnx.ml",
        version=2,
        values_int64s=list(values),
        default_int64=OTHER,
        **{f"keys_{kind}": list(keys)},
    )
