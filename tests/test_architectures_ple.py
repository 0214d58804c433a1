"""PLE and CGC: the wiring against a naive loop, masks, gradients and the estimator API.

The reference below loops over every level, expert and gate, written from
the paper's definition (Tang et al., RecSys 2020) rather than from the
batched code: it reads each expert's and gate's weights out of the module's
parameters and wires them itself.
"""

import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import fast
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, KFold

from sk_mmoe import MMoEClassifier, MMoEMultiTask, MMoERegressor
from sk_mmoe.architectures import ARCHITECTURES, ProgressiveLayeredExtraction
from sk_mmoe.datasets import make_mmoe_tasks
from sk_mmoe.plotting import GateWeightsDisplay

# (n_shared, n_task_experts, n_levels, output widths, expert_units, tower_units)
CASES = [
    (3, 2, 1, [1, 3, 1], (8, 4), (5,)),
    (2, 1, 2, [1, 1], (6,), (4,)),
    (1, 2, 3, [2, 1, 1], (5, 3), ()),
    (4, 1, 2, [1, 1, 1, 1], (16,), (8,)),
    (2, 3, 4, [1, 2], (1,), (3,)),  # 1-wide experts: the small-matmul path
]


def build(n_shared, per_task, n_levels, widths, expert_units, tower_units, **kwargs):
    torch.manual_seed(0)
    return ProgressiveLayeredExtraction(
        7,
        widths,
        n_levels=n_levels,
        n_experts=n_shared,
        n_task_experts=per_task,
        expert_units=expert_units,
        tower_units=tower_units,
        activation="elu",  # no dead units: every gradient checked below is live
        **kwargs,
    )


def act(h):
    return torch.where(h > 0, h, torch.expm1(h))  # ELU


def naive(net, x, n_shared, per_task, widths, stop=None):
    """PLE by loops: the task outputs, or the gate weights ``(B, G, E)`` of level ``stop``."""
    n_tasks = len(widths)
    n_experts = n_shared + n_tasks * per_task
    shared = list(range(n_shared))

    def own(t):
        return list(range(n_shared + t * per_task, n_shared + (t + 1) * per_task))

    def owner(e):  # the stream expert e reads: task t's, or the shared one (index T)
        return n_tasks if e < n_shared else (e - n_shared) // per_task

    def expert(mlp, level, e, inp):
        if level == 0:  # one wide Linear for all experts: expert e's rows
            h1 = mlp.first.out_features // n_experts
            rows = slice(e * h1, (e + 1) * h1)
            h = inp @ mlp.first.weight[rows].T + mlp.first.bias[rows]
        else:
            h = inp @ mlp.first.weight[e] + mlp.first.bias[e]
        h = act(h)
        for layer in mlp.rest:
            h = act(h @ layer.weight[e] + layer.bias[e])
        return h

    def gate(level, g, inp):
        """Gate g's softmax over the experts it reaches, and their indices."""
        reach = shared + own(g) if g < n_tasks else list(range(n_experts))
        # a level's gates are one Linear: each task's S + K rows, then the shared gate's E
        linear = net.gates[level]
        start = g * (n_shared + per_task)
        rows = slice(start, start + len(reach))
        logits = inp @ linear.weight[rows].T + linear.bias[rows]
        return torch.softmax(logits, dim=-1), reach

    n_levels = len(net.experts)
    streams = [x] * (n_tasks + 1)  # task streams, then the shared one
    for level in range(n_levels):
        outputs = [
            expert(net.experts[level], level, e, streams[owner(e)]) for e in range(n_experts)
        ]
        n_gates = n_tasks if level == n_levels - 1 else n_tasks + 1
        new_streams, full = [], []
        for g in range(n_gates):
            weights, reach = gate(level, g, streams[g])
            row = torch.zeros(len(x), n_experts, dtype=x.dtype)
            row[:, reach] = weights
            full.append(row)
            new_streams.append(sum(weights[:, [i]] * outputs[e] for i, e in enumerate(reach)))
        if level == stop:
            return torch.stack(full, dim=1)
        streams = new_streams
    out = []
    for t, width in enumerate(widths):
        h = streams[t]
        if net.towers is not None:
            h = act(h @ net.towers.first.weight[t] + net.towers.first.bias[t])
            for layer in net.towers.rest:
                h = act(h @ layer.weight[t] + layer.bias[t])
        out.append((h @ net.heads.weight[t] + net.heads.bias[t])[:, :width])
    return torch.cat(out, dim=1)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("training", [True, False])
