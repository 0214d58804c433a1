"""ONNX export through skl2onnx: fitted estimators and whole Pipelines.

Importing this module registers skl2onnx converters for
:class:`~sk_mmoe.MMoERegressor`, :class:`~sk_mmoe.MMoEClassifier` and
:class:`~sk_mmoe.MMoEMultiTask`, so that ``skl2onnx.to_onnx(model, X_sample)``
converts a fitted estimator, or a fitted Pipeline of scikit-learn
preprocessing that skl2onnx supports followed by one of them, into one ONNX
graph that ``onnxruntime`` runs without Python, torch or skorch. It needs the
``onnx`` extra: ``pip install "sk-mmoe[onnx]"`` (onnx, onnxruntime, skl2onnx).

Inputs
------
The graph's inputs are those skl2onnx gives the first step: one input
``X`` of shape ``(n, n_features)`` for a numeric array, one input per
column (named after it, shape ``(n, 1)``) for a DataFrame. The estimator
reads its columns in order from whatever tensors reach it:

- numeric columns as float, double or integers (cast to float32, as
  ``predict`` casts them);
- categorical columns (``categorical_features``) as strings or numbers;
  each is mapped to its embedding code with an ``ai.onnx.ml.LabelEncoder``:
  a category seen in ``fit`` to its own code, any other value to the
  "other" code, and a missing value to the "missing" code. A missing value
  is NaN in a numeric tensor and the empty string ``""`` in a string tensor
  (ONNX strings cannot be None), unless ``""`` was itself a category in
  ``fit``.

skl2onnx's ColumnTransformer casts all its outputs to the type of its first
transformer's output, so string columns cannot pass through a
ColumnTransformer next to numbers; put the categorical columns before the
ColumnTransformer's numbers only if they are numbers too (e.g. an
``OrdinalEncoder``), or let the estimator read the raw DataFrame (it scales
its numeric columns itself, ``numeric_scaling="auto"``).

Outputs
-------
For each task, in the order of ``target_names_`` (``"task_0"``, ... when
``y`` had no column names), :func:`output_names` lists:

- ``predict_<task>``, shape ``(n,)``: the task's column of ``predict``:
  double for a regression task (in the target's original units), the
  original labels for a classification task (string, int64, bool or double
  tensor, as the labels' dtype);
- ``proba_<task>``, shape ``(n, n_classes)``, double: the task's
  ``predict_proba``, columns in the order of ``classes_``; classification
  tasks only;
- ``conditional_proba_<task>``, shape ``(n, 2)``, double: the task's
  ``conditional_proba``; the funnel's later steps only (``task_sequence``),
  whose ``predict_<task>`` and ``proba_<task>`` are those of the joint
  probability.

Examples
--------
>>> import numpy as np
>>> import onnxruntime as ort
>>> from skl2onnx import to_onnx
>>> from sklearn.pipeline import make_pipeline
>>> from sklearn.preprocessing import StandardScaler
>>> import sk_mmoe.onnx
>>> from sk_mmoe import MMoERegressor
>>> rng = np.random.RandomState(0)
>>> X = rng.normal(size=(200, 5)).astype(np.float32)
>>> Y = np.column_stack([X[:, 0] + 100.0, X[:, 1] * 3.0])
>>> pipe = make_pipeline(StandardScaler(), MMoERegressor(max_epochs=3, random_state=0))
>>> pipe = pipe.fit(X, Y)
>>> onx = to_onnx(pipe, X[:1])
>>> sk_mmoe.onnx.output_names(pipe[-1])
['predict_task_0', 'predict_task_1']
>>> session = ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
>>> first, second = session.run(None, {"X": X[:3]})
>>> bool(np.allclose(first, pipe.predict(X[:3])[:, 0], rtol=1e-5))
True
"""

from __future__ import annotations

try:
    from onnx import TensorProto
    from skl2onnx import get_model_alias, update_registered_converter
    from skl2onnx.common.data_types import (
        BooleanTensorType,
        DoubleTensorType,
        Int64TensorType,
        StringTensorType,
    )
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "sk_mmoe.onnx needs the optional dependencies onnx, onnxruntime and skl2onnx: "
        f'pip install "sk-mmoe[onnx]" ({exc})'
    ) from exc

import numbers

import numpy as np
from sklearn.utils.validation import check_is_fitted

from ._estimators import MMoEClassifier, MMoEMultiTask, MMoERegressor
from ._onnx_graph import MIN_OPSET, GraphBuilder, emit
from ._task_types import BINARY, REGRESSION
from .inputs._onnx import Selected, as_numbers, concat

__all__ = ["output_names"]

#: estimator class -> skl2onnx alias
_ALIASES = {
    MMoERegressor: "SkMMoEMMoERegressor",
    MMoEClassifier: "SkMMoEMMoEClassifier",
    MMoEMultiTask: "SkMMoEMMoEMultiTask",
}


