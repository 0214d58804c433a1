"""Funnel tasks (``task_sequence``): ESMM's joint loss, joint and conditional outputs."""

import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.model_selection import GridSearchCV

from sk_mmoe import MMoEClassifier, MMoEMultiTask, MMoERegressor
from sk_mmoe._targets import TaskEncoder
from sk_mmoe.datasets import make_funnel_tasks
from sk_mmoe.metrics import make_task_scorer
from sk_mmoe.training._loss import MultiTaskLoss

FAST = dict(
    expert_units=(8,),
    tower_units=(4,),
    n_experts=2,
    max_epochs=3,
    early_stopping=False,
    random_state=0,
)


@pytest.fixture(scope="module")
def funnel_data():
    X, y = make_funnel_tasks(
        600, n_features=5, click_rate=0.3, conversion_rate=0.3, random_state=0
    )
    return X.astype(np.float32), y


@pytest.fixture(scope="module")
def funnel(funnel_data):
    X, y = funnel_data
    return MMoEClassifier(task_sequence=["click", "convert"], **FAST).fit(X, y)


@pytest.fixture(scope="module")
def chain():
    """A three-step chain of string labels, plus a regression task outside it."""
    rng = np.random.RandomState(1)
    X = rng.normal(size=(400, 4)).astype(np.float32)
    click = X[:, 0] + rng.normal(size=400) > 0
    cart = click & (X[:, 1] + rng.normal(size=400) > 0)
    buy = cart & (X[:, 2] + rng.normal(size=400) > 0)
    y = pd.DataFrame(
        {
            "spend": X[:, 3] * 2.0 + 1.0,
            "click": np.where(click, "yes", "no"),
            "cart": cart,
            "buy": buy.astype(int),
        }
    )
    model = MMoEMultiTask(task_sequence=["click", "cart", "buy"], **FAST).fit(X, y)
    return model, X, y


# ------------------------------------------------------------------- the loss
def _esmm_reference(y_pred, y_true, sequence, types):
    """Naive ESMM in float64: BCE on the product of the probabilities, per task."""
    n_tasks = len(types)
    targets, weight = y_true[:, :n_tasks], y_true[:, n_tasks]
    losses = []
    for t, kind in enumerate(types):
        keep = ~torch.isnan(targets[:, t])
        if kind == "regression":
            row = (y_pred[:, t] - targets[:, t]) ** 2
        elif t in sequence:
            steps = sequence[: sequence.index(t) + 1]
            p = torch.ones(len(y_pred), dtype=torch.float64)
            for s in steps:
                p = p * torch.sigmoid(y_pred[:, s])
            y = targets[:, t]
            row = -(y * torch.log(p) + (1 - y) * torch.log(1 - p))
        else:
            p = torch.sigmoid(y_pred[:, t])
            y = targets[:, t]
            row = -(y * torch.log(p) + (1 - y) * torch.log(1 - p))
        w = weight[keep]
        losses.append((row[keep] * w).sum() / w.sum())
    return torch.stack(losses)


@pytest.mark.parametrize("sequence", [[0, 1], [2, 0, 1], [1, 3]])
def test_loss_equals_a_naive_esmm_reference_with_weights_and_missing_labels(sequence):
    types = ["binary", "binary", "binary", "binary", "regression"]
    g = torch.Generator().manual_seed(0)
    n = 300
    y_pred = torch.randn(n, 5, generator=g, dtype=torch.float64) * 2
    targets = (torch.rand(n, 5, generator=g) < 0.5).double()
    targets[:, 4] = torch.randn(n, generator=g, dtype=torch.float64)
    targets[torch.rand(n, 5, generator=g) < 0.2] = float("nan")
    weight = torch.rand(n, 1, generator=g, dtype=torch.float64) + 0.5
    y_true = torch.cat([targets, weight], 1)
    loss = MultiTaskLoss(types, [1] * 5, sequence=sequence)
    got = loss.task_losses(y_pred, y_true)
    expected = _esmm_reference(y_pred, y_true, sequence, types)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)
    # the first step and the tasks outside the funnel: bitwise the ordinary losses
    plain = MultiTaskLoss(types, [1] * 5).task_losses(y_pred, y_true)
    outside = [t for t in range(5) if t not in sequence[1:]]
    assert torch.equal(got[outside], plain[outside])
    # unweighted targets alone (no missing label): the same as with weights of 1
    full = torch.nan_to_num(targets, nan=0.0)
    alone = loss.task_losses(y_pred, full)
    with_ones = loss.task_losses(y_pred, torch.cat([full, torch.ones(n, 1, dtype=full.dtype)], 1))
    torch.testing.assert_close(alone, with_ones, rtol=1e-12, atol=0)


