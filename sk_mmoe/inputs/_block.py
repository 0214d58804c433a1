"""The input-block contract and its registry.

An input block encodes some columns of ``X`` for the network. It owns:

- its fitted statistics (:meth:`InputBlock.fit`, on the training rows),
- its part of the encoded float32 matrix the network reads
  (:meth:`InputBlock.transform`, ``n_encoded`` columns),
- its torch module (:meth:`InputBlock.module_spec`: the module class and its
  arguments, or None when the encoded columns feed the experts as they are),
- its ONNX emitters (:meth:`InputBlock.emit_encoding` for the encoding,
  :meth:`InputBlock.emit_module` for the module),
- its file codec (:meth:`InputBlock.to_dict` / :meth:`InputBlock.from_dict`,
  plain JSON data; arrays of weights live in the module's ``state_dict``).

A block serves one *role*: ``"numeric"`` blocks read the numeric columns as
one float64 matrix ``(n, n_columns)``, ``"categorical"`` blocks read the
categorical columns as a list of 1-D object arrays. Blocks are registered by
name with :func:`register_input_block`; the name is written in saved files.
"""

from __future__ import annotations

from collections.abc import Set

import numpy as np

#: the registered input blocks by name (``InputBlock.kind``)
INPUT_BLOCKS: dict[str, type[InputBlock]] = {}

ROLES = ("numeric", "categorical")


class InputBlock:
    """Base class of the input blocks (see the module docstring).

    Parameters
    ----------
    names : sequence of str
        The names of the columns this block encodes, in order.
    settings : dict
        The estimator's hyperparameters (``get_params``); a block reads the
        ones it needs.

    Attributes
    ----------
    kind : str
        The registry name, written in saved files.
    role : {"numeric", "categorical"}
        Which columns the block reads.
    module_name : str or None
        Attribute name of the block's module inside the network (the prefix
        of its weights in ``state_dict``); None for a block without module.
    """

    kind: str = ""
    role: str = "numeric"
    module_name: str | None = None

    def __init__(self, names, settings=None):
        self.names = np.asarray([str(n) for n in names], dtype=object)

    @property
    def n_columns(self):
        """Number of columns of ``X`` the block encodes."""
        return len(self.names)

    @property
    def n_encoded(self):
        """Number of columns of the encoded matrix the block writes."""
        return self.n_columns

    @property
    def n_outputs(self):
        """Width the block feeds the experts and gates (its module's output)."""
        return self.n_encoded

    def fit(self, data):
        """Learn the block's statistics from its columns of the training rows."""
        return self

    def transform(self, data):
        """The block's encoded columns ``(n, n_encoded)``, float32 or float64."""
        raise NotImplementedError

    def module_spec(self):
        """``(module class, keyword arguments)`` of the block's torch module, or None.

        The module maps the block's encoded columns ``(B, n_encoded)``
        (float32) to ``(B, n_outputs)``.
        """
        return None

    def size_hints(self):
        """Integers that size the block's module (checked against a file's weights)."""
        return []

    def emit_encoding(self, builder, columns):
        """ONNX nodes for :meth:`transform`.

        ``columns`` are the block's input columns as tensors of the graph (one
        per column, each with ``onnx_name`` and ``type``); returns the name
        of a float tensor ``(B, n_encoded)``.
        """
        raise NotImplementedError

    @staticmethod
    def emit_module(builder, module, x):
        """ONNX nodes for the block's module in eval mode on float ``x``; the output's name."""
        raise NotImplementedError

    def to_dict(self):
        """The fitted block as plain JSON data (the column names are written by the caller)."""
        return {}

    @classmethod
    def from_dict(cls, names, data):
        """A fitted block from :meth:`to_dict`'s output and its column names."""
        return cls(names)


def register_input_block(block):
    """Make ``block`` (an :class:`InputBlock` subclass) available by its ``kind``.

    Parameters
    ----------
    block : type
        The block class; its ``kind`` must be new and its ``role`` one of
        ``"numeric"``, ``"categorical"``.

    Returns
    -------
    block : type
        The class, so this can be used as a decorator.
    """
    if not (isinstance(block, type) and issubclass(block, InputBlock)):
        raise TypeError(f"an input block must subclass InputBlock, got {block!r}.")
    if not block.kind or block.kind in INPUT_BLOCKS:
        raise ValueError(f"input block kind {block.kind!r} is empty or already registered.")
    if block.role not in ROLES:
        raise ValueError(f"input block role must be one of {ROLES}, got {block.role!r}.")
    INPUT_BLOCKS[block.kind] = block
    return block


def unregister_input_block(kind):
    """Remove the block registered as ``kind`` (for tests and plug-ins)."""
    del INPUT_BLOCKS[kind]


class _NumericEmbeddings(Set):
    """A live view of the registered numeric blocks but the plain one, and ``"auto"``:
    ``numeric_embedding``'s options (a block registered later is valid at once)."""

    def _names(self):
        kinds = [k for k, b in INPUT_BLOCKS.items() if b.role == "numeric" and k != "numeric"]
        return ["auto", *kinds]

    @classmethod
    def _from_iterable(cls, iterable):  # set operations give plain sets
        return frozenset(iterable)

    def __contains__(self, kind):
        return kind in self._names()

    def __iter__(self):
        return iter(self._names())

    def __len__(self):
        return len(self._names())


#: the values of ``numeric_embedding`` besides None, from the registry
NUMERIC_EMBEDDINGS = _NumericEmbeddings()