def output_names(estimator):
    """The names of the ONNX outputs of a fitted estimator, in graph order.

    Parameters
    ----------
    estimator : MMoERegressor, MMoEClassifier or MMoEMultiTask
        A fitted estimator (the last step of a Pipeline).

    Returns
    -------
    names : list of str
        Per task, in the order of ``target_names_``: ``"predict_<task>"``,
        then ``"proba_<task>"`` for a classification task, then
        ``"conditional_proba_<task>"`` for a later step of the funnel
        (``task_sequence``).
    """
    check_is_fitted(estimator)
    encoder = estimator.target_encoder_
    later = set(encoder.sequence[1:])
    names = []
    for j, (name, kind) in enumerate(zip(estimator.target_names_, encoder.task_types)):
        names.append(f"predict_{name}")
        if kind != REGRESSION:
            names.append(f"proba_{name}")
        if j in later:
            names.append(f"conditional_proba_{name}")
    return names


# ---------------------------------------------------------------- parser
def _label_constant(classes):
    """The labels as an array a tensor can hold, and its skl2onnx tensor type."""
    classes = np.asarray(classes)
    if classes.dtype.kind == "O" and all(isinstance(c, str) for c in classes.tolist()):
        classes = classes.astype(str)
    kind = classes.dtype.kind
    if kind == "U":
        return classes, StringTensorType
    if kind in "iu":
        return classes.astype(np.int64), Int64TensorType
    if kind == "b":
        return classes, BooleanTensorType
    if kind == "f":
        return classes.astype(np.float64), DoubleTensorType
    raise TypeError(
        f"labels {classes.tolist()!r} mix types; an ONNX tensor holds labels of one type "
        "(strings, integers, booleans or floats)."
    )


def _parse(scope, model, inputs, custom_parsers=None):
    """Declare the operator and one output per task prediction and probability."""
    check_is_fitted(model)
    operator = scope.declare_local_operator(get_model_alias(type(model)), model)
    operator.inputs = inputs
    encoder = model.target_encoder_
    names = iter(output_names(model))
    later = set(encoder.sequence[1:])
    for j, (kind, classes) in enumerate(zip(encoder.task_types, encoder.classes)):
        label_type = DoubleTensorType if kind == REGRESSION else _label_constant(classes)[1]
        operator.outputs.append(scope.declare_local_variable(next(names), label_type([None])))
        if kind != REGRESSION:
            proba = DoubleTensorType([None, len(classes)])
            operator.outputs.append(scope.declare_local_variable(next(names), proba))
        if j in later:
            conditional = DoubleTensorType([None, 2])
            operator.outputs.append(scope.declare_local_variable(next(names), conditional))
    return operator.outputs


def _shape_calculator(operator):
    """Check the input widths and set the batch dimension of every output."""
    _column_sources(operator.raw_operator, operator.inputs)
    n_rows = operator.inputs[0].get_first_dimension()
    for output in operator.outputs:
        output.type.shape = [n_rows, *output.type.shape[1:]]


# ----------------------------------------------------------------- inputs
def _column_sources(model, inputs):
    """``(input index, column in that input)`` for each of the estimator's columns."""
    widths = []
    for variable in inputs:
        shape = variable.type.shape
        if len(shape) != 2:
            raise ValueError(
                f"input {variable.onnx_name!r} has shape {shape}; sk_mmoe reads 2-D inputs "
                "(n_rows, n_columns)."
            )
        widths.append(shape[1] if isinstance(shape[1], numbers.Integral) else None)
    n_features = model.n_features_in_
    unknown = [i for i, w in enumerate(widths) if w is None]
    known = sum(w for w in widths if w is not None)
    if len(unknown) == 1:
        widths[unknown[0]] = n_features - known
    elif unknown:
        raise ValueError(
            f"sk_mmoe cannot tell the widths of inputs {[inputs[i].onnx_name for i in unknown]}; "
            "give X_sample (or initial_types) with known column counts."
        )
    if sum(widths) != n_features:
        raise ValueError(
            f"the inputs reaching {type(model).__name__} have {sum(widths)} columns; it was "
            f"fitted on {n_features}."
        )
    return [(i, j) for i, width in enumerate(widths) for j in range(width)]


def _select(builder, variable, columns, width):
    """Columns ``columns`` of a 2-D input of ``width`` columns (the input itself if all)."""
    if list(columns) == list(range(width)):
        return variable.onnx_name
    if len(columns) == 1:
        return builder.slice(variable.onnx_name, columns[0], columns[0] + 1, 1, "column")
    index = builder.const(np.asarray(columns, dtype=np.int64), "columns")
    return builder.node("Gather", [variable.onnx_name, index], "columns", axis=1)


def _network_input(builder, model, inputs):
    """The float tensor ``(B, d)`` the network reads: ``predict``'s encoding of X."""
    sources = _column_sources(model, inputs)
    widths = [sum(1 for i, _ in sources if i == k) for k in range(len(inputs))]
    encoder = model.input_encoder_
    if encoder is None:
        pieces = [as_numbers(builder, v, TensorProto.FLOAT, "x") for v in inputs]
        return concat(builder, pieces, "x")
    pieces = []
    for block, positions in zip(encoder.blocks_, encoder.columns_):
        if block.role == "categorical":  # one tensor per column
            groups = [[p] for p in positions]
        else:  # one tensor per graph input
            groups = [[p for p in positions if sources[p][0] == k] for k in range(len(inputs))]
        columns = []
        for group in filter(None, groups):
            k = sources[group[0]][0]
            selected = _select(builder, inputs[k], [sources[p][1] for p in group], widths[k])
            columns.append(Selected(selected, inputs[k]))
        pieces.append(block.emit_encoding(builder, columns))
    return concat(builder, pieces, "x")


