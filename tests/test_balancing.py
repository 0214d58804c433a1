"""Balancing tasks: DWA, GradNorm, PCGrad and the task-conflict diagnostics.

Each method is checked for its defining property against a reference
written here from the paper, and the training step against per-task
gradients computed here with plain autograd.
"""

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import architecture_names, fast, gated_architectures
from skorch.callbacks import Callback

from sk_mmoe import MMoEMultiTask, MMoERegressor
from sk_mmoe._targets import TaskEncoder
from sk_mmoe.training._balancing import gradnorm_loss, project_conflicting
from sk_mmoe.training._factory import build_net
from sk_mmoe.training._loss import MultiTaskLoss

METHODS = ["uncertainty", "dwa", "gradnorm", "pcgrad"]
RNG = np.random.RandomState(0)
X = RNG.normal(size=(120, 5))
Y = np.column_stack([X[:, 0] + X[:, 1], np.sin(2 * X[:, 2]) - X[:, 1], X[:, 3] * X[:, 4]])


def _mixed():
    """A regression, a binary and a 3-class task, with missing labels."""
    rng = np.random.RandomState(1)
    y = pd.DataFrame(
        {
            "value": Y[:, 0],
            "side": np.where(X[:, 2] > 0, "a", "b").astype(object),
            "level": (np.digitize(X[:, 3], [-0.5, 0.5])).astype(float),
        }
    )
    y.loc[rng.rand(len(y)) < 0.2, "value"] = np.nan
    y.loc[rng.rand(len(y)) < 0.2, "side"] = None
    y.loc[rng.rand(len(y)) < 0.2, "level"] = np.nan
    return y


def _flat_task_gradients(losses, params):
    """``(T, P)``: each task loss's gradient on ``params``, by plain autograd."""
    rows = []
    for loss in losses:
        grads = torch.autograd.grad(loss, params, retain_graph=True)
        rows.append(torch.cat([g.reshape(-1) for g in grads]))
    return torch.stack(rows)


# ------------------------------------------------------------------ PCGrad
def _pcgrad_reference(grads, order):
    """The paper's Algorithm 1 in numpy, one task and one other task at a time."""
    grads = [np.asarray(g, dtype=np.float64) for g in grads]
    out = []
    for i, others in enumerate(order):
        g = grads[i].copy()
        for j in others:
            dot = g @ grads[j]
            if dot < 0:
                g = g - dot / (grads[j] @ grads[j]) * grads[j]
        out.append(g)
    return np.array(out)


def test_pcgrad_two_tasks_removes_every_conflict():
    g = torch.Generator().manual_seed(0)
    conflicts = 0
    for _ in range(50):
        grads = torch.randn(2, 30, generator=g, dtype=torch.float64)
        conflicts += bool(grads[0] @ grads[1] < 0)
        projected = project_conflicting(grads, [[1], [0]])
        # no projected task gradient conflicts with the other task's gradient,
        # and the update conflicts with neither task
        assert projected[0] @ grads[1] >= -1e-12
        assert projected[1] @ grads[0] >= -1e-12
        for k in range(2):
            assert projected.sum(0) @ grads[k] >= -1e-12
        np.testing.assert_allclose(projected, _pcgrad_reference(grads, [[1], [0]]))
    assert 10 < conflicts < 40  # both cases were exercised


def test_pcgrad_leaves_agreeing_gradients_alone_and_matches_the_paper():
    agreeing = torch.tensor([[1.0, 2.0, 0.0], [0.5, 1.0, 3.0], [1.0, 0.0, 1.0]])
    orders = [[1, 2], [2, 0], [0, 1]]
    torch.testing.assert_close(project_conflicting(agreeing, orders), agreeing)
    g = torch.Generator().manual_seed(1)
    grads = torch.randn(3, 20, generator=g, dtype=torch.float64)
    projected = project_conflicting(grads, orders)
    np.testing.assert_allclose(projected, _pcgrad_reference(grads, orders))
    # each row no longer conflicts with the last gradient it was projected on
    for i, others in enumerate(orders):
        assert projected[i] @ grads[others[-1]] >= -1e-12


# ---------------------------------------------------------------- GradNorm
def _gap(weights, norms, losses, initial, alpha):
    """GradNorm's |G_k - target_k| summed, written out from the paper."""
    G = weights * norms
    ratio = losses / initial
    target = G.mean() * (ratio / ratio.mean()) ** alpha
    return float(np.abs(G - target).sum()), G / G.mean(), (ratio / ratio.mean()) ** alpha


