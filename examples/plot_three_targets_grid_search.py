"""
==============================================================================
A DataFrame with three targets, one missing for half the rows, in GridSearchCV
==============================================================================

The question this example answers: *how do I fit my DataFrame with three
targets, one of them missing for half the rows, and tune it with
GridSearchCV?*

The data: one row per customer of a subscription service, with numeric and
categorical columns, and three targets of two types:

* ``churned`` (binary, ``"yes"`` / ``"no"``): did the customer leave?
* ``monthly_spend`` (regression): what they spend per month;
* ``satisfaction`` (regression): a survey score, answered by only half of
  the customers, so missing (NaN) for the other half.

One :class:`~sk_mmoe.MMoEMultiTask` predicts all three. It reads the raw
DataFrame (categorical columns get learned embeddings, numeric columns are
standardised inside), and ``missing_targets="ignore"`` trains
``satisfaction`` on the rows where it is known while every row still trains
the other two tasks. :class:`~sklearn.model_selection.GridSearchCV` then
tunes the architecture and the learning rate, scored by the estimator's own
``score`` (the mean over tasks of R² and accuracy, each task on the rows
where its label is present) and by
:data:`sk_mmoe.metrics.task_roc_auc_scorer` (ROC AUC of ``churned``; the
regression tasks have no probabilities and are skipped).

Run ``python examples/plot_three_targets_grid_search.py``; set
``SK_MMOE_EXAMPLE_QUICK=1`` for a few-second smoke run (used by the tests).
The figure is written to ``three_targets_grid_search.png``.
"""

# %%
# The data
# --------
# A latent "engagement" drives all three targets, so the tasks are related;
# each also depends on inputs of its own.
import os

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, r2_score, roc_auc_score
from sklearn.model_selection import GridSearchCV, KFold, train_test_split

from sk_mmoe import MMoEMultiTask
from sk_mmoe.metrics import task_roc_auc_scorer
from sk_mmoe.plotting import GateWeightsDisplay

QUICK = os.environ.get("SK_MMOE_EXAMPLE_QUICK") == "1"
N_SAMPLES = 600 if QUICK else 3_000
EPOCHS = 5 if QUICK else 40

rng = np.random.RandomState(0)
customers = pd.DataFrame(
    {
        "age": rng.uniform(18, 75, N_SAMPLES),
        "tenure_months": rng.exponential(20, N_SAMPLES),
        "support_calls": rng.poisson(1.5, N_SAMPLES),
        "plan": pd.Categorical(rng.choice(["basic", "plus", "premium"], N_SAMPLES)),
        "region": rng.choice(["north", "south", "east", "west"], N_SAMPLES),
    }
)
plan_level = customers["plan"].cat.codes.to_numpy()  # basic 0, plus 1, premium 2
engagement = (
    np.log1p(customers["tenure_months"]) / 2
    - 0.4 * customers["support_calls"]
    + 0.5 * plan_level
    + rng.normal(0, 0.3, N_SAMPLES)
)
targets = pd.DataFrame(
    {
        "churned": np.where(engagement + rng.normal(0, 0.5, N_SAMPLES) < 0.6, "yes", "no"),
        "monthly_spend": 20 + 15 * plan_level + 5 * engagement + rng.normal(0, 3, N_SAMPLES),
        "satisfaction": 5
        + 1.5 * engagement
        - 0.02 * (customers["age"] - 45)
        + rng.normal(0, 0.7, N_SAMPLES),
    }
)
# half of the customers did not answer the survey
targets.loc[rng.rand(N_SAMPLES) < 0.5, "satisfaction"] = np.nan
print(customers.head())
print(targets.head())
print(f"satisfaction known for {targets['satisfaction'].notna().mean():.0%} of the rows")

X_train, X_test, y_train, y_test = train_test_split(
    customers, targets, test_size=0.25, random_state=0
)

# %%
# The search
# ----------
# ``cv=KFold(...)``: for a 2-D ``y`` scikit-learn would fall back to an
# unstratified KFold anyway; saying so makes it explicit (and avoids
# scikit-learn's stratification checks, which cannot sort a ``y`` mixing
# strings and numbers). ``refit="score"`` refits the best candidate by the
# mean task score on all the training rows.


def mean_task_score(estimator, X, y):
    """The estimator's own score: the mean over tasks of R² and accuracy."""
    return estimator.score(X, y)


model = MMoEMultiTask(
    missing_targets="ignore",
    n_experts=4,
    n_task_experts=1,
    expert_units=(16,),
    tower_units=(8,),
    max_epochs=EPOCHS,
    random_state=0,
)
search = GridSearchCV(
    model,
    {"architecture": ["mmoe", "cgc"], "lr": [3e-3, 1e-2]},
    scoring={"score": mean_task_score, "churned ROC AUC": task_roc_auc_scorer},
    refit="score",
    cv=KFold(3, shuffle=True, random_state=0),
).fit(X_train, y_train)

results = pd.DataFrame(search.cv_results_)
columns = ["param_architecture", "param_lr", "mean_test_score", "std_test_score"]
columns += ["mean_test_churned ROC AUC"]
print(results[columns].round(3).to_string(index=False))
print(f"best: {search.best_params_}, mean task score {search.best_score_:.3f}")

# %%
# Each task on held-out rows
# --------------------------
# The refitted best model, scored per task on the test rows; ``satisfaction``
# only where it is known.
best = search.best_estimator_
print("task types:", dict(zip(best.target_names_, best.task_types_)))
predicted = best.predict(X_test)
proba_churned = best.predict_proba(X_test)[0][:, list(best.classes_[0]).index("yes")]
known = y_test["satisfaction"].notna().to_numpy()
report = {
    "churned ROC AUC": roc_auc_score(y_test["churned"] == "yes", proba_churned),
    "churned accuracy": accuracy_score(y_test["churned"], predicted[:, 0]),
    "monthly_spend R2": r2_score(y_test["monthly_spend"], predicted[:, 1].astype(float)),
    f"satisfaction R2 ({known.sum()} rows with an answer)": r2_score(
        y_test["satisfaction"][known], predicted[known, 2].astype(float)
    ),
}
for name, value in report.items():
    print(f"{name:<45} {value:.3f}")
assert np.isfinite(list(report.values())).all()

# %%
# The figure: the search's candidates, and how the best model's tasks use
# its experts (for CGC, each task's gate reaches the shared experts and its
# own only).
fig, (ax_cv, ax_gates) = plt.subplots(1, 2, figsize=(11, 3.4), layout="constrained")
labels = [f"{a}\nlr={lr:g}" for a, lr in zip(results["param_architecture"], results["param_lr"])]
ax_cv.bar(labels, results["mean_test_score"], yerr=results["std_test_score"], color="#9ecae1")
ax_cv.set(ylabel="mean task score (CV)", title="GridSearchCV candidates")
GateWeightsDisplay.from_estimator(best, X_test, ax=ax_gates)
ax_gates.set_title(f"best model ({search.best_params_['architecture']}): mean gate weights")
fig.savefig("three_targets_grid_search.png", dpi=100)
print("wrote three_targets_grid_search.png")
