"""The fast training path: loss forms, batch iterator, lean net, batched module."""

import numpy as np
import pytest
import torch
from conftest import architecture_names, gated_architectures
from skorch.callbacks import Callback

from sk_mmoe import MMoERegressor
from sk_mmoe.architectures import MixtureOfExperts
from sk_mmoe.nn._modules import _softmax
from sk_mmoe.training._loss import MultiTaskLoss
from sk_mmoe.training._net import BatchIterator, TensorDataset

TASKS = [
    (["regression", "regression"], [1, 1]),
    (["binary", "regression", "multiclass", "regression"], [1, 1, 4, 1]),
    (["multiclass", "binary"], [3, 1]),
]


def _targets(types, widths, n, generator):
    columns = []
    for kind, width in zip(types, widths):
        if kind == "regression":
            columns.append(torch.randn(n, generator=generator))
        else:
            high = 2 if kind == "binary" else width
            columns.append(torch.randint(0, high, (n,), generator=generator).float())
    return torch.stack(columns, 1)


def _reference_loss(types, widths, task_weights, y_pred, y_true):
    """Per-task weighted mean loss over labelled rows, summed with task weights."""
    weight = y_true[:, -1]
    total, start = 0.0, 0
    for t, (kind, width) in enumerate(zip(types, widths)):
        target, pred = y_true[:, t], y_pred[:, start : start + width]
        start += width
        keep = ~torch.isnan(target)
        pred, target, w = pred[keep], target[keep], weight[keep]
        if kind == "regression":
            loss = (pred[:, 0] - target) ** 2
        elif kind == "binary":
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                pred[:, 0], target, reduction="none"
            )
        else:
            loss = torch.nn.functional.cross_entropy(pred, target.long(), reduction="none")
        total = total + task_weights[t] * (loss * w).sum() / w.sum()
    return total


@pytest.mark.parametrize("types, widths", TASKS)
def test_loss_matches_a_reference_with_missing_labels_and_weights(types, widths):
    g = torch.Generator().manual_seed(0)
    n = 200
    targets = _targets(types, widths, n, g)
    targets[torch.rand(n, len(types), generator=g) < 0.2] = float("nan")
    y_true = torch.cat([targets, torch.rand(n, 1, generator=g) + 0.5], 1)
    task_weights = [0.5 + t for t in range(len(types))]
    loss = MultiTaskLoss(types, widths, task_weights)
    a = torch.randn(n, sum(widths), generator=g, requires_grad=True)
    b = a.detach().clone().requires_grad_()
    got = loss(a, y_true)
    expected = _reference_loss(types, widths, task_weights, b, y_true)
    got.backward()
    expected.backward()
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(a.grad, b.grad)


@pytest.mark.parametrize("types, widths", TASKS)
@pytest.mark.parametrize("uncertainty", [False, True])
def test_unweighted_targets_give_the_same_loss(types, widths, uncertainty):
    # (B, T) targets alone are what the iterator passes for unweighted, complete data
    g = torch.Generator().manual_seed(1)
    targets = _targets(types, widths, 100, g)
    y_pred = torch.randn(100, sum(widths), generator=g)
    for task_weights in (None, [2.0] * len(types)):
        loss = MultiTaskLoss(types, widths, task_weights, "uncertainty" if uncertainty else None)
        full = torch.cat([targets, torch.ones(100, 1)], 1)
        torch.testing.assert_close(loss(y_pred, targets), loss(y_pred, full))
        torch.testing.assert_close(
            loss.task_losses(y_pred, targets), loss.task_losses(y_pred, full)
        )


def test_iterator_drops_the_weight_column_only_when_it_is_all_ones():
    X = torch.randn(10, 3)
    y = torch.cat([torch.randn(10, 2), torch.ones(10, 1)], 1)
    (_, yb), *_ = BatchIterator(TensorDataset(X, y), 4)
    assert yb.shape == (4, 2)
    weighted = y.clone()
    weighted[0, 2] = 2.0
    missing = y.clone()
    missing[3, 1] = float("nan")
    for targets in (weighted, missing):
        (_, yb), *_ = BatchIterator(TensorDataset(X, targets), 4)
        assert yb.shape == (4, 3)


def test_shuffled_iterator_yields_every_row_once():
    X = torch.arange(10.0).unsqueeze(1)
    batches = list(BatchIterator(TensorDataset(X, torch.ones(10, 2)), 4, shuffle=True))
    assert [len(xb) for xb, _ in batches] == [4, 4, 2]
    rows = torch.cat([xb for xb, _ in batches]).squeeze(1)
    assert sorted(rows.tolist()) == list(range(10))
    assert len(BatchIterator(TensorDataset(X), 4)) == 3


class Counter(Callback):
    def initialize(self):
        self.counts = {"begin": 0, "end": 0, "grad": 0}
        return self

    def on_batch_begin(self, net, batch=None, training=None, **kwargs):
        self.counts["begin"] += 1

    def on_batch_end(self, net, batch=None, training=None, **kwargs):
        self.counts["end"] += 1
        assert net.history[-1, "batches", -1, "train_loss"] > 0

    def on_grad_computed(self, net, named_parameters, batch=None, training=None, **kwargs):
        self.counts["grad"] += 1
        assert all(p.grad is not None for _, p in named_parameters)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return rng.standard_normal((300, 6)), rng.standard_normal((300, 2))


