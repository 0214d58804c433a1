"""Mixed task types, missing labels, task weighting, sample weights, gate health."""

import warnings

import numpy as np
import pandas as pd
import pytest
import sklearn
from conftest import fast
from sklearn.compose import ColumnTransformer
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import KFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from sk_mmoe import GateCollapseWarning, MMoEClassifier, MMoEMultiTask, MMoERegressor
from sk_mmoe.datasets import make_mmoe_tasks

FAST = fast(max_epochs=30, lr=0.01, expert_units=(16,), tower_units=(8,))


@pytest.fixture(scope="module")
def recsys():
    """Click (binary label) and watch time (regression) driven by shared features."""
    rng = np.random.RandomState(0)
    n = 600
    X = pd.DataFrame(
        {
            "age": rng.uniform(18, 70, n),
            "minutes_on_site": rng.exponential(10, n),
            "device": rng.choice(["phone", "tv", "laptop"], n),
        }
    )
    interest = (X["age"] - 40) / 15 + np.log1p(X["minutes_on_site"]) - 2
    y = pd.DataFrame(
        {
            "click": np.where(interest + rng.normal(0, 0.3, n) > 0, "click", "skip"),
            "watch_time": 30 + 10 * interest + 5 * (X["device"] == "tv") + rng.normal(0, 1, n),
        }
    )
    return X, y


def _pipeline(**params):
    pre = ColumnTransformer(
        [
            ("num", StandardScaler(), ["age", "minutes_on_site"]),
            ("cat", OneHotEncoder(), ["device"]),
        ]
    )
    return make_pipeline(pre, MMoEMultiTask(**(FAST | params)))


@pytest.fixture(scope="module")
def fitted_recsys(recsys):
    X, y = recsys
    return _pipeline().fit(X, y)


def test_auto_task_types_and_outputs(fitted_recsys, recsys):
    X, y = recsys
    model = fitted_recsys[-1]
    assert model.task_types_ == ["binary", "regression"]
    assert model.classes_[0].tolist() == ["click", "skip"] and model.classes_[1] is None
    pred = fitted_recsys.predict(X)
    assert pred.shape == (600, 2) and pred.dtype == object
    assert set(pred[:, 0]) <= {"click", "skip"}
    assert all(isinstance(v, float) for v in pred[:, 1])
    proba = fitted_recsys.predict_proba(X)
    assert proba[0].shape == (600, 2) and proba[1] is None
    acc = accuracy_score(y["click"], list(pred[:, 0]))
    r2 = r2_score(y["watch_time"], pred[:, 1].astype(float))
    assert acc > 0.85 and r2 > 0.8
    assert fitted_recsys.score(X, y) == pytest.approx((acc + r2) / 2)