# ---------------------------------------------------------------- outputs
def _decode(builder, model, outputs, onnx_outputs):
    """Write each task's prediction (and probabilities) into the declared outputs."""
    encoder = model.target_encoder_
    targets = iter(onnx_outputs)
    joint = _funnel_joint(builder, encoder, outputs)
    start = 0
    for j, (kind, width) in enumerate(zip(encoder.task_types, encoder.output_widths)):
        block = builder.slice(outputs, start, start + width, 1, f"task_{j}")  # (B, C_j)
        start += width
        if j in joint:
            _decode_funnel_step(builder, encoder, j, block, joint[j], targets)
            continue
        if kind == REGRESSION:
            scaler = encoder.encoders_[j]
            value = builder.node("Cast", [block], to=TensorProto.DOUBLE)
            value = builder.node("Mul", [value, builder.const(scaler.scale_, "scale")])
            value = builder.node("Add", [value, builder.const(scaler.mean_, "mean")])
            builder.node("Reshape", [value, builder.shape([-1])], output=next(targets).full_name)
            continue
        labels, _ = _label_constant(encoder.classes[j])
        if kind == BINARY:
            index = builder.node("Greater", [block, builder.const(np.float32(0), "zero")])
            index = builder.node("Cast", [index], to=TensorProto.INT64)
            index = builder.node("Reshape", [index, builder.shape([-1])])
        else:
            index = builder.node("ArgMax", [block], axis=1, keepdims=0)
        builder.node(
            "Gather", [builder.const(labels, "classes"), index], output=next(targets).full_name
        )
        logits = builder.node("Cast", [block], to=TensorProto.DOUBLE)
        proba = next(targets).full_name
        if kind == BINARY:
            positive = builder.node("Sigmoid", [logits])
            negative = builder.node("Sub", [builder.const(np.float64(1), "one"), positive])
            builder.node("Concat", [negative, positive], axis=1, output=proba)
        else:
            builder.node("Softmax", [logits], axis=1, output=proba)


def _funnel_joint(builder, encoder, outputs):
    """The joint probability ``(B, 1)`` double of each later funnel step, by task index.

    As ``predict_proba``: the product, in funnel order, of the steps'
    sigmoids in double.
    """
    starts = np.cumsum([0, *encoder.output_widths])
    joint, product = {}, None
    for j in encoder.sequence:
        logit = builder.slice(outputs, starts[j], starts[j] + 1, 1, f"step_{j}")  # (B, 1)
        step = builder.node("Sigmoid", [builder.node("Cast", [logit], to=TensorProto.DOUBLE)])
        if product is not None:
            product = joint[j] = builder.node("Mul", [product, step])
        else:
            product = step
    return joint


def _decode_funnel_step(builder, encoder, j, block, joint, targets):
    """A later funnel step: label and probabilities of the joint, then the conditional."""
    labels, _ = _label_constant(encoder.classes[j])
    one = builder.const(np.float64(1), "one")
    index = builder.node("Greater", [joint, builder.const(np.float64(0.5), "half")])
    index = builder.node("Cast", [index], to=TensorProto.INT64)
    index = builder.node("Reshape", [index, builder.shape([-1])])
    builder.node(
        "Gather", [builder.const(labels, "classes"), index], output=next(targets).full_name
    )
    negative = builder.node("Sub", [one, joint])
    builder.node("Concat", [negative, joint], axis=1, output=next(targets).full_name)
    positive = builder.node("Sigmoid", [builder.node("Cast", [block], to=TensorProto.DOUBLE)])
    negative = builder.node("Sub", [one, positive])
    builder.node("Concat", [negative, positive], axis=1, output=next(targets).full_name)


def _convert(scope, operator, container):
    """Write the fitted estimator as ONNX nodes: input encoding, network, decoding."""
    model = operator.raw_operator
    builder = GraphBuilder(scope, container)
    if builder.opset < MIN_OPSET:
        raise ValueError(
            f"sk_mmoe writes ONNX opset {MIN_OPSET} or later; target_opset is {builder.opset}."
        )
    x = _network_input(builder, model, operator.inputs)
    module = model.module_
    module.eval()
    outputs = emit(builder, module, x)  # (B, sum C)
    _decode(builder, model, outputs, operator.outputs)


for _klass, _alias in _ALIASES.items():
    update_registered_converter(
        _klass,
        _alias,
        _shape_calculator,
        _convert,
        parser=_parse,
        # no options: outputs are always plain label and probability tensors
        # (skl2onnx's zipmap / nocl are not implemented, so they are refused)
    )
