"""ONNX export (``sk_mmoe.onnx``): whole Pipelines run by onnxruntime agree with predict.

Every estimator and architecture is fitted in a Pipeline with numeric and
categorical preprocessing, converted with ``skl2onnx.to_onnx`` and run by
onnxruntime on held-out rows that include categories never seen in fit and
missing ones. Labels must be equal, regression values within 1e-5 relative,
probabilities within 1e-5 absolute. Skipped where the ``onnx`` extra is not
installed.
"""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import architecture_names
from conftest import fast as _fast
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from sk_mmoe import MMoEClassifier, MMoEMultiTask, MMoERegressor
from sk_mmoe.nn._modules import ACTIVATIONS

ort = pytest.importorskip("onnxruntime")
skl2onnx = pytest.importorskip("skl2onnx")
sk_onnx = pytest.importorskip("sk_mmoe.onnx")


def fast(**overrides):
    """The tests' tiny network, without the gate-collapse check (a few epochs collapse)."""
    return _fast(**{"gate_collapse_threshold": None, **overrides})


NUMERIC = ["age", "income", "visits"]
CATEGORICAL = ["country", "device"]
COUNTRIES = ["fr", "pe", "no", "it", "jp"]


def _data(n, seed):
    rng = np.random.RandomState(seed)
    X = pd.DataFrame(
        {
            "country": rng.choice(COUNTRIES, n).astype(object),
            "device": rng.choice(["ios", "android", "web"], n).astype(object),
            "age": rng.uniform(18, 80, n),
            "income": rng.lognormal(10, 0.5, n),
            "visits": rng.poisson(3, n).astype(np.float64),
        }
    )
    X.loc[rng.rand(n) < 0.1, "age"] = np.nan
    X.loc[rng.rand(n) < 0.1, "device"] = None
    effect = X["country"].map(dict(zip(COUNTRIES, [2.0, -1.0, 0.5, 1.5, -2.0])))
    y = pd.DataFrame(
        {
            "clicked": np.where(effect + rng.normal(0, 1, n) > 0, "yes", "no"),
            "minutes": 50.0 + 10 * effect + X["visits"] + rng.normal(0, 1, n),
            "spend": 200.0 + np.log(X["income"]) * 5 + rng.normal(0, 1, n),
            "grade": np.digitize(effect + rng.normal(0, 1, n), [-0.5, 1.0]),
        }
    )
    return X, y


TARGETS = {
    MMoERegressor: ["minutes", "spend"],
    MMoEClassifier: ["clicked", "grade"],
    MMoEMultiTask: ["clicked", "minutes", "grade"],
}


@pytest.fixture(scope="module")
def data():
    X, y = _data(300, 0)
    X_test, _ = _data(60, 1)
    # categories never seen in fit, and missing ones
    X_test.loc[X_test.index[:6], "country"] = "atlantis"
    X_test.loc[X_test.index[6:12], "device"] = None
    return X, y, X_test


def _preprocessing(kind):
    numeric = make_pipeline(SimpleImputer(), StandardScaler())
    if kind == "onehot":  # everything numeric before the network
        categorical = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
    else:  # the strings pass through to the network's embeddings
        categorical = "passthrough"
    transformer = ColumnTransformer(
        [("numeric", numeric, NUMERIC), ("categorical", categorical, CATEGORICAL)],
        verbose_feature_names_out=False,
    )
    return transformer.set_output(transform="pandas")


def _feeds(session, X):
    """onnxruntime inputs from a DataFrame: one (n, 1) array per column."""
    feeds = {}
    for node in session.get_inputs():
        column = X[node.name]
        if node.type == "tensor(string)":
            # ONNX strings cannot be None: the empty string stands for missing
            values = column.astype(object).where(column.notna(), "").astype(str).to_numpy()
            feeds[node.name] = values.astype(object).reshape(-1, 1)
        else:
            dtype = {"tensor(float)": np.float32, "tensor(double)": np.float64}.get(
                node.type, np.int64
            )
            feeds[node.name] = column.to_numpy(dtype=dtype).reshape(-1, 1)
    return feeds


def _session(model):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _run(pipe, X_sample, X):
    session = _session(skl2onnx.to_onnx(pipe, X_sample))
    names = [o.name for o in session.get_outputs()]
    assert names == sk_onnx.output_names(pipe[-1])
    return dict(zip(names, session.run(None, _feeds(session, X))))


