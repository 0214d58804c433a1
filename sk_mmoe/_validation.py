"""Input validation: ``X`` checked, and encoded when it has categorical columns.

:class:`InputValidation` is the estimators' one place that turns a user's
``X`` into what the network reads, with a fast path for plain float arrays
(a one-row predict must not pay for a full validation).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.sparse import issparse
from sklearn.utils import check_array
from sklearn.utils.validation import validate_data

from ._inference import check_float32_range
from .data._frames import as_pandas
from .inputs import InputEncoder, resolve_categorical
from .inputs._columns import check_no_time_columns

#: what ``numeric_embedding="auto"`` is for X with categorical columns (chosen on the
#: real-data suite: benchmarks/README, "Default hyperparameters")
AUTO_NUMERIC_EMBEDDING = "periodic"
_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_FLOAT32_MAX = float(np.finfo(np.float32).max)


class InputValidation:
    """``_prepare_X`` for the estimators (a mixin of ``_BaseMMoE``)."""

    def _prepare_X(self, X, *, reset):
        """``X`` as the network reads it; on ``reset`` the input encoding is learnt.

        Numbers alone (an array or DataFrame with no categorical column) are
        validated and used as given, a sparse matrix kept as CSR; ``X`` with
        categorical columns (or any ``X`` with ``numeric_scaling="standard"``)
        is encoded by ``input_encoder_`` (see :mod:`sk_mmoe.inputs`). A polars
        DataFrame or pyarrow Table is read as the pandas DataFrame it converts to.
        """
        X = as_pandas(X)
        if reset:
            self.input_encoder_ = self._new_input_encoder(X)
        elif self._plain_floats(X):
            return X
        if self.input_encoder_ is None:
            if isinstance(X, pd.DataFrame):
                check_no_time_columns(X)
            X = validate_data(
                self,
                X,
                reset=reset,
                dtype=(np.float32, np.float64),
                accept_sparse="csr",
                ensure_min_samples=2 if reset else 1,
            )
            check_float32_range(X)
            return X
        validate_data(self, X, reset=reset, skip_check_array=True)
        X = X if isinstance(X, pd.DataFrame) else _as_2d(X)
        _check_min_samples(X, 2 if reset else 1)
        names = getattr(self, "feature_names_in_", None)
        if reset:
            self.input_encoder_.fit(X, names)
        return self.input_encoder_.transform(X, names)

    def _plain_floats(self, X):
        """Whether ``validate_data`` would return ``X`` itself, unchanged and unwarned.

        True for a float32 / float64 ndarray of shape ``(n >= 1,
        n_features_in_)``, all within the float32 range (so finite), given to
        an estimator fitted on plain numbers without feature names:
        validating it again costs a one-row predict about as much as the
        network does. Anything else (and a NaN, infinite or too large value,
        for its error message) goes through ``validate_data`` and
        ``check_float32_range``.
        """
        return (
            type(X) is np.ndarray
            and X.dtype in _FLOAT_DTYPES
            and X.ndim == 2
            and X.shape[0] >= 1
            and X.shape[1] == self.n_features_in_
            and self.input_encoder_ is None
            and not hasattr(self, "feature_names_in_")
            # False for NaN (comparisons with NaN are False) and infinities
            and X.max() <= _FLOAT32_MAX
            and X.min() >= -_FLOAT32_MAX
        )

    def _new_input_encoder(self, X):
        """An unfitted encoder for categorical columns or scaling; None for plain numbers."""
        embedding = self.numeric_embedding
        if issparse(X):
            if embedding not in (None, "auto"):
                raise ValueError(
                    f"numeric_embedding={embedding!r} cannot be used with a sparse "
                    "X; pass a dense array or DataFrame, or numeric_embedding=None."
                )
            if resolve_categorical(X, self.categorical_features, None) is not None:
                raise ValueError(
                    "categorical_features cannot be used with a sparse X; pass a DataFrame, "
                    "or one-hot encode the categorical columns."
                )
            return None
        raw = X if isinstance(X, pd.DataFrame) else _as_2d(X)
        mask = resolve_categorical(raw, self.categorical_features, getattr(raw, "columns", None))
        if embedding == "auto":  # embeddings for a table with categorical columns
            embedding = AUTO_NUMERIC_EMBEDDING if mask is not None else None
        if mask is None and self.numeric_scaling != "standard" and not embedding:
            return None
        return InputEncoder(
            mask if mask is not None else np.zeros(raw.shape[1], dtype=bool),
            {**self.get_params(deep=False), "numeric_embedding": embedding},
        )


def _as_2d(X):
    """An array-like as a 2-D array, without converting its values (they may be strings)."""
    return check_array(
        X, dtype=None, ensure_all_finite=False, ensure_min_samples=0, input_name="X"
    )


def _check_min_samples(X, minimum):
    if X.shape[0] < minimum:
        raise ValueError(
            f"Found array with {X.shape[0]} sample(s) (shape={X.shape}) while a minimum of "
            f"{minimum} is required."
        )
