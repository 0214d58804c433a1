"""Core behaviour of MMoERegressor and MMoEClassifier."""

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import architecture_names, fast, gated_architectures
from sklearn.metrics import r2_score
from skorch.callbacks import Callback, LRScheduler

from sk_mmoe import MMoEClassifier, MMoERegressor
from sk_mmoe._hyperparameters import AUTO_EARLY_STOPPING_ROWS
from sk_mmoe.datasets import make_mmoe_tasks

FAST = fast(max_epochs=3)


@pytest.fixture(scope="module")
def regression_data():
    X, Y = make_mmoe_tasks(400, n_features=10, correlation=0.5, random_state=0)
    return X, Y


@pytest.fixture(scope="module")
def fitted_regressor(regression_data):
    X, Y = regression_data
    # 3 epochs of 13 batches: enough to learn these tasks
    return MMoERegressor(**fast(max_epochs=3, lr=0.02, batch_size=32)).fit(X, Y)


@pytest.fixture(scope="module")
def label_data():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(300, 4))
    y = pd.DataFrame(
        {
            "colour": pd.Series(np.where(X[:, 0] > 0, "red", "blue"), dtype="string"),
            "size": np.digitize(X[:, 1], [-0.5, 0.5]) + 1,
            "flag": X[:, 2] > 0,
        }
    )
    return X, y


@pytest.fixture(scope="module")
def fitted_classifier(label_data):
    X, y = label_data
    return MMoEClassifier(max_epochs=60, random_state=0).fit(X, y)


@pytest.mark.parametrize("architecture", architecture_names())
def test_paper_style_tasks_reach_r2_above_09(architecture):
    X, Y = make_mmoe_tasks(6000, n_features=100, correlation=0.5, random_state=0)
    reg = MMoERegressor(architecture=architecture, max_epochs=20, random_state=0)
    reg.fit(X[:5000], Y[:5000])
    assert reg.score(X[5000:], Y[5000:]) > 0.9


def test_regressor_outputs(fitted_regressor, regression_data):
    X, Y = regression_data
    pred = fitted_regressor.predict(X)
    assert pred.shape == (400, 2) and pred.dtype == np.float64
    assert fitted_regressor.n_tasks_ == 2
    assert fitted_regressor.n_features_in_ == 10
    assert fitted_regressor.target_names_.tolist() == ["task_0", "task_1"]
    assert fitted_regressor.net_.history[-1, "epoch"] == 3
    assert isinstance(fitted_regressor.module_, torch.nn.Module)
    # it learned both tasks: R² well above a constant prediction's 0
    r2 = [r2_score(Y[:, k], pred[:, k]) for k in range(2)]
    assert min(r2) > 0.8


def test_regressor_score_is_mean_task_r2(fitted_regressor, regression_data):
    X, Y = regression_data
    pred = fitted_regressor.predict(X)
    expected = np.mean([r2_score(Y[:, k], pred[:, k]) for k in range(2)])
    assert fitted_regressor.score(X, Y) == pytest.approx(expected)


def test_one_dimensional_y_gives_one_dimensional_predictions(regression_data):
    X, Y = regression_data
    reg = MMoERegressor(**FAST).fit(X, Y[:, 0])
    assert reg.predict(X).shape == (400,)
    assert reg.n_tasks_ == 1


def test_targets_on_different_scales_are_standardised(regression_data):
    X, Y = regression_data
    scaled = Y * np.array([1.0, 1e4]) + np.array([0.0, -5e5])
    reg = MMoERegressor(max_epochs=30, random_state=0).fit(X, scaled)
    pred = reg.predict(X)
    # predictions are on the original scale (a constant at the mean scores
    # R² = 0), and the small task is learnt as well as the large one
    assert abs(pred[:, 1].mean() - scaled[:, 1].mean()) < 0.2 * scaled[:, 1].std()
    assert r2_score(scaled[:, 1], pred[:, 1]) > 0.8
    assert r2_score(scaled[:, 0], pred[:, 0]) > 0.8


def test_dataframe_targets_give_target_names(regression_data):
    X, Y = regression_data
    y = pd.DataFrame(Y, columns=["clicks", "watch_time"])
    reg = MMoERegressor(**FAST).fit(pd.DataFrame(X, columns=[f"f{i}" for i in range(10)]), y)
    assert reg.target_names_.tolist() == ["clicks", "watch_time"]
    assert reg.feature_names_in_[0] == "f0"


