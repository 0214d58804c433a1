"""Property-based tests: random shapes, label sets, dtypes and hyperparameters."""

import numpy as np
import pandas as pd
import pytest
from conftest import architecture_names
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sk_mmoe import MMoEClassifier, MMoEMultiTask, MMoERegressor

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])

LABEL_KINDS = ["float", "str", "int", "bool"]


def _labels(rng, classes, n):
    """``n`` random labels from ``classes``, each of the first ``min(n, len)`` present."""
    labels = rng.choice(classes, n)
    shown = min(n, len(classes))
    labels[:shown] = classes[:shown]
    return labels


@st.composite
def problems(draw):
    """Valid multi-task problems: every classification column has 2+ classes."""
    n = draw(st.integers(2, 30))
    d = draw(st.integers(1, 5))
    rng = np.random.RandomState(draw(st.integers(0, 2**16)))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    X = rng.normal(size=(n, d)).astype(dtype)
    kinds = draw(st.lists(st.sampled_from(LABEL_KINDS), min_size=1, max_size=3))
    columns = {}
    for k, kind in enumerate(kinds):
        if kind == "float":
            columns[f"t{k}"] = rng.normal(size=n)
        elif kind == "str":
            columns[f"t{k}"] = _labels(
                rng, np.array(["a", "b", "c"][: draw(st.integers(2, 3))]), n
            )
        elif kind == "int":
            columns[f"t{k}"] = _labels(rng, np.arange(draw(st.integers(2, 4))), n)
        else:
            columns[f"t{k}"] = _labels(rng, np.array([False, True]), n)
    y = pd.DataFrame(columns)
    params = {
        "architecture": draw(st.sampled_from(architecture_names())),
        "n_experts": draw(st.integers(1, 3)),
        "expert_units": (draw(st.integers(1, 6)),),
        "tower_units": draw(st.sampled_from([(), (3,)])),
        "batch_size": draw(st.integers(1, 16)),
        "dropout": draw(st.sampled_from([0.0, 0.3])),
        "max_epochs": 1,
        "random_state": 0,
        "gate_collapse_threshold": None,
    }
    return X, y, kinds, params


@SETTINGS
@given(problems())
def test_multitask_fits_and_predicts(problem):
    X, y, kinds, params = problem
    model = MMoEMultiTask(**params).fit(X, y)
    pred = model.predict(X)
    assert pred.shape == (len(X), len(kinds))
    for k in range(len(kinds)):
        column = pred[:, k]
        if model.task_types_[k] == "regression":
            assert np.isfinite(column.astype(float)).all()
        else:
            assert set(column.tolist()) <= set(model.classes_[k].tolist())
    for proba in model.predict_proba(X):
        if proba is not None:
            assert np.isfinite(proba).all()
            np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    assert np.isfinite(model.score(X, y))


@SETTINGS
@given(problems())
def test_regressor_and_classifier_shapes(problem):
    X, y, kinds, params = problem
    numeric = y.select_dtypes("float")
    if numeric.shape[1]:
        reg = MMoERegressor(**params).fit(X, numeric)
        pred = reg.predict(X)
        assert pred.shape == (len(X), numeric.shape[1]) and pred.dtype == np.float64
        assert np.isfinite(pred).all()
    labels = y.drop(columns=numeric.columns)
    if labels.shape[1]:
        clf = MMoEClassifier(**params).fit(X, labels)
        assert clf.predict(X).shape == (len(X), labels.shape[1])


@SETTINGS
@given(problems(), st.data())
def test_a_single_class_column_always_raises_clearly(problem, data):
    X, y, kinds, params = problem
    labels = [c for c, kind in zip(y.columns, kinds) if kind != "float"]
    if not labels:
        y = y.assign(extra=np.zeros(len(y), dtype=int))
        labels = ["extra"]
    column = data.draw(st.sampled_from(labels))
    y = y.assign(**{column: y[column].iloc[0]})  # one class only
    for estimator in (MMoEMultiTask(**params), MMoEClassifier(**params)):
        if isinstance(estimator, MMoEClassifier):
            y = y.drop(columns=[c for c, kind in zip(y.columns, kinds) if kind == "float"])
        with pytest.raises(ValueError, match=f"y column '{column}' has a single class"):
            estimator.fit(X, y)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
@SETTINGS
@given(n=st.integers(2, 10), d=st.integers(1, 4), row=st.integers(0, 100))
def test_non_finite_X_always_raises(bad, n, d, row):
    X = np.zeros((n, d))
    X[row % n, row % d] = bad
    with pytest.raises(ValueError, match="NaN|infinity"):
        MMoERegressor(max_epochs=1).fit(X, np.arange(n, dtype=float))
