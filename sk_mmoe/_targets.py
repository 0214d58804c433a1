"""Per-task target encoding and its inverse.

Regression columns are standardised (``StandardScaler``), classification
columns label-encoded (``LabelEncoder``), one encoder per column, so each task
keeps its own labels and dtype. Missing cells (NaN, None, ``pd.NA``) become
NaN in the encoded float32 matrix. This module imports nothing else from the
package but the task type names.
"""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd
from scipy.sparse import issparse
from sklearn.preprocessing import LabelEncoder, StandardScaler
from sklearn.utils.multiclass import type_of_target

from ._task_types import BINARY, MULTICLASS, REGRESSION
from .data._frames import as_pandas
from .training._funnel import FunnelTargets


def split_columns(y):
    """Split ``y`` into a list of 1-D column arrays.

    Returns ``(columns, names, was_1d)``. DataFrame columns keep their own
    dtype; ``names`` is an array of column names or None. A polars or Arrow
    frame is read as the pandas object it converts to.
    """
    y = as_pandas(y)
    if isinstance(y, pd.DataFrame):
        if y.shape[1] == 0:
            raise ValueError("y has 0 columns; at least one target is required.")
        names = np.asarray([str(c) for c in y.columns], dtype=object)
        return [_column_array(y.iloc[:, j]) for j in range(y.shape[1])], names, False
    if isinstance(y, pd.Series):
        return [_column_array(y)], None, True
    if issparse(y):
        raise TypeError("y must be dense; sparse targets are not supported.")
    arr = np.asarray(y)
    if arr.ndim == 0:
        raise ValueError(f"y must be 1-D or 2-D, got a scalar: {y!r}")
    if arr.ndim > 2:
        raise ValueError(
            f"y must be 1-D (one task) or 2-D (n_samples, n_tasks), got shape {arr.shape}."
        )
    if arr.ndim == 1:
        return [arr], None, True
    if arr.shape[1] == 0:
        raise ValueError("y has 0 columns; at least one target is required.")
    return [arr[:, j] for j in range(arr.shape[1])], None, False


def _column_array(series: pd.Series) -> np.ndarray:
    if pd.api.types.is_bool_dtype(series.dtype) and not series.isna().any():
        return series.to_numpy(dtype=bool)
    if pd.api.types.is_numeric_dtype(series.dtype) and not isinstance(
        series.dtype, pd.CategoricalDtype
    ):
        if series.isna().any() or not pd.api.types.is_integer_dtype(series.dtype):
            return series.to_numpy(dtype=np.float64, na_value=np.nan)
        return series.to_numpy()
    return series.to_numpy(dtype=object)


def natural(values: np.ndarray) -> np.ndarray:
    """An object array whose values share one type, as an array of that type.

    sklearn reads an object array of numbers as an "unknown" target; a column
    that held missing cells arrives as such an array once they are removed.
    """
    if values.dtype != object or len(values) == 0:
        return values
    kinds = {type(v) for v in values.tolist()}
    if len(kinds) == 1 or kinds <= {int, float}:
        return np.asarray(values.tolist())
    return values


def missing_mask(column: np.ndarray) -> np.ndarray:
    """Boolean mask of missing cells (NaN, None, ``pd.NA``, NaT)."""
    return np.asarray(pd.isna(column), dtype=bool)


def infer_task_type(column: np.ndarray, name: str) -> str:
    """``"regression"``, ``"binary"`` or ``"multiclass"`` from the values."""
    kind = type_of_target(column, input_name=f"y[{name}]")
    if kind == "continuous":
        return REGRESSION
    if kind in (BINARY, MULTICLASS):
        return kind
    raise ValueError(f"Cannot infer the task type of y column {name}: type {kind!r}.")


