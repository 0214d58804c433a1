"""multitask_gain, mean_confidence_interval and MultiTaskGainDisplay on known answers."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.model_selection import KFold

from sk_mmoe import MMoEClassifier, MMoEMultiTask, MMoERegressor
from sk_mmoe.model_selection import mean_confidence_interval, multitask_gain

PARAMS = {
    "max_epochs": 30,
    "expert_units": (16,),
    "tower_units": (8,),
    "n_experts": 4,
    "lr": 0.003,
    "random_state": 0,
    "missing_targets": "ignore",
}


@pytest.fixture(scope="module")
def related_and_noise():
    """Task ``rich`` fully labelled; ``scarce``: the same function, 15% labelled; ``noise``."""
    rng = np.random.RandomState(0)
    n, d = 600, 10
    X = rng.normal(size=(n, d))
    w = rng.normal(size=d)
    f = np.sin(X @ w / 2) + X @ w / 3
    scarce = 2 * f + 1 + rng.normal(0, 0.2, n)
    scarce[rng.rand(n) > 0.15] = np.nan
    Y = pd.DataFrame(
        {"rich": f + rng.normal(0, 0.2, n), "scarce": scarce, "noise": rng.normal(size=n)}
    )
    return X, Y


@pytest.fixture(scope="module")
def result(related_and_noise):
    X, Y = related_and_noise
    return multitask_gain(
        MMoERegressor(**PARAMS), X, Y, cv=3, baselines={"mean": DummyRegressor()}
    )


def test_related_task_gains_and_noise_task_does_not(result):
    gains = result.gains.loc["single-task"]
    # the scarce task borrows the rich task's representation: a clear gain
    assert gains.loc["scarce", "ci_low"] > 0.1
    # nothing to share with pure noise: the interval straddles zero
    assert gains.loc["noise", "ci_low"] < 0 < gains.loc["noise", "ci_high"]
    assert result.scoring == {"rich": "r2", "scarce": "r2", "noise": "r2"}


def test_scores_are_paired_per_fold(result):
    scores = result.scores
    assert set(scores["model"]) == {"multi-task", "single-task", "mean"}
    counts = scores.groupby(["model", "task"]).size()
    assert (counts == 3).all()
    table = scores.pivot_table(index=["task", "fold"], columns="model", values="score")
    gain = (table["multi-task"] - table["mean"]).groupby("task").mean()
    for task, value in gain.items():
        assert result.gains.loc[("mean", task), "mean"] == pytest.approx(value)
    # against a constant prediction, the learnable tasks gain a lot, noise does not
    assert result.gains.loc[("mean", "scarce"), "mean"] > 0.5
    assert not result.gains.loc[("mean", "rich"), "loses"]


def test_seesaw_and_loses_flags():
    rng = np.random.RandomState(1)
    X = rng.normal(size=(300, 4))
    Y = np.column_stack([X[:, 0] > 0, rng.rand(300) > 0.5]).astype(int)
    result = multitask_gain(
        MMoEClassifier(**(PARAMS | {"max_epochs": 20, "lr": 0.01})),
        X,
        Y,
        cv=KFold(2),
        baselines={"perfect on task 0": DummyClassifier(strategy="prior")},
    )
    assert result.scoring == {"task_0": "roc_auc", "task_1": "roc_auc"}
    gains = result.gains.loc["perfect on task 0"]
    assert gains.loc["task_0", "mean"] > 0.3  # the learnable task beats a constant
    assert result.gains["loses"].dtype == bool
    assert result.seesaw["perfect on task 0"] == bool(
        (gains["mean"] > 0).any() and (gains["mean"] < 0).any()
    )


def test_mixed_task_types_and_custom_scoring():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(200, 3))
    Y = pd.DataFrame({"click": np.where(X[:, 0] > 0, "yes", "no"), "time": X[:, 1] * 3})
    est = MMoEMultiTask(task_types=["binary", "regression"], **(PARAMS | {"max_epochs": 3}))
    result = multitask_gain(est, X, Y, cv=2, scoring={"click": "accuracy", "time": "r2"})
    assert result.scoring == {"click": "accuracy", "time": "r2"}
    with pytest.raises(ValueError, match="needs probabilities"):
        multitask_gain(est, X, Y, cv=2, scoring="roc_auc")
    with pytest.raises(ValueError, match="no entry for task 'time'"):
        multitask_gain(est, X, Y, cv=2, scoring={"click": "accuracy"})


def test_n_jobs_gives_the_same_scores(related_and_noise, result):
    X, Y = related_and_noise
    parallel = multitask_gain(
        MMoERegressor(**PARAMS), X, Y, cv=3, baselines={"mean": DummyRegressor()}, n_jobs=2
    )
    pd.testing.assert_series_equal(parallel.scores["score"], result.scores["score"])


def test_display(result):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    from sk_mmoe.plotting import MultiTaskGainDisplay

    display = MultiTaskGainDisplay.from_result(result)
    assert set(display.bars_) == {"single-task", "mean"}
    widths = [patch.get_width() for patch in display.bars_["single-task"]]
    np.testing.assert_allclose(widths, result.gains.loc["single-task", "mean"])
    colors = [patch.get_facecolor()[:3] for patch in display.bars_["single-task"]]
    red = matplotlib.colors.to_rgb("tab:red")
    for color, loses in zip(colors, result.gains.loc["single-task", "loses"]):
        assert (color == pytest.approx(red)) == bool(loses)


def test_baselines_by_task_type_and_without_single_task():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(120, 3))
    Y = pd.DataFrame({"click": np.where(X[:, 0] > 0, "yes", "no"), "time": X[:, 1] * 3})
    est = MMoEMultiTask(**(PARAMS | {"max_epochs": 2}))
    dummies = {"regression": DummyRegressor(), "classification": DummyClassifier()}
    result = multitask_gain(est, X, Y, cv=2, baselines={"dummy": dummies}, single_task=False)
    assert set(result.scores["model"]) == {"multi-task", "dummy"}
    assert result.gains.index.get_level_values("baseline").unique().tolist() == ["dummy"]
    with pytest.raises(ValueError, match="no 'regression' estimator"):
        multitask_gain(est, X, Y, cv=2, baselines={"dummy": {"classification": DummyClassifier()}})


#: arrays of paired differences: a few seeds, folds, a constant and a wide spread
SAMPLES = [
    [0.10, 0.12, 0.08, 0.11],
    [-0.0233, 0.0412, -0.1975],
    np.random.RandomState(0).normal(0.3, 2.0, size=12),
    [0.5, 0.5, 0.5],
    [1e-3, -2e-3],
]


@pytest.mark.parametrize("values", SAMPLES)
def test_mean_confidence_interval_is_scipy_t_interval(values):
    mean, low, high = mean_confidence_interval(values)
    values = np.asarray(values, dtype=float)
    scale = stats.sem(values) if np.ptp(values) > 0 else 0.0
    if scale:
        expected = stats.t.interval(0.95, len(values) - 1, loc=values.mean(), scale=scale)
    else:
        expected = (values.mean(), values.mean())  # scipy gives NaN for a zero scale
    assert mean == pytest.approx(values.mean(), rel=1e-12)
    assert (low, high) == pytest.approx(expected, rel=1e-12, abs=1e-15)
    if scale:
        mean90, low90, high90 = mean_confidence_interval(values, confidence=0.9)
        expected90 = stats.t.interval(0.9, len(values) - 1, loc=values.mean(), scale=scale)
        assert (low90, high90) == pytest.approx(expected90, rel=1e-12)
        assert low < low90 < mean90 < high90 < high


@pytest.mark.parametrize("values", SAMPLES)
def test_mean_confidence_interval_is_bitwise_the_expression_it_replaced(values):
    """The main job's and the benchmarks' tables keep every digit they printed before."""
    diff = np.array(values, dtype=float)
    # the expression the main job (sk_mmoe.__main__.summarize) used
    mean, n = float(diff.mean()), len(diff)
    half = stats.t.ppf(0.975, n - 1) * diff.std(ddof=1) / math.sqrt(n)
    assert mean_confidence_interval(values) == (mean, mean - half, mean + half)
    # the expression multitask_gain used, std as a Python float and np.sqrt
    std = float(diff.std(ddof=1))
    half = float(stats.t.ppf(0.975, len(diff) - 1) * std / np.sqrt(len(diff)))
    assert mean_confidence_interval(values) == (mean, mean - half, mean + half)


def test_mean_confidence_interval_of_one_value_and_bad_input():
    mean, low, high = mean_confidence_interval([0.25])
    assert mean == 0.25 and math.isnan(low) and math.isnan(high)
    with pytest.raises(ValueError, match="values must be a non-empty 1-D"):
        mean_confidence_interval([])
    with pytest.raises(ValueError, match="values must be a non-empty 1-D"):
        mean_confidence_interval([[0.1, 0.2], [0.3, 0.4]])
    with pytest.raises(ValueError, match="confidence must be in"):
        mean_confidence_interval([0.1, 0.2], confidence=95)