def test_explicit_task_types(recsys):
    X, y = recsys
    counts = pd.DataFrame({"clicks": (y["watch_time"] // 10).astype(int), "c": y["click"]})
    auto = _pipeline(max_epochs=2).fit(X, counts)[-1]
    assert auto.task_types_[0] == "multiclass"
    by_name = _pipeline(max_epochs=2, task_types={"clicks": "regression", "c": "binary"})
    assert by_name.fit(X, counts)[-1].task_types_ == ["regression", "binary"]
    as_list = _pipeline(max_epochs=2, task_types=["regression", "binary"]).fit(X, counts)
    assert as_list.predict(X[:3])[:, 0].dtype == object


@pytest.mark.parametrize(
    ("task_types", "match"),
    [
        ({"clicks": "regression"}, "missing"),
        ({"clicks": "regression", "c": "binary", "x": "binary"}, "unknown"),
        (["regression"], "entries"),
        (["regression", "ordinal"], "ordinal"),
        (["binary", "binary"], "Unknown label type"),
    ],
)
def test_bad_task_types(task_types, match, recsys):
    X, y = recsys
    y2 = pd.DataFrame({"clicks": y["watch_time"], "c": y["click"]})
    with pytest.raises(ValueError, match=match):
        _pipeline(max_epochs=1, task_types=task_types).fit(X, y2)


def test_binary_declared_with_three_classes(recsys):
    X, y = recsys
    y2 = pd.DataFrame({"a": np.arange(600) % 3, "b": y["click"]})
    with pytest.raises(ValueError, match="declared 'binary'"):
        _pipeline(max_epochs=1, task_types=["binary", "binary"]).fit(X, y2)


def test_cross_val_score_in_pipeline(recsys):
    X, y = recsys
    scores = cross_val_score(_pipeline(max_epochs=3), X, y, cv=KFold(3))
    assert scores.shape == (3,) and np.all(np.isfinite(scores))


# --------------------------------------------------------------- missing labels
@pytest.mark.parametrize("missing", [np.nan, None, pd.NA])
def test_missing_labels_raise_by_default(missing, recsys):
    X, y = recsys
    y2 = y.astype(object)
    y2.iloc[3, 1] = missing
    with pytest.raises(ValueError, match="missing values.*'watch_time'.*missing_targets"):
        _pipeline(max_epochs=1).fit(X, y2)
    assert y2.iloc[3, 1] is missing  # the caller's frame is untouched


def test_missing_labels_ignored():
    """Half of task 2 unlabelled: task 1 is unharmed and task 2 still learns."""
    X, Y = make_mmoe_tasks(3000, n_features=20, correlation=0.8, random_state=1)
    X_test, Y_test = X[2000:], Y[2000:]
    X, Y = X[:2000], Y[:2000]
    params = {"max_epochs": 40, "random_state": 0}
    full = MMoERegressor(**params).fit(X, Y)
    Y_half = Y.copy()
    Y_half[::2, 1] = np.nan
    half = MMoERegressor(missing_targets="ignore", **params).fit(X, Y_half)
    assert np.isnan(Y_half[::2, 1]).all()  # input unchanged
    r2_full = r2_score(Y_test, full.predict(X_test), multioutput="raw_values")
    r2_half = r2_score(Y_test, half.predict(X_test), multioutput="raw_values")
    assert r2_half[0] > r2_full[0] - 0.03
    assert r2_half[1] > 0.8
    # a model trained on the labelled half alone does no better on task 2
    alone = MMoERegressor(**params).fit(X[1::2], Y[1::2, 1])
    assert r2_half[1] > r2_score(Y_test[:, 1], alone.predict(X_test)) - 0.03


def test_rows_missing_every_task_are_dropped(recsys):
    X, y = recsys
    y2 = y.astype(object)
    y2.iloc[:5, :] = None
    with pytest.warns(UserWarning, match="5 row"):
        model = _pipeline(max_epochs=1, missing_targets="ignore").fit(X, y2)
    # score leaves missing labels out
    assert np.isfinite(model.score(X, y2))


def test_task_with_no_label_at_all(recsys):
    X, y = recsys
    y2 = y.astype(object)
    y2["watch_time"] = np.nan
    with pytest.raises(ValueError, match="no label at all.*watch_time"):
        _pipeline(max_epochs=1, missing_targets="ignore").fit(X, y2)


def test_missing_labels_in_classifier():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(300, 3))
    y = pd.DataFrame({"a": np.where(X[:, 0] > 0, "p", "n"), "b": np.where(X[:, 1] > 0, 1, 0)})
    y = y.astype(object)
    y.iloc[::3, 0] = pd.NA
    clf = MMoEClassifier(missing_targets="ignore", **FAST).fit(X, y)
    assert clf.classes_[0].tolist() == ["n", "p"]
    assert clf.score(X, y) > 0.85


# ---------------------------------------------------------------- task weights
@pytest.fixture(scope="module")
def two_tasks():
    X, Y = make_mmoe_tasks(1500, n_features=10, correlation=0.0, random_state=2)
    return X, Y


def test_zero_task_weight_is_not_learnt(two_tasks):
    X, Y = two_tasks
    weighted = MMoERegressor(task_weights=[1.0, 0.0], **FAST).fit(X, Y)
    both = MMoERegressor(**FAST).fit(X, Y)
    r2_weighted = r2_score(Y, weighted.predict(X), multioutput="raw_values")
    r2_both = r2_score(Y, both.predict(X), multioutput="raw_values")
    assert r2_both[1] > 0.8
    assert r2_weighted[1] < 0.2
    assert r2_weighted[0] > 0.8
    # the tower of the unweighted task never moved from its initialisation
    initial = MMoERegressor(task_weights=[1.0, 0.0], **(FAST | {"max_epochs": 1}))
    initial.fit(X, Y)
    np.testing.assert_array_equal(
        weighted.module_.heads.weight[1].detach().numpy(),
        initial.module_.heads.weight[1].detach().numpy(),
    )


def test_uncertainty_weighting_learns_log_variances(two_tasks):
    X, Y = two_tasks
    noisy = Y.copy()
    noisy[:, 1] += np.random.RandomState(0).normal(0, 3, len(Y))
    reg = MMoERegressor(task_weights="uncertainty", **FAST).fit(X, noisy)
    log_vars = reg.net_.criterion_.log_vars.detach().numpy()
    # the noisier task gets the larger variance, i.e. the smaller weight
    assert log_vars[1] > log_vars[0]
    assert reg.score(X, noisy) > 0.3


def test_mixed_loss_scales_train_both_tasks(recsys):
    X, y = recsys
    y2 = y.copy()
    y2["watch_time"] *= 1e4  # the raw scale does not drown the click task
    model = _pipeline().fit(X, y2)
    pred = model.predict(X)
    assert accuracy_score(y2["click"], list(pred[:, 0])) > 0.85
    assert r2_score(y2["watch_time"], pred[:, 1].astype(float)) > 0.8


# --------------------------------------------------------------- sample weights
def test_sample_weight_changes_the_fit(two_tasks):
    X, Y = two_tasks
    weights = np.where(X[:, 0] > 0, 1.0, 0.0)
    reg = MMoERegressor(**FAST).fit(X, Y, sample_weight=weights)
    plain = MMoERegressor(**FAST).fit(X, Y)
    pos, neg = X[:, 0] > 0, X[:, 0] <= 0
    assert r2_score(Y[pos], reg.predict(X[pos])) > r2_score(Y[neg], reg.predict(X[neg]))
    assert not np.allclose(reg.predict(X), plain.predict(X))
    with pytest.raises(ValueError, match="(?i)negative"):
        MMoERegressor(**FAST).fit(X, Y, sample_weight=-weights)


def test_sample_weight_routed_through_pipeline(two_tasks):
    X, Y = two_tasks
    weights = np.where(X[:, 0] > 0, 1.0, 0.1)

    def pipeline():
        return make_pipeline(StandardScaler(), MMoERegressor(**(FAST | {"max_epochs": 3})))

    with sklearn.config_context(enable_metadata_routing=True):
        routed = pipeline()
        routed[0].set_fit_request(sample_weight=False)
        routed[-1].set_fit_request(sample_weight=True)
        routed.fit(X, Y, sample_weight=weights)
    direct = pipeline().fit(X, Y, mmoeregressor__sample_weight=weights)
    unweighted = pipeline().fit(X, Y)
    np.testing.assert_array_equal(routed.predict(X), direct.predict(X))
    assert not np.array_equal(routed.predict(X), unweighted.predict(X))


# --------------------------------------------------------------- early stopping
def test_early_stopping_logs_per_task_validation_losses(recsys):
    X, y = recsys
    model = _pipeline(max_epochs=300, early_stopping=True, n_iter_no_change=5, lr=0.01)
    model.fit(X, y)
    history = model[-1].net_.history
    assert len(history) < 300
    for epoch in history:
        assert {"valid_loss", "valid_loss_click", "valid_loss_watch_time"} <= set(epoch)
        total = epoch["valid_loss_click"] + epoch["valid_loss_watch_time"]
        assert total == pytest.approx(epoch["valid_loss"], rel=1e-4)
    valid = np.asarray(history[:, "valid_loss"])
    best = int(np.argmin(valid))
    assert best == len(valid) - 1 - 5


# ------------------------------------------------------------------ gate health
def test_gate_summary(fitted_recsys, recsys):
    X, _ = recsys
    model = fitted_recsys[-1]
    Xt = fitted_recsys[:-1].transform(X)
    summary = model.gate_summary(Xt)
    assert summary.index.tolist() == ["click", "watch_time"]
    experts = [f"expert_{e}" for e in range(8)]
    np.testing.assert_allclose(summary[experts].sum(axis=1), 1.0, rtol=1e-5)
    assert ((summary["entropy"] >= 0) & (summary["entropy"] <= np.log(8) + 1e-6)).all()
    weights = model.gate_weights(Xt)
    np.testing.assert_allclose(summary.loc["click", experts], weights[:, 0].mean(axis=0))


def test_gate_collapse_warning(two_tasks):
    X, Y = two_tasks
    with pytest.warns(GateCollapseWarning, match="gate_entropy_bonus"):
        MMoERegressor(n_experts=2, gate_collapse_threshold=0.5, **FAST).fit(X, Y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", GateCollapseWarning)
        MMoERegressor(n_experts=2, gate_collapse_threshold=None, **FAST).fit(X, Y)


def test_gate_dropout_trains_with_dropped_experts_and_predicts_deterministically(two_tasks):
    X, Y = two_tasks
    params = FAST | {"n_experts": 4, "gate_dropout": 0.5, "gate_collapse_threshold": None}
    reg = MMoERegressor(**params).fit(X, Y)
    assert reg.module_.gate_dropout == 0.5
    np.testing.assert_array_equal(reg.predict(X), reg.predict(X))
    weights = reg.gate_weights(X)
    assert (weights > 0).all()  # no expert dropped at inference
    plain = MMoERegressor(**(params | {"gate_dropout": 0.0})).fit(X, Y)
    assert not np.allclose(plain.predict(X), reg.predict(X))
    assert reg.score(X, Y) > 0.8