class TaskEncoder(FunnelTargets):
    """Encode a list of target columns for the network and decode its outputs.

    Parameters
    ----------
    task_types : list of str
        One of ``TASK_TYPES`` per column, or ``CLASSIFICATION``: binary or
        multiclass by the number of classes. After ``fit`` every entry is one
        of ``TASK_TYPES``.
    names : list of str
        Column names used in error messages.

    Attributes
    ----------
    sequence : tuple of int
        A funnel (``task_sequence``): the indices of its binary tasks in
        funnel order, or empty. Set by :meth:`resolve_sequence`'s caller;
        the network's output of each step is the logit of its probability
        given the earlier step, and decoding turns it into the joint
        probability. The positive class of a task is its second class
        (``classes_[1]``, the label sorted last: 1, True, "yes"), which is
        label-encoded as 1.
    """

    #: no funnel (also for encoders pickled before funnels existed)
    sequence = ()

    def __init__(self, task_types, names):
        self.task_types = list(task_types)
        self.names = list(names)

    def fit(self, columns, classes=None, sample_weight=None):
        """Fit one encoder per column on its non-missing values.

        ``classes`` (optional, per column) fixes the label set of a
        classification task, as ``partial_fit(classes=...)`` does.
        ``sample_weight`` weights the mean and scale of regression targets,
        so a row of weight 2 counts as that row twice.
        """
        self.encoders_ = []
        for j, (col, kind) in enumerate(zip(columns, self.task_types)):
            labelled = ~missing_mask(col)
            present = natural(col[labelled])
            if kind == REGRESSION:
                values = _as_float(present, self.names[j]).reshape(-1, 1)
                weight = None if sample_weight is None else sample_weight[labelled]
                self.encoders_.append(StandardScaler().fit(values, sample_weight=weight))
                continue
            labels = present if classes is None or classes[j] is None else classes[j]
            enc = _fit_label_encoder(np.asarray(labels), self.names[j])
            n_classes = len(enc.classes_)
            if n_classes < 2:
                raise ValueError(
                    f"y column {self.names[j]} has a single class "
                    f"({enc.classes_.tolist()}); a classification task needs at "
                    "least 2 classes."
                )
            if kind == BINARY and n_classes > 2:
                raise ValueError(
                    f"y column {self.names[j]} was declared 'binary' but has {n_classes} classes."
                )
            self.task_types[j] = BINARY if n_classes == 2 else MULTICLASS
            self.encoders_.append(enc)
        return self

    @property
    def output_widths(self):
        """Width of each task's network output: 1, or C for multiclass."""
        return [
            len(enc.classes_) if kind == MULTICLASS else 1
            for enc, kind in zip(self.encoders_, self.task_types)
        ]

    @property
    def classes(self):
        """Label array per task (None for regression tasks)."""
        return [
            None if kind == REGRESSION else enc.classes_
            for enc, kind in zip(self.encoders_, self.task_types)
        ]

    def transform(self, columns):
        """Encoded float32 matrix ``(n, T)``; missing cells are NaN."""
        out = np.empty((len(columns[0]), len(columns)), dtype=np.float32)
        for j, (col, enc) in enumerate(zip(columns, self.encoders_)):
            mask = missing_mask(col)
            present = natural(col[~mask])
            if self.task_types[j] == REGRESSION:
                values = _as_float(present, self.names[j]).reshape(-1, 1)
                encoded = enc.transform(values).ravel() if len(values) else values.ravel()
            else:
                encoded = self._encode_labels(j, present)
            out[mask, j] = np.nan
            out[~mask, j] = encoded
        if self.sequence:
            self.check_sequence_labels(out)
        return out

    def _encode_labels(self, j, labels):
        enc = self.encoders_[j]
        unseen = _unseen(labels, enc.classes_)
        if len(unseen):
            raise ValueError(
                f"y column {self.names[j]} contains labels not seen during fit: "
                f"{unseen[:10].tolist()}; known labels are {enc.classes_.tolist()}."
            )
        return enc.transform(labels) if len(labels) else np.empty(0)

    def check_labels(self, columns):
        """Raise ValueError if a classification column has labels not seen in fit."""
        for j, col in enumerate(columns):
            if self.task_types[j] != REGRESSION:
                self._encode_labels(j, natural(col[~missing_mask(col)]))

    def decode(self, outputs):
        """Per-task predictions from network outputs ``(n, sum C)``.

        Returns a list of 1-D arrays: floats for regression tasks, original
        labels for classification tasks.
        """
        blocks = self.split(outputs)
        if self.sequence:
            return self._decode_funnel(blocks)
        return [self._decode_task(j, block) for j, block in enumerate(blocks)]

    def regression_values(self, outputs):
        """All tasks' values ``(n, T)`` float64 when every task is a regression; else None.

        The same arithmetic as :meth:`decode` (the output in float64, times
        the scale, plus the mean), for all tasks at once.
        """
        if any(kind != REGRESSION for kind in self.task_types):
            return None
        values = outputs.astype(np.float64)  # (n, T): one output per task
        values *= np.concatenate([enc.scale_ for enc in self.encoders_])
        values += np.concatenate([enc.mean_ for enc in self.encoders_])
        return values

    def split(self, outputs):
        """Split ``(n, sum C)`` outputs into one ``(n, C_k)`` block per task."""
        blocks, start = [], 0
        for width in self.output_widths:
            blocks.append(outputs[:, start : start + width])
            start += width
        return blocks

    def _decode_task(self, j, block):
        enc = self.encoders_[j]
        kind = self.task_types[j]
        if kind == REGRESSION:
            # the fitted scaler's inverse_transform, without re-validating its
            # input on every predict (a large share of one-row latency)
            values = block[:, 0].astype(np.float64)
            values *= enc.scale_[0]
            values += enc.mean_[0]
            return values
        index = (block[:, 0] > 0).astype(np.intp) if kind == BINARY else block.argmax(1)
        return enc.classes_[index]

    def to_dict(self):
        """The fitted encoder as plain JSON-able data (see :meth:`from_dict`).

        Raises ``TypeError`` for labels that are not str, int, float or bool.
        """
        tasks = []
        for kind, enc in zip(self.task_types, self.encoders_):
            if kind == REGRESSION:
                tasks.append(
                    {
                        "type": kind,
                        "mean": enc.mean_.tolist(),
                        "scale": enc.scale_.tolist(),
                        "var": enc.var_.tolist(),
                        "n_samples_seen": np.asarray(enc.n_samples_seen_).tolist(),
                    }
                )
            else:
                tasks.append({"type": kind, "classes": _labels_to_dict(enc.classes_)})
        return {"names": list(self.names), "tasks": tasks}

    @classmethod
    def from_dict(cls, data):
        """A fitted encoder from the output of :meth:`to_dict`.

        Raises ``ValueError`` for an unknown task type, a regression task
        whose statistics are not one number each, or malformed labels;
        ``KeyError`` or ``TypeError`` for malformed data.
        """
        encoder = cls([t["type"] for t in data["tasks"]], data["names"])
        encoder.encoders_ = []
        for task in data["tasks"]:
            if task["type"] == REGRESSION:
                scaler = StandardScaler()
                scaler.mean_ = np.asarray(task["mean"], dtype=np.float64)
                scaler.scale_ = np.asarray(task["scale"], dtype=np.float64)
                scaler.var_ = np.asarray(task["var"], dtype=np.float64)
                scaler.n_samples_seen_ = np.asarray(task["n_samples_seen"])
                scaler.n_features_in_ = 1
                if any(np.shape(a) != (1,) for a in (scaler.mean_, scaler.scale_, scaler.var_)):
                    raise ValueError("a regression task's mean, scale and var are one number")
                encoder.encoders_.append(scaler)
            elif task["type"] in (BINARY, MULTICLASS):
                label_encoder = LabelEncoder()
                label_encoder.classes_ = _labels_from_dict(task["classes"])
                encoder.encoders_.append(label_encoder)
            else:
                raise ValueError(f"unknown task type {task['type']!r}")
        return encoder

    def probabilities(self, j, block):
        """Class probabilities ``(n, C)`` for classification task ``j``."""
        block = block.astype(np.float64)
        if self.task_types[j] == BINARY:
            p = 1.0 / (1.0 + np.exp(-block[:, 0]))
            return np.column_stack([1.0 - p, p])
        block = block - block.max(axis=1, keepdims=True)
        e = np.exp(block)
        return e / e.sum(axis=1, keepdims=True)

    def all_probabilities(self, outputs, conditional=False):
        """Class probabilities of every task from outputs ``(n, sum C)``; None for regression.

        A later funnel step's are those of the joint event (this step and
        every earlier one), ``[1 - P, P]`` with ``P`` the product of the
        steps' conditional probabilities so far; with ``conditional``, those
        of the step given the earlier one. The product is taken in float64
        in funnel order, each factor at most 1, so a step's joint probability
        never exceeds the earlier step's, and the conditional times the
        earlier joint is the joint exactly.
        """
        blocks = self.split(outputs)
        proba = [
            None if kind == REGRESSION else self.probabilities(j, block)
            for j, (kind, block) in enumerate(zip(self.task_types, blocks))
        ]
        if self.sequence and not conditional:
            joint = self._joint(proba)
            for j, p in zip(self.sequence[1:], joint[1:]):
                proba[j] = np.column_stack([1.0 - p, p])
        return proba


