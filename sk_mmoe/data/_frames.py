"""Arrow-native frames (polars DataFrames and Series, pyarrow Tables and arrays) as pandas.

The estimators take them as they take a pandas DataFrame: column names become
``feature_names_in_`` / ``target_names_``, and categorical columns are found
from their dtypes (polars ``Categorical`` / ``Enum`` / ``String``, Arrow
dictionary and string types become pandas ``category`` / object columns).
The conversion goes through Arrow (``to_pandas``), so it needs pyarrow, as
polars' own ``to_pandas`` does.
"""

from __future__ import annotations


def _library(obj):
    return type(obj).__module__.split(".", 1)[0]


def is_arrow_frame(obj):
    """Whether ``obj`` is a polars DataFrame / Series or a pyarrow Table / (chunked) array."""
    library = _library(obj)
    if library == "polars":
        return type(obj).__name__ in ("DataFrame", "Series")
    if library == "pyarrow":
        return type(obj).__name__ in ("Table", "RecordBatch", "ChunkedArray") or (
            type(obj).__name__.endswith("Array")
        )
    return False


def as_pandas(obj):
    """``obj`` converted to pandas when it is an Arrow-native frame; otherwise ``obj`` itself.

    Examples
    --------
    >>> import pyarrow as pa
    >>> from sk_mmoe.data._frames import as_pandas
    >>> table = pa.table({"city": pa.array(["a", "b"]).dictionary_encode(), "x": [1.0, 2.0]})
    >>> as_pandas(table).dtypes.astype(str).tolist()
    ['category', 'float64']
    """
    if not is_arrow_frame(obj):
        return obj
    try:
        return obj.to_pandas()
    except ImportError as exc:
        raise ImportError(
            f"Reading a {type(obj).__module__}.{type(obj).__name__} needs pyarrow: "
            f"pip install pyarrow ({exc})"
        ) from exc