def test_gradnorm_loss_moves_the_norms_to_their_targets():
    norms = torch.tensor([4.0, 1.0, 0.5])  # task 0 dominates the shared layer
    losses = torch.tensor([0.2, 0.6, 0.9])
    initial = torch.tensor([1.0, 1.0, 1.0])  # task 0 trains fastest
    present = torch.ones(3, dtype=torch.bool)
    criterion = MultiTaskLoss(["regression"] * 3, [1] * 3, method="gradnorm")
    w = criterion.gradnorm_weights
    optimizer = torch.optim.SGD([w], lr=0.002)
    gaps = []
    for _ in range(1000):
        loss, _ = gradnorm_loss(w, norms, losses, initial, 1.5, present)
        gaps.append(_gap(w.detach().numpy(), norms.numpy(), losses.numpy(), initial.numpy(), 1.5))
        torch.testing.assert_close(loss.item(), gaps[-1][0], rtol=1e-5, atol=1e-6)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        criterion.after_step()  # the renormalisation of the paper
        np.testing.assert_allclose(w.sum().item(), 3.0, rtol=1e-6)
    assert gaps[-1][0] < 0.05 * gaps[0][0]
    # each task's share of the gradient norm moved most of the way to its
    # target (the L1 steps and the renormalisation keep it from landing exactly)
    _, relative, target = gaps[-1]
    _, relative0, target0 = gaps[0]
    assert np.abs(relative - target).sum() < 0.15 * np.abs(relative0 - target0).sum()
    # the slowest task (largest loss ratio) now has the largest weight
    assert w[2] > w[1] > w[0]


def test_gradnorm_ignores_a_task_without_labels_in_the_batch():
    w = torch.ones(3, requires_grad=True)
    norms, losses = torch.tensor([2.0, 1.0, 0.0]), torch.tensor([0.5, 0.5, 0.0])
    present = torch.tensor([True, True, False])
    loss, targets = gradnorm_loss(w, norms, losses, torch.ones(3), 1.5, present)
    loss.backward()
    assert w.grad[2] == 0 and torch.isnan(targets[2])
    torch.testing.assert_close(targets[:2], torch.tensor([1.5, 1.5]))


# ------------------------------------------------------------- uncertainty
def test_uncertainty_leaves_a_task_without_labels_in_the_batch_alone():
    criterion = MultiTaskLoss(["regression"] * 3, [1, 1, 1], method="uncertainty")
    with torch.no_grad():
        criterion.log_vars.copy_(torch.tensor([0.3, -0.7, 1.2]))
    losses = torch.tensor([0.5, 0.0, 2.0])  # task 1: no label in the batch
    present = torch.tensor([True, False, True])
    loss = criterion.total(losses, present)
    loss.backward()
    s = criterion.log_vars.detach()
    expected = sum(torch.exp(-s[k]) * losses[k] + s[k] for k in (0, 2))
    torch.testing.assert_close(loss.detach(), expected)
    assert criterion.log_vars.grad[1] == 0
    torch.testing.assert_close(
        criterion.log_vars.grad[[0, 2]], 1 - torch.exp(-s[[0, 2]]) * 0.5 * torch.tensor([1.0, 4.0])
    )


@pytest.mark.parametrize("method", [None, "uncertainty"])
def test_a_task_without_labels_in_the_batch_gets_finite_zero_gradients(method):
    # a large weight on a task absent from the batch must not turn its 0 / 0
    # into inf * 0 = NaN in the backward pass
    criterion = MultiTaskLoss(
        ["regression", "regression"], [1, 1], task_weights=[1.0, 10.0], method=method
    )
    if method == "uncertainty":
        with torch.no_grad():
            criterion.log_vars.fill_(-3.0)  # precision of about 20
    y_pred = torch.zeros(4, 2, requires_grad=True)
    y_true = torch.tensor([[1.0, float("nan"), 1.0]] * 4)
    criterion(y_pred, y_true).backward()
    assert torch.isfinite(y_pred.grad).all()
    assert (y_pred.grad[:, 1] == 0).all()
    assert (y_pred.grad[:, 0] < 0).all()