def _check_agrees(pipe, got, X):
    """onnxruntime's outputs against predict and predict_proba."""
    estimator = pipe[-1]
    predicted = pipe.predict(X)
    predicted = predicted.reshape(len(X), -1)
    proba = pipe.predict_proba(X) if hasattr(estimator, "predict_proba") else None
    if proba is not None and estimator._single_output:
        proba = [proba]
    for j, (task, kind) in enumerate(
        zip(estimator.target_names_, estimator.target_encoder_.task_types)
    ):
        value = got[f"predict_{task}"]
        assert value.shape == (len(X),)
        if kind == "regression":
            np.testing.assert_allclose(value, predicted[:, j].astype(np.float64), rtol=1e-5)
        else:
            np.testing.assert_array_equal(value, predicted[:, j].astype(value.dtype))
            np.testing.assert_allclose(got[f"proba_{task}"], proba[j], rtol=0, atol=1e-5)


# the sample fixes the input types: float32 numbers, as most ONNX operators want
def _sample(X):
    return X[:1].astype({c: np.float32 for c in NUMERIC})


@pytest.mark.parametrize("kind", ["onehot", "embedding"])
@pytest.mark.parametrize("architecture", architecture_names())
@pytest.mark.parametrize("estimator", [MMoERegressor, MMoEClassifier, MMoEMultiTask])
def test_pipeline_agrees_with_predict(data, estimator, architecture, kind):
    X, y, X_test = data
    if kind == "onehot":
        # skl2onnx's OneHotEncoder reads no None: missing is a category of its own, ""
        X, X_test = X.fillna({"device": ""}), X_test.fillna({"device": ""})
    model = estimator(architecture=architecture, n_experts=3, **fast(max_epochs=4, lr=0.01))
    pipe = Pipeline([("preprocessing", _preprocessing(kind)), ("model", model)])
    pipe.fit(X, y[TARGETS[estimator]])
    if kind == "embedding":
        assert pipe[-1].is_categorical_.tolist() == [False, False, False, True, True]
    _check_agrees(pipe, _run(pipe, _sample(X), X_test), X_test)


@pytest.mark.parametrize("architecture", architecture_names())
def test_raw_dataframe_with_numeric_categories(data, architecture):
    """The estimator alone on a raw frame; categories as strings, integers and floats."""
    X, y, X_test = data
    X, X_test = X.assign(visits=X["visits"].astype(np.int64)), X_test.copy()
    X_test["visits"] = X_test["visits"].astype(np.int64)
    X_test.loc[X_test.index[12], "visits"] = 99  # never seen
    X, X_test = X.fillna({"age": 40.0}), X_test.fillna({"age": 40.0})
    X["score"] = np.round(X["income"] / 2e4, 1)  # a float category with missing values
    X.loc[X.index[::7], "score"] = np.nan
    X_test["score"] = np.round(X_test["income"] / 2e4, 1)
    X_test.loc[X_test.index[::5], "score"] = np.nan
    model = MMoEMultiTask(
        architecture=architecture,
        categorical_features=["country", "device", "visits", "score"],
        **fast(max_epochs=4, lr=0.01),
    )
    pipe = Pipeline([("model", model)]).fit(X, y[TARGETS[MMoEMultiTask]])
    got = _run(pipe, X[:1], X_test)
    _check_agrees(pipe, got, X_test)


@pytest.mark.parametrize("numeric_scaling", ["auto", "standard"])
def test_numeric_array_and_one_dimensional_y(data, numeric_scaling):
    X, y, X_test = data
    X, X_test = (np.column_stack([np.log(Z["income"]), Z["visits"]]) for Z in (X, X_test))
    model = MMoERegressor(numeric_scaling=numeric_scaling, **fast(max_epochs=4))
    model.fit(X, y["minutes"].to_numpy())
    onx = skl2onnx.to_onnx(model, X[:1])
    (value,) = _session(onx).run(None, {"X": X_test})
    assert sk_onnx.output_names(model) == ["predict_task_0"]
    np.testing.assert_allclose(value, model.predict(X_test), rtol=1e-5)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize("opset", [17, None])
def test_every_activation(data, activation, opset):
    """Each activation's emitter, at the newest opset and at 17 (before ONNX's Gelu)."""
    X, y, X_test = data
    X = X[NUMERIC].fillna(0.0).to_numpy(np.float32)
    X_test = X_test[NUMERIC].fillna(0.0).to_numpy(np.float32)
    model = MMoEClassifier(activation=activation, expert_units=(6, 5), tower_units=(4, 3))
    model.set_params(max_epochs=2, random_state=0, gate_collapse_threshold=None)
    model.fit(X, y[["clicked", "grade"]])
    onx = skl2onnx.to_onnx(model, X[:1], target_opset=opset)
    got = dict(zip(sk_onnx.output_names(model), _session(onx).run(None, {"X": X_test})))
    for j, task in enumerate(model.target_names_):
        np.testing.assert_allclose(got[f"proba_{task}"], model.predict_proba(X_test)[j], atol=1e-5)


