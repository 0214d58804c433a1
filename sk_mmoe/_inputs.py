"""Input encoding: what the network reads, from arrays, sparse matrices and DataFrames.

Three kinds of ``X`` reach the estimators:

- a numeric array with no categorical column: used as given (float32 or
  float64, validated by scikit-learn), exactly as a plain MLP would;
- a scipy sparse matrix: kept sparse (CSR) and densified one batch at a time
  by the dataset and the prediction loop;
- a DataFrame, or an array with columns named in ``categorical_features``:
  encoded by :class:`InputEncoder` into one float32 matrix, numeric columns
  first (standardised when ``X`` is a DataFrame), then one integer code per
  categorical column, which the network's embedding layer looks up.

Codes of a categorical column: 0 for a missing value (NaN, None, ``pd.NA``),
1 for "other" (a category seen in fewer than ``min_frequency`` training rows,
or never seen in fit), 2, 3, ... for the categories of ``categories_``.
Codes are stored as float32, exact for integers below 2**24.
"""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd
from sklearn.utils.validation import check_array

#: code of a missing value and of "other" (rare or unseen) in every categorical column
MISSING, OTHER = 0, 1
#: codes are stored as float32 numbers: exact below this
MAX_CODES = 2**24
#: the "auto" embedding width: 1.6 * n_codes ** 0.56, at most this
AUTO_EMBEDDING_CAP = 32


def auto_embedding_dim(n_codes):
    """The ``embedding_dim="auto"`` width for a column with ``n_codes`` codes.

    ``round(1.6 * n_codes ** 0.56)``, between 1 and ``AUTO_EMBEDDING_CAP``: 2
    for a boolean column, 6 for 10 categories, 21 for 100, capped at 32.
    """
    return int(min(AUTO_EMBEDDING_CAP, max(1, round(1.6 * n_codes**0.56))))


def _is_categorical_dtype(dtype):
    return (
        isinstance(dtype, pd.CategoricalDtype)
        or pd.api.types.is_object_dtype(dtype)
        or pd.api.types.is_string_dtype(dtype)
        or pd.api.types.is_bool_dtype(dtype)
    )


def resolve_categorical(X, categorical_features, feature_names):
    """Boolean mask of the categorical columns of ``X``, or None if there are none.

    ``categorical_features`` takes the values of HistGradientBoosting's
    parameter: None, ``"from_dtype"``, column names, indices or a mask.
    """
    n_features = X.shape[1]
    if categorical_features is None:
        return None
    if isinstance(categorical_features, str):  # "from_dtype"
        if not isinstance(X, pd.DataFrame):
            return None
        mask = np.array([_is_categorical_dtype(dt) for dt in X.dtypes], dtype=bool)
        return mask if mask.any() else None
    spec = np.asarray(categorical_features)
    if spec.size == 0:
        return None
    if spec.ndim != 1:
        raise ValueError(
            f"categorical_features must be 1-D (names, indices or a mask), got shape {spec.shape}."
        )
    if spec.dtype.kind in "OUS":
        if feature_names is None:
            raise ValueError(
                "categorical_features names columns, but X has no column names; pass a "
                "DataFrame or give column indices."
            )
        names = [str(n) for n in feature_names]
        unknown = [str(s) for s in spec if str(s) not in names]
        if unknown:
            raise ValueError(
                f"categorical_features names columns {unknown} that are not in X; its "
                f"columns are {names}."
            )
        wanted = {str(s) for s in spec}
        mask = np.array([n in wanted for n in names], dtype=bool)
    elif spec.dtype.kind == "b":
        if len(spec) != n_features:
            raise ValueError(
                f"categorical_features as a boolean mask has {len(spec)} entries but X has "
                f"{n_features} columns."
            )
        mask = spec.astype(bool)
    elif spec.dtype.kind in "iu":
        bad = [int(i) for i in spec if not 0 <= i < n_features]
        if bad:
            raise ValueError(
                f"categorical_features has column indices {bad} outside [0, {n_features})."
            )
        mask = np.zeros(n_features, dtype=bool)
        mask[spec] = True
    else:
        raise TypeError(
            "categorical_features must be None, 'from_dtype', or column names, indices "
            f"or a boolean mask; got {categorical_features!r}."
        )
    return mask if mask.any() else None


