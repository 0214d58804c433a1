"""sk_mmoe estimators inside scikit-learn workflows."""

import pickle

import joblib
import numpy as np
import pandas as pd
import pytest
from conftest import fast
from sklearn.base import clone
from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
from sklearn.model_selection import (
    GridSearchCV,
    KFold,
    StratifiedKFold,
    cross_val_score,
    cross_validate,
)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from sk_mmoe import MMoEClassifier, MMoERegressor
from sk_mmoe.datasets import make_mmoe_tasks
from sk_mmoe.metrics import task_accuracy_scorer, task_neg_mse_scorer, task_r2_scorer

FAST = fast(max_epochs=4)


@pytest.fixture(scope="module")
def data():
    X, Y = make_mmoe_tasks(240, n_features=6, correlation=0.5, random_state=0)
    return X, Y


@pytest.fixture(scope="module")
def fitted(data):
    X, Y = data
    return MMoERegressor(**FAST).fit(X, Y)


@pytest.fixture(scope="module")
def mixed_frame():
    rng = np.random.RandomState(0)
    n = 200
    X = pd.DataFrame(
        {
            "age": rng.randint(18, 80, n),
            "income": rng.lognormal(10, 1, n),
            "city": rng.choice(["paris", "rome", "oslo"], n),
            "member": rng.choice([True, False], n),
        }
    )
    y = pd.DataFrame(
        {
            "churn": np.where(X["age"] > 45, "yes", "no"),
            "segment": np.where(X["city"] == "oslo", 2, np.where(X["income"] > 3e4, 1, 0)),
        }
    )
    return X, y


def _preprocess():
    return ColumnTransformer(
        [
            ("num", StandardScaler(), ["age", "income"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["city", "member"]),
        ]
    )


def test_pipeline_with_column_transformer(mixed_frame):
    X, y = mixed_frame
    pipe = make_pipeline(_preprocess(), MMoEClassifier(max_epochs=40, random_state=0))
    pipe.fit(X, y)
    pred = pipe.predict(X)
    assert pred.shape == (200, 2)
    assert set(pred[:, 0]) <= {"yes", "no"}
    assert pipe.score(X, y) > 0.8


def test_grid_search_in_parallel(data):
    X, Y = data
    grid = GridSearchCV(
        MMoERegressor(**FAST),
        {"architecture": ["mmoe", "shared_bottom"], "n_experts": [2, 4], "lr": [1e-3, 1e-2]},
        cv=2,
        n_jobs=2,
    )
    grid.fit(X, Y)
    assert len(grid.cv_results_["params"]) == 8
    assert np.all(np.isfinite(grid.cv_results_["mean_test_score"]))
    assert grid.best_estimator_.predict(X).shape == Y.shape


def test_cross_validate_with_several_scorers(data):
    X, Y = data
    result = cross_validate(
        MMoERegressor(**FAST),
        X,
        Y,
        cv=3,
        scoring={"r2": task_r2_scorer, "mse": task_neg_mse_scorer, "sk_r2": "r2"},
    )
    assert result["test_r2"].shape == (3,)
    assert np.all(result["test_mse"] < 0)
    # R² averaged over tasks equals sklearn's uniform average
    np.testing.assert_allclose(result["test_r2"], result["test_sk_r2"])


def test_clone_of_fitted_estimator(fitted):
    copy = clone(fitted)
    assert copy.get_params() == fitted.get_params()
    assert not hasattr(copy, "net_")


@pytest.mark.parametrize("dump", ["pickle", "joblib"])
def test_persistence_round_trip(fitted, data, dump, tmp_path):
    X, _ = data
    if dump == "pickle":
        restored = pickle.loads(pickle.dumps(fitted))
    else:
        joblib.dump(fitted, tmp_path / "model.joblib")
        restored = joblib.load(tmp_path / "model.joblib")
    np.testing.assert_array_equal(restored.predict(X), fitted.predict(X))
    np.testing.assert_array_equal(restored.gate_weights(X), fitted.gate_weights(X))


def test_classifier_pickle_round_trip(mixed_frame):
    X, y = mixed_frame
    pipe = make_pipeline(_preprocess(), MMoEClassifier(**FAST)).fit(X, y)
    restored = pickle.loads(pickle.dumps(pipe))
    np.testing.assert_array_equal(restored.predict(X), pipe.predict(X))
    for a, b in zip(restored.predict_proba(X), pipe.predict_proba(X)):
        np.testing.assert_array_equal(a, b)


def test_transformed_target_regressor(data):
    X, Y = data
    target = np.exp(Y / 4)
    model = TransformedTargetRegressor(
        regressor=MMoERegressor(**FAST), func=np.log, inverse_func=np.exp
    )
    model.fit(X, target)
    pred = model.predict(X)
    assert pred.shape == Y.shape and np.all(pred > 0)


def test_target_names_from_dataframe(data):
    X, Y = data
    y = pd.DataFrame(Y, columns=["click", "watch_time"])
    reg = MMoERegressor(**FAST).fit(X, y)
    assert reg.target_names_.tolist() == ["click", "watch_time"]
    assert sorted(
        task_r2_scorer.__class__(  # per-task report names the tasks
            task_r2_scorer.metric, "predict", 1, True, {}
        )(reg, X, y)
    ) == ["click", "mean", "watch_time"]


def test_classifier_y_mixing_str_and_int_columns():
    """RandomForestClassifier and MultiOutputClassifier fail on such y."""
    X = np.random.RandomState(0).normal(size=(90, 3))
    y = pd.DataFrame({"label": ["a", "b", "c"] * 30, "code": [0, 1, 1] * 30})
    scores = cross_val_score(MMoEClassifier(**FAST), X, y, cv=KFold(3))
    assert scores.shape == (3,) and np.all(np.isfinite(scores))
    # GridSearchCV(cv=3) would call type_of_target on the mixed y and fail before
    # fitting; an explicit KFold (or stratifying on one task) avoids that
    grid = GridSearchCV(MMoEClassifier(**FAST), {"lr": [1e-3, 1e-2]}, cv=KFold(3))
    grid.fit(X, y)
    assert grid.best_estimator_.predict(X).dtype == object


def test_stratify_on_one_task():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(120, 3))
    rare = np.where(np.arange(120) % 10 == 0, "rare", "common")
    y = pd.DataFrame({"rare": rare, "other": rng.randint(0, 2, 120)})
    folds = list(StratifiedKFold(4, shuffle=True, random_state=0).split(X, y["rare"]))
    for _, test in folds:
        assert (y["rare"].iloc[test] == "rare").sum() == 3
    result = cross_validate(MMoEClassifier(**FAST), X, y, cv=folds, scoring=task_accuracy_scorer)
    assert result["test_score"].shape == (4,)
    assert np.all(np.isfinite(result["test_score"]))