class LabelledBatchLosses(Callback):
    """Each task's mean training loss over the batches of the last epoch that label it."""

    def on_epoch_begin(self, net, **kwargs):
        self.sums, self.counts = np.zeros(2), np.zeros(2)

    def on_batch_end(self, net, batch=None, training=False, y_pred=None, **kwargs):
        if not training:
            return
        losses, present = net.criterion_.labelled_task_losses(y_pred.detach(), batch[1])
        labelled = np.ones(2, bool) if present is None else present.numpy()
        self.sums += np.where(labelled, losses.numpy(), 0)
        self.counts += labelled

    def on_epoch_end(self, net, **kwargs):
        net.history.record("labelled_batches", self.counts.tolist())
        net.history.record("labelled_batch_loss", (self.sums / self.counts).tolist())


@pytest.mark.filterwarnings("ignore:.*have no label for any task")
def test_uncertainty_weights_reach_the_inverse_loss_of_a_sparsely_labelled_task():
    # Kendall et al.: exp(-s) * L + s is least at s = log L, so the learned
    # precision exp(-s) ends near 1 / (the task's loss on the batches that
    # train it), however rarely the task is labelled
    rng = np.random.RandomState(0)
    n = 2000
    X = rng.normal(size=(n, 2))
    y = np.column_stack([X[:, 0] + 0.5 * rng.normal(size=n), X[:, 1] + rng.normal(size=n)])
    y[rng.rand(n) > 0.05, 1] = np.nan  # task 1: 5% of rows, about 1 batch in 3
    model = MMoERegressor(
        task_weights="uncertainty",
        missing_targets="ignore",
        early_stopping=False,
        callbacks=[LabelledBatchLosses()],
        **fast(max_epochs=12, batch_size=8, lr=0.01),
    ).fit(X, y)
    history = model.net_.history
    share = np.array(history[-1, "labelled_batches"]) / history[-1, "train_batch_count"]
    assert share[0] == 1 and 0.2 < share[1] < 0.5
    # the mean over the last epochs smooths the batch-to-batch noise of the losses
    losses = np.mean(history[-4:, "labelled_batch_loss"], axis=0)
    precision = model.net_.criterion_.weights().numpy()
    np.testing.assert_allclose(precision * losses, 1.0, rtol=0.25)


def _net(method, **params):
    """An initialised net for X and Y, and the training dataset."""
    hyper = MMoERegressor(task_weights=method, **fast(**params))._check_hyperparameters()
    encoder = TaskEncoder(["regression"] * 3, ["0", "1", "2"])
    encoder.fit(list(Y.T), sample_weight=np.ones(len(Y)))
    net = build_net(
        hyper,
        n_features=X.shape[1],
        encoder=encoder,
        target_names=np.array(["a", "b", "c"], dtype=object),
        task_weights=None,
    )
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net.initialize()
    net.history.new_epoch()
    Xb = torch.from_numpy(X.astype(np.float32))
    yb = torch.from_numpy(encoder.transform(list(Y.T)).astype(np.float32))
    return net, Xb, yb


def _last_layer_norms(net, Xb, yb):
    """Each task's gradient norm on the last shared layer, with plain autograd."""
    module = net.module_
    losses = net.criterion_.task_losses(module(Xb), yb)
    W = module.last_shared_parameters()
    return torch.stack(
        [
            torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, W, retain_graph=True)])
            .norm()
            .detach()
            for loss in losses
        ]
    ), losses.detach()


def test_gradnorm_step_moves_the_network_norms_toward_their_targets():
    # the network frozen (only the task weights in the optimizer): GradNorm's
    # steps alone must shrink the gap between the norms and their targets
    net, Xb, yb = _net("gradnorm")
    criterion = net.criterion_
    net.optimizer_ = torch.optim.SGD([criterion.gradnorm_weights], lr=0.2)
    norms, losses = _last_layer_norms(net, Xb, yb)
    # pretend the tasks trained at different rates so far
    criterion.initial_losses.copy_(losses * torch.tensor([4.0, 1.5, 1.0]))
    before = _gap(np.ones(3), norms.numpy(), losses.numpy(), criterion.initial_losses.numpy(), 1.5)
    net.run_single_epoch([(Xb, yb)] * 100, True, "train", net.train_step)
    w = criterion.gradnorm_weights.detach().numpy()
    after = _gap(w, norms.numpy(), losses.numpy(), criterion.initial_losses.numpy(), 1.5)
    assert after[0] < 0.15 * before[0]
    assert np.abs(after[1] - after[2]).sum() < 0.2 * np.abs(before[1] - before[2]).sum()
    np.testing.assert_allclose(w.sum(), 3.0, rtol=1e-5)  # renormalised after each step
    # the task that trained fastest so far is weighted down
    assert w[0] < 1 < w[2]


