"""Efficient ensembles (``n_ensemble``): members against a naive loop, losses, workflows.

A member of an ensemble is the plain architecture whose shared weights are
multiplied by the member's adapters: the references below build each member
that way (the adapters folded into a copy of the shared weights) and run the
members one by one.
"""

import copy
import io
import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import architecture_names, fast, gated_architectures
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.utils._param_validation import InvalidParameterError

from sk_mmoe import MMoEClassifier, MMoEMultiTask, MMoERegressor
from sk_mmoe._hyperparameters import check_hyperparameters
from sk_mmoe.architectures import ARCHITECTURES
from sk_mmoe.inputs import InputNetwork
from sk_mmoe.nn._ensemble import EnsembleNetwork
from sk_mmoe.training._factory import build_module
from sk_mmoe.training._loss import MultiTaskLoss

KINDS = ["regression", "binary", "multiclass", "regression"]
WIDTHS = [1, 1, 3, 1]
K = 4


def _hyper(architecture, **overrides):
    params = MMoERegressor(
        architecture=architecture, n_experts=3, expert_units=(8,), tower_units=(4,)
    ).get_params()
    return check_hyperparameters({**params, **overrides})


def _ensemble(architecture, k=K, seed=0, **overrides):
    """An ensemble network whose adapters are all moved away from their initial values."""
    torch.manual_seed(seed)
    hyper = _hyper(architecture, n_ensemble=k, **overrides)
    net = build_module(hyper, 6, WIDTHS, task_types=KINDS)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in [net.input_scale, *net.network.member_parameters()]:
            p.add_(0.3 * torch.randn(p.shape, generator=g))
    return net


def _member(net, m):
    """Member ``m`` as a plain network: the shared weights times its adapters, folded."""
    arch = net.network
    plain = copy.deepcopy(arch)
    plain.n_members = 1
    for name in ("tower_scale", "head_scale", "head_bias"):
        delattr(plain, name)
    with torch.no_grad():
        tower_scale = arch.tower_scale[:, m, 0]  # (T, H)
        first = plain.towers.first if plain.towers is not None else plain.heads
        first.weight.mul_(tower_scale.unsqueeze(2))  # (T, H, H') rows scaled
        scale, bias = arch.head_scale[:, m, 0], arch.head_bias[:, m, 0]  # (T, C_max)
        plain.heads.weight.mul_(scale.unsqueeze(1))
        plain.heads.bias.copy_(plain.heads.bias * scale + bias)
    return plain, net.input_scale[m].detach()


def _members_outputs(net, x, training):
    """Every member's outputs ``(k, B, sum C)``, one member at a time."""
    outputs = []
    for m in range(net.n_members):
        plain, r = _member(net, m)
        plain.train(training)
        with torch.no_grad():
            outputs.append(plain(x * r))
    return torch.stack(outputs)