def _as_float(values, name):
    try:
        out = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"y column {name} must be numeric for a regression task: {exc}") from None
    if not np.all(np.isfinite(out)):
        raise ValueError(f"y column {name} contains infinity.")
    return out


def check_target_values(values, name):
    """Raise if a column's labelled values mix strings and numbers or hold infinity.

    TypeError for mixed label types, ValueError for infinity. ``values`` are
    the labelled cells, as :func:`natural` returns them.
    """
    if values.dtype == object:
        kinds = {
            "str"
            if isinstance(v, str)
            else "number"
            if isinstance(v, numbers.Number)
            else type(v).__name__
            for v in values.tolist()
        }
        if len(kinds) > 1:
            raise TypeError(
                f"y column {name} mixes label types {sorted(kinds)}; the labels of one "
                "task must all be strings or all be numbers."
            )
    elif values.dtype.kind == "f" and np.isinf(values).any():
        raise ValueError(f"y column {name} contains infinity.")


def _fit_label_encoder(labels, name):
    check_target_values(labels, name)
    return LabelEncoder().fit(labels)


def _unseen(labels, classes):
    if len(labels) == 0:
        return np.empty(0)
    try:
        return np.setdiff1d(np.unique(labels), classes)
    except TypeError:
        known = set(classes.tolist())
        return np.asarray(
            [v for v in dict.fromkeys(labels.tolist()) if v not in known], dtype=object
        )