def test_loss_stays_finite_for_extreme_logits():
    # log P rounds to 0 at these logits: log1mexp(log P) would be -inf
    y_pred = torch.tensor([[200.0, 200.0], [200.0, -200.0], [-200.0, 200.0]], requires_grad=True)
    y_true = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    loss = MultiTaskLoss(["binary", "binary"], [1, 1], sequence=[0, 1])
    losses = loss.task_losses(y_pred, y_true)
    losses.sum().backward()
    assert torch.isfinite(losses).all() and torch.isfinite(y_pred.grad).all()
    # row 0: 1 - P = (1 - s(200)) + s(200) (1 - s(200)) = 2 e^-200, loss 200 - log 2;
    # row 1: P = e^-200, loss 200; row 2: P = e^-200, label 0, loss 0
    expected = torch.tensor((400.0 - np.log(2.0)) / 3, dtype=torch.float32)
    torch.testing.assert_close(losses[1], expected, rtol=1e-6, atol=0)


def test_loss_refuses_non_binary_or_repeated_steps():
    with pytest.raises(ValueError, match="binary"):
        MultiTaskLoss(["binary", "regression"], [1, 1], sequence=[0, 1])
    with pytest.raises(ValueError, match="2 distinct"):
        MultiTaskLoss(["binary", "binary"], [1, 1], sequence=[0, 0])


# ------------------------------------------------------------------ decoding
def test_joint_never_exceeds_the_earlier_step_and_conditional_times_earlier_is_joint():
    encoder = TaskEncoder(["binary"] * 3, ["a", "b", "c"]).fit(
        [np.array([0, 1] * 5), np.array([False, True] * 5), np.array(["no", "yes"] * 5)]
    )
    encoder.sequence = (2, 0, 1)
    rng = np.random.RandomState(0)
    outputs = (rng.standard_normal((5000, 3)) * rng.choice([0.1, 5, 40], (5000, 3))).astype(
        np.float32
    )
    joint = encoder.all_probabilities(outputs)
    conditional = encoder.all_probabilities(outputs, conditional=True)
    earlier = joint[2][:, 1]
    for j in (0, 1):  # in funnel order: c, then a, then b
        assert joint[j].dtype == np.float64
        assert (joint[j][:, 1] <= earlier).all()
        np.testing.assert_array_equal(conditional[j][:, 1] * earlier, joint[j][:, 1])
        np.testing.assert_array_equal(joint[j][:, 0], 1.0 - joint[j][:, 1])
        earlier = joint[j][:, 1]
    np.testing.assert_array_equal(joint[2], conditional[2])
    # predict thresholds the joint at 0.5
    labels = encoder.decode(outputs)
    np.testing.assert_array_equal(labels[1], joint[1][:, 1] > 0.5)


def test_fitted_funnel_outputs(funnel, funnel_data):
    X, y = funnel_data
    proba = funnel.predict_proba(X)
    conditional = funnel.conditional_proba(X)
    click, joint = proba[0][:, 1], proba[1][:, 1]
    assert (joint <= click).all() and (joint < click).any()
    np.testing.assert_allclose(conditional[1][:, 1] * click, joint, rtol=1e-12, atol=0)
    np.testing.assert_array_equal(conditional[0], proba[0])
    np.testing.assert_array_equal(funnel.predict(X)[:, 1], (joint > 0.5).astype(int))
    assert funnel.gate_weights(X[:5]).shape == (5, 2, 2)


