"""Column helpers shared by the input blocks: which columns are categorical, checked numbers,
category codes and the file codec of category values.

Codes of a categorical column: 0 for a missing value (NaN, None, ``pd.NA``),
1 for "other" (a category seen in fewer than ``min_frequency`` training rows,
or never seen in fit), 2, 3, ... for the categories kept. Codes are stored as
float32 in the encoded matrix, exact for integers below 2**24.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.utils.validation import check_array

#: code of a missing value and of "other" (rare or unseen) in every categorical column
MISSING, OTHER = 0, 1


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


#: what ``pd.api.types.infer_dtype`` says of an object column of dates, times or durations
_TIME_KINDS = {"datetime64", "datetime", "date", "time", "timedelta64", "timedelta", "period"}


def _is_time_dtype(dtype):
    """Whether ``dtype`` holds dates or durations (timezone-aware too, periods too)."""
    return (
        pd.api.types.is_datetime64_any_dtype(dtype)
        or pd.api.types.is_timedelta64_dtype(dtype)
        or isinstance(dtype, pd.PeriodDtype)
    )


def time_column_error(name, dtype):
    """The ValueError for a date, time or duration column read as numbers."""
    return ValueError(
        f"X column {name!r} holds dates, times or durations ({dtype}), which have no "
        "numeric meaning here (nanoseconds since 1970 make a poor feature). Extract what "
        "matters as numeric or categorical columns first, e.g. the year, month, day of "
        "week and hour (Series.dt.year, .dt.dayofweek, .dt.hour), or elapsed time as a "
        "number (e.g. (t - t0).dt.total_seconds(), Series.dt.total_seconds() for "
        "durations); or declare the column in categorical_features."
    )


def check_no_time_columns(X, is_categorical=None):
    """Raise :func:`time_column_error` for a numeric DataFrame column of dates or durations.

    Reads the dtypes, and the values of object columns only (an object
    column of Timestamps); ``is_categorical`` marks the columns exempt
    (categorical by the user's choice).
    """
    for j, dtype in enumerate(X.dtypes):
        if is_categorical is not None and is_categorical[j]:
            continue
        if _is_time_dtype(dtype):
            raise time_column_error(X.columns[j], dtype)
        if pd.api.types.is_object_dtype(dtype):
            kind = pd.api.types.infer_dtype(X.iloc[:, j], skipna=True)
            if kind in _TIME_KINDS:
                raise time_column_error(X.columns[j], f"{kind} values")


def numeric_column(series, name):
    """A numeric column as float64.

    Missing values, infinity, values beyond float32 and dates, times or
    durations raise ValueError naming the column.
    """
    if _is_time_dtype(series.dtype):
        raise time_column_error(name, series.dtype)
    try:
        values = pd.to_numeric(series, errors="raise").to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError):
        kind = pd.api.types.infer_dtype(series, skipna=True)
        if kind in _TIME_KINDS:
            raise time_column_error(name, f"{kind} values") from None
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


def codes(column, categories, name):
    """Codes of one categorical column: 0 missing, 1 other, 2 + position in ``categories``."""
    missing = np.asarray(pd.isna(column), dtype=bool)
    try:
        position = pd.Index(categories, dtype=object).get_indexer(column)
    except TypeError as exc:
        raise unhashable(name, exc) from None
    return np.where(missing, MISSING, np.where(position < 0, OTHER, position + 2))


def frequent_categories(column, name, min_frequency):
    """Categories of ``column`` seen in at least ``min_frequency`` rows, sorted where comparable.

    Missing values (NaN, None, ``pd.NA``) are not categories (they have code
    ``MISSING``); with mixed types that cannot be sorted the order of
    ``value_counts`` is kept.
    """
    try:
        counts = pd.Series(column, dtype=object).value_counts(dropna=True)
    except TypeError as exc:
        raise unhashable(name, exc) from None
    frequent = counts.index[counts.to_numpy() >= min_frequency].to_numpy(dtype=object)
    try:
        return np.asarray(sorted(frequent), dtype=object)
    except TypeError:  # mixed types: keep the order of value_counts
        return frequent


def unhashable(name, exc):
    return TypeError(
        f"X column {name!r} holds values that cannot be categories ({exc}); "
        "categorical columns need hashable values such as str or int."
    )


def values_to_dict(values):
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


def values_from_dict(data):
    values = data["values"]
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def split_columns(X, is_categorical, names):
    """The numeric block of ``X`` (float64, checked) and its categorical columns (1-D arrays).

    Parameters
    ----------
    X : DataFrame or array-like of shape (n_samples, n_features)
        The rows, as the user gave them.
    is_categorical : ndarray of bool of shape (n_features,)
        Which columns are categorical.
    names : ndarray of str of shape (n_features,)
        Column names, for error messages.

    Returns
    -------
    numeric : ndarray of shape (n_samples, n_numeric)
    categorical : list of ndarray of shape (n_samples,)
    """
    positions = np.flatnonzero(is_categorical)
    numeric_positions = np.flatnonzero(~is_categorical)
    if isinstance(X, pd.DataFrame):
        categorical = [X.iloc[:, j].to_numpy(dtype=object) for j in positions]
        numeric = [numeric_column(X.iloc[:, j], names[j]) for j in numeric_positions]
        numeric = np.column_stack(numeric) if numeric else np.empty((len(X), 0), dtype=np.float64)
        return numeric, categorical
    X = check_array(X, dtype=None, ensure_all_finite=False, ensure_min_samples=0)
    categorical = [X[:, j] for j in positions]
    numeric = np.empty((len(X), len(numeric_positions)), dtype=np.float64)
    for k, j in enumerate(numeric_positions):
        numeric[:, k] = numeric_column(pd.Series(X[:, j]), names[j])
    return numeric, categorical