def test_partial_fit_continues_training(data):
    X, Y = data
    reg = MMoERegressor(**FAST)
    reg.partial_fit(X, Y)
    first = reg.predict(X)
    assert len(reg.net_.history) == 1
    reg.partial_fit(X, Y)
    assert len(reg.net_.history) == 2
    assert not np.array_equal(first, reg.predict(X))
    with pytest.raises(ValueError, match="features"):
        reg.partial_fit(X[:, :3], Y)


def test_classifier_partial_fit_needs_classes_only_first():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(40, 3))
    y = np.column_stack([np.repeat(["a", "b"], 20), np.repeat(["x", "y"], 20)])
    clf = MMoEClassifier(**FAST)
    # the first batch lacks class "c" of task 0; classes= declares it
    clf.partial_fit(X[:20], y[:20], classes=[["a", "b", "c"], ["x", "y"]])
    assert clf.classes_[0].tolist() == ["a", "b", "c"]
    clf.partial_fit(X[20:], y[20:])
    assert len(clf.net_.history) == 2


def test_warm_start_continues(data):
    X, Y = data
    reg = MMoERegressor(warm_start=True, **FAST).fit(X, Y)
    module = reg.module_
    reg.fit(X, Y)
    assert reg.module_ is module
    assert len(reg.net_.history) == 2 * FAST["max_epochs"]
    with pytest.raises(ValueError, match="features"):
        reg.fit(X[:, :2], Y)
    cold = MMoERegressor(**FAST).fit(X, Y)
    n_epochs = len(cold.net_.history)
    cold.fit(X, Y)
    assert len(cold.net_.history) == n_epochs


@pytest.mark.parametrize("estimator", [MMoERegressor(**FAST), MMoEClassifier(**FAST)])
def test_inference_independent_of_batching(estimator, data):
    """A row's prediction is bitwise the same alone, in a subset or shuffled."""
    X, Y = data
    y = Y if isinstance(estimator, MMoERegressor) else (Y > 0).astype(int)
    est = clone(estimator).fit(X, y)
    method = est.predict if isinstance(est, MMoERegressor) else est.predict_proba
    full = np.asarray(method(X))
    one_by_one = np.concatenate([np.asarray(method(X[i : i + 1])) for i in range(30)], axis=-2)
    np.testing.assert_array_equal(one_by_one, full[..., :30, :])
    order = np.random.RandomState(0).permutation(len(X))
    np.testing.assert_array_equal(np.asarray(method(X[order])), full[..., order, :])
