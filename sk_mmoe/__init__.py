"""sk_mmoe: multi-task deep learning (MMoE) as scikit-learn estimators."""

from ._estimators import MMoEClassifier, MMoERegressor

__all__ = ["MMoEClassifier", "MMoERegressor"]
__version__ = "0.1.0"
