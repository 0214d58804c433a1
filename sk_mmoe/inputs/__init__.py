"""Input blocks: how the columns of ``X`` reach the experts and gates.

Each block owns its fitted statistics, its part of the encoded matrix, its
torch module, its ONNX emitters and its file codec (see
:class:`InputBlock`). The first two: :class:`NumericScaling` (``"numeric"``:
numbers, standardised or as given) and :class:`CategoricalEmbeddingBlock`
(``"embedding"``: codes looked up in learned embeddings). A new encoding is
one file with an :class:`InputBlock` subclass and one
:func:`register_input_block` line below (see CONTRIBUTING.md).
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
    auto_embedding_dim,
)
from ._columns import MISSING, OTHER, resolve_categorical
from ._encoder import InputEncoder
from ._network import InputNetwork
from ._numeric import NumericScaling
from ._periodic import PeriodicBlock
from ._piecewise_linear import PiecewiseLinearBlock

register_input_block(NumericScaling)
register_input_block(CategoricalEmbeddingBlock)
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
    "InputBlock",
    "InputEncoder",
    "InputNetwork",
    "NumericScaling",
    "PeriodicBlock",
    "PiecewiseLinearBlock",
    "auto_embedding_dim",
    "register_input_block",
    "resolve_categorical",
    "unregister_input_block",
]
