"""The input encoder: the estimator's columns assigned to input blocks, fitted once, in ``fit``."""

from __future__ import annotations

import numpy as np

from ._block import INPUT_BLOCKS
from ._columns import split_columns

#: the block of each role when no setting picks another
DEFAULT_BLOCKS = {"numeric": "numeric", "categorical": "embedding"}


def block_kinds(settings):
    """The block kind of each role for these hyperparameters (``get_params``)."""
    numeric = settings.get("numeric_embedding") or DEFAULT_BLOCKS["numeric"]
    return {"numeric": numeric, "categorical": DEFAULT_BLOCKS["categorical"]}


class InputEncoder:
    """Encode ``X`` into the float32 matrix the network reads, block by block.

    The numeric columns go to one numeric block, the categorical columns to
    one categorical block (see :mod:`sk_mmoe.inputs`); the encoded matrix
    holds each block's columns in that order.

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
        The fitted blocks, numeric first.
    """

    def __init__(self, is_categorical, settings=None):
        self.is_categorical = np.asarray(is_categorical, dtype=bool)
        self.settings = dict(settings or {})

    # ----------------------------------------------------------- the blocks
    def _block(self, role):
        return next((b for b in self.blocks_ if b.role == role), None)

    @property
    def n_numeric(self):
        """Number of numeric columns."""
        return int((~self.is_categorical).sum())

    @property
    def categories_(self):
        """The categories of each categorical column (empty without categorical columns)."""
        block = self._block("categorical")
        return [] if block is None else block.categories_

    @property
    def embedding_dims_(self):
        """The embedding width of each categorical column (empty without categorical columns)."""
        block = self._block("categorical")
        return [] if block is None else block.embedding_dims_

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
        self.blocks_ = []
        for role, data, columns in (
            ("numeric", numeric, names[~self.is_categorical]),
            ("categorical", categorical, names[self.is_categorical]),
        ):
            if len(columns):
                block = INPUT_BLOCKS[kinds[role]](columns, self.settings)
                self.blocks_.append(block.fit(data))
        return self

    def transform(self, X, feature_names=None):
        """``(n, n_encoded)`` float32: each block's encoded columns, in block order."""
        names = self._names(feature_names)
        numeric, categorical = split_columns(X, self.is_categorical, names)
        pieces = [
            block.transform(numeric if block.role == "numeric" else categorical)
            for block in self.blocks_
        ]
        out = np.empty((X.shape[0], sum(b.n_encoded for b in self.blocks_)), dtype=np.float32)
        start = 0
        for block, piece in zip(self.blocks_, pieces):
            out[:, start : start + block.n_encoded] = piece
            start += block.n_encoded
        return out

    def _names(self, feature_names):
        if feature_names is not None:
            return np.asarray([str(n) for n in feature_names], dtype=object)
        return np.asarray([str(j) for j in range(len(self.is_categorical))], dtype=object)

    # ---------------------------------------------------------- persistence
    def to_dict(self):
        """The fitted encoder as plain JSON-able data (see :meth:`from_dict`)."""
        return {
            "is_categorical": self.is_categorical.tolist(),
            "blocks": [{"kind": b.kind, **b.to_dict()} for b in self.blocks_],
        }

    @classmethod
    def from_dict(cls, data):
        """A fitted encoder from the output of :meth:`to_dict` (or of a version-1 file)."""
        encoder = cls(data["is_categorical"])
        if "blocks" not in data:
            data = _from_version_1(data)
        names = encoder._names(None)
        columns = {
            "numeric": names[~encoder.is_categorical],
            "categorical": names[encoder.is_categorical],
        }
        encoder.blocks_ = []
        for entry in data["blocks"]:
            entry = dict(entry)
            kind = entry.pop("kind")
            if kind not in INPUT_BLOCKS:
                raise ValueError(f"unknown input block {kind!r}")
            block_class = INPUT_BLOCKS[kind]
            encoder.blocks_.append(block_class.from_dict(columns[block_class.role], entry))
        roles = [b.role for b in encoder.blocks_]
        expected = [r for r in ("numeric", "categorical") if len(columns[r])]
        if roles != expected:
            raise ValueError("the input blocks do not match the columns")
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