def test_conditional_proba_only_with_a_sequence(funnel_data):
    assert not hasattr(MMoEClassifier(), "conditional_proba")
    assert hasattr(MMoEClassifier(task_sequence=["a", "b"]), "conditional_proba")


def test_chain_with_a_task_outside_it(chain):
    model, X, y = chain
    proba = model.predict_proba(X)
    assert proba[0] is None
    click, cart, buy = (proba[j][:, 1] for j in (1, 2, 3))
    assert (cart <= click).all() and (buy <= cart).all()
    conditional = model.conditional_proba(X)
    np.testing.assert_allclose(conditional[3][:, 1] * cart, buy, rtol=1e-12, atol=0)
    predicted = model.predict(X)
    assert set(predicted[:, 1]) <= {"yes", "no"}
    np.testing.assert_array_equal(predicted[:, 2].astype(bool), cart > 0.5)


# -------------------------------------------------------------------- checks
def test_inconsistent_labels_name_the_tasks_and_the_count(funnel_data):
    X, y = funnel_data
    y = y.copy()
    y.loc[[0, 1, 2], "click"] = 0
    y.loc[[0, 1, 2], "convert"] = 1
    with pytest.raises(ValueError, match=r"3 row\(s\) have task 'convert' positive .* 'click'"):
        MMoEClassifier(task_sequence=["click", "convert"], **FAST).fit(X, y)
    # the same labels without a funnel are fine
    MMoEClassifier(**{**FAST, "max_epochs": 1}).fit(X, y)


def test_chain_checks_every_earlier_step():
    X = np.zeros((6, 2), dtype=np.float32)
    # buy positive where click is negative, cart missing: still a contradiction
    y = pd.DataFrame(
        {
            "click": [0, 1, 1, 0, 1, 0],
            "cart": [np.nan, 1, 0, 0, 1, 0],
            "buy": [1, 1, 0, 0, 0, 0],
        }
    )
    model = MMoEClassifier(task_sequence=["click", "cart", "buy"], missing_targets="ignore")
    with pytest.raises(ValueError, match=r"1 row\(s\) have task 'buy' positive .* 'click'"):
        model.set_params(**FAST).fit(X, y)


@pytest.mark.parametrize(
    ("sequence", "match"),
    [
        (["click", "price"], "'price' is a multiclass task with classes"),
        (["click", "nope"], r"names \['nope'\], which are not tasks"),
        (["click", "click"], "repeats"),
        (["click"], "at least 2"),
        ("click", "task_sequence"),
    ],
)
def test_bad_sequences_raise(funnel_data, sequence, match):
    X, y = funnel_data
    y = y.assign(price=np.arange(len(y)) % 3)
    with pytest.raises(ValueError, match=match):
        MMoEClassifier(task_sequence=sequence, **FAST).fit(X, y)


def test_regression_step_of_a_multitask_model_raises(chain):
    _, X, y = chain
    with pytest.raises(ValueError, match="'spend' is a regression task"):
        MMoEMultiTask(task_sequence=["spend", "click"], **FAST).fit(X, y)


def test_regressor_refuses_a_sequence():
    X = np.random.RandomState(0).normal(size=(50, 3))
    with pytest.raises(ValueError, match="MMoERegressor does not take a task_sequence"):
        MMoERegressor(task_sequence=["task_0", "task_1"], **FAST).fit(X, X[:, :2])


def test_array_targets_are_named_task_k(funnel_data):
    X, y = funnel_data
    model = MMoEClassifier(task_sequence=["task_0", "task_1"], **FAST).fit(X, y.to_numpy())
    proba = model.predict_proba(X)
    assert (proba[1][:, 1] <= proba[0][:, 1]).all()