def _labels_to_dict(classes):
    kinds = {type(v) for v in classes.tolist()}
    if not kinds <= {str, int, float, bool}:
        raise TypeError(
            f"Cannot save labels of type {sorted(k.__name__ for k in kinds)}; use "
            "str, int, float or bool labels, or pickle (trusted sources only)."
        )
    return {
        "dtype": classes.dtype.str if classes.dtype != object else "object",
        "values": classes.tolist(),
    }


def _labels_from_dict(data):
    """The labels written by :func:`_labels_to_dict`; ValueError or TypeError if malformed.

    Only the dtypes ``_labels_to_dict`` writes are accepted, and a string
    dtype no wider than its longest label (a file could otherwise declare
    a width of gigabytes).
    """
    dtype, values = data["dtype"], data["values"]
    if not isinstance(values, list) or not all(
        isinstance(v, (str, int, float, bool)) for v in values
    ):
        raise ValueError("class labels must be a list of str, int, float or bool")
    if dtype == "object":
        return np.asarray(values, dtype=object)
    if not isinstance(dtype, str):
        raise TypeError(f"class label dtype {dtype!r} is not a string")
    dtype = np.dtype(dtype)
    longest = max((len(str(v)) for v in values), default=1)
    if dtype.kind not in "biufU" or dtype.itemsize > max(8, 4 * longest):
        raise ValueError(f"class labels of dtype {dtype}")
    return np.asarray(values, dtype=dtype)
