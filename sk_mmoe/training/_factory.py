"""Build the skorch net an estimator trains: module, criterion, callbacks, accelerator.

The estimators validate their hyperparameters and fit the target encoder;
this module turns those into a :class:`~sk_mmoe.training._net.MMoENet` (or its
accelerated variant), taking the network from the architecture registry.
"""

from __future__ import annotations

import copy
import math

from skorch.callbacks import EarlyStopping

from ..architectures import ARCHITECTURES
from ..inputs import InputNetwork
from ..nn._ensemble import EnsembleNetwork
from ._callbacks import DivergenceGuard, TaskConflict, TaskValidationLoss, TaskWeightHistory
from ._loss import MultiTaskLoss
from ._net import AcceleratedMMoENet, BatchIterator, MMoENet, PlainModulesAccelerator


def _silent(*args, **kwargs):
    """Sink for skorch messages when ``verbose=0`` (picklable, unlike a lambda)."""


def build_net(hyper, *, n_features, encoder, target_names, task_weights, inputs=None):
    """An uninitialised skorch net for these hyperparameters and targets.

    Parameters
    ----------
    hyper : dict
        The estimator's validated hyperparameters (``_check_hyperparameters``):
        every constructor parameter, with widths as lists of int and the
        optimizer as a class.
    n_features : int
        Input width of the network.
    encoder : TaskEncoder
        The fitted target encoder (task types, output widths and funnel).
    target_names : array-like of str
        Task names, for the per-task validation losses.
    task_weights : list of float or None
        Validated fixed task weights (None with a balancing method or equal weights).
    inputs : InputEncoder or None
        The fitted input encoder (see :func:`module_spec`).

    Returns
    -------
    net : MMoENet
    """
    method = hyper["task_weights"] if isinstance(hyper["task_weights"], str) else None
    callbacks = _callbacks(hyper, method, encoder, target_names, task_weights)
    extra = {}
    net_class = MMoENet
    accelerator = hyper["accelerator"]
    if accelerator is not None:
        net_class = AcceleratedMMoENet
        extra = {
            # the net's module and loss stay plain modules; their DDP wrappers
            # run the training step (see PlainModulesAccelerator)
            "accelerator": PlainModulesAccelerator(accelerator),
            # each process trains on its share of every epoch's batches;
            # validation is not split, and the epoch's losses are averaged
            # over the processes, so every process stops at the same epoch
            "iterator_train__num_shards": accelerator.num_processes,
            "iterator_train__shard": accelerator.process_index,
        }
    module, module_kwargs = module_spec(hyper, inputs, encoder.task_types)
    return net_class(
        **extra,
        module=module,
        module__n_features=n_features,
        module__output_widths=encoder.output_widths,
        **{f"module__{name}": value for name, value in module_kwargs.items()},
        criterion=MultiTaskLoss,
        criterion__task_types=list(encoder.task_types),
        criterion__output_widths=encoder.output_widths,
        criterion__task_weights=task_weights,
        criterion__method=method,
        criterion__dwa_temperature=hyper["dwa_temperature"],
        criterion__gradnorm_alpha=hyper["gradnorm_alpha"],
        criterion__n_members=hyper["n_ensemble"],
        criterion__sequence=list(encoder.sequence),
        optimizer=hyper["optimizer"],
        lr=hyper["lr"],
        optimizer__weight_decay=hyper["weight_decay"],
        max_epochs=hyper["max_epochs"],
        batch_size=hyper["batch_size"],
        iterator_train=BatchIterator,
        iterator_train__shuffle=True,
        iterator_valid=BatchIterator,
        train_split=None,
        callbacks=callbacks,
        device=hyper["device"],
        verbose=hyper["verbose"],
    )


def _callbacks(hyper, method, encoder, target_names, task_weights):
    """The net's callbacks: the user's (copied), then sk_mmoe's for these settings."""
    callbacks = [copy.deepcopy(cb) for cb in (hyper["callbacks"] or [])]
    callbacks.append(
        (
            "divergence_guard",
            DivergenceGuard(
                None if method == "uncertainty" else _constant_loss(encoder, task_weights),
                hyper["lr"],
            ),
        )
    )
    if method in ("uncertainty", "dwa", "gradnorm"):
        callbacks.append(("task_weights", TaskWeightHistory()))
    if hyper["track_task_conflict"]:
        callbacks.append(("task_conflict", TaskConflict()))
    if hyper["early_stopping"]:
        names = [str(name) for name in target_names]
        callbacks.append(("task_valid_loss", TaskValidationLoss(names)))
        callbacks.append(
            (
                "early_stopping",
                EarlyStopping(
                    monitor="valid_loss",
                    patience=hyper["n_iter_no_change"],
                    threshold=hyper["tol"],
                    threshold_mode="abs",
                    load_best=True,
                    sink=print if hyper["verbose"] else _silent,
                ),
            )
        )
    return callbacks


def module_spec(hyper, inputs=None, task_types=None):
    """The torch module class and its keyword arguments besides the widths.

    The registry's architecture; with ``n_ensemble`` above 1 an
    :class:`~sk_mmoe.nn._ensemble.EnsembleNetwork` of it (which needs the
    ``task_types``, to average each task's members in its own space); the
    result wrapped in an :class:`~sk_mmoe.inputs.InputNetwork` when
    ``inputs`` (the fitted :class:`~sk_mmoe.inputs.InputEncoder`) has a
    block with a module (categorical columns, numeric embeddings). The input
    blocks so run once per row, before the members' copies: their
    embeddings are shared by every member.
    """
    architecture = ARCHITECTURES[hyper["architecture"]]
    module, kwargs = architecture.module, architecture.module_kwargs(hyper)
    if hyper["n_ensemble"] > 1:
        if task_types is None:
            raise ValueError("an ensemble (n_ensemble > 1) needs the task types.")
        kwargs = {
            **kwargs,
            "architecture": module,
            "n_ensemble": hyper["n_ensemble"],
            "output_kinds": list(task_types),
        }
        module = EnsembleNetwork
    blocks = None if inputs is None else inputs.module_spec()
    if blocks is None:
        return module, kwargs
    return InputNetwork, {**kwargs, "network": module, "blocks": blocks}


def build_module(hyper, n_features, output_widths, inputs=None, task_types=None):
    """The untrained torch module (as the net builds it; e.g. on the meta device)."""
    module, kwargs = module_spec(hyper, inputs, task_types)
    return module(n_features, output_widths, **kwargs)


def _constant_loss(encoder, task_weights):
    """Loss of a constant prediction: 1 per standardised regression target, log C per C classes."""
    per_task = [max(1.0, math.log(w)) if w > 1 else 1.0 for w in encoder.output_widths]
    weights = task_weights or [1.0] * len(per_task)
    return sum(w * b for w, b in zip(weights, per_task))
