"""Write the saved-model fixtures that ``tests/test_saved_fixtures.py`` loads.

Run once, at commit 80b86db (file format version 1), from the repository root:

    PYTHONPATH=$PWD python tests/data/make_fixtures.py

It fits three small seeded models on deterministic data and writes, per model,
``<name>.skmmoe`` (``save``) and ``<name>.json`` (the input rows, the fitted
attributes and the expected ``predict`` / ``predict_proba`` outputs). The
files are committed: they are what a file of that format version holds, and
later versions of the package must keep loading them. Do not re-run it to make
a failing test pass.
"""

import json
import os

import numpy as np
import pandas as pd

from sk_mmoe import MMoEClassifier, MMoEMultiTask, MMoERegressor
from sk_mmoe.persistence._archive import VERSION

HERE = os.path.dirname(os.path.abspath(__file__))
SMALL = {
    "random_state": 0,
    "expert_units": (8,),
    "tower_units": (4,),
    "max_epochs": 40,
    "lr": 0.01,
}


def _rows(n=60, seed=0):
    rng = np.random.RandomState(seed)
    return rng.normal(size=(n, 3)).round(3)


def regressor():
    X = _rows()
    frame = pd.DataFrame(
        {
            "a": X[:, 0],
            "b": X[:, 1],
            "color": pd.Categorical(np.array(["red", "green", "blue"])[np.arange(60) % 3]),
        }
    )
    y = pd.DataFrame({"y0": X[:, 0] + X[:, 1], "y1": X[:, 0] - (np.arange(60) % 3)})
    model = MMoERegressor(n_experts=2, categorical_features="from_dtype", **SMALL).fit(frame, y)
    rows = {
        "a": frame["a"].tolist(),
        "b": frame["b"].tolist(),
        "color": frame["color"].astype(str).tolist(),
    }
    return model, rows, {"predict": model.predict(frame).tolist()}


def classifier():
    X = _rows(seed=1)
    y = pd.DataFrame(
        {
            "colour": np.where(X[:, 0] > 0, "warm", "cold"),
            "level": np.digitize(X[:, 1], [-0.5, 0.5]).astype(int),
        }
    )
    model = MMoEClassifier(
        architecture="ple", n_experts=1, n_task_experts=1, n_levels=2, **SMALL
    ).fit(X, y)
    expected = {
        "predict": model.predict(X).tolist(),
        "predict_proba": [p.tolist() for p in model.predict_proba(X)],
    }
    return model, X.tolist(), expected


def multitask():
    X = _rows(seed=2)
    y = pd.DataFrame({"value": X[:, 0] * 2 + X[:, 2], "flag": (X[:, 1] > 0).astype(int)})
    model = MMoEMultiTask(
        n_experts=2, task_types=["regression", "binary"], task_weights="uncertainty", **SMALL
    ).fit(X, y)
    expected = {
        "predict": model.predict(X).tolist(),
        # None for the regression task
        "predict_proba": [None if p is None else p.tolist() for p in model.predict_proba(X)],
    }
    return model, X.tolist(), expected


def main():
    for name, make in [
        ("regressor", regressor),
        ("classifier", classifier),
        ("multitask", multitask),
    ]:
        model, rows, expected = make()
        model.save(os.path.join(HERE, f"{name}.skmmoe"))
        classes = getattr(model, "classes_", None)
        record = {
            "format_version": VERSION,
            "rows": rows,
            "n_features_in_": int(model.n_features_in_),
            "target_names_": [str(n) for n in model.target_names_],
            "classes_": None
            if classes is None
            else [None if c is None else c.tolist() for c in classes],
            **expected,
        }
        with open(os.path.join(HERE, f"{name}.json"), "w") as file:
            json.dump(record, file, indent=1)


if __name__ == "__main__":
    main()
