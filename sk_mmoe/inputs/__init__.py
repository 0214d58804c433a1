"""Input blocks: how the columns of ``X`` reach the experts and gates.

Each block owns its fitted statistics, its part of the encoded matrix, its
torch module, its ONNX emitters and its file codec (see
:class:`InputBlock`). Among them: :class:`NumericScaling` (``"numeric"``:
numbers, standardised or as given), :class:`CategoricalEmbeddingBlock`
(``"embedding"``: codes looked up in learned embeddings) and
:class:`OneHotBlock` (``"one_hot"``: codes as one-hot vectors, for the
categorical columns with few categories). A new encoding is one file with
an :class:`InputBlock` subclass and one :func:`register_input_block` line
below (see CONTRIBUTING.md).
"""

from ._block import (
    INPUT_BLOCKS,
    NUMERIC_EMBEDDINGS,
    InputBlock,
    register_input_block,
    unregister_input_block,
)
from ._categorical import (
    AUTO_EMBEDDING_CAP,
    MAX_CODES,
    CategoricalEmbedding,
    CategoricalEmbeddingBlock,
    CategoryCodes,
    auto_embedding_dim,
)
from ._columns import MISSING, OTHER, resolve_categorical
from ._encoder import InputEncoder
from ._network import InputNetwork
from ._numeric import NumericScaling
from ._one_hot import OneHot, OneHotBlock
from ._periodic import PeriodicBlock
from ._piecewise_linear import PiecewiseLinearBlock

register_input_block(NumericScaling)
register_input_block(CategoricalEmbeddingBlock)
register_input_block(OneHotBlock)
register_input_block(PiecewiseLinearBlock)
register_input_block(PeriodicBlock)

__all__ = [
    "AUTO_EMBEDDING_CAP",
    "INPUT_BLOCKS",
    "NUMERIC_EMBEDDINGS",
    "MAX_CODES",
    "MISSING",
    "OTHER",
    "CategoricalEmbedding",
    "CategoricalEmbeddingBlock",
    "CategoryCodes",
    "InputBlock",
    "InputEncoder",
    "InputNetwork",
    "NumericScaling",
    "OneHot",
    "OneHotBlock",
    "PeriodicBlock",
    "PiecewiseLinearBlock",
    "auto_embedding_dim",
    "register_input_block",
    "resolve_categorical",
    "unregister_input_block",
]