def test_callbacks_hear_every_batch_and_history_is_complete(data):
    X, Y = data
    est = MMoERegressor(max_epochs=2, batch_size=64, callbacks=[Counter()], random_state=0)
    est.fit(X, Y)
    counter = next(cb for _, cb in est.net_.callbacks_ if isinstance(cb, Counter))
    assert counter.counts == {"begin": 10, "end": 10, "grad": 10}
    history = est.net_.history
    assert len(history) == 2 and all(np.isfinite(history[:, "train_loss"]))
    assert history[-1, "batches", :, "train_batch_size"] == [64, 64, 64, 64, 44]


def test_verbose_fit_prints_its_log(data, capsys):
    X, Y = data
    MMoERegressor(max_epochs=2, verbose=1, early_stopping=True, random_state=0).fit(X, Y)
    out = capsys.readouterr().out
    assert "train_loss" in out and "valid_loss" in out


def test_fused_optimizer_where_torch_has_one(data):
    X, Y = data
    est = MMoERegressor(max_epochs=1, random_state=0).fit(X, Y)
    assert est.net_.optimizer_.defaults.get("fused") is True
    est = MMoERegressor(max_epochs=1, optimizer="rmsprop", random_state=0).fit(X, Y)
    assert not est.net_.optimizer_.defaults.get("fused")


@pytest.mark.parametrize("architecture", architecture_names())
@pytest.mark.parametrize(
    "n_features, n_tasks, n_experts, expert_units, tower_units",
    [
        (100, 2, 8, (16,), (8,)),
        (10, 3, 4, (32, 8), (8, 4)),
        (30, 16, 8, (64,), (32,)),
        (20, 2, 64, (16,), ()),
        (17, 2, 4, (8,), (4,)),  # an odd input width: narrow BLAS kernels differ by rows
        (20, 1, 5, (32, 10), (10,)),  # widths and a single head BLAS handles per row block
    ],
)
def test_predictions_do_not_depend_on_batching(
    architecture, n_features, n_tasks, n_experts, expert_units, tower_units
):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((4200, n_features))
    Y = rng.standard_normal((4200, n_tasks))
    est = MMoERegressor(
        architecture=architecture,
        n_experts=n_experts,
        expert_units=expert_units,
        tower_units=tower_units,
        max_epochs=1,
        random_state=0,
    ).fit(X[:500], Y[:500])
    full = est.predict(X)
    for start, n in [(0, 1), (7, 3), (5, 64), (100, 65), (1, 200), (3, 4096), (4090, 110)]:
        np.testing.assert_array_equal(est.predict(X[start : start + n]), full[start : start + n])
    if architecture in gated_architectures():
        gates = est.gate_weights(X)
        for start, n in [(7, 3), (1, 200), (3, 4096)]:
            part = est.gate_weights(X[start : start + n])
            np.testing.assert_array_equal(part, gates[start : start + n])


@pytest.mark.parametrize("width", [1, 2, 8, 15, 16, 40])
def test_padded_softmax_is_the_softmax(width):
    logits = torch.randn(50, 3, width, requires_grad=True)
    expected = torch.softmax(logits, -1)
    got = _softmax(logits)
    torch.testing.assert_close(got, expected)
    grad = torch.randn(50, 3, width)
    (a,) = torch.autograd.grad(got, logits, grad)
    (b,) = torch.autograd.grad(expected, logits, grad)
    torch.testing.assert_close(a, b)


def test_eval_reaches_a_submodule_switched_on_its_own():
    net = MixtureOfExperts(4, [1, 1]).eval()
    net.towers.train()
    net.eval()
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())


@pytest.mark.parametrize(("n", "batch", "shards"), [(100, 10, 3), (95, 10, 2), (10, 4, 4)])
def test_sharded_iterator_gives_equal_shares_covering_every_row(n, batch, shards):
    dataset = TensorDataset(torch.arange(n, dtype=torch.float32)[:, None], torch.ones(n, 3))
    rows, counts = [], set()
    for shard in range(shards):
        torch.manual_seed(0)  # every process draws the same permutation
        it = BatchIterator(dataset, batch, shuffle=True, num_shards=shards, shard=shard)
        batches = list(it)
        counts.add(len(batches))
        assert len(batches) == len(it)
        rows += [int(v) for Xb, _ in batches for v in Xb[:, 0]]
    assert len(counts) == 1  # the same number of steps on every process
    assert set(rows) == set(range(n))


def test_split_dataset_takes_rows_without_copying():
    X = torch.arange(20, dtype=torch.float32).view(10, 2)
    y = torch.ones(10, 2)
    valid = TensorDataset(X, y, index=torch.tensor([7, 2]))
    assert len(valid) == 2
    Xb, yb = valid.take(slice(0, 2))
    assert Xb[:, 0].tolist() == [14.0, 4.0]
    assert valid.X is X  # the split holds the same tensor
    assert valid[1][0].tolist() == [4.0, 5.0]
