"""scikit-learn's own estimator checks."""

from conftest import architecture_names
from sklearn.utils.estimator_checks import parametrize_with_checks

from sk_mmoe import MMoEClassifier, MMoEMultiTask, MMoERegressor

SMALL = {
    "max_epochs": 5,
    "expert_units": (16,),
    "tower_units": (8,),
    "n_experts": 4,
    "random_state": 0,
}

# every estimator class, and every registered architecture at least once
ESTIMATORS = [
    MMoERegressor(**SMALL),
    MMoEClassifier(**SMALL),
    MMoEMultiTask(**SMALL),
    *(
        MMoERegressor(architecture=name, **SMALL)
        for name in architecture_names()
        if name != "mmoe"
    ),
    MMoEClassifier(architecture="shared_bottom", **SMALL),
]


def expected_failed_checks(estimator):
    # None: every check passes. Sample-weight equivalence holds because the
    # check's data fits in one batch (full-batch training, weighted target
    # scaling); on data spanning several batches minibatch SGD cannot match
    # a weighted row with a repeated one exactly.
    return {}


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=expected_failed_checks)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