@pytest.mark.parametrize(
    "settings",
    [
        {"architecture": "ple", "n_levels": 3, "n_experts": 2, "n_task_experts": 2},
        {"architecture": "cgc", "n_experts": 1, "n_task_experts": 3, "tower_units": ()},
        {"architecture": "moe", "expert_units": (7, 5, 3), "tower_units": (6, 2)},
        {"architecture": "shared_bottom", "expert_units": (9, 4), "tower_units": ()},
    ],
    ids=lambda settings: "-".join(f"{k}={v}" for k, v in settings.items()),
)
def test_architecture_settings(data, settings):
    """Deeper and shallower networks than the defaults: every layer's emitter runs."""
    X, y, X_test = data
    scale = X[NUMERIC].mean(), X[NUMERIC].std()
    X, X_test = ((Z[NUMERIC].fillna(0.0) - scale[0]) / scale[1] for Z in (X, X_test))
    X, X_test = X.to_numpy(np.float32), X_test.to_numpy(np.float32)
    model = MMoEMultiTask(**fast(max_epochs=3, **settings)).fit(X, y[TARGETS[MMoEMultiTask]])
    names = sk_onnx.output_names(model)
    got = dict(zip(names, _session(skl2onnx.to_onnx(model, X[:1])).run(None, {"X": X_test})))
    _check_agrees(Pipeline([("model", model)]), got, X_test)


def test_labels_of_every_dtype(data):
    """bool, float and int labels come back with their own tensor types."""
    X, _, X_test = data
    X = X[NUMERIC].fillna(0.0).to_numpy(np.float32)
    X_test = X_test[NUMERIC].fillna(0.0).to_numpy(np.float32)
    rng = np.random.RandomState(0)
    y = pd.DataFrame(
        {
            "flag": X[:, 1] > np.median(X[:, 1]),
            "level": rng.choice([1.0, 2.0, 4.0], len(X)),
            "count": rng.choice([-3, 7], len(X)),
        }
    )
    model = MMoEClassifier(**fast(max_epochs=3)).fit(X, y)
    got = dict(
        zip(
            sk_onnx.output_names(model),
            _session(skl2onnx.to_onnx(model, X[:1])).run(None, {"X": X_test}),
        )
    )
    assert got["predict_flag"].dtype == bool
    assert got["predict_level"].dtype == np.float64
    assert got["predict_count"].dtype == np.int64
    predicted = model.predict(X_test)
    for j, task in enumerate(["flag", "level", "count"]):
        np.testing.assert_array_equal(got[f"predict_{task}"], predicted[:, j].astype(object))


def test_string_categories_reaching_as_numbers_are_refused(data):
    """A numeric tensor cannot carry string categories: a clear error at export."""
    X, y, _ = data
    X = X.fillna({"age": 40.0})
    model = MMoERegressor(**fast(max_epochs=1)).fit(X, y[["minutes"]])
    columns = [(name, skl2onnx.common.data_types.FloatTensorType([None, 1])) for name in X]
    with pytest.raises(TypeError, match="categorical column 'country'.*numeric"):
        skl2onnx.to_onnx(model, initial_types=columns)


def test_wrong_number_of_columns_is_refused(data):
    X, y, _ = data
    X = X[NUMERIC].fillna(0.0).to_numpy(np.float32)
    model = MMoERegressor(**fast(max_epochs=1)).fit(X, y["minutes"])
    with pytest.raises(ValueError, match="have 2 columns; it was fitted on 3"):
        skl2onnx.to_onnx(model, X[:1, :2])


def test_output_names_need_a_fitted_estimator():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        sk_onnx.output_names(MMoERegressor())


def test_sk_mmoe_imports_without_the_extra_and_export_says_what_is_missing():
    """With skl2onnx unimportable, sk_mmoe works and sk_mmoe.onnx names the extra."""
    code = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("skl2onnx", "onnx", "onnxruntime"):
            raise ImportError(f"No module named {name!r}")
sys.meta_path.insert(0, Block())
import sk_mmoe
from sk_mmoe import MMoERegressor
try:
    import sk_mmoe.onnx
except ImportError as exc:
    print("ImportError:", exc)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "ImportError:" in proc.stdout
    assert 'pip install "sk-mmoe[onnx]"' in proc.stdout
