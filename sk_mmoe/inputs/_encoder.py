"""The input encoder: the estimator's columns assigned to input blocks, fitted once, in ``fit``."""

from __future__ import annotations

import numpy as np

from ._block import INPUT_BLOCKS
from ._columns import frequent_categories, split_columns

#: the block of each role when no setting picks another
DEFAULT_BLOCKS = {"numeric": "numeric", "categorical": "embedding"}
#: the block of the categorical columns with at most ``one_hot_max_categories`` categories
ONE_HOT_BLOCK = "one_hot"


def block_kinds(settings):
    """The block kind of each role for these hyperparameters (``get_params``)."""
    numeric = settings.get("numeric_embedding") or DEFAULT_BLOCKS["numeric"]
    return {"numeric": numeric, "categorical": DEFAULT_BLOCKS["categorical"]}


def one_hot_columns(categories, names, settings):
    """Which categorical columns go to the one-hot block, as a boolean mask.

    Those with at most ``one_hot_max_categories`` categories, counted as
    ``categories`` holds them: after ``min_frequency`` grouping, without the
    "missing" and "other" codes (a column of 3 categories has 5 one-hot
    positions). None or 0: no column. A column named in an ``embedding_dim``
    dict is embedded whatever its number of categories.
    """
    limit = settings.get("one_hot_max_categories") or 0
    named = settings.get("embedding_dim")
    named = {str(k) for k in named} if isinstance(named, dict) else set()
    return np.array(
        [len(cats) <= limit and str(name) not in named for cats, name in zip(categories, names)],
        dtype=bool,
    )