def test_sample_weight_and_missing_labels(funnel_data):
    X, y = funnel_data
    y = y.astype(float)
    y.loc[::7, "convert"] = np.nan
    y.loc[[i for i in range(0, len(y), 11) if i % 7], "click"] = np.nan
    weight = np.random.RandomState(0).uniform(0.5, 2.0, len(y))
    model = MMoEClassifier(task_sequence=["click", "convert"], missing_targets="ignore", **FAST)
    model.fit(X, y, sample_weight=weight)
    proba = model.predict_proba(X)
    assert (proba[1][:, 1] <= proba[0][:, 1]).all()
    unweighted = MMoEClassifier(**model.get_params()).fit(X, y).predict_proba(X)
    assert not np.allclose(unweighted[1], proba[1])


def test_warm_start_keeps_the_funnel(funnel, funnel_data):
    X, y = funnel_data
    model = pickle.loads(pickle.dumps(funnel))
    model.set_params(warm_start=True, max_epochs=1).fit(X, y)
    model.set_params(task_sequence=None)
    with pytest.raises(ValueError, match="differs from the funnel"):
        model.fit(X, y)


# ------------------------------------------------------- persistence, tools
def test_save_load_and_pickle_give_identical_outputs(funnel, funnel_data, tmp_path):
    X, _ = funnel_data
    path = tmp_path / "funnel.skmmoe"
    funnel.save(path)
    loaded = MMoEClassifier.load(path)
    assert loaded.task_sequence == ["click", "convert"]
    for other in (loaded, pickle.loads(pickle.dumps(funnel))):
        for method in ("predict_proba", "conditional_proba"):
            for a, b in zip(getattr(funnel, method)(X), getattr(other, method)(X)):
                np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(funnel.predict(X), other.predict(X))


def test_grid_search_scores_the_joint(funnel_data):
    from sklearn.metrics import roc_auc_score

    X, y = funnel_data
    scorer = make_task_scorer(roc_auc_score, response_method="predict_proba", per_task=True)
    search = GridSearchCV(
        MMoEClassifier(task_sequence=["click", "convert"], **FAST),
        {"lr": [1e-3, 1e-2]},
        scoring=scorer,
        refit="convert",
        cv=2,
    ).fit(X, y)
    assert np.isfinite(search.cv_results_["mean_test_convert"]).all()
    joint = search.predict_proba(X)[1][:, 1]
    expected = scorer(search.best_estimator_, X, y)["convert"]
    assert roc_auc_score(y["convert"], joint) == pytest.approx(expected)


def test_onnx_outputs_equal_predict_proba_and_conditional(chain):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("skl2onnx")
    from skl2onnx import to_onnx

    import sk_mmoe.onnx

    model, X, _ = chain
    names = sk_mmoe.onnx.output_names(model)
    assert names == [
        "predict_spend",
        "predict_click",
        "proba_click",
        "predict_cart",
        "proba_cart",
        "conditional_proba_cart",
        "predict_buy",
        "proba_buy",
        "conditional_proba_buy",
    ]
    onx = to_onnx(model, X[:1])
    session = ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
    got = dict(zip(names, session.run(None, {"X": X})))
    proba, conditional, predicted = (
        model.predict_proba(X),
        model.conditional_proba(X),
        model.predict(X),
    )
    for j, name in [(1, "click"), (2, "cart"), (3, "buy")]:
        np.testing.assert_allclose(got[f"proba_{name}"], proba[j], rtol=1e-5, atol=1e-6)
        if j > 1:
            np.testing.assert_allclose(
                got[f"conditional_proba_{name}"], conditional[j], rtol=1e-5, atol=1e-6
            )
        np.testing.assert_array_equal(
            got[f"predict_{name}"], predicted[:, j].astype(got[f"predict_{name}"].dtype)
        )
