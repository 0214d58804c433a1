"""GateWeightsDisplay: a task x expert heatmap of mean gate weights."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from sklearn.compose import ColumnTransformer  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from sk_mmoe import MMoEClassifier, MMoERegressor  # noqa: E402
from sk_mmoe.datasets import make_mmoe_tasks  # noqa: E402
from sk_mmoe.plotting import GateWeightsDisplay  # noqa: E402

N_EXPERTS = 3


@pytest.fixture(scope="module")
def data():
    X, Y = make_mmoe_tasks(200, n_features=4, correlation=0.5, random_state=0)
    return X, pd.DataFrame(Y, columns=["clicks", "rating"])


@pytest.fixture(scope="module")
def regressor(data):
    X, Y = data
    return MMoERegressor(n_experts=N_EXPERTS, max_epochs=2, random_state=0).fit(X, Y)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_from_estimator_draws_mean_gate_weights(regressor, data):
    X, _ = data
    disp = GateWeightsDisplay.from_estimator(regressor, X)
    expected = regressor.gate_weights(X).mean(axis=0)
    np.testing.assert_allclose(disp.gate_weights, expected)
    np.testing.assert_allclose(disp.im_.get_array(), expected)
    assert disp.im_.get_array().shape == (2, N_EXPERTS)
    assert disp.ax_.figure is disp.figure_
    assert [t.get_text() for t in disp.ax_.get_yticklabels()] == ["clicks", "rating"]
    expert_labels = ["expert_0", "expert_1", "expert_2"]  # regressor.expert_names_
    assert [t.get_text() for t in disp.ax_.get_xticklabels()] == expert_labels
    assert disp.text_.shape == (2, N_EXPERTS)
    assert disp.text_[1, 2].get_text() == f"{expected[1, 2]:.2f}"
    assert disp.ax_.get_xlabel() == "expert"


def test_plot_on_given_axes_returns_self(regressor, data):
    X, _ = data
    fig, ax = plt.subplots()
    disp = GateWeightsDisplay(regressor.gate_weights(X).mean(axis=0))
    assert disp.plot(ax=ax, include_values=False, colorbar=False, cmap="magma") is disp
    assert disp.ax_ is ax
    assert disp.figure_ is fig
    assert disp.text_ is None
    assert disp.im_.get_cmap().name == "magma"
    assert len(fig.axes) == 1  # no colorbar axes
    assert [t.get_text() for t in ax.get_yticklabels()] == ["task_0", "task_1"]


def test_labels_and_formats(regressor, data):
    X, _ = data
    disp = GateWeightsDisplay.from_estimator(
        regressor,
        X,
        task_names=["a", "b"],
        expert_names=["x", "y", "z"],
        values_format=".1%",
        text_kw={"fontsize": 7},
    )
    assert [t.get_text() for t in disp.ax_.get_yticklabels()] == ["a", "b"]
    assert [t.get_text() for t in disp.ax_.get_xticklabels()] == ["x", "y", "z"]
    assert disp.text_[0, 0].get_text().endswith("%")
    assert disp.text_[0, 0].get_fontsize() == 7


def test_uses_only_public_methods():
    """Any object with gate_weights and target_names_ can be drawn."""

    class Gated:
        target_names_ = np.array(["left", "right"], dtype=object)

        def gate_weights(self, X):
            w = np.array([[0.7, 0.3], [0.1, 0.9]])
            return np.broadcast_to(w, (len(X), 2, 2))

    disp = GateWeightsDisplay.from_estimator(Gated(), np.zeros((5, 1)))
    np.testing.assert_allclose(disp.gate_weights, [[0.7, 0.3], [0.1, 0.9]])
    assert [t.get_text() for t in disp.ax_.get_yticklabels()] == ["left", "right"]


def test_pipeline_and_classifier():
    rng = np.random.RandomState(0)
    X = pd.DataFrame({"a": rng.normal(size=120), "b": rng.normal(size=120)})
    y = pd.DataFrame({"pos": X["a"] > 0, "big": X["b"].abs() > 1})
    pipe = make_pipeline(
        ColumnTransformer([("scale", StandardScaler(), ["a", "b"])]),
        MMoEClassifier(n_experts=2, max_epochs=2, random_state=0),
    ).fit(X, y)
    disp = GateWeightsDisplay.from_estimator(pipe, X)
    assert disp.gate_weights.shape == (2, 2)
    assert [t.get_text() for t in disp.ax_.get_yticklabels()] == ["pos", "big"]


def test_one_gate_moe_has_equal_rows(data):
    X, Y = data
    moe = MMoERegressor(architecture="moe", n_experts=N_EXPERTS, max_epochs=1, random_state=0)
    disp = GateWeightsDisplay.from_estimator(moe.fit(X, Y), X)
    np.testing.assert_allclose(disp.gate_weights[0], disp.gate_weights[1])


def test_errors(data):
    X, Y = data
    bottom = MMoERegressor(architecture="shared_bottom", max_epochs=1, random_state=0).fit(X, Y)
    with pytest.raises(ValueError, match="no gates"):
        GateWeightsDisplay.from_estimator(bottom, X)
    with pytest.raises(TypeError, match="no gate_weights method"):
        GateWeightsDisplay.from_estimator(StandardScaler().fit(X), X)
    with pytest.raises(ValueError, match="task_names has 3 entries, expected 2"):
        GateWeightsDisplay(np.full((2, 2), 0.5), task_names=list("abc")).plot()
    with pytest.raises(ValueError, match="must be 2-D"):
        GateWeightsDisplay(np.ones(3)).plot()


def test_matplotlib_imported_lazily():
    code = (
        "import sys, sk_mmoe.plotting; "
        "assert 'matplotlib' not in sys.modules, 'matplotlib imported at import time'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