@pytest.mark.parametrize("tower_units", [(4,), ()])
@pytest.mark.parametrize("architecture", architecture_names())
def test_training_output_is_each_member_in_turn(architecture, tower_units):
    net = _ensemble(architecture, tower_units=tower_units).train()
    x = torch.randn(50, 6, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        got = net(x)
    assert got.shape == (K * 50, sum(WIDTHS))
    # (k * B, sum C) -> (k, B, sum C)
    expected = _members_outputs(net, x, training=True)
    torch.testing.assert_close(got.view(K, 50, -1), expected, atol=1e-6, rtol=1e-5)
    # the members differ, so this is no test of one member k times
    assert not torch.allclose(expected[0], expected[1], atol=1e-3)


def test_fresh_members_differ():
    # the towers' input adapters start as random signs: without them the
    # members would stay identical (same weights, same gradients)
    torch.manual_seed(0)
    net = build_module(_hyper("mmoe", n_ensemble=K), 6, WIDTHS, task_types=KINDS).train()
    with torch.no_grad():
        out = net(torch.randn(20, 6)).view(K, 20, -1)  # (k * B, sum C) -> (k, B, sum C)
    assert all(not torch.allclose(out[0], out[m], atol=1e-3) for m in range(1, K))
    assert set(net.network.tower_scale.unique().tolist()) == {-1.0, 1.0}


def _average(members):
    """The reference mean in each task's space: values, probabilities (as logits / logs)."""
    pieces, start = [], 0
    for kind, width in zip(KINDS, WIDTHS):
        block = members[:, :, start : start + width].double()
        start += width
        if kind == "regression":
            pieces.append(block.mean(0))
        elif kind == "binary":
            p = torch.sigmoid(block).mean(0)
            pieces.append(torch.log(p) - torch.log1p(-p))
        else:
            pieces.append(torch.log(torch.softmax(block, -1).mean(0)))
    return torch.cat(pieces, 1)


@pytest.mark.parametrize("architecture", architecture_names())
def test_eval_output_is_the_members_mean(architecture):
    net = _ensemble(architecture).eval()
    x = torch.randn(70, 6, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        got = net(x)
    assert got.shape == (70, sum(WIDTHS))
    expected = _average(_members_outputs(net, x, training=False))
    torch.testing.assert_close(got.double(), expected, atol=1e-5, rtol=1e-5)
    # the multiclass block's softmax is the members' mean probability
    proba = torch.softmax(got[:, 2:5], 1)
    torch.testing.assert_close(proba.double(), torch.exp(expected[:, 2:5]), atol=1e-6, rtol=0)


def test_binary_mean_stays_finite_for_extreme_logits():
    net = _ensemble("shared_bottom").eval()
    members = torch.zeros(K, 3, sum(WIDTHS))
    members[:, 0, 1] = 200.0  # every member certain
    members[:, 1, 1] = -200.0
    members[:2, 2, 1], members[2:, 2, 1] = 200.0, -200.0  # two against two
    out = net.average(members)[:, 1]
    assert torch.isfinite(out).all()
    assert out[0] > 100 and out[1] < -100 and abs(out[2]) < 1e-6


@pytest.mark.parametrize("architecture", gated_architectures())
def test_gate_weights_are_the_members_mean(architecture):
    net = _ensemble(architecture).eval()
    x = torch.randn(40, 6, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        got = net.gate_weights(x)
        members = [
            plain.eval().gate_weights(x * r)
            for plain, r in map(lambda m: _member(net, m), range(K))
        ]
    expected = torch.stack(members).mean(0)
    assert got.shape == (40, len(WIDTHS), net.network.n_experts)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(got.sum(-1), torch.ones(40, len(WIDTHS)))


# ------------------------------------------------------------------ k = 1
@pytest.mark.parametrize("architecture", architecture_names())
def test_one_member_is_the_plain_network(architecture):
    hyper = _hyper(architecture, n_ensemble=1)
    torch.manual_seed(0)
    built = build_module(hyper, 6, WIDTHS, task_types=KINDS)
    torch.manual_seed(0)
    plain = ARCHITECTURES[architecture].build(6, WIDTHS, hyper)
    assert type(built) is type(plain)
    state, expected = built.state_dict(), plain.state_dict()
    assert list(state) == list(expected)
    for name in state:
        assert torch.equal(state[name], expected[name]), name


@pytest.mark.parametrize("architecture", architecture_names())
def test_one_member_fits_as_the_default(architecture):
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((200, 5)), rng.standard_normal((200, 2))
    params = fast(architecture=architecture, n_experts=3)
    default = MMoERegressor(**params).fit(X, Y)
    one = MMoERegressor(n_ensemble=1, **params).fit(X, Y)
    assert type(one.module_) is ARCHITECTURES[architecture].module
    assert list(one.module_.state_dict()) == list(default.module_.state_dict())
    np.testing.assert_array_equal(one.predict(X), default.predict(X))


def test_n_ensemble_below_one_is_refused():
    X, Y = np.zeros((10, 2)), np.zeros((10, 1))
    with pytest.raises(InvalidParameterError, match="n_ensemble"):
        MMoERegressor(n_ensemble=0).fit(X, Y)


# ----------------------------------------------------------------- the loss
def _targets(n, g):
    columns = [
        torch.randn(n, generator=g),
        torch.randint(0, 2, (n,), generator=g).float(),
        torch.randint(0, 3, (n,), generator=g).float(),
        torch.randn(n, generator=g),
    ]
    return torch.stack(columns, 1)


@pytest.mark.parametrize("method", [None, "uncertainty"])
@pytest.mark.parametrize("form", ["weighted", "plain"])
def test_loss_is_the_mean_of_the_members_losses(method, form):
    g = torch.Generator().manual_seed(0)
    n = 60
    targets = _targets(n, g)
    if form == "weighted":
        targets[torch.rand(n, len(KINDS), generator=g) < 0.25] = float("nan")
        targets[:, 2] = float("nan")  # a task without any label
        y_true = torch.cat([targets, torch.rand(n, 1, generator=g) + 0.5], 1)
    else:
        y_true = targets  # (B, T): no label missing, every weight 1
    task_weights = [0.5, 1.0, 2.0, 1.5]
    ensemble = MultiTaskLoss(KINDS, WIDTHS, task_weights, method, n_members=K)
    single = MultiTaskLoss(KINDS, WIDTHS, task_weights, method)
    if method == "uncertainty":
        with torch.no_grad():
            ensemble.log_vars.copy_(torch.tensor([0.3, -0.2, 0.1, 0.5]))
            single.log_vars.copy_(ensemble.log_vars)
    a = torch.randn(K * n, sum(WIDTHS), generator=g, requires_grad=True)
    b = a.detach().clone().requires_grad_()
    got = ensemble(a, y_true)
    # (k * B, sum C) -> (k, B, sum C): one member at a time
    expected = torch.stack([single(member, y_true) for member in b.view(K, n, -1)]).mean()
    torch.testing.assert_close(got, expected)
    got.backward()
    expected.backward()
    torch.testing.assert_close(a.grad, b.grad)
    per_task = torch.stack([single.task_losses(member, y_true) for member in b.view(K, n, -1)])
    torch.testing.assert_close(ensemble.task_losses(a, y_true), per_task.mean(0))


def test_regression_fast_loss_is_the_mean_of_the_members_losses():
    g = torch.Generator().manual_seed(1)
    y_true = torch.randn(30, 2, generator=g)
    pred = torch.randn(K * 30, 2, generator=g)
    got = MultiTaskLoss(["regression"] * 2, [1, 1], n_members=K)(pred, y_true)
    single = MultiTaskLoss(["regression"] * 2, [1, 1])
    expected = torch.stack([single(p, y_true) for p in pred.view(K, 30, -1)]).mean()
    torch.testing.assert_close(got, expected)
    # the averaged prediction (validation) is scored as one network's
    torch.testing.assert_close(
        MultiTaskLoss(["regression"] * 2, [1, 1], n_members=K)(pred[:30], y_true),
        single(pred[:30], y_true),
    )


# ---------------------------------------------------------------- batching
@pytest.mark.parametrize("architecture", architecture_names())
def test_predictions_do_not_depend_on_batching(architecture):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((400, 7))
    y = np.column_stack([X[:, 0] > 0, np.digitize(X[:, 1], [-0.5, 0.5])])
    est = MMoEClassifier(architecture=architecture, n_ensemble=K, **fast(max_epochs=2))
    est.fit(X, y)
    full, proba = est.predict(X), est.predict_proba(X)
    for start, n in [(0, 1), (7, 7), (50, 300)]:
        rows = slice(start, start + n)
        np.testing.assert_array_equal(est.predict(X[rows]), full[rows])
        for part, whole in zip(est.predict_proba(X[rows]), proba):
            np.testing.assert_array_equal(part, whole[rows])
    if est.module_.has_gates:
        gates = est.gate_weights(X)
        assert gates.shape == (400, 2, est.module_.network.n_experts)
        np.testing.assert_allclose(gates.sum(-1), 1.0, rtol=1e-5)
        for start, n in [(0, 1), (7, 7), (50, 300)]:
            np.testing.assert_array_equal(
                est.gate_weights(X[start : start + n]), gates[start:][:n]
            )


# --------------------------------------------------------------- workflows
@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 5))
    Y = np.column_stack([X[:, 0] + X[:, 1], X[:, 2] - X[:, 3]])
    return X, Y


@pytest.fixture(scope="module")
def fitted(data):
    X, Y = data
    return MMoERegressor(n_ensemble=K, **fast()).fit(X, Y)


def test_save_load_and_pickle(fitted, data, tmp_path):
    X, _ = data
    fitted.save(tmp_path / "ensemble.skmmoe")
    loaded = MMoERegressor.load(tmp_path / "ensemble.skmmoe")
    assert isinstance(loaded.module_, EnsembleNetwork)
    np.testing.assert_array_equal(loaded.predict(X), fitted.predict(X))
    buffer = io.BytesIO()
    pickle.dump(fitted, buffer)
    np.testing.assert_array_equal(pickle.loads(buffer.getvalue()).predict(X), fitted.predict(X))


def test_same_seed_same_predictions(fitted, data):
    X, Y = data
    again = MMoERegressor(n_ensemble=K, **fast()).fit(X, Y)
    np.testing.assert_array_equal(again.predict(X), fitted.predict(X))


def test_partial_fit_and_warm_start_continue(data):
    X, Y = data
    est = MMoERegressor(n_ensemble=K, **fast(max_epochs=1)).partial_fit(X, Y)
    before = est.predict(X)
    module = est.module_
    est.partial_fit(X, Y)
    assert est.module_ is module and not np.array_equal(est.predict(X), before)
    warm = MMoERegressor(n_ensemble=K, warm_start=True, **fast(max_epochs=2)).fit(X, Y)
    scale = warm.module_.input_scale.detach().clone()
    warm.fit(X, Y)
    assert len(warm.net_.history) == 4
    assert not torch.equal(warm.module_.input_scale, scale)


def test_grid_search_over_n_ensemble(data):
    X, Y = data
    search = GridSearchCV(
        MMoERegressor(**fast(max_epochs=2)), {"n_ensemble": [1, 3]}, cv=KFold(2)
    ).fit(X, Y)
    assert search.best_params_["n_ensemble"] in (1, 3)
    assert len(search.cv_results_["mean_test_score"]) == 2


def test_sample_weight_and_missing_labels(data):
    X, Y = data
    Y = Y.copy()
    Y[::4, 0] = np.nan
    weight = np.random.default_rng(1).uniform(0.5, 2.0, len(X))
    est = MMoERegressor(n_ensemble=K, missing_targets="ignore", **fast())
    est.fit(X, Y, sample_weight=weight)
    assert np.isfinite(est.predict(X)).all()
    assert np.isfinite(est.net_.history[:, "train_loss"]).all()


@pytest.mark.parametrize("task_weights", ["uncertainty", "dwa", "gradnorm", "pcgrad"])
def test_task_balancing_methods_train(data, task_weights):
    X, Y = data
    est = MMoERegressor(n_ensemble=K, task_weights=task_weights, **fast(max_epochs=2))
    est.fit(X, Y)
    assert np.isfinite(est.net_.history[:, "train_loss"]).all()
    module = est.module_
    shared = {id(p) for p in module.shared_parameters()}
    assert id(module.input_scale) in shared
    assert not shared & {id(p) for p in module.task_parameters()}
    assert {id(p) for p in module.network.member_parameters()} <= {
        id(p) for p in module.task_parameters()
    }


def _frame(n, seed):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {
            "city": rng.choice(["a", "b", "c"], n).astype(object),
            "x0": rng.standard_normal(n),
            "x1": rng.standard_normal(n),
        }
    )
    y = pd.DataFrame(
        {
            "clicked": np.where(X["x0"] + (X["city"] == "a") > 0.3, "yes", "no"),
            "minutes": 3 * X["x1"] + rng.standard_normal(n),
            "grade": np.digitize(X["x0"] - X["x1"], [-0.5, 0.5]),
        }
    )
    return X, y


