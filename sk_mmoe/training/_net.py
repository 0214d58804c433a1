"""The skorch side: an in-memory dataset, a whole-batch iterator, the net.

skorch runs the training loop; this module swaps in a fast iterator (tensor
slicing instead of row-by-row collation), a lean set of default callbacks
and a per-batch path without skorch's repeated per-batch bookkeeping (see
:class:`MMoENet`), and the net that trains through an ``accelerate``
accelerator in several processes (:class:`AcceleratedMMoENet`). Of the
package it imports only the tensor functions of ``_balancing`` and the
cross-process helpers of ``_distributed``.
"""

from __future__ import annotations

import contextlib
import inspect
import warnings

import numpy as np
import torch
from skorch import NeuralNet
from skorch.callbacks import Callback, EpochTimer, PassthroughScoring, PrintLog, ProgressBar
from skorch.hf import AccelerateMixin
from skorch.utils import TeeGenerator, to_tensor

from ._balancing import (
    cosine_and_norms,
    gradnorm_loss,
    project_conflicting,
    random_orders,
    task_gradients,
)
from ._distributed import all_reduce_sum, broadcast_rng_state, check_same_rows, n_processes


class TensorDataset(torch.utils.data.Dataset):
    """Rows of an input ``X (n, d)`` and a target tensor ``y (n, T + 1)``.

    ``X`` is a tensor, or a scipy sparse CSR matrix densified batch by batch.

    With ``index`` (a 1-D long tensor) the dataset is those rows only, in
    that order, without copying ``X``: a train / validation split costs two
    index tensors, not two copies of the data.
    """

    def __init__(
        self,
        X: torch.Tensor,
        y: torch.Tensor | None = None,
        index: torch.Tensor | None = None,
    ):
        self.X = X
        self.y = y
        self.index = index

    def __len__(self) -> int:
        return self.X.shape[0] if self.index is None else len(self.index)

    def __getitem__(self, i):
        X, y = self.take(i)
        return X, (y if y is not None else torch.empty(0))

    def take(self, positions, y=None):
        """``(X_rows, y_rows)`` at ``positions`` (int, slice or 1-D long tensor) of this dataset.

        ``y`` replaces ``self.y`` (e.g. the targets without the weight column).
        A scipy sparse ``X`` (CSR) gives those rows densified: only one batch
        of the data is ever dense.
        """
        y = self.y if y is None else y
        if self.index is not None:
            positions = self.index[positions]
        if isinstance(positions, torch.Tensor) and positions.ndim == 1:
            rows = (
                self.X.index_select(0, positions)
                if isinstance(self.X, torch.Tensor)
                else _dense_rows(self.X, positions.numpy())
            )
            return rows, (y.index_select(0, positions) if y is not None else None)
        # a slice (a view, no copy) or a single row
        rows = (
            self.X[positions]
            if isinstance(self.X, torch.Tensor)
            else _dense_rows(self.X, positions)
        )
        return rows, (y[positions] if y is not None else None)


def _dense_rows(X, positions):
    """Rows of a scipy sparse matrix as a dense float32 tensor (1-D for an int position)."""
    if isinstance(positions, (int, np.integer)):
        return torch.from_numpy(X[[positions]].toarray().astype(np.float32, copy=False))[0]
    return torch.from_numpy(X[positions].toarray().astype(np.float32, copy=False))


