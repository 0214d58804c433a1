"""Input blocks in the estimators: numeric embeddings end to end, and the registry's recipe.

A test-only numeric block registered inside a test is fitted, saved, loaded,
pickled and exported to ONNX with no edit to the package, as
``tests/test_architectures.py`` does for a test-only architecture.
"""

import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import architecture_names, fast
from torch import nn

from sk_mmoe import MMoEClassifier, MMoEMultiTask, MMoERegressor
from sk_mmoe.inputs import (
    INPUT_BLOCKS,
    NumericScaling,
    register_input_block,
    unregister_input_block,
)

EMBEDDINGS = ["piecewise_linear", "periodic"]


@pytest.fixture(scope="module")
def data():
    rng = np.random.RandomState(0)
    n = 600
    X = pd.DataFrame(
        {
            "hour": rng.uniform(0, 24, n),
            "amount": rng.lognormal(3, 1, n),
            "flag": rng.randint(0, 2, n).astype(float),  # two distinct values
            "city": pd.Categorical(rng.choice(["a", "b", "c"], n)),
        }
    )
    # a step in the hour: a smooth function of the standardised number fits it badly
    y = pd.DataFrame(
        {
            "load": np.where((X["hour"] > 8) & (X["hour"] < 18), 3.0, 0.0) + rng.normal(0, 0.2, n),
            "spend": np.log(X["amount"]) + X["flag"] + rng.normal(0, 0.2, n),
        }
    )
    return X, y


@pytest.mark.parametrize("embedding", EMBEDDINGS)
@pytest.mark.parametrize("architecture", architecture_names())
def test_every_architecture_reads_embedded_numbers(data, embedding, architecture):
    X, y = data
    model = MMoERegressor(
        **fast(max_epochs=2, random_state=0),
        architecture=architecture,
        numeric_embedding=embedding,
        numeric_embedding_dim=4,
        gate_collapse_threshold=None,
    ).fit(X, y)
    embedded = model.module_.numeric_embedding
    # one vector of 4 per numeric column reaches the experts and gates
    assert embedded(torch.zeros(2, 3)).shape == (2, 3 * 4)
    full = model.predict(X)
    for rows in (1, 7, 300):  # bitwise whatever the batch
        np.testing.assert_array_equal(model.predict(X.iloc[:rows]), full[:rows])


def test_piecewise_linear_learns_a_step_the_plain_mlp_smooths(data):
    X, y = data
    params = fast(max_epochs=60, lr=0.01, random_state=0, early_stopping=False)
    plain = MMoERegressor(**params, numeric_embedding=None).fit(X, y)
    binned = MMoERegressor(**params, numeric_embedding="piecewise_linear").fit(X, y)
    r2 = [
        m.score(X, y[["load", "spend"]]) for m in (plain, binned)
    ]  # both tasks; the step is in "load"
    assert r2[1] > r2[0] + 0.05


def test_bins_are_fitted_state(data, tmp_path):
    X, y = data
    model = MMoERegressor(
        **fast(max_epochs=2, random_state=0), numeric_embedding="piecewise_linear"
    ).fit(X, y)
    bins = [b.copy() for b in model.input_encoder_.blocks_[0].bins_]
    assert len(bins[0]) == 49  # 48 bins of the hour
    assert len(bins[2]) == 2  # the two-valued column: one bin
    np.testing.assert_allclose(bins[0], np.quantile(X["hour"], np.linspace(0, 1, 49)), rtol=1e-6)
    shifted = X.assign(hour=X["hour"] + 100)
    model.partial_fit(shifted, y)
    for old, new in zip(bins, model.input_encoder_.blocks_[0].bins_):
        np.testing.assert_array_equal(old, new)  # partial_fit keeps them
    model.set_params(warm_start=True).fit(shifted, y)
    np.testing.assert_array_equal(bins[0], model.input_encoder_.blocks_[0].bins_[0])
    path = tmp_path / "binned.skmmoe"
    model.save(path)
    loaded = MMoERegressor.load(path)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(model)).predict(X), model.predict(X))


@pytest.mark.parametrize("embedding", EMBEDDINGS)
def test_classifier_and_multitask_with_embeddings_save_and_load(data, embedding, tmp_path):
    X, y = data
    labels = y.assign(load=np.where(y["load"] > 1, "busy", "quiet"))
    for estimator, target in ((MMoEClassifier, labels[["load"]]), (MMoEMultiTask, labels)):
        model = estimator(**fast(max_epochs=2, random_state=0), numeric_embedding=embedding)
        model.fit(X, target, sample_weight=np.linspace(0.5, 1.5, len(X)))
        path = tmp_path / f"{estimator.__name__}.skmmoe"
        model.save(path)
        loaded = estimator.load(path)
        for a, b in zip(loaded.predict_proba(X), model.predict_proba(X)):
            if a is not None:
                np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    ("X", "params", "match"),
    [
        (
            pd.DataFrame({"a": np.ones(50), "b": np.arange(50.0)}),
            {"numeric_embedding": "piecewise_linear"},
            "'a'.*(constant|single distinct value)",
        ),
        (
            pd.DataFrame({"a": np.arange(50.0) % 5, "b": np.arange(50.0)}),
            {"numeric_embedding": "piecewise_linear", "n_bins": 10},
            "n_bins=10 is larger than the number of distinct values of X column 'a' \\(5\\)",
        ),
        (
            pd.DataFrame({"a": [np.nan] + [1.0] * 49, "b": np.arange(50.0)}),
            {"numeric_embedding": "piecewise_linear"},
            "SimpleImputer",
        ),
    ],
)
def test_clear_errors(X, params, match):
    with pytest.raises(ValueError, match=match):
        MMoERegressor(**fast(max_epochs=1), **params).fit(X, np.arange(50.0))


