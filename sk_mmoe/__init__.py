"""sk_mmoe: multi-task deep learning (MMoE) as scikit-learn estimators."""

from ._estimators import MMoEClassifier, MMoEMultiTask, MMoERegressor
from ._gates import GateCollapseWarning

__all__ = ["GateCollapseWarning", "MMoEClassifier", "MMoEMultiTask", "MMoERegressor"]
__version__ = "0.1.0"