class BatchIterator:
    """Yield ``(X_batch, y_batch)`` tensors by slicing a :class:`TensorDataset`.

    With ``shuffle=True`` a fresh permutation is drawn from torch's
    (forked, seeded) generator each epoch and each batch is gathered with
    one ``index_select`` per tensor. With ``num_shards > 1`` (one shard per
    process of a distributed run) it yields every ``num_shards``-th batch
    from batch ``shard`` on, all shards the same number. Batches are cast to float32 (a no-op
    for the float32 data the estimators pass).

    ``y_batch`` is ``(B, T + 1)`` as stored, or ``(B, T)`` -- the targets
    alone -- when no target is missing and every sample weight is 1: then
    :class:`~sk_mmoe.training._loss.MultiTaskLoss` takes its unweighted path. This is
    decided once, here, rather than again for every batch.
    """

    def __init__(
        self,
        dataset: TensorDataset,
        batch_size: int,
        shuffle: bool = False,
        num_shards: int = 1,
        shard: int = 0,
    ):
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.num_shards = int(num_shards)
        self.shard = int(shard)
        # a streamed dataset (sk_mmoe.data._parquet) makes its own batches
        self._streamed = not isinstance(dataset, TensorDataset)
        self._y = None if self._streamed else _unweighted_targets(dataset.y)

    def _starts(self):
        """First row of each batch this shard yields."""
        starts = range(0, len(self.dataset), self.batch_size)
        if self.num_shards == 1:
            return starts
        # every shard gets the same number of batches (distributed training
        # waits for all processes at each step): wrap around to fill the last
        per_shard = -(-len(starts) // self.num_shards)
        total = per_shard * self.num_shards
        return [starts[b % len(starts)] for b in range(self.shard, total, self.num_shards)]

    def __len__(self) -> int:
        if self._streamed:  # an upper bound: rows may be masked or unlabelled
            return -(-len(self.dataset) // self.batch_size)
        return len(self._starts())

    def __iter__(self):
        if self._streamed:
            yield from self.dataset.batches(
                self.batch_size, self.shuffle, self.num_shards, self.shard
            )
            return
        size = self.batch_size
        # every shard draws the same permutation: the processes share the seed
        perm = torch.randperm(len(self.dataset)) if self.shuffle else None
        for start in self._starts():
            stop = start + size
            positions = slice(start, stop) if perm is None else perm[start:stop]
            X, y = self.dataset.take(positions, self._y)
            yield X.float(), y


def _unweighted_targets(y: torch.Tensor | None) -> torch.Tensor | None:
    """``y (n, T + 1)`` without its weight column if that is all 1 and no target is NaN."""
    if y is None or y.ndim != 2 or y.shape[1] < 2 or not y.is_floating_point():
        return y
    targets, weight = y[:, :-1], y[:, -1]
    if bool((weight == 1).all()) and not bool(targets.isnan().any()):
        return targets.contiguous()
    return y


class MMoENet(NeuralNet):
    """A skorch :class:`~skorch.NeuralNet` with a lean per-batch path.

    Per-epoch logging only; the progress bar is added when ``verbose > 0``.

    skorch's loop is kept (callbacks, history, ``partial_fit``); what differs
    from :class:`~skorch.NeuralNet`:

    - train/eval mode is set once per epoch (in :meth:`run_single_epoch`),
      not once per batch. A callback that switches the mode of (part of) the
      module inside an epoch keeps its switch until the epoch ends, where
      skorch would undo it at the next batch.
    - batch-level hooks (``on_batch_begin``, ``on_batch_end``,
      ``on_grad_computed``) are called only on the callbacks that override
      them; the others' are :class:`~skorch.callbacks.Callback`'s no-ops. The
      list is taken at the start of each epoch.
    - torch's fused optimizer kernel (``fused=True``: one kernel for all
      parameters instead of several ops per parameter tensor) is used where
      the optimizer class, the device and the torch version support it and
      the user set neither ``fused`` nor ``foreach``. It computes the same
      update; only the rounding of the last bits may differ.

    Every batch still notifies ``on_batch_begin`` / ``on_batch_end`` and
    records ``*_loss`` and ``*_batch_size`` in the history, so the epoch's
    ``train_loss``, :class:`~skorch.callbacks.EarlyStopping`,
    :class:`~skorch.callbacks.ProgressBar` and user callbacks work as usual.

    Per-task gradients: when the criterion needs them (GradNorm, PCGrad; its
    ``needs_task_gradients``) or a callback has ``needs_task_gradients =
    True``, each training step runs one backward pass per task on the
    module's ``shared_parameters()`` (see :meth:`task_gradient_step`) and
    hands ``task_grad_cosine`` ``(T, T)`` and ``task_grad_norm`` ``(T,)`` to
    ``on_batch_end``. Otherwise the step is the plain one.
    """

    @property
    def _default_callbacks(self):
        callbacks = [
            ("epoch_timer", EpochTimer()),
            ("train_loss", PassthroughScoring(name="train_loss", on_train=True)),
            ("valid_loss", PassthroughScoring(name="valid_loss")),
        ]
        if self.verbose:
            callbacks += [
                ("progress_bar", ProgressBar(detect_notebook=False)),
                ("print_log", PrintLog()),
            ]
        return callbacks

    def get_params_for_optimizer(self, prefix, named_parameters):
        args, kwargs = super().get_params_for_optimizer(prefix, named_parameters)
        if prefix == "optimizer":
            kwargs = _with_fused_kernel(self.optimizer, args, kwargs)
        return args, kwargs

    def run_single_epoch(self, iterator, training, prefix, step_fn, **fit_params):
        if iterator is None:
            return
        self._set_training(training)
        self._conflict = training and any(
            getattr(cb, "needs_task_gradients", False) for _, cb in self.callbacks_
        )
        self._task_step = training and (
            self._conflict or getattr(self.criterion_, "needs_task_gradients", False)
        )
        if self._task_step:
            shared = self.module_.shared_parameters()
            ids = {id(p) for p in shared}
            self._shared = shared
            self._unshared = [p for _, p in self.get_all_learnable_params() if id(p) not in ids]
        # callbacks whose batch-level hooks do something (Callback's are no-ops)
        begin = _listeners(self.callbacks_, "on_batch_begin")
        end = _listeners(self.callbacks_, "on_batch_end")
        self._grad_listeners = _listeners(self.callbacks_, "on_grad_computed")
        if type(self).on_grad_computed is not NeuralNet.on_grad_computed:
            self._grad_listeners.insert(0, self)
        history = self.history
        loss_key, size_key = prefix + "_loss", prefix + "_batch_size"
        batch_count = 0
        for batch in iterator:
            self.on_batch_begin(self, batch=batch, training=training)
            for cb in begin:
                cb.on_batch_begin(self, batch=batch, training=training)
            step = step_fn(batch, **fit_params)
            history.record_batch(loss_key, step["loss"].item())
            history.record_batch(size_key, len(batch[0]))
            self.on_batch_end(self, batch=batch, training=training, **step)
            for cb in end:
                cb.on_batch_end(self, batch=batch, training=training, **step)
            batch_count += 1
        history.record(prefix + "_batch_count", batch_count)

    def validation_step(self, batch, **fit_params):
        # the module is already in eval mode (set by run_single_epoch)
        Xi, yi = batch
        with torch.no_grad():
            y_pred = self.infer(Xi, **fit_params)
            loss = self.get_loss(y_pred, yi, X=Xi, training=False)
        return {"loss": loss, "y_pred": y_pred}

    def train_step_single(self, batch, **fit_params):
        # the module is already in train mode (set by run_single_epoch)
        Xi, yi = batch
        y_pred = self.infer(Xi, **fit_params)
        if getattr(self, "_task_step", False):
            return self.task_gradient_step(y_pred, yi)
        loss = self.get_loss(y_pred, yi, X=Xi, training=True)
        extra = _auxiliary_loss(self.module_)
        if extra is not None:
            loss = loss + extra
        loss.backward()
        return {"loss": loss, "y_pred": y_pred}

    def task_gradient_step(self, y_pred, y_true):
        """Gradients from each task's own backward pass on the shared parameters.

        With ``T`` tasks: ``T`` backward passes for the task gradients ``g_k``
        on the shared parameters (of the unweighted task losses; GradNorm only:
        on the last shared layer), and one pass for the other parameters
        (towers, heads, learned loss weights) with the loss as usual. The
        shared parameters get ``sum_k w_k g_k``, or PCGrad's projected sum.
        GradNorm's weights get the gradient of its loss; the others do not
        change. Returns the step's dict, with the conflict statistics of
        ``w_k g_k`` when a callback asked for them.
        """
        criterion = self.criterion_
        y_true = y_true.to(self.device)
        extra = _auxiliary_loss(self.module_)  # the gates' entropy bonus: shared parameters
        losses, present = criterion.labelled_task_losses(y_pred, y_true)
        loss = criterion.total(losses, present)
        weights = criterion.weights()
        method = getattr(criterion, "method", None)
        n_tasks = len(losses)
        labelled = (
            torch.ones(n_tasks, dtype=torch.bool, device=losses.device)
            if present is None
            else present
        )
        flags = labelled.tolist()
        whole = self._conflict or method == "pcgrad"
        params = self._shared if whole else self.module_.last_shared_parameters()
        grads = task_gradients(losses, params, flags)  # (T, P)
        if method == "gradnorm":
            self._gradnorm_weights_grad(losses, labelled, grads, params, whole)
        weighted = grads * weights.unsqueeze(1)  # (T, P)
        if whole:
            update = (
                project_conflicting(weighted, random_orders(n_tasks)).sum(0)
                if method == "pcgrad"
                else weighted.sum(0)
            )
            if extra is not None:
                grads = torch.autograd.grad(extra, params, retain_graph=True, allow_unused=True)
                update = update + torch.cat(
                    [
                        (g if g is not None else torch.zeros_like(p)).reshape(-1)
                        for g, p in zip(grads, params)
                    ]
                )
                loss = loss + extra.detach()
            offset = 0
            for p in params:
                p.grad = update[offset : offset + p.numel()].view_as(p).clone()
                offset += p.numel()
            others = [p for p in self._unshared if p is not criterion.gradnorm_weights]
            loss.backward(inputs=others)
        else:
            if extra is not None:
                loss = loss + extra
            loss.backward()
        step = {"loss": loss, "y_pred": y_pred}
        if self._conflict:
            cosine, norms = cosine_and_norms(weighted.detach())
            step.update(task_grad_cosine=cosine, task_grad_norm=norms)
        return step

    def _gradnorm_weights_grad(self, losses, labelled, grads, params, whole):
        """Set the gradient of GradNorm's task weights from the task gradients ``(T, P)``."""
        criterion = self.criterion_
        criterion.start_gradnorm_step(losses, labelled)
        last = {id(p) for p in self.module_.last_shared_parameters()}
        columns = _columns(params, last, grads.device)
        norms = grads.index_select(1, columns).norm(dim=1) if whole else grads.norm(dim=1)
        balance, _ = gradnorm_loss(
            criterion.gradnorm_weights,
            norms,
            losses,
            criterion.initial_losses,
            criterion.gradnorm_alpha,
            labelled,
        )
        (criterion.gradnorm_weights.grad,) = torch.autograd.grad(
            balance, criterion.gradnorm_weights
        )

    def train_step(self, batch, **fit_params):
        # skorch's train_step, notifying on_grad_computed only to listeners
        step_accumulator = self.get_train_step_accumulator()
        listeners = getattr(self, "_grad_listeners", None)

        def step_fn():
            self._zero_grad_optimizer()
            step = self.train_step_single(batch, **fit_params)
            step_accumulator.store_step(step)
            if listeners is None:  # called outside run_single_epoch
                self.notify(
                    "on_grad_computed",
                    named_parameters=TeeGenerator(self.get_all_learnable_params()),
                    batch=batch,
                    training=True,
                )
            elif listeners:
                named_parameters = TeeGenerator(self.get_all_learnable_params())
                for cb in listeners:
                    cb.on_grad_computed(self, named_parameters, batch=batch, training=True)
            return step["loss"]

        self._step_optimizer(step_fn)
        if getattr(self, "_task_step", False):
            self.criterion_.after_step()
        return step_accumulator.get_step()


def _auxiliary_loss(module):
    """The module's extra training-loss term of its last forward pass, or None."""
    take = getattr(module, "auxiliary_loss", None)
    return take() if take is not None else None


def _columns(params, chosen, device):
    """Positions ``(P',)`` in the flattened ``params`` of those whose id is in ``chosen``."""
    spans, offset = [], 0
    for p in params:
        if id(p) in chosen:
            spans.append(torch.arange(offset, offset + p.numel(), device=device))
        offset += p.numel()
    return torch.cat(spans)


def _with_fused_kernel(optimizer, args, kwargs):
    """``kwargs`` plus ``fused=True`` where ``optimizer`` accepts that for these params."""
    if "fused" in kwargs or "foreach" in kwargs:
        return kwargs
    try:
        if "fused" not in inspect.signature(optimizer).parameters:
            return kwargs
        groups = [dict(group) for group in args[0]]  # the optimizer edits its groups
        optimizer(groups, *args[1:], **kwargs, fused=True)
    except (RuntimeError, ValueError, TypeError):
        # an older torch, a device or dtype without a fused kernel
        return kwargs
    return {**kwargs, "fused": True}


def _listeners(callbacks, hook):
    """The callbacks among ``(name, callback)`` pairs that override ``hook``."""
    noop = getattr(Callback, hook)
    return [cb for _, cb in callbacks if getattr(type(cb), hook, noop) is not noop]


class PlainModulesAccelerator:
    """An ``accelerate.Accelerator`` as :class:`AcceleratedMMoENet` hands it to skorch.

    skorch's :class:`~skorch.hf.AccelerateMixin` replaces the net's module
    and criterion by what ``accelerator.prepare`` returns. Across processes
    that is a ``DistributedDataParallel`` wrapper, which hides the module's
    attributes (its ``auxiliary_loss``, the loss's weighting methods), adds
    ``"module."`` to every key of its ``state_dict`` (so early stopping's
    best weights no longer load once the module is unwrapped) and cannot
    wrap a module without trainable parameters (the loss with fixed task
    weights: DDP raises).

    This object gives skorch the modules back as they are and keeps what
    ``prepare`` made of each aside (:meth:`prepared`), for the net's training
    step; a module without trainable parameters is not prepared at all (it
    has no gradient to synchronise). Everything else (optimizers, iterators,
    ``backward``, ``autocast``, ``is_main_process``, ...) is the accelerator's.

    Parameters
    ----------
    accelerator : accelerate.Accelerator
        The estimator's accelerator.
    """

    def __init__(self, accelerator):
        self.accelerator = accelerator
        self._prepared = {}

    def __getattr__(self, name):
        # called only for names this object lacks: the accelerator's
        accelerator = self.__dict__.get("accelerator")
        if accelerator is None:
            raise AttributeError(name)
        return getattr(accelerator, name)

    def prepare(self, obj):
        """``obj`` prepared by the accelerator; a module is returned as it is.

        Parameters
        ----------
        obj : object
            What skorch prepares: a module, criterion, optimizer, iterator or
            learning-rate scheduler.

        Returns
        -------
        object
            ``obj`` itself for a ``torch.nn.Module``, else what
            ``accelerator.prepare(obj)`` returns.
        """
        if not isinstance(obj, torch.nn.Module):
            return self.accelerator.prepare(obj)
        if any(p.requires_grad for p in obj.parameters()):
            self._prepared[obj] = self.accelerator.prepare(obj)
        return obj

    def prepared(self, module):
        """What ``prepare`` made of ``module`` (a DDP wrapper), or ``module`` itself."""
        return self._prepared.get(module, module)


class ProcessMeanScoring(PassthroughScoring):
    """skorch's :class:`~skorch.callbacks.PassthroughScoring` over all processes.

    The epoch's loss is the mean of every process's batch losses, weighted
    by batch size: the same number on every process, so that decisions taken
    on it (early stopping, the divergence guard) agree and no process waits
    for another that stopped.
    """

    def get_avg_score(self, history):
        net = self._net
        if n_processes(net.accelerator) == 1:
            return super().get_avg_score(history)
        size_key = "train_batch_size" if self.on_train else "valid_batch_size"
        sizes, losses = (
            np.asarray(v, dtype=np.float64)
            for v in zip(*history[-1, "batches", :, [size_key, self.name]])
        )
        local = torch.tensor(
            [float((sizes * losses).sum()), float(sizes.sum())], dtype=torch.float64
        )
        total, weight = all_reduce_sum(local, net.device).tolist()
        return total / weight

    def on_epoch_end(self, net, **kwargs):
        self._net = net  # for get_avg_score, which skorch hands the history only
        try:
            super().on_epoch_end(net, **kwargs)
        finally:
            self._net = None


#: DWA's running sums over an epoch's batches (buffers of the loss module):
#: summed over the processes before the epoch's weights are derived from them
_EPOCH_SUMS = ("epoch_loss_sum", "epoch_batches")


class AcceleratedMMoENet(AccelerateMixin, MMoENet):
    """:class:`MMoENet` trained through an ``accelerate.Accelerator``.

    skorch's :class:`~skorch.hf.AccelerateMixin` runs each step under the
    accelerator (``backward``, mixed precision, gradient accumulation) and
    prepares the module, loss, optimizer and iterators. The accelerator is
    handed to it as a :class:`PlainModulesAccelerator`: ``module_`` and
    ``criterion_`` stay plain modules, and the training step runs the
    forward pass through their prepared (``DistributedDataParallel``)
    versions, which synchronise the gradients of the network and of a loss
    with learned weights (``task_weights="uncertainty"``).

    The estimators shard the training batches across processes themselves
    (``BatchIterator(num_shards=, shard=)``), since ``accelerate`` only
    shards ``DataLoader`` objects. With several processes, each fit call
    also

    - checks that every process holds the same training rows (a clear
      ``ValueError`` on every process otherwise, never a hang);
    - gives every process the random state of process 0 (the same
      permutation of the rows each epoch, sharded);
    - records ``train_loss`` and ``valid_loss`` averaged over all processes
      (:class:`ProcessMeanScoring`), so early stopping stops every process at
      the same epoch, and sums DWA's epoch losses over them.
    """

    @property
    def _default_callbacks(self):
        return [
            (name, ProcessMeanScoring(name=cb.name, on_train=cb.on_train))
            if isinstance(cb, PassthroughScoring)
            else (name, cb)
            for name, cb in super()._default_callbacks
        ]

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        super().on_train_begin(net, X=X, y=y, **kwargs)
        if n_processes(self.accelerator) > 1:
            if isinstance(X, TensorDataset):
                check_same_rows(X, self.device)
            broadcast_rng_state(self.device)

    def on_epoch_end(self, net, **kwargs):
        super().on_epoch_end(net, **kwargs)
        criterion = self.criterion_
        if n_processes(self.accelerator) > 1 and hasattr(criterion, _EPOCH_SUMS[0]):
            sums = [getattr(criterion, name) for name in _EPOCH_SUMS]
            total = all_reduce_sum(torch.cat([s.reshape(-1) for s in sums]), self.device)
            for s, part in zip(sums, total.split([s.numel() for s in sums])):
                s.copy_(part.view_as(s))

    def train_step(self, batch, **fit_params):
        # as AccelerateMixin.train_step, with the prepared module: accelerate
        # skips the gradient synchronisation of a DDP module between
        # accumulation steps, not of a plain one
        with self.accelerator.accumulate(self.accelerator.prepared(self.module_)):
            return MMoENet.train_step(self, batch, **fit_params)

    def train_step_single(self, batch, **fit_params):
        # the module is already in train mode (set by run_single_epoch)
        Xi, yi = batch
        module = self.accelerator.prepared(self.module_)
        criterion = self.accelerator.prepared(self.criterion_)
        with self.accelerator.autocast():
            y_pred = module(to_tensor(Xi, device=self.device), **fit_params)
            loss = criterion(y_pred, to_tensor(yi, device=self.device))
            extra = _auxiliary_loss(self.module_)
            if extra is not None:
                loss = loss + extra
        self.accelerator.backward(loss)
        return {"loss": loss, "y_pred": y_pred}


def as_tensor(X: np.ndarray) -> torch.Tensor:
    """A CPU tensor sharing memory with ``X`` where possible (read-only too).

    The tensor is only ever read, so a read-only array (e.g. a memmap) is
    safe to share.
    """
    if X.flags.writeable:
        return torch.as_tensor(X)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.as_tensor(X)


@contextlib.contextmanager
def seeded(seed: int, device):
    """Run with torch's RNG seeded, restoring the caller's RNG state after."""
    device = torch.device(device)
    if device.type == "cpu":
        fork = torch.random.fork_rng(devices=[])
    else:
        module = getattr(torch, device.type)
        index = device.index if device.index is not None else module.current_device()
        fork = torch.random.fork_rng(devices=[index], device_type=device.type)
    with fork:
        torch.manual_seed(seed)
        yield