def test_pcgrad_step_gives_the_shared_parameters_the_projected_sum():
    net, Xb, yb = _net("pcgrad")
    net.optimizer_ = torch.optim.SGD(net.module_.parameters(), lr=0.0)
    module = net.module_
    shared = module.shared_parameters()
    losses = net.criterion_.task_losses(module(Xb), yb)
    grads = torch.stack(
        [
            torch.cat(
                [g.reshape(-1) for g in torch.autograd.grad(loss, shared, retain_graph=True)]
            )
            for loss in losses
        ]
    )
    towers = torch.autograd.grad(losses.sum(), module.task_parameters())
    with torch.random.fork_rng():
        torch.manual_seed(5)
        net.run_single_epoch([(Xb, yb)], True, "train", net.train_step)
        torch.manual_seed(5)
        orders = [[j if j < i else j + 1 for j in torch.randperm(2).tolist()] for i in range(3)]
    expected = _pcgrad_reference(grads.double(), orders).sum(0)
    got = torch.cat([p.grad.reshape(-1) for p in shared]).double().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
    for p, g in zip(module.task_parameters(), towers):
        torch.testing.assert_close(p.grad, g)


# --------------------------------------------------------------------- DWA
class TaskLosses(Callback):
    """Mean training loss of each task per epoch, computed here from each batch."""

    def on_epoch_begin(self, net, **kwargs):
        self.sums, self.counts = np.zeros(3), np.zeros(3)

    def on_batch_end(self, net, batch=None, training=False, y_pred=None, **kwargs):
        if not training:
            return
        y = batch[1]
        losses = net.criterion_.task_losses(y_pred.detach(), y).numpy()
        labelled = np.ones(3, bool) if y.shape[1] == 3 else ~np.isnan(y[:, :3].numpy()).all(0)
        self.sums += np.where(labelled, losses, 0)
        self.counts += labelled

    def on_epoch_end(self, net, **kwargs):
        net.history.record("test_task_losses", (self.sums / self.counts).tolist())


@pytest.mark.filterwarnings("ignore:.*have no label for any task")
@pytest.mark.parametrize("temperature", [2.0, 0.5])
def test_dwa_weights_follow_the_ratio_of_recent_losses(temperature):
    y = Y.copy()
    y[RNG.rand(*y.shape) < 0.2] = np.nan  # missing labels
    model = MMoERegressor(
        task_weights="dwa",
        dwa_temperature=temperature,
        missing_targets="ignore",
        callbacks=[TaskLosses()],
        **fast(max_epochs=6, batch_size=32, lr=0.02),
    ).fit(X, y, sample_weight=RNG.uniform(0.5, 2, len(X)))
    weights = np.array(model.net_.history[:, "task_weights"])
    losses = np.array(model.net_.history[:, "test_task_losses"])
    np.testing.assert_allclose(weights.sum(1), 3.0, rtol=1e-6)
    np.testing.assert_array_equal(weights[:2], 1.0)  # the first two epochs
    for t in range(2, len(weights)):
        ratio = losses[t - 1] / losses[t - 2]
        expected = 3 * np.exp(ratio / temperature) / np.exp(ratio / temperature).sum()
        np.testing.assert_allclose(weights[t], expected, rtol=1e-4)
    assert np.ptp(weights[2:]) > 1e-3  # the weights did move


def test_dwa_goes_on_across_partial_fit_calls():
    model = MMoERegressor(task_weights="dwa", **fast(lr=0.02))
    for _ in range(4):
        model.partial_fit(X, Y)
    weights = np.array(model.net_.history[:, "task_weights"])
    np.testing.assert_array_equal(weights[:2], 1.0)
    assert not np.allclose(weights[3], 1.0)
    np.testing.assert_allclose(weights.sum(1), 3.0, rtol=1e-6)