class InputEncoder:
    """Encode ``X`` into the float32 matrix the network reads; fitted once, in ``fit``.

    Parameters
    ----------
    is_categorical : ndarray of bool of shape (n_features,)
        Which columns of ``X`` are categorical.
    embedding_dim : int, dict or "auto"
        Width of each categorical column's embedding.
    min_frequency : int
        Categories seen in fewer rows share the "other" code.
    scale_numeric : bool
        Standardise the numeric columns (done for DataFrames).

    Attributes
    ----------
    categories_ : list of ndarray
        The categories of each categorical column that have their own code,
        in code order (code ``2 + i`` is ``categories_[j][i]``).
    embedding_dims_ : list of int
        Embedding width of each categorical column.
    mean_, scale_ : ndarray or None
        The numeric columns' standardisation (None when not scaled).
    """

    def __init__(self, is_categorical, embedding_dim, min_frequency, scale_numeric):
        self.is_categorical = np.asarray(is_categorical, dtype=bool)
        self.embedding_dim = embedding_dim
        self.min_frequency = int(min_frequency)
        self.scale_numeric = bool(scale_numeric)

    @property
    def n_numeric(self):
        """Number of numeric columns."""
        return int((~self.is_categorical).sum())

    @property
    def cardinalities(self):
        """Codes of each categorical column: its categories plus "missing" and "other"."""
        return [len(c) + 2 for c in self.categories_]

    def fit(self, X, feature_names=None):
        """Learn categories, embedding widths and the numeric scaling from ``X``."""
        names = self._names(feature_names)
        numeric, categorical = self._split(X, names)
        self.categories_ = [
            self._frequent(col, name) for col, name in zip(categorical, names[self.is_categorical])
        ]
        for cats, name in zip(self.categories_, names[self.is_categorical]):
            if len(cats) + 2 > MAX_CODES:
                raise ValueError(
                    f"X column {name!r} has {len(cats)} categories; an embedding indexes at "
                    f"most {MAX_CODES - 2}. Raise min_frequency to group rare ones."
                )
        self.embedding_dims_ = self._dims(names[self.is_categorical])
        if self.scale_numeric and numeric.shape[1]:
            self.mean_ = numeric.mean(axis=0)
            std = numeric.std(axis=0)
            self.scale_ = np.where(std > 0, std, 1.0)
        else:
            self.mean_ = self.scale_ = None
        return self

    def transform(self, X, feature_names=None):
        """``(n, n_numeric + n_categorical)`` float32: scaled numbers, then codes."""
        names = self._names(feature_names)
        numeric, categorical = self._split(X, names)
        out = np.empty((X.shape[0], len(self.is_categorical)), dtype=np.float32)
        if self.mean_ is not None:
            numeric = (numeric - self.mean_) / self.scale_
        n_numeric = numeric.shape[1]
        out[:, :n_numeric] = numeric
        cat_names = names[self.is_categorical]
        for j, (col, cats) in enumerate(zip(categorical, self.categories_)):
            out[:, n_numeric + j] = _codes(col, cats, cat_names[j])
        return out

    # ------------------------------------------------------------- internals
    def _names(self, feature_names):
        if feature_names is not None:
            return np.asarray([str(n) for n in feature_names], dtype=object)
        return np.asarray([str(j) for j in range(len(self.is_categorical))], dtype=object)

    def _split(self, X, names):
        """The numeric block (float64, checked) and the categorical columns (1-D arrays)."""
        frame = isinstance(X, pd.DataFrame)
        positions = np.flatnonzero(self.is_categorical)
        numeric_positions = np.flatnonzero(~self.is_categorical)
        if frame:
            categorical = [X.iloc[:, j].to_numpy(dtype=object) for j in positions]
            numeric = [_numeric_column(X.iloc[:, j], names[j]) for j in numeric_positions]
            numeric = (
                np.column_stack(numeric) if numeric else np.empty((len(X), 0), dtype=np.float64)
            )
        else:
            X = check_array(X, dtype=None, ensure_all_finite=False, ensure_min_samples=0)
            categorical = [X[:, j] for j in positions]
            numeric = np.empty((len(X), len(numeric_positions)), dtype=np.float64)
            for k, j in enumerate(numeric_positions):
                numeric[:, k] = _numeric_column(pd.Series(X[:, j]), names[j])
        return numeric, categorical

    def _frequent(self, column, name):
        """Categories seen in at least ``min_frequency`` rows, sorted where comparable."""
        try:
            counts = pd.Series(column, dtype=object).value_counts(dropna=True)
        except TypeError as exc:
            raise _unhashable(name, exc) from None
        frequent = counts.index[counts.to_numpy() >= self.min_frequency].to_numpy(dtype=object)
        try:
            return np.asarray(sorted(frequent), dtype=object)
        except TypeError:  # mixed types: keep the order of value_counts
            return frequent

    def _dims(self, names):
        spec = self.embedding_dim
        if isinstance(spec, dict):
            unknown = sorted(set(map(str, spec)) - set(names))
            if unknown:
                raise ValueError(
                    f"embedding_dim names columns {unknown} that are not categorical; the "
                    f"categorical columns are {list(names)}."
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

    # ---------------------------------------------------------- persistence
    def to_dict(self):
        """The fitted encoder as plain JSON-able data (see :meth:`from_dict`)."""
        return {
            "is_categorical": self.is_categorical.tolist(),
            "embedding_dims": list(self.embedding_dims_),
            "min_frequency": self.min_frequency,
            "scale_numeric": self.scale_numeric,
            "categories": [_values_to_dict(c) for c in self.categories_],
            "mean": None if self.mean_ is None else self.mean_.tolist(),
            "scale": None if self.scale_ is None else self.scale_.tolist(),
        }

    @classmethod
    def from_dict(cls, data):
        """A fitted encoder from the output of :meth:`to_dict`."""
        encoder = cls(
            data["is_categorical"],
            embedding_dim="auto",
            min_frequency=data["min_frequency"],
            scale_numeric=data["scale_numeric"],
        )
        encoder.categories_ = [_values_from_dict(c) for c in data["categories"]]
        encoder.embedding_dims_ = [int(d) for d in data["embedding_dims"]]
        if len(encoder.categories_) != int(encoder.is_categorical.sum()) or len(
            encoder.embedding_dims_
        ) != len(encoder.categories_):
            raise ValueError("the categorical columns do not match their categories")
        for key in ("mean", "scale"):
            value = data[key]
            setattr(
                encoder, f"{key}_", None if value is None else np.asarray(value, dtype=np.float64)
            )
        return encoder


def _numeric_column(series, name):
    """A numeric column as float64; missing values and infinity raise ValueError."""
    try:
        values = pd.to_numeric(series, errors="raise").to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError):
        raise ValueError(
            f"X column {name!r} is not numeric (e.g. {series.iloc[0]!r}); declare it in "
            "categorical_features or give it a category, object or string dtype."
        ) from None
    if np.isnan(values).any():
        raise ValueError(
            f"X column {name!r} contains missing values (NaN). Impute them first, e.g. with "
            "sklearn.impute.SimpleImputer in a Pipeline, or make the column categorical "
            "(a missing value is then its own category)."
        )
    if np.isinf(values).any():
        raise ValueError(f"X column {name!r} contains infinity.")
    limit = np.finfo(np.float32).max
    if values.size and (values.max() > limit or values.min() < -limit):
        raise ValueError(
            f"X column {name!r} has values beyond the float32 range (|x| > {limit:.3g})."
        )
    return values


def _codes(column, categories, name):
    """Codes of one categorical column: 0 missing, 1 other, 2 + position in ``categories``."""
    missing = np.asarray(pd.isna(column), dtype=bool)
    try:
        position = pd.Index(categories, dtype=object).get_indexer(column)
    except TypeError as exc:
        raise _unhashable(name, exc) from None
    return np.where(missing, MISSING, np.where(position < 0, OTHER, position + 2))


def _unhashable(name, exc):
    return TypeError(
        f"X column {name!r} holds values that cannot be categories ({exc}); "
        "categorical columns need hashable values such as str or int."
    )


def _values_to_dict(values):
    kinds = {type(v) for v in values.tolist()}
    plain = {str, int, float, bool}
    if not kinds <= plain:
        # numpy scalars of a category column (e.g. np.int64) become Python numbers
        values = np.asarray([v.item() if isinstance(v, np.generic) else v for v in values])
        kinds = {type(v) for v in values.tolist()}
    if not kinds <= plain:
        raise TypeError(
            f"Cannot save categories of type {sorted(k.__name__ for k in kinds)}; use str, "
            "int, float or bool categories, or pickle (trusted sources only)."
        )
    return {"values": values.tolist()}


def _values_from_dict(data):
    values = data["values"]
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out