def test_sparse_input_refuses_numeric_embeddings():
    from scipy.sparse import random as sparse_random

    X = sparse_random(50, 5, density=0.3, format="csr", random_state=0)
    with pytest.raises(ValueError, match="numeric_embedding='periodic' cannot be used"):
        MMoERegressor(numeric_embedding="periodic").fit(X, np.arange(50.0))


def test_onnx_reproduces_predictions_with_embeddings(data):
    ort = pytest.importorskip("onnxruntime")
    skl2onnx = pytest.importorskip("skl2onnx")
    pytest.importorskip("sk_mmoe.onnx")
    X, y = data
    X = X.drop(columns="city").astype(np.float32)
    labels = y.assign(load=np.where(y["load"] > 1, "busy", "quiet"))
    for embedding in EMBEDDINGS:
        model = MMoEMultiTask(
            **fast(max_epochs=3, random_state=0), numeric_embedding=embedding
        ).fit(X, labels)
        onx = skl2onnx.to_onnx(model, X.iloc[:1])
        session = ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
        feeds = {c: X[[c]].to_numpy() for c in X.columns}
        got = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))
        np.testing.assert_array_equal(got["predict_load"], model.predict(X)[:, 0].astype(str))
        np.testing.assert_allclose(got["proba_load"], model.predict_proba(X)[0], atol=1e-5)
        np.testing.assert_allclose(
            got["predict_spend"], model.predict(X)[:, 1].astype(float), rtol=1e-5
        )


class _Squares(NumericScaling):
    """Test-only block: standardised numbers and their squares, through a learned scale."""

    kind = "squares"
    role = "numeric"
    module_name = "squares"

    @property
    def n_outputs(self):
        return 2 * self.n_columns

    def module_spec(self):
        return _SquaresModule, {"n_columns": self.n_columns}

    def size_hints(self):
        return [self.n_columns]

    @staticmethod
    def emit_module(builder, module, x):
        squared = builder.node("Mul", [x, x])
        both = builder.node("Concat", [x, squared], axis=1)
        return builder.node("Mul", [both, builder.const(module.scale.detach(), "scale")])


class _SquaresModule(nn.Module):
    def __init__(self, n_columns):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(2 * n_columns))

    def forward(self, x):
        return torch.cat([x, x * x], dim=1) * self.scale  # (B, F) -> (B, 2F)


@pytest.fixture
def squares():
    register_input_block(_Squares)
    yield "squares"
    unregister_input_block("squares")


def test_a_registered_block_is_fitted_saved_loaded_and_exported(data, squares, tmp_path):
    X, y = data
    X = X.drop(columns="city").astype(np.float32)
    model = MMoERegressor(**fast(max_epochs=3, random_state=0), numeric_embedding=squares)
    model.fit(X, y)
    assert [b.kind for b in model.input_encoder_.blocks_] == ["squares"]
    assert model.module_.squares.scale.shape == (2 * X.shape[1],)
    path = tmp_path / "squares.skmmoe"
    model.save(path)
    np.testing.assert_array_equal(MMoERegressor.load(path).predict(X), model.predict(X))
    ort = pytest.importorskip("onnxruntime")
    skl2onnx = pytest.importorskip("skl2onnx")
    pytest.importorskip("sk_mmoe.onnx")
    onx = skl2onnx.to_onnx(model, X.iloc[:1])
    session = ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run(None, {c: X[[c]].to_numpy() for c in X.columns})
    np.testing.assert_allclose(np.column_stack(got), model.predict(X), rtol=1e-5)


def test_registry_checks(squares):
    with pytest.raises(ValueError, match="already registered"):
        register_input_block(_Squares)
    with pytest.raises(TypeError, match="must subclass InputBlock"):
        register_input_block(object)
    assert squares in INPUT_BLOCKS
    # the parameter accepts it while registered, and only then
    MMoERegressor(numeric_embedding=squares)._validate_params()
    unregister_input_block(squares)
    with pytest.raises(ValueError, match="numeric_embedding"):
        MMoERegressor(numeric_embedding=squares)._validate_params()
    register_input_block(_Squares)