# -------------------------------------------------- every method, every case
@pytest.mark.filterwarnings("ignore:.*have no label for any task")
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("architecture", architecture_names())
def test_methods_train_mixed_tasks_with_missing_labels_and_early_stopping(method, architecture):
    y = _mixed()
    model = MMoEMultiTask(
        architecture=architecture,
        task_weights=method,
        missing_targets="ignore",
        early_stopping=True,
        validation_fraction=0.25,
        n_iter_no_change=50,
        **fast(max_epochs=3, batch_size=32),
    ).fit(X, y, sample_weight=RNG.uniform(0.5, 2, len(X)))
    history = model.net_.history
    assert np.isfinite(history[:, "train_loss"]).all()
    # it learns: the held-out loss falls
    assert history[-1, "valid_loss"] < history[0, "valid_loss"]
    if method in ("uncertainty", "dwa", "gradnorm"):
        # validation compares epochs on one scale: the unweighted sum
        per_task = np.array([history[:, f"valid_loss_{n}"] for n in y.columns]).sum(0)
        np.testing.assert_allclose(history[:, "valid_loss"], per_task, rtol=1e-4)
    if method in ("dwa", "gradnorm"):
        np.testing.assert_allclose(np.sum(history[-1, "task_weights"]), 3.0, rtol=1e-5)
    if method == "uncertainty":
        # exp(-s) * L + s pulls the precision exp(-s) up for a loss below 1 (the
        # binary task: about log 2) and down above 1 (3 classes: about log 3)
        _, binary, multiclass = model.net_.criterion_.weights().numpy()
        assert binary > 1 > multiclass
    assert model.predict(X).shape == (len(X), 3)


def test_gradnorm_weights_move_and_sum_to_the_number_of_tasks():
    model = MMoERegressor(task_weights="gradnorm", **fast(max_epochs=5, lr=0.02, batch_size=32))
    model.fit(X, Y)
    weights = np.array(model.net_.history[:, "task_weights"])
    np.testing.assert_allclose(weights.sum(1), 3.0, rtol=1e-5)
    assert np.ptp(weights[-1]) > 1e-3
    initial = model.net_.criterion_.initial_losses
    assert torch.isfinite(initial).all()


# ------------------------------------------------------------- diagnostics
class GradientsAtFirstBatch(Callback):
    """Each task's gradient on the shared parameters before the first step, by autograd."""

    def on_batch_begin(self, net, batch=None, training=False, **kwargs):
        if not training or hasattr(self, "cosine"):
            return
        module = net.module_
        shared = module.shared_parameters()
        losses = net.criterion_.task_losses(module(batch[0]), batch[1])
        grads = _flat_task_gradients(losses, shared)
        norms = grads.norm(dim=1)
        self.norms = norms.numpy()
        self.cosine = ((grads @ grads.T) / torch.outer(norms, norms)).numpy()