@pytest.mark.parametrize("numeric_embedding", [None, "piecewise_linear"])
def test_multitask_with_categories_and_numeric_embeddings(numeric_embedding):
    X, y = _frame(300, 0)
    est = MMoEMultiTask(
        n_ensemble=K, numeric_embedding=numeric_embedding, n_bins=8, **fast(max_epochs=2)
    ).fit(X, y)
    assert isinstance(est.module_, InputNetwork)
    assert isinstance(est.module_.network, EnsembleNetwork)
    pred = est.predict(X)
    assert pred.shape == (300, 3)
    proba = est.predict_proba(X)  # None for the regression task
    assert proba[1] is None
    proba = [proba[0], proba[2]]
    assert [p.shape for p in proba] == [(300, 2), (300, 3)]
    for p in proba:
        np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-6)
    assert est.gate_weights(X).shape == (300, 3, est.n_experts)


# -------------------------------------------------------------------- ONNX
@pytest.mark.parametrize("architecture", architecture_names())
def test_onnx_reproduces_predict_and_predict_proba(architecture):
    ort = pytest.importorskip("onnxruntime")
    skl2onnx = pytest.importorskip("skl2onnx")
    sk_onnx = pytest.importorskip("sk_mmoe.onnx")
    X, y = _frame(300, 0)
    X_test, _ = _frame(50, 1)
    est = MMoEMultiTask(
        architecture=architecture,
        n_ensemble=K,
        gate_collapse_threshold=None,
        **fast(max_epochs=3, lr=0.01),
    ).fit(X, y)
    onx = skl2onnx.to_onnx(est, X[:1])
    session = ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {}
    for node in session.get_inputs():
        column = X_test[node.name]
        if node.type == "tensor(string)":
            feeds[node.name] = column.astype(str).to_numpy().astype(object).reshape(-1, 1)
        else:
            feeds[node.name] = column.to_numpy(dtype=np.float64).reshape(-1, 1)
    got = dict(zip(sk_onnx.output_names(est), session.run(None, feeds)))
    predicted, proba = est.predict(X_test), est.predict_proba(X_test)
    np.testing.assert_array_equal(got["predict_clicked"], predicted[:, 0].astype(str))
    np.testing.assert_allclose(
        got["predict_minutes"], predicted[:, 1].astype(float), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_array_equal(got["predict_grade"], predicted[:, 2].astype(np.int64))
    np.testing.assert_allclose(got["proba_clicked"], proba[0], atol=1e-5, rtol=0)
    np.testing.assert_allclose(got["proba_grade"], proba[2], atol=1e-5, rtol=0)