class InputEncoder:
    """Encode ``X`` into the float32 matrix the network reads, block by block.

    The numeric columns go to one numeric block; the categorical columns
    with at most ``one_hot_max_categories`` categories (see
    :func:`one_hot_columns`) to one one-hot block, the others to one
    embedding block (see :mod:`sk_mmoe.inputs`). A block is made only when it
    has columns; the encoded matrix holds each block's columns in the order
    numeric, one-hot, embedding, each block's columns in the order of ``X``.

    Parameters
    ----------
    is_categorical : ndarray of bool of shape (n_features,)
        Which columns of ``X`` are categorical.
    settings : dict
        The estimator's hyperparameters (``get_params``): which blocks, and
        their settings. Read when the blocks are made, in :meth:`fit`.

    Attributes
    ----------
    blocks_ : list of InputBlock
        The fitted blocks, in the order of the encoded matrix.
    columns_ : list of ndarray of int
        The positions in ``X`` of each block's columns (aligned with
        ``blocks_``).
    """

    def __init__(self, is_categorical, settings=None):
        self.is_categorical = np.asarray(is_categorical, dtype=bool)
        self.settings = dict(settings or {})

    def __setstate__(self, state):
        # an encoder pickled before ``columns_`` existed had one block per role
        self.__dict__.update(state)
        if "blocks_" in state and "columns_" not in state:
            self.columns_ = [
                np.flatnonzero(self.is_categorical == (b.role == "categorical"))
                for b in self.blocks_
            ]

    # ----------------------------------------------------------- the blocks
    @property
    def n_numeric(self):
        """Number of numeric columns."""
        return int((~self.is_categorical).sum())

    def _per_categorical_column(self, attribute):
        """A categorical blocks' per-column attribute, over all categorical columns, in order."""
        by_position = {}
        for block, columns in zip(self.blocks_, self.columns_):
            if block.role == "categorical":
                by_position.update(zip(columns.tolist(), getattr(block, attribute)))
        return [by_position[p] for p in sorted(by_position)]

    @property
    def categories_(self):
        """The categories of each categorical column, in column order (empty without any)."""
        return self._per_categorical_column("categories_")

    @property
    def embedding_dims_(self):
        """The width each categorical column feeds the experts, in column order.

        Its embedding width, or for a one-hot column its number of codes
        (categories plus "missing" and "other"); empty without categorical
        columns.
        """
        return self._per_categorical_column("embedding_dims_")

    def module_spec(self):
        """The blocks as :class:`~sk_mmoe.inputs.InputNetwork` reads them; None without modules."""
        if all(b.module_spec() is None for b in self.blocks_):
            return None
        entries = []
        for block in self.blocks_:
            spec = block.module_spec()
            module_class, kwargs = spec if spec is not None else (None, None)
            entries.append(
                (
                    block.kind,
                    block.module_name,
                    block.n_encoded,
                    block.n_outputs,
                    module_class,
                    kwargs,
                )
            )
        return entries

    def size_hints(self):
        """Integers that size the blocks' modules (checked against a file's weights)."""
        return [n for block in self.blocks_ for n in block.size_hints()]

    # --------------------------------------------------------- fit, encode
    def fit(self, X, feature_names=None):
        """Make the blocks and learn their statistics from ``X``."""
        names = self._names(feature_names)
        numeric, categorical = split_columns(X, self.is_categorical, names)
        kinds = block_kinds(self.settings)
        self.blocks_, self.columns_ = [], []
        numeric_positions = np.flatnonzero(~self.is_categorical)
        if len(numeric_positions):
            block = INPUT_BLOCKS[kinds["numeric"]](names[numeric_positions], self.settings)
            self._add(block.fit(numeric), numeric_positions)
        positions = np.flatnonzero(self.is_categorical)
        if len(positions):
            # counted once here, to choose the block, and handed to it
            min_frequency = int(self.settings.get("min_frequency", 1))
            categories = [
                frequent_categories(column, names[p], min_frequency)
                for column, p in zip(categorical, positions)
            ]
            one_hot = one_hot_columns(categories, names[positions], self.settings)
            for kind, chosen in ((ONE_HOT_BLOCK, one_hot), (kinds["categorical"], ~one_hot)):
                index = np.flatnonzero(chosen)
                if len(index):
                    block = INPUT_BLOCKS[kind](names[positions[index]], self.settings)
                    block.fit(
                        [categorical[k] for k in index], categories=[categories[k] for k in index]
                    )
                    self._add(block, positions[index])
        return self

    def _add(self, block, positions):
        self.blocks_.append(block)
        self.columns_.append(np.asarray(positions, dtype=np.intp))

    def transform(self, X, feature_names=None):
        """``(n, n_encoded)`` float32: each block's encoded columns, in block order."""
        names = self._names(feature_names)
        numeric, categorical = split_columns(X, self.is_categorical, names)
        # position in X -> index in ``categorical``
        index = np.cumsum(self.is_categorical) - 1
        out = np.empty((X.shape[0], sum(b.n_encoded for b in self.blocks_)), dtype=np.float32)
        start = 0
        for block, columns in zip(self.blocks_, self.columns_):
            if block.role == "numeric":
                piece = block.transform(numeric)
            else:
                piece = block.transform([categorical[k] for k in index[columns]])
            out[:, start : start + block.n_encoded] = piece
            start += block.n_encoded
        return out

    def _names(self, feature_names):
        if feature_names is not None:
            return np.asarray([str(n) for n in feature_names], dtype=object)
        return np.asarray([str(j) for j in range(len(self.is_categorical))], dtype=object)

    # ---------------------------------------------------------- persistence
    def to_dict(self):
        """The fitted encoder as plain JSON-able data (see :meth:`from_dict`).

        Each block's entry holds its ``kind``, ``columns`` (the positions of
        its columns in ``X``) and its own fitted data.
        """
        return {
            "is_categorical": self.is_categorical.tolist(),
            "blocks": [
                {"kind": b.kind, "columns": c.tolist(), **b.to_dict()}
                for b, c in zip(self.blocks_, self.columns_)
            ],
        }

    @classmethod
    def from_dict(cls, data):
        """A fitted encoder from the output of :meth:`to_dict` (or of an older file).

        A block entry without ``columns`` (files written before one-hot
        blocks existed, and version-1 files) has all the columns of its role.
        """
        encoder = cls(data["is_categorical"])
        if "blocks" not in data:
            data = _from_version_1(data)
        names = encoder._names(None)
        n_features = len(names)
        encoder.blocks_, encoder.columns_ = [], []
        for entry in data["blocks"]:
            entry = dict(entry)
            kind = entry.pop("kind")
            if kind not in INPUT_BLOCKS:
                raise ValueError(f"unknown input block {kind!r}")
            block_class = INPUT_BLOCKS[kind]
            categorical = block_class.role == "categorical"
            columns = entry.pop("columns", None)
            if columns is None:
                columns = np.flatnonzero(encoder.is_categorical == categorical)
            elif not (
                isinstance(columns, list)
                and all(type(c) is int and 0 <= c < n_features for c in columns)
            ):
                raise ValueError(f"input block {kind!r}: columns are not column positions")
            columns = np.asarray(columns, dtype=np.intp)
            if not len(columns) or (encoder.is_categorical[columns] != categorical).any():
                raise ValueError(f"input block {kind!r} does not match its columns")
            encoder.blocks_.append(block_class.from_dict(names[columns], entry))
            encoder.columns_.append(columns)
        covered = np.sort(np.concatenate(encoder.columns_)) if encoder.columns_ else []
        if not np.array_equal(covered, np.arange(n_features)):
            raise ValueError("the input blocks do not cover each column once")
        return encoder


def _from_version_1(data):
    """A version-1 file's encoder record (one flat dict) as blocks."""
    blocks = []
    if not all(data["is_categorical"]):
        blocks.append({"kind": "numeric", "mean": data["mean"], "scale": data["scale"]})
    if any(data["is_categorical"]):
        blocks.append(
            {
                "kind": "embedding",
                "embedding_dims": data["embedding_dims"],
                "min_frequency": data["min_frequency"],
                "categories": data["categories"],
            }
        )
    return {"blocks": blocks}