@pytest.mark.parametrize("architecture", architecture_names())
def test_conflict_diagnostics_record_the_task_gradients(architecture):
    probe = GradientsAtFirstBatch()
    model = MMoERegressor(
        architecture=architecture,
        track_task_conflict=True,
        callbacks=[probe],
        **fast(max_epochs=2, batch_size=len(X)),  # one batch per epoch
    ).fit(X, Y)
    probe = next(cb for _, cb in model.net_.callbacks_ if isinstance(cb, GradientsAtFirstBatch))
    first = model.net_.history[0]
    np.testing.assert_allclose(first["task_grad_cosine"], probe.cosine, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(first["task_grad_norm"], probe.norms, rtol=1e-4)
    # one batch per epoch: a pair conflicted in the epoch iff its cosine is negative
    np.testing.assert_array_equal(
        np.array(first["task_grad_conflict"]), (probe.cosine < 0).astype(float)
    )
    cosine = np.array(model.net_.history[-1, "task_grad_cosine"])
    np.testing.assert_allclose(np.diag(cosine), 1.0, rtol=1e-5)
    np.testing.assert_allclose(cosine, cosine.T, atol=1e-6)


def test_diagnostics_are_off_by_default():
    model = MMoERegressor(**fast(max_epochs=1)).fit(X, Y)
    assert "task_grad_cosine" not in model.net_.history[-1]


@pytest.mark.parametrize("method", ["dwa", "gradnorm"])
def test_learned_weights_survive_save_and_load(method, tmp_path):
    model = MMoERegressor(task_weights=method, **fast(max_epochs=4, lr=0.02)).fit(X, Y)
    model.save(tmp_path / "model.skm")
    loaded = MMoERegressor.load(tmp_path / "model.skm")
    ours, theirs = model.net_.criterion_.state_dict(), loaded.net_.criterion_.state_dict()
    assert ours.keys() == theirs.keys()
    for key in ours:
        torch.testing.assert_close(ours[key], theirs[key], equal_nan=True)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    if method == "gradnorm":
        assert torch.isfinite(theirs["initial_losses"]).all()
        return
    # DWA goes on with the weights the saved model had set for its next epoch
    model.partial_fit(X, Y)
    loaded.partial_fit(X, Y)
    np.testing.assert_array_equal(
        loaded.net_.history[-1, "task_weights"], model.net_.history[-1, "task_weights"]
    )
    assert not np.allclose(loaded.net_.history[-1, "task_weights"], 1.0)


@pytest.mark.parametrize("architecture", architecture_names())
@pytest.mark.parametrize("categorical", [False, True])
def test_shared_and_task_parameters_split_the_network(architecture, categorical):
    X_in = pd.DataFrame(X, columns=list("abcde"))
    if categorical:
        X_in["kind"] = pd.Categorical(np.where(X[:, 0] > 0, "u", "v"))
    # an embedded category column and embedded numbers: the input blocks' weights are shared
    model = MMoERegressor(
        architecture=architecture, one_hot_max_categories=None, **fast(max_epochs=1)
    ).fit(X_in, Y)
    module = model.module_
    shared, own = module.shared_parameters(), module.task_parameters()
    everything = {id(p) for p in module.parameters()}
    assert {id(p) for p in shared} | {id(p) for p in own} == everything
    assert not {id(p) for p in shared} & {id(p) for p in own}
    assert {id(p) for p in module.last_shared_parameters()} <= {id(p) for p in shared}
    if categorical:
        assert any(p is module.embedding.weight for p in shared)
        numeric = {id(p) for p in module.numeric_embedding.parameters()}
        assert numeric and numeric <= {id(p) for p in shared}
    rows = torch.from_numpy(
        model.input_encoder_.transform(X_in, X_in.columns)
        if model.input_encoder_ is not None
        else X.astype(np.float32)
    )
    targets = torch.from_numpy(model.target_encoder_.transform(list(Y.T)).astype(np.float32))
    losses = model.net_.criterion_.task_losses(module(rows.float()), targets)
    for k, loss in enumerate(losses):
        grads = torch.autograd.grad(loss, shared + own, retain_graph=True, allow_unused=True)
        # every task reaches every shared tensor ...
        assert all(g is not None and g.abs().sum() > 0 for g in grads[: len(shared)])
        # ... and only its own slice of the towers and heads (batched over tasks)
        for g in grads[len(shared) :]:
            others = [j for j in range(len(losses)) if j != k]
            assert g is None or g[others].abs().sum() == 0


# ------------------------------------------------------------ gate entropy
def _gate_entropy(model, X_rows):
    return float(model.gate_summary(X_rows)["entropy"].mean())


@pytest.mark.parametrize("architecture", gated_architectures())
def test_gate_entropy_bonus_is_the_mean_entropy_of_the_gates(architecture):
    model = MMoERegressor(
        architecture=architecture, gate_entropy_bonus=0.5, **fast(max_epochs=1)
    ).fit(X, Y)
    module = model.module_
    rows = torch.from_numpy(X.astype(np.float32))
    module.train()
    module(rows)
    term = module.auxiliary_loss()
    assert module.auxiliary_loss() is None  # taken once
    levels = getattr(module, "n_levels", 1)
    with torch.no_grad():
        entropies = []
        for level in range(levels):
            w = module.gate_weights(rows, level=level).double()  # (B, G, E)
            if architecture == "moe":
                w = w[:, :1]  # one gate, repeated for every task
            h = -(w * torch.log(w.clamp_min(1e-300))).sum(-1)  # (B, G)
            entropies.append(h.mean(0).sum())  # each gate's mean, summed over gates
    module.eval()
    torch.testing.assert_close(
        term.double(), -0.5 * torch.stack(entropies).sum(), rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("method", [None, "pcgrad"])
def test_gate_entropy_bonus_keeps_gates_mixing(method):
    # a high learning rate sharpens the gates; the bonus holds their entropy up
    params = fast(max_epochs=8, lr=0.05, n_experts=4, batch_size=32, task_weights=method)
    sharp = MMoERegressor(**params).fit(X, Y)
    mixing = MMoERegressor(gate_entropy_bonus=0.5, **params).fit(X, Y)
    assert _gate_entropy(mixing, X) > _gate_entropy(sharp, X) + 0.25
    assert _gate_entropy(mixing, X) > 0.85 * np.log(4)  # near uniform over 4 experts