def test_outputs_and_every_gate_match_a_naive_loop(case, dtype, training):
    n_shared, per_task, n_levels, widths = case[:4]
    net = build(*case).to(dtype).train(training)
    x = torch.randn(70, 7, dtype=dtype, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(
            net(x), naive(net, x, n_shared, per_task, widths), rtol=0, atol=1e-6
        )
        for level in range(n_levels):
            expected = naive(net, x, n_shared, per_task, widths, stop=level)
            got = net.gate_weights(x, level=level)
            torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
            # exact zeros where a task's gate cannot reach, and only there
            assert torch.equal(got == 0, expected == 0)
            assert torch.equal(net.gate_weights(x, level=level - n_levels), got)


def _rows_first_training(net, x):
    """The training forward pass in the evaluation layout (rows first)."""
    return net._towers_forward(net._levels(x))


@pytest.mark.parametrize("case", [c for c in CASES if build(*c)._rows_last])
@pytest.mark.parametrize("bonus", [0.0, 0.3])
def test_rows_last_training_matches_rows_first_in_value_and_gradient(case, bonus):
    # small per-row mixtures train rows last: the same outputs, gradients
    # and gate-entropy term as the rows-first layout of evaluation
    net = build(*case, gate_entropy_bonus=bonus).double().train()
    x = torch.randn(90, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    target = torch.randn(90, sum(case[3]), dtype=torch.float64)
    results = []
    for forward in (net.forward, lambda rows: _rows_first_training(net, rows)):
        net.zero_grad()
        out = forward(x)
        extra = net.auxiliary_loss()
        loss = ((out - target) ** 2).mean() + (0 if extra is None else extra)
        loss.backward()
        grads = [p.grad.clone() for p in net.parameters()]
        results.append((out.detach(), None if extra is None else extra.detach(), grads))
    (out, extra, grads), (ref_out, ref_extra, ref_grads) = results
    torch.testing.assert_close(out, ref_out, rtol=0, atol=1e-12)
    if bonus:
        torch.testing.assert_close(extra, ref_extra, rtol=0, atol=1e-12)
    else:
        assert extra is None and ref_extra is None
    for got, expected in zip(grads, ref_grads):
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)


def test_rows_last_is_chosen_for_small_mixtures_only():
    # G * E * H below torch's bmm BLAS threshold (400): rows last in training
    assert build(2, 1, 2, [1, 1], (6,), (4,))._rows_last  # 3 * 4 * 6 = 72
    assert build(3, 2, 2, [1, 1], (16,), (8,))._rows_last  # 3 * 7 * 16 = 336
    assert not build(4, 1, 2, [1, 1, 1, 1], (16,), (8,))._rows_last  # 5 * 8 * 16
    assert not build(8, 1, 2, [1, 1], (64,), (32,))._rows_last  # the defaults


def test_rows_last_gate_dropout_drops_only_reachable_experts():
    # with every reachable expert of task 0 dropped but one, task 0's output
    # still never depends on task 1's own experts (their gradient stays 0)
    net = build(2, 2, 2, [1, 1], (6,), (4,), gate_dropout=0.7).train()
    assert net._rows_last
    x = torch.randn(200, 7)
    torch.manual_seed(0)
    first = net(x)
    assert torch.isfinite(first).all()
    assert not torch.equal(first, net(x))  # a new draw of dropped experts
    net.zero_grad()
    net(x)[:, 0].sum().backward()
    task_1 = slice(2 + 2, 2 + 4)
    assert torch.count_nonzero(net.experts[-1].first.weight.grad[task_1]) == 0
    assert torch.count_nonzero(net.experts[-1].first.weight.grad[:2]) > 0


@pytest.mark.parametrize("case", CASES)
def test_a_task_gate_is_exactly_zero_on_the_other_tasks_experts(case):
    n_shared, per_task, n_levels, widths = case[:4]
    net = build(*case)
    n_tasks = len(widths)
    x = 10 * torch.randn(64, 7)  # large inputs: saturated softmaxes
    for level in range(n_levels):
        weights = net.gate_weights(x, level=level)
        n_gates = n_tasks if level == n_levels - 1 else n_tasks + 1
        assert weights.shape == (64, n_gates, n_shared + n_tasks * per_task)
        for t in range(n_tasks):
            start, stop = n_shared + t * per_task, n_shared + (t + 1) * per_task
            others = torch.cat([weights[:, t, n_shared:start], weights[:, t, stop:]], dim=1)
            assert (others == 0).all()
        torch.testing.assert_close(weights.sum(-1), torch.ones(64, n_gates))


@pytest.mark.parametrize("case", CASES)
def test_task_loss_gives_no_gradient_to_other_tasks_last_level_experts(case):
    n_shared, per_task, n_levels, widths = case[:4]
    net = build(*case)
    x = torch.randn(50, 7)
    n_tasks = len(widths)
    starts = np.cumsum([0, *widths])
    last_experts, last_gates = net.experts[-1], net.gates[-1]
    for k in range(n_tasks):
        net.zero_grad()
        loss = (net(x)[:, starts[k] : starts[k + 1]] ** 2).sum()
        loss.backward()
        for j in range(n_tasks):
            experts = slice(n_shared + j * per_task, n_shared + (j + 1) * per_task)
            grads = [layer.weight.grad[experts] for layer in last_experts.rest]
            grads += [layer.bias.grad[experts] for layer in last_experts.rest]
            if n_levels == 1:  # the first level's experts: rows of one wide Linear
                h1 = last_experts.first.out_features // len(net.expert_names)
                rows = slice(experts.start * h1, experts.stop * h1)
                grads += [last_experts.first.weight.grad[rows], last_experts.first.bias.grad[rows]]
            else:
                grads += [last_experts.first.weight.grad[experts]]
                grads += [last_experts.first.bias.grad[experts]]
            # task j's gate: its S + K rows of the level's gate Linear
            rows = slice(j * (n_shared + per_task), (j + 1) * (n_shared + per_task))
            grads += [last_gates.weight.grad[rows], last_gates.bias.grad[rows]]
            if j == k:
                assert any(g.abs().sum() > 0 for g in grads)
            else:
                assert all(torch.count_nonzero(g) == 0 for g in grads), (k, j)
        # the shared experts serve every task
        first = last_experts.first.weight.grad
        shared = (
            first[: n_shared * first.shape[0] // len(net.expert_names)]
            if n_levels == 1
            else first[:n_shared]
        )
        assert torch.count_nonzero(shared) > 0


def test_other_tasks_lower_experts_reach_a_task_through_the_shared_gate():
    # PLE's point: task 1's first-level experts feed the shared gate, hence
    # the shared experts of level 2 and task 0
    net = build(2, 1, 2, [1, 1], (6,), (4,))
    net(torch.randn(30, 7))[:, 0].sum().backward()
    h1 = 6
    task_1 = slice(3 * h1, 4 * h1)  # expert 3 of level 0 is task 1's
    assert net.experts[0].first.weight.grad[task_1].abs().sum() > 0
    # in a CGC nothing of task 1 reaches task 0
    cgc = build(2, 1, 1, [1, 1], (6,), (4,))
    cgc(torch.randn(30, 7))[:, 0].sum().backward()
    assert torch.count_nonzero(cgc.experts[0].first.weight.grad[task_1]) == 0


def _count_torch_calls(net, x):
    calls = []

    class Count(torch.overrides.TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            calls.append(func)
            return func(*args, **(kwargs or {}))

    with Count():
        net(x).sum().backward()
    return len(calls)


@pytest.mark.parametrize("training", [True, False])
def test_no_python_loop_over_experts_tasks_or_gates_rows_last(training):
    # the same with experts small enough to train rows last
    small = build(2, 1, 3, [1, 1], (4,), (4,)).train(training)  # 4 experts, 2 tasks
    large = build(2, 2, 3, [1, 1, 1], (4,), (4,)).train(training)  # 8 experts, 3 tasks
    assert small._rows_last and large._rows_last
    x = torch.randn(64, 7)
    assert _count_torch_calls(small, x) == _count_torch_calls(large, x)


@pytest.mark.parametrize("training", [True, False])
def test_no_python_loop_over_experts_tasks_or_gates(training):
    # the number of torch calls in a forward and backward pass does not grow
    # with the number of experts or tasks: all of a level is batched (sizes
    # chosen so that both take the same size-dependent paths: fewer than 16
    # experts, mixtures above the bmm threshold, gate widths 4 or 8)
    small = build(2, 1, 3, [1, 1], (64,), (4,)).train(training)  # 4 experts, 2 tasks
    large = build(2, 2, 3, [1, 1, 1], (64,), (4,)).train(training)  # 8 experts, 3 tasks
    x = torch.randn(64, 7)
    assert _count_torch_calls(small, x) == _count_torch_calls(large, x)


def test_one_batched_weight_per_level():
    net = build(3, 2, 3, [1, 1, 1], (8, 4), (4,))
    n_experts = 3 + 3 * 2
    assert net.experts[0].first.out_features == n_experts * 8
    # three task gates of 3 + 2 logits and a shared gate of 9: one Linear, no
    # parameter for an expert a gate cannot reach; the last level has no shared gate
    assert [g.weight.shape for g in net.gates] == [(3 * 5 + 9, 7), (3 * 5 + 9, 4), (3 * 5, 4)]
    for level in (1, 2):
        assert net.experts[level].first.weight.shape == (n_experts, 4, 8)
        assert net.experts[level].rest[0].weight.shape == (n_experts, 8, 4)


def test_gate_dropout_only_drops_reachable_experts():
    net = build(2, 2, 2, [1, 1], (6,), (4,), gate_dropout=0.7).train()
    x = torch.randn(200, 7)
    torch.manual_seed(0)
    for level in (0, 1):
        weights = net.gate_weights(x, level=level)
        torch.testing.assert_close(weights.sum(-1), torch.ones(200, weights.shape[1]))
        assert (weights[:, 0, 4:] == 0).all() and (weights[:, 1, 2:4] == 0).all()
        assert (weights[:, 0, :4] == 0).any()  # some experts dropped
    net.eval()
    assert (net.gate_weights(x)[:, 0, :4] > 0).all()


def test_bad_levels_are_rejected():
    net = build(2, 1, 2, [1, 1], (6,), (4,))
    x = torch.randn(3, 7)
    with pytest.raises(ValueError, match=r"level must be in \[-2, 1\]"):
        net.gate_weights(x, level=2)
    with pytest.raises(TypeError, match="level must be an int"):
        net.gate_weights(x, level=0.5)


def test_cgc_is_ple_with_one_level():
    X, Y = make_mmoe_tasks(300, n_features=5, correlation=0.5, random_state=0)
    cgc = MMoERegressor(architecture="cgc", n_levels=3, **fast()).fit(X, Y)
    ple = MMoERegressor(architecture="ple", n_levels=1, **fast()).fit(X, Y)
    assert len(cgc.module_.experts) == 1  # n_levels is ignored by "cgc"
    np.testing.assert_array_equal(cgc.predict(X), ple.predict(X))
    assert ARCHITECTURES["cgc"].fixed == {"n_levels": 1}


def test_new_parameters_are_ignored_by_the_other_architectures():
    X, Y = make_mmoe_tasks(300, n_features=5, correlation=0.5, random_state=0)
    for architecture in ("mmoe", "moe", "shared_bottom"):
        a = MMoERegressor(architecture=architecture, **fast()).fit(X, Y)
        b = MMoERegressor(architecture=architecture, n_levels=4, n_task_experts=3, **fast())
        np.testing.assert_array_equal(a.predict(X), b.fit(X, Y).predict(X))


@pytest.fixture(scope="module")
def named_tasks():
    X, Y = make_mmoe_tasks(400, n_features=5, correlation=0.5, random_state=0)
    return X, pd.DataFrame(Y, columns=["clicks", "rating"])


@pytest.fixture(scope="module")
def fitted_ple(named_tasks):
    X, Y = named_tasks
    params = fast(max_epochs=3, n_experts=2, n_task_experts=2, n_levels=3)
    return MMoERegressor(architecture="ple", **params).fit(X, Y)


def test_estimator_gate_weights_levels_and_labels(fitted_ple, named_tasks):
    X, _ = named_tasks
    reg = fitted_ple
    names = ["shared_0", "shared_1", "clicks_0", "clicks_1", "rating_0", "rating_1"]
    assert reg.expert_names_ == names
    last = reg.gate_weights(X)
    assert last.shape == (400, 2, 6) and last.dtype == np.float64
    np.testing.assert_array_equal(reg.gate_weights(X, level=2), last)
    assert (last[:, 0, 4:] == 0).all() and (last[:, 1, 2:4] == 0).all()
    for level in (0, 1, -3):
        lower = reg.gate_weights(X, level=level)
        assert lower.shape == (400, 3, 6)  # the tasks' gates, then the shared gate
        assert (lower[:, 2] > 0).all()
    summary = reg.gate_summary(X, level=0)
    assert summary.index.tolist() == ["clicks", "rating", "shared"]
    assert summary.columns[:6].tolist() == names
    np.testing.assert_allclose(summary.loc["shared", names], reg.gate_weights(X, 0)[:, 2].mean(0))
    assert reg.gate_summary(X).loc["clicks", ["rating_0", "rating_1"]].tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="level must be in"):
        reg.gate_weights(X, level=3)


def test_expert_labels_fall_back_when_task_names_collide(named_tasks):
    X, Y = named_tasks
    Y = Y.set_axis(["shared", "rating"], axis=1)  # "shared_0" would name two experts
    reg = MMoERegressor(architecture="cgc", n_experts=2, **fast()).fit(X, Y)
    assert reg.expert_names_ == ["shared_0", "shared_1", "task_0_0", "task_1_0"]


def test_display_labels_shared_and_task_experts(fitted_ple, named_tasks):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    X, _ = named_tasks
    disp = GateWeightsDisplay.from_estimator(fitted_ple, X)
    labels = [t.get_text() for t in disp.ax_.get_xticklabels()]
    assert labels == fitted_ple.expert_names_
    assert [t.get_text() for t in disp.ax_.get_yticklabels()] == ["clicks", "rating"]
    lower = GateWeightsDisplay.from_estimator(fitted_ple, X, level=0)
    assert [t.get_text() for t in lower.ax_.get_yticklabels()] == ["clicks", "rating", "shared"]
    np.testing.assert_allclose(lower.gate_weights, fitted_ple.gate_weights(X, 0).mean(axis=0))
    plt.close("all")


def test_collapse_warning_names_a_task_expert(named_tasks):
    from sk_mmoe._gates import GateCollapseWarning

    X, Y = named_tasks
    with pytest.warns(GateCollapseWarning, match=r"clicks -> (shared|clicks)_\d"):
        MMoERegressor(architecture="cgc", n_experts=1, gate_collapse_threshold=0.4, **fast()).fit(
            X, Y
        )


@pytest.mark.parametrize("architecture", ["cgc", "ple"])
def test_save_load_pickle_clone(architecture, named_tasks, tmp_path):
    X, Y = named_tasks
    reg = MMoERegressor(architecture=architecture, n_task_experts=2, **fast()).fit(X, Y)
    path = tmp_path / "model.skmmoe"
    reg.save(path)
    loaded = MMoERegressor.load(path)
    np.testing.assert_array_equal(loaded.predict(X), reg.predict(X))
    np.testing.assert_array_equal(loaded.gate_weights(X, level=0), reg.gate_weights(X, level=0))
    assert loaded.expert_names_ == reg.expert_names_
    restored = pickle.loads(pickle.dumps(reg))
    np.testing.assert_array_equal(restored.predict(X), reg.predict(X))
    twin = clone(reg)
    assert twin.get_params() == reg.get_params() and not hasattr(twin, "net_")
    np.testing.assert_array_equal(twin.fit(X, Y).predict(X), reg.predict(X))


def test_grid_search_over_architecture_and_levels(named_tasks):
    X, Y = named_tasks
    search = GridSearchCV(
        MMoERegressor(**fast(max_epochs=2)),
        {"architecture": ["mmoe", "cgc", "ple"], "n_levels": [1, 2]},
        cv=KFold(2),
    ).fit(X, Y)
    params = search.cv_results_["params"]
    assert len(params) == 6 and np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert {p["architecture"] for p in params} == {"mmoe", "cgc", "ple"}
    assert len(search.best_estimator_.module_.state_dict()) > 0


def test_classifier_and_multitask_train_ple():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(300, 4))
    y = pd.DataFrame({"sign": np.where(X[:, 0] > 0, "pos", "neg"), "size": X[:, 1] * 3})
    clf = MMoEClassifier(architecture="ple", **fast(max_epochs=30, lr=0.02))
    assert clf.fit(X, y[["sign"]]).score(X, y[["sign"]]) > 0.9
    model = MMoEMultiTask(architecture="cgc", **fast(max_epochs=30, lr=0.02)).fit(X, y)
    assert model.task_types_ == ["binary", "regression"]
    assert model.score(X, y) > 0.8
