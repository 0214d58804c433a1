"""The architecture registry: a new architecture is one class and one entry.

A test-only ``"linear"`` architecture (one linear map per task) is
registered here and then fitted, gridsearched, saved and loaded through the
public estimators without any edit to the package.
"""

import numpy as np
import pytest
import torch
from conftest import fast
from sklearn.model_selection import GridSearchCV, KFold

from sk_mmoe import MMoEClassifier, MMoERegressor
from sk_mmoe.architectures import (
    ARCHITECTURES,
    Architecture,
    register_architecture,
    unregister_architecture,
)
from sk_mmoe.datasets import make_mmoe_tasks
from sk_mmoe.nn._modules import MultiTaskModule


class Linear(MultiTaskModule):
    """One linear map per task, stacked: ``(B, d) -> (B, sum C)``."""

    def __init__(self, n_features, output_widths, bias=True):
        super().__init__()
        self.linear = torch.nn.Linear(n_features, sum(output_widths), bias=bias)

    def forward(self, x):
        return self.linear(x)

    def _emit_onnx(self, builder, x):
        from sk_mmoe._onnx_graph import emit

        return emit(builder, self.linear, x)  # (B, d) -> (B, sum C)


@pytest.fixture
def linear_architecture():
    entry = register_architecture(Architecture("linear", Linear, fixed={"bias": True}))
    yield entry
    unregister_architecture("linear")


def test_a_registered_architecture_works_end_to_end(linear_architecture, tmp_path):
    X, Y = make_mmoe_tasks(300, n_features=5, correlation=0.5, random_state=0)
    reg = MMoERegressor(architecture="linear", **fast(max_epochs=5)).fit(X, Y)
    assert isinstance(reg.module_, Linear)
    assert reg.predict(X).shape == (300, 2)
    with pytest.raises(ValueError, match="no gates"):
        reg.gate_weights(X)
    reg.save(tmp_path / "linear.skmmoe")
    loaded = MMoERegressor.load(tmp_path / "linear.skmmoe")
    np.testing.assert_array_equal(loaded.predict(X), reg.predict(X))
    search = GridSearchCV(
        MMoERegressor(**fast(max_epochs=2)),
        {"architecture": ["linear", "mmoe"]},
        cv=KFold(2),
    ).fit(X, Y)
    assert set(search.cv_results_["param_architecture"]) == {"linear", "mmoe"}


def test_a_registered_architecture_classifies(linear_architecture):
    rng = np.random.RandomState(0)
    X = rng.normal(size=(200, 3))
    y = np.where(X[:, 0] > 0, "yes", "no")
    clf = MMoEClassifier(architecture="linear", **fast(max_epochs=20, lr=0.05)).fit(X, y)
    assert clf.score(X, y) > 0.9


def test_unregistered_names_are_rejected():
    assert "linear" not in ARCHITECTURES
    X, Y = make_mmoe_tasks(20, n_features=3, random_state=0)
    with pytest.raises(ValueError, match="'architecture' parameter"):
        MMoERegressor(architecture="linear").fit(X, Y)


def test_a_registered_architecture_exports_to_onnx(linear_architecture):
    ort = pytest.importorskip("onnxruntime")
    skl2onnx = pytest.importorskip("skl2onnx")
    pytest.importorskip("sk_mmoe.onnx")
    X, Y = make_mmoe_tasks(200, n_features=4, correlation=0.5, random_state=0)
    X = X.astype(np.float32)
    reg = MMoERegressor(architecture="linear", **fast(max_epochs=3)).fit(X, Y)
    onx = skl2onnx.to_onnx(reg, X[:1])
    session = ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(
        np.column_stack(session.run(None, {"X": X})), reg.predict(X), rtol=1e-5, atol=1e-6
    )


def test_an_architecture_without_an_emitter_says_so(linear_architecture, monkeypatch):
    skl2onnx = pytest.importorskip("skl2onnx")
    pytest.importorskip("sk_mmoe.onnx")
    monkeypatch.delattr(Linear, "_emit_onnx")
    X, Y = make_mmoe_tasks(50, n_features=3, random_state=0)
    reg = MMoERegressor(architecture="linear", **fast(max_epochs=1)).fit(X.astype(np.float32), Y)
    message = "Linear architecture to ONNX: it does not implement _emit_onnx"
    with pytest.raises(TypeError, match=message):
        skl2onnx.to_onnx(reg, X[:1].astype(np.float32))
