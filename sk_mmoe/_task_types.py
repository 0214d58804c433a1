"""Names of the task types, shared by every module that branches on them.

This module imports nothing else from the package.
"""

#: a continuous target, standardised inside and trained with squared error
REGRESSION = "regression"
#: two classes: one logit, binary cross-entropy
BINARY = "binary"
#: more than two classes: one logit per class, cross-entropy
MULTICLASS = "multiclass"
#: binary or multiclass, settled by the number of classes seen in fit
CLASSIFICATION = "classification"

#: the task types a fitted estimator reports
TASK_TYPES = (REGRESSION, BINARY, MULTICLASS)