def test_classifier_round_trips_labels(fitted_classifier, label_data):
    X, y = label_data
    clf = fitted_classifier
    assert [c.tolist() for c in clf.classes_] == [["blue", "red"], [1, 2, 3], [False, True]]
    pred = clf.predict(X)
    assert pred.shape == (300, 3) and pred.dtype == object
    assert set(pred[:, 0]) <= {"red", "blue"}
    assert isinstance(pred[0, 1], (int, np.integer))
    assert clf.score(X, y) > 0.85
    assert clf.target_names_.tolist() == ["colour", "size", "flag"]


def test_classifier_binary_and_multiclass_per_column(fitted_classifier, label_data):
    X, _ = label_data
    clf = fitted_classifier
    assert clf.target_encoder_.task_types == ["binary", "multiclass", "binary"]
    proba = clf.predict_proba(X[:5])
    assert [p.shape for p in proba] == [(5, 2), (5, 3), (5, 2)]
    for p in proba:
        np.testing.assert_allclose(p.sum(axis=1), 1.0)
    # predict is the argmax of predict_proba, in the order of classes_
    for k, p in enumerate(proba):
        expected = clf.classes_[k][p.argmax(axis=1)]
        assert clf.predict(X[:5])[:, k].tolist() == expected.tolist()


def test_classifier_score_is_mean_task_accuracy(fitted_classifier, label_data):
    X, y = label_data
    pred = fitted_classifier.predict(X)
    expected = np.mean([np.mean(pred[:, k] == y.iloc[:, k].to_numpy()) for k in range(3)])
    assert fitted_classifier.score(X, y) == pytest.approx(expected)


def test_classifier_one_dimensional_string_labels():
    rng = np.random.RandomState(1)
    X = rng.normal(size=(120, 3))
    y = np.where(X[:, 0] > 0, "yes", "no")
    clf = MMoEClassifier(max_epochs=30, random_state=0).fit(X, y)
    assert clf.classes_.tolist() == ["no", "yes"]
    assert clf.predict(X).shape == (120,)
    assert clf.predict_proba(X).shape == (120, 2)
    assert clf.score(X, y) > 0.8


def test_classifier_mixed_str_and_int_columns():
    X = np.random.RandomState(0).normal(size=(60, 3))
    y = pd.DataFrame({"a": ["u", "v", "w"] * 20, "b": [0, 1] * 30})
    pred = MMoEClassifier(**FAST).fit(X, y).predict(X)
    assert {type(v) for v in pred[:, 0]} == {str}
    assert set(pred[:, 1]) <= {0, 1}


def test_classifier_rejects_continuous_targets():
    X = np.random.RandomState(0).normal(size=(20, 2))
    with pytest.raises(ValueError, match="Unknown label type"):
        MMoEClassifier(**FAST).fit(X, X[:, 0])


@pytest.mark.parametrize("architecture", gated_architectures())
def test_gate_weights(architecture, regression_data):
    X, Y = regression_data
    reg = MMoERegressor(architecture=architecture, n_experts=5, **FAST).fit(X, Y)
    w = reg.gate_weights(X[:7])
    assert w.shape == (7, 2, len(reg.module_.expert_names)) and w.dtype == np.float64
    np.testing.assert_allclose(w.sum(axis=2), 1.0, rtol=1e-5)
    np.testing.assert_allclose(reg.gate_weights(X)[:7], w, rtol=1e-5, atol=1e-7)
    # the gates depend on the row (softmax(W x), not a constant mixture)
    assert w.std(axis=0).max() > 1e-3
    if architecture == "moe":  # one gate shared by the tasks
        np.testing.assert_array_equal(w[:, 0], w[:, 1])
    else:  # one gate per task
        assert np.abs(w[:, 0] - w[:, 1]).max() > 1e-3
    # cgc / ple: a task's gate reaches the shared experts and its own only
    # (experts "shared_<i>" and "<task name>_<i>"; mmoe / moe: "expert_<i>")
    owner = [name.rsplit("_", 1)[0] for name in reg.expert_names_]
    for k, task in enumerate(reg.target_names_):
        others = [owner_ in reg.target_names_ and owner_ != task for owner_ in owner]
        assert (w[:, k, others] == 0).all()
        assert (w[:, k, np.logical_not(others)] > 0).all()


def test_gate_weights_shared_bottom_raises(regression_data):
    X, Y = regression_data
    reg = MMoERegressor(architecture="shared_bottom", **FAST).fit(X, Y)
    with pytest.raises(ValueError, match="no gates"):
        reg.gate_weights(X)


