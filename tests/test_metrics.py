import numpy as np
import pandas as pd
import pytest
from conftest import fast
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score

from sk_mmoe import MMoEClassifier, MMoERegressor
from sk_mmoe.metrics import (
    make_task_scorer,
    task_accuracy_scorer,
    task_neg_log_loss_scorer,
    task_neg_mse_scorer,
    task_r2_scorer,
    task_roc_auc_scorer,
)

FAST = fast(max_epochs=10)


@pytest.fixture(scope="module")
def multiclass_multioutput():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(150, 4))
    y = pd.DataFrame(
        {
            "level": np.array(["low", "mid", "high"])[np.digitize(X[:, 0], [-0.4, 0.4])],
            "flag": (X[:, 1] > 0).astype(int),
        }
    )
    return X, y


@pytest.fixture(scope="module")
def clf(multiclass_multioutput):
    X, y = multiclass_multioutput
    return MMoEClassifier(**FAST).fit(X, y)


def test_sklearn_accuracy_string_fails_and_task_scorer_works(clf, multiclass_multioutput):
    X, y = multiclass_multioutput
    with pytest.raises(ValueError, match="multiclass-multioutput"):
        accuracy_score(y[["flag"]].assign(other=y["flag"] * 2), clf.predict(X)[:, [1, 1]])
    pred = clf.predict(X)
    expected = np.mean([accuracy_score(y.iloc[:, k], list(pred[:, k])) for k in range(2)])
    assert task_accuracy_scorer(clf, X, y) == pytest.approx(expected)
    assert task_accuracy_scorer(clf, X, y) == pytest.approx(clf.score(X, y))


def test_probability_scorers(clf, multiclass_multioutput):
    X, y = multiclass_multioutput
    proba = clf.predict_proba(X)
    auc = task_roc_auc_scorer(clf, X, y)
    expected = np.mean(
        [
            roc_auc_score(y["level"], proba[0], multi_class="ovr", labels=clf.classes_[0]),
            roc_auc_score(y["flag"], proba[1][:, 1]),
        ]
    )
    assert auc == pytest.approx(expected)
    loss = task_neg_log_loss_scorer(clf, X, y)
    assert loss == pytest.approx(
        -np.mean([log_loss(y.iloc[:, k], proba[k], labels=clf.classes_[k]) for k in range(2)])
    )


def test_per_task_report(clf, multiclass_multioutput):
    X, y = multiclass_multioutput
    report = make_task_scorer(accuracy_score, per_task=True)(clf, X, y)
    assert set(report) == {"mean", "level", "flag"}
    assert report["mean"] == pytest.approx((report["level"] + report["flag"]) / 2)


def test_missing_labels_are_left_out(clf, multiclass_multioutput):
    X, y = multiclass_multioutput
    y_missing = y.astype(object).copy()
    y_missing.iloc[:50, 0] = None
    report = make_task_scorer(accuracy_score, per_task=True)(clf, X, y_missing)
    pred = clf.predict(X)
    assert report["level"] == pytest.approx(np.mean(pred[50:, 0] == y["level"].to_numpy()[50:]))


def test_grid_search_with_task_scorer(multiclass_multioutput):
    X, y = multiclass_multioutput
    scoring = {"acc": task_accuracy_scorer, "auc": task_roc_auc_scorer}
    grid = GridSearchCV(
        MMoEClassifier(**FAST), {"n_experts": [2, 4]}, scoring=scoring, refit="auc", cv=KFold(2)
    )
    grid.fit(X, y)
    assert np.all(np.isfinite(grid.cv_results_["mean_test_acc"]))
    per_task = make_task_scorer(accuracy_score, per_task=True)
    grid = GridSearchCV(
        MMoEClassifier(**FAST), {"lr": [1e-3, 1e-2]}, scoring=per_task, refit="mean", cv=KFold(2)
    )
    grid.fit(X, y)
    assert "mean_test_level" in grid.cv_results_


def test_regression_scorers():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(100, 3))
    Y = np.column_stack([X[:, 0], 10 * X[:, 1]])
    reg = MMoERegressor(**FAST).fit(X, Y)
    assert task_r2_scorer(reg, X, Y) == pytest.approx(reg.score(X, Y))
    assert task_neg_mse_scorer(reg, X, Y) < 0
    scores = cross_val_score(MMoERegressor(**FAST), X, Y, cv=2, scoring=task_r2_scorer)
    assert np.all(np.isfinite(scores))


def test_make_task_scorer_validates():
    with pytest.raises(ValueError, match="response_method"):
        make_task_scorer(accuracy_score, response_method="decision_function")
    with pytest.raises(TypeError, match="callable"):
        make_task_scorer("accuracy")