def test_same_random_state_gives_identical_predictions(regression_data):
    X, Y = regression_data
    a = MMoERegressor(dropout=0.1, **FAST).fit(X, Y).predict(X)
    b = MMoERegressor(dropout=0.1, **FAST).fit(X, Y).predict(X)
    c = MMoERegressor(dropout=0.1, **{**FAST, "random_state": 1}).fit(X, Y).predict(X)
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)


def test_fit_leaves_global_torch_state_alone(regression_data):
    X, Y = regression_data
    threads = torch.get_num_threads()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    MMoERegressor(**FAST).fit(X, Y)
    assert torch.equal(torch.rand(3), expected)
    assert torch.get_num_threads() == threads


class _CountEpochs(Callback):
    def __init__(self):
        self.epochs = 0

    def on_epoch_end(self, net, **kwargs):
        self.epochs += 1


def test_user_callbacks_are_cloned(regression_data):
    X, Y = regression_data
    counter = _CountEpochs()
    schedule = LRScheduler(policy="StepLR", step_size=1, gamma=0.5)
    reg = MMoERegressor(callbacks=[counter, ("schedule", schedule)], **FAST).fit(X, Y)
    assert counter.epochs == 0  # the user's object is untouched
    assert not hasattr(schedule, "lr_scheduler_")
    assert reg.callbacks[0] is counter
    assert dict(reg.net_.callbacks_)["_CountEpochs"].epochs == 3
    assert reg.net_.optimizer_.param_groups[0]["lr"] == pytest.approx(1e-3 / 8)


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("architecture", "mtl"),
        ("n_experts", 0),
        ("activation", "swish3"),
        ("dropout", 1.0),
        ("lr", 0.0),
        ("batch_size", 0),
        ("max_epochs", 0),
        ("optimizer", "lbfgsx"),
        ("weight_decay", -1.0),
        ("validation_fraction", 1.0),
        ("n_iter_no_change", 0),
        ("tol", -1.0),
        ("missing_targets", "drop"),
        ("verbose", -1),
        ("warm_start", "yes"),
        ("early_stopping", 2),
        ("expert_units", "64"),
    ],
)
def test_invalid_hyperparameters_are_rejected(param, value, regression_data):
    from sklearn.utils._param_validation import InvalidParameterError

    X, Y = regression_data
    with pytest.raises(InvalidParameterError, match=param):
        MMoERegressor(**{param: value}).fit(X, Y)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"expert_units": ()}, "expert_units"),
        ({"tower_units": (4, 0)}, "tower_units"),
        ({"task_weights": [1.0]}, "task_weights"),
        ({"task_weights": [1.0, -1.0]}, "task_weights"),
        ({"optimizer": int}, "optimizer"),
        ({"device": "nonsense"}, "device"),
        ({"callbacks": ["x"]}, "callbacks"),
    ],
)
def test_invalid_values_beyond_constraints(params, match, regression_data):
    X, Y = regression_data
    with pytest.raises((ValueError, TypeError), match=match):
        MMoERegressor(**FAST | params).fit(X, Y)


def test_optimizer_class_and_names(regression_data):
    X, Y = regression_data
    reg = MMoERegressor(optimizer=torch.optim.SGD, **FAST).fit(X, Y)
    assert isinstance(reg.net_.optimizer_, torch.optim.SGD)
    reg = MMoERegressor(optimizer="adamw", weight_decay=0.1, **FAST).fit(X, Y)
    assert isinstance(reg.net_.optimizer_, torch.optim.AdamW)
    assert reg.net_.optimizer_.param_groups[0]["weight_decay"] == 0.1


def test_early_stopping_restores_best_and_stops(regression_data):
    X, Y = regression_data
    reg = MMoERegressor(
        max_epochs=200, early_stopping=True, n_iter_no_change=3, random_state=0, lr=0.05
    ).fit(X, Y)
    history = reg.net_.history
    assert len(history) < 200
    valid = history[:, "valid_loss"]
    assert "valid_loss" in history[-1]
    # it stopped n_iter_no_change epochs after the best one
    best = int(np.argmin(valid)) + 1
    assert best == len(valid) - 3
    # best weights restored: the model is the one a fit ending at the best epoch
    # gives (same seed: same split, batches and updates), not the last epoch's
    at_best = MMoERegressor(
        max_epochs=best, early_stopping=True, n_iter_no_change=3, random_state=0, lr=0.05
    ).fit(X, Y)
    assert len(at_best.net_.history) == best
    np.testing.assert_array_equal(reg.predict(X), at_best.predict(X))


@pytest.fixture(scope="module")
def threshold_data():
    """Rows at the row count where early_stopping="auto" turns on."""
    X, Y = make_mmoe_tasks(AUTO_EARLY_STOPPING_ROWS, n_features=4, random_state=0)
    return X, Y


def test_early_stopping_auto_turns_on_above_the_threshold(threshold_data):
    X, Y = threshold_data
    assert MMoERegressor().early_stopping == "auto"
    at = MMoERegressor(**fast(max_epochs=2)).fit(X, Y)
    assert "valid_loss" in at.net_.history[-1]
    below = MMoERegressor(**fast(max_epochs=2)).fit(X[:-1], Y[:-1])
    assert "valid_loss" not in below.net_.history[-1]
    assert below.n_iter_ == 2
    # rows with no label at all do not count
    Y_missing = Y.copy()
    Y_missing[-1] = np.nan
    dropped = MMoERegressor(missing_targets="ignore", **fast(max_epochs=1))
    with pytest.warns(UserWarning, match="no label"):
        dropped.fit(X, Y_missing)
    assert "valid_loss" not in dropped.net_.history[-1]
    # explicit settings win
    off = MMoERegressor(early_stopping=False, **fast(max_epochs=1)).fit(X, Y)
    assert "valid_loss" not in off.net_.history[-1]


def test_early_stopping_auto_and_partial_fit(threshold_data, tmp_path):
    X, Y = threshold_data
    incremental = MMoERegressor(**fast()).partial_fit(X, Y)
    assert "valid_loss" not in incremental.net_.history[-1]
    incremental.partial_fit(X, Y)
    assert len(incremental.net_.history) == 2
    stopped = MMoERegressor(**fast(max_epochs=1)).fit(X, Y)
    before = stopped.predict(X[:5])
    with pytest.raises(ValueError, match="partial_fit cannot continue.*early stopping"):
        stopped.partial_fit(X, Y)
    np.testing.assert_array_equal(stopped.predict(X[:5]), before)
    # a loaded model keeps its choice: a warm-start fit goes on stopping early
    stopped.save(tmp_path / "stopped.skmmoe")
    loaded = MMoERegressor.load(tmp_path / "stopped.skmmoe")
    loaded.set_params(warm_start=True).fit(X, Y)
    assert "valid_loss" in loaded.net_.history[-1]
    with pytest.raises(ValueError, match="partial_fit cannot continue"):
        loaded.partial_fit(X, Y)


@pytest.mark.parametrize(
    ("n_rows", "expected"), [(49_999, 256), (50_000, 512), (99_999, 512), (100_000, 1024)]
)
def test_batch_size_auto_grows_with_the_rows(n_rows, expected, tmp_path):
    X, Y = make_mmoe_tasks(n_rows, n_features=2, random_state=0)
    reg = MMoERegressor(early_stopping=False, **fast(max_epochs=1)).fit(X, Y)
    assert reg.batch_size == "auto" and reg.net_.batch_size == expected
    assert max(reg.net_.history[-1, "batches", :, "train_batch_size"]) == expected
    # a loaded model continues with the size it trained with
    reg.save(tmp_path / "auto.skmmoe")
    assert MMoERegressor.load(tmp_path / "auto.skmmoe").net_.batch_size == expected
    # a warm-start continuation on fewer rows keeps it too
    reg.set_params(warm_start=True).fit(X[:100], Y[:100])
    assert reg.net_.batch_size == expected
    assert MMoERegressor(batch_size=100, **fast(max_epochs=1)).fit(X, Y).net_.batch_size == 100


def test_parameters_have_defaults_and_init_only_stores():
    est = MMoERegressor()
    params = est.get_params()
    assert params["architecture"] == "mmoe" and params["n_experts"] == 8
    assert not any(k.endswith("_") for k in vars(est))


def test_partial_fit_refuses_early_stopping(regression_data):
    X, Y = regression_data
    reg = MMoERegressor(early_stopping=True, **FAST)
    with pytest.raises(ValueError, match="partial_fit.*early_stopping=True"):
        reg.partial_fit(X, Y)
    assert not hasattr(reg, "net_")
    clf = MMoEClassifier(early_stopping=True, **FAST)
    with pytest.raises(ValueError, match="partial_fit.*early_stopping=True"):
        clf.partial_fit(X, Y[:, 0] > 0, classes=[False, True])
