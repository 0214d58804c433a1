"""Training checkpoints: what a fit in progress writes, and how a fit resumes from it.

A checkpoint is a model file (see ``_persistence``; ``load`` reads it as the
model of its last epoch, optimizer state included) with a ``training``
entry. Its JSON part holds the seed of the interrupted fit call, the epochs
it had and was to train, whether it finished, early stopping's counters and
the SHA-256 of the training data; its tensor part the random state of
torch's generators and early stopping's best weights.

:func:`restore_net` is the one place a file's weights, criterion state,
optimizer state and history go into a net: for ``load`` and for a resumed fit.

A fit resumed from it (``resume_fit``) rebuilds the net exactly as the
interrupted call built it (same seed, same training / validation split),
puts every piece of that state back and trains the remaining epochs: the
same batches, the same dropout masks, the same updates, so it ends where an
uninterrupted fit ends, bit for bit.

``_base._BaseMMoE._fit`` hands each fit call to :func:`checkpointing` as a
:class:`TrainingRun`; the public names live in :mod:`sk_mmoe.callbacks`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from numbers import Integral

import numpy as np
import torch
from skorch.callbacks import Callback, EarlyStopping
from skorch.history import History

from ..training._distributed import writes_files
from . import _archive as _persistence

#: hyperparameters that may differ between the interrupted fit and its resumption
_FREE_PARAMS = ("callbacks", "verbose")


@dataclass
class TrainingRun:
    """One ``fit`` / ``partial_fit`` call, as the estimator hands it to its checkpoints.

    ``saved()`` gives the :class:`~sk_mmoe.persistence._archive.Saved` record of the
    model as it is now; ``seed`` is the call's seed, ``history_start`` the
    epochs in the history before the call, ``epochs`` the epochs the call
    trains, ``fingerprint()`` the SHA-256 of its training data (from its data
    source; called once, when a checkpoint needs it).
    """

    saved: Callable
    seed: int
    history_start: int
    epochs: int
    fingerprint: Callable
    _data_sha256: str | None = field(default=None, repr=False)

    def data_sha256(self):
        """SHA-256 of the training rows, targets and sample weights (computed once)."""
        if self._data_sha256 is None:
            self._data_sha256 = self.fingerprint()
        return self._data_sha256


class TrainingCheckpoint(Callback):
    """Write everything needed to resume a fit to ``path`` every ``every`` epochs.

    Pass it in an estimator's ``callbacks``. The file holds the model,
    the optimizer state, the training history, torch's random state, early
    stopping's progress and a checksum of the training data; it is written
    atomically (a temporary file renamed over ``path``), so a crash while
    writing leaves the previous checkpoint intact. A last checkpoint is
    written when the fit ends (all epochs trained, or stopped early).

    After a crash, :func:`resume_fit` finishes the fit from the file with
    the same predictions as an uninterrupted fit. The file is also a model
    file: ``load`` reads it as the model of its last epoch.

    Parameters
    ----------
    path : str or path-like
        Where to write the checkpoint (replaced at each write).
    every : int, default=1
        Write after every ``every``-th epoch (counted over the history).

    See Also
    --------
    resume_fit : Finish an interrupted fit from its checkpoint.

    Notes
    -----
    A checkpoint costs one ``save`` (the weights, twice the weights for
    Adam's state, and the history; one ``fsync``) per write; raise ``every``
    for large models or short epochs. Stateful callbacks of your own (e.g.
    skorch's ``LRScheduler``) are not saved and start afresh on resume;
    early stopping (``early_stopping=True`` or skorch ``EarlyStopping``
    callbacks) resumes exactly. In an ``accelerator=`` run with several
    processes only the main process writes the file (every process holds
    the same model).

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from sk_mmoe import MMoERegressor
    >>> from sk_mmoe.callbacks import TrainingCheckpoint, resume_fit
    >>> X = np.random.RandomState(0).normal(size=(100, 4))
    >>> y = X[:, :2]
    >>> path = os.path.join(tempfile.mkdtemp(), "fit.ckpt")
    >>> def model():
    ...     return MMoERegressor(max_epochs=6, random_state=0,
    ...                          callbacks=[TrainingCheckpoint(path, every=2)])
    >>> reg = model().fit(X, y)  # suppose it crashed after epoch 4
    >>> resumed = resume_fit(model(), path, X, y)  # in a new process
    >>> bool((resumed.predict(X) == reg.predict(X)).all())
    True
    """

    def __init__(self, path, every=1):
        self.path = path
        self.every = every

    def initialize(self):
        """Check the parameters; called by skorch when the net is built.

        Returns
        -------
        self : TrainingCheckpoint
            This callback.
        """
        if not isinstance(self.every, Integral) or isinstance(self.every, bool) or self.every < 1:
            raise ValueError(f"every must be a positive int, got {self.every!r}.")
        self.run_ = None
        return self

    def on_train_begin(self, net, **kwargs):
        """Check that this fit can be checkpointed, before its first epoch.

        Parameters
        ----------
        net : skorch.NeuralNet
            The estimator's net.
        **kwargs : dict
            What skorch passes (unused).
        """
        if getattr(self, "run_", None) is None:
            raise TypeError(
                "TrainingCheckpoint works in the callbacks of the sk_mmoe estimators only."
            )
        if torch.device(net.device).type not in ("cpu", "cuda"):
            raise ValueError(
                f"TrainingCheckpoint saves the random state of CPU and CUDA devices only, "
                f"not of device={net.device!r}."
            )
        _persistence._params_to_json(_storable(self.run_.saved().params))  # fail fast

    def on_epoch_end(self, net, **kwargs):
        """Write a checkpoint after every ``every``-th epoch.

        The epoch that ends the fit call is written by :meth:`on_train_end`.

        Parameters
        ----------
        net : skorch.NeuralNet
            The estimator's net.
        **kwargs : dict
            What skorch passes (unused).
        """
        done = len(net.history) - self.run_.history_start
        if len(net.history) % self.every == 0 and done < self.run_.epochs and _writes(net):
            _write(self.path, net, self.run_, finished=False)

    def on_train_end(self, net, **kwargs):
        """Write the final checkpoint if the fit call ended normally.

        It did if it trained all its epochs or early stopping stopped it;
        after an interrupt (Ctrl-C) mid-epoch the last checkpoint is kept.

        Parameters
        ----------
        net : skorch.NeuralNet
            The estimator's net.
        **kwargs : dict
            What skorch passes (unused).
        """
        done = len(net.history) - self.run_.history_start
        stopped = any(
            getattr(cb, "misses_", None) == cb.patience for cb in _early_stopping(net).values()
        )
        if (done == self.run_.epochs or stopped) and _writes(net):
            _write(self.path, net, self.run_, finished=True)


def _writes(net):
    """Whether this process writes checkpoints (the main one of an accelerator= run)."""
    return writes_files(getattr(net, "accelerator", None))


def _storable(params):
    """The hyperparameters a checkpoint records (never the callbacks or the accelerator)."""
    return {**params, "callbacks": None, "accelerator": None}


def _early_stopping(net):
    """The net's early stopping callbacks by name."""
    return {name: cb for name, cb in net.callbacks_ if isinstance(cb, EarlyStopping)}


def _rng_state(device):
    device = torch.device(device)
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _write(path, net, run, finished):
    saved = run.saved()
    saved.params = _storable(saved.params)
    stoppers = _early_stopping(net)
    saved.training = {
        "seed": int(run.seed),
        "history_start": int(run.history_start),
        "epochs": int(run.epochs),
        "finished": bool(finished),
        "data_sha256": run.data_sha256(),
        "early_stopping": {
            name: {
                "misses_": int(cb.misses_),
                "dynamic_threshold_": float(cb.dynamic_threshold_),
                "best_epoch_": int(cb.best_epoch_),
            }
            for name, cb in stoppers.items()
        },
    }
    saved.state["training"] = {
        "rng": _rng_state(net.device),
        "best_weights": {name: cb.best_model_weights_ for name, cb in stoppers.items()},
    }
    _persistence.save(path, saved)


# ------------------------------------------------------------------ resuming
@dataclass
class Resume:
    """A checkpoint read back, for ``_fit`` to finish the fit call it recorded."""

    saved: _persistence.Saved
    path: str

    @property
    def seed(self):
        """The seed of the interrupted fit call."""
        return self.saved.training["seed"]

    def fitted(self, n_tasks):
        """``(encoder, random_seed, target_names, single_output)`` of the checkpointed fit."""
        fitted = self.saved.fitted
        if n_tasks != fitted["n_tasks_"]:
            raise ValueError(
                f"y has {n_tasks} tasks but the fit in {self.path} had {fitted['n_tasks_']}."
            )
        names = np.asarray(fitted["target_names_"], dtype=object)
        return self.saved.encoder, fitted["random_seed_"], names, fitted["single_output"]


def resume_fit(estimator, path, X, y, sample_weight=None):
    """Finish a fit interrupted after writing a :class:`TrainingCheckpoint`.

    Call it with an estimator built as the interrupted one was (the same
    hyperparameters; ``callbacks`` and ``verbose`` may differ) and the same
    training data. The fit goes on from the checkpoint's epoch to the end it
    would have reached uninterrupted (``max_epochs``, or an early stop) and
    gives the same model, bit for bit, on the same hardware and software.
    If the checkpoint was written at the end of the fit, the model is
    restored without training.

    Parameters
    ----------
    estimator : MMoERegressor, MMoEClassifier or MMoEMultiTask
        Built with the hyperparameters of the interrupted fit; fitted in place.
    path : str or path-like
        The checkpoint.
    X : array-like of shape (n_samples, n_features)
        The training data of the interrupted fit.
    y : array-like or DataFrame of shape (n_samples,) or (n_samples, n_tasks)
        Its targets.
    sample_weight : array-like of shape (n_samples,), default=None
        Its sample weights.

    Returns
    -------
    estimator : object
        The estimator, fitted.

    Raises
    ------
    ValueError
        If the file is not a valid checkpoint of this estimator class, the
        hyperparameters differ from the checkpointed fit's (they are named),
        or ``X``, ``y`` or ``sample_weight`` differ from its training data.
        A file that is not valid leaves ``estimator`` as it was.

    See Also
    --------
    TrainingCheckpoint : The callback that writes the checkpoint.
    """
    saved = _persistence.load(path, type(estimator))
    if saved.training is None:
        raise ValueError(f"{path} is a model file, not a training checkpoint.")
    ours = _persistence._params_to_json(_storable(estimator.get_params(deep=False)))
    theirs = _persistence._params_to_json(saved.params)
    differ = sorted(k for k in ours.keys() | theirs.keys() if ours.get(k) != theirs.get(k))
    differ = [k for k in differ if k not in _FREE_PARAMS]
    if differ:
        raise ValueError(
            f"The estimator's hyperparameters differ from those of the fit in {path}: "
            + ", ".join(f"{k}={ours.get(k)!r} (checkpoint: {theirs.get(k)!r})" for k in differ)
        )
    estimator._validate_params()
    return estimator._fit(X, y, sample_weight, resume=Resume(saved, str(path)))


class _RestoreEarlyStopping(Callback):
    """Put early stopping's progress back after skorch resets it at train begin."""

    def __init__(self, states, weights):
        self.states = states
        self.weights = weights

    def on_train_begin(self, net, **kwargs):
        stoppers = _early_stopping(net)
        for name, state in self.states.items():
            if name not in stoppers:
                raise ValueError(
                    f"The checkpoint holds the state of early stopping callback {name!r}, "
                    "which this estimator does not have."
                )
            for attr, value in state.items():
                setattr(stoppers[name], attr, value)
            stoppers[name].best_model_weights_ = self.weights.get(name)


@contextlib.contextmanager
def checkpointing(net, run, resume=None):
    """Around one fit call: checkpoints get ``run``; a resumed fit gets its state back.

    Yields the number of epochs to train: ``run.epochs``, or what the
    checkpointed fit call had left. Checkpoint callbacks are moved to the end
    of the net's callbacks, so that each epoch is written once every other
    callback (early stopping, the divergence guard) is done with it.
    """
    net.callbacks_.sort(key=lambda pair: isinstance(pair[1], TrainingCheckpoint))
    extra = []
    epochs = run.epochs
    if resume is not None:
        epochs = _restore(net, run, resume)
        training = resume.saved.state["training"]
        states = resume.saved.training["early_stopping"]
        extra = [
            ("restore_early_stopping", _RestoreEarlyStopping(states, training["best_weights"]))
        ]
    checkpoints = [cb for _, cb in net.callbacks_ if isinstance(cb, TrainingCheckpoint)]
    for cb in checkpoints:
        cb.run_ = run
    net.callbacks_.extend(extra)
    try:
        yield epochs
    finally:
        for cb in checkpoints:
            cb.run_ = None  # the run holds the training data
        for pair in extra:
            net.callbacks_.remove(pair)


def _restore(net, run, resume):
    """Put the checkpoint's state into the freshly initialised ``net``; epochs left to train."""
    saved, path = resume.saved, resume.path
    training = saved.training
    if run.data_sha256() != training["data_sha256"]:
        raise ValueError(
            f"X, y or sample_weight differ from the training data of the fit in {path}; "
            "resume with the same data."
        )
    if saved.state["optimizer"] is None:
        raise ValueError(f"{path}: the checkpoint holds no optimizer state.")
    restore_net(net, saved, path)
    try:
        rng = saved.state["training"]["rng"]
        torch.set_rng_state(rng["cpu"])
        if torch.device(net.device).type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"], net.device)
    except (RuntimeError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path}: the training state does not fit this fit: {exc}") from None
    run.history_start, run.epochs = training["history_start"], training["epochs"]
    if training["finished"]:
        return 0
    return max(0, run.epochs - (len(net.history) - run.history_start))


# ---------------------------------------------------------------- restoring
def restore_net(net, saved, path):
    """Put a file's state into ``net``, freshly initialised as the file's net was.

    The module's weights, the criterion's state (learned task weights, DWA's
    losses), the optimizer's state (when the file has one; else the
    optimizer stays fresh) and the history. The optimizer's state is checked
    against the net first: one entry per parameter, each tensor a scalar or
    shaped to broadcast to its parameter (so no larger than it), and the
    same hyperparameter names in each parameter group.

    Raises
    ------
    ValueError
        If any part does not fit ``net``.
    """
    try:
        net.module_.load_state_dict(saved.state["module"])
        net.criterion_.load_state_dict(saved.state["criterion"])
        optimizer = saved.state["optimizer"]
        if optimizer is not None:
            _check_optimizer_state(optimizer, net.optimizer_)
            net.optimizer_.load_state_dict(optimizer)
    except (RuntimeError, ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        raise ValueError(
            f"{path}: the saved weights and state do not fit the saved model: {exc}"
        ) from None
    net.history = History(saved.history)


def _check_optimizer_state(state, optimizer):
    """Raise ValueError unless ``state`` (a ``state_dict``) fits ``optimizer``'s parameters."""
    groups, fresh = state["param_groups"], optimizer.param_groups
    if len(groups) != len(fresh):
        raise ValueError(f"{len(groups)} parameter groups, the optimizer has {len(fresh)}")
    shapes = {}
    for group, ours in zip(groups, fresh):
        if set(group) != set(ours):
            raise ValueError(f"parameter group keys {sorted(group)}, expected {sorted(ours)}")
        ids, params = group["params"], ours["params"]
        if not isinstance(ids, list) or len(ids) != len(params):
            raise ValueError("a parameter group does not hold the optimizer's parameters")
        for key, value in group.items():
            if key != "params" and not _same_kind(value, ours[key]):
                raise ValueError(f"parameter group entry {key}={value!r}")
        shapes.update({i: p.shape for i, p in zip(ids, params)})
    if len(shapes) != sum(len(g["params"]) for g in fresh):
        raise ValueError("duplicate parameter ids")
    for key, entries in state["state"].items():
        if key not in shapes or not isinstance(entries, dict):
            raise ValueError(f"state of unknown parameter {key!r}")
        for name, value in entries.items():
            if not isinstance(value, torch.Tensor):
                raise ValueError(f"state {name!r} of parameter {key} is not a tensor")
            if value.dim() and not _broadcasts(value.shape, shapes[key]):
                raise ValueError(
                    f"state {name!r} of parameter {key} has shape {tuple(value.shape)}, "
                    f"the parameter {tuple(shapes[key])}"
                )


def _broadcasts(shape, target):
    """Whether a tensor of ``shape`` broadcasts to ``target`` with as many dims."""
    return len(shape) == len(target) and all(a in (1, b) for a, b in zip(shape, target))


def _same_kind(value, reference):
    """Whether a saved optimizer hyperparameter has the type of the fresh optimizer's."""
    if isinstance(reference, bool) or reference is None:
        return value is None or isinstance(value, bool)
    if isinstance(reference, (int, float)):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(reference, (tuple, list)):
        return (
            isinstance(value, (tuple, list))
            and len(value) == len(reference)
            and all(_same_kind(v, r) for v, r in zip(value, reference))
        )
    if isinstance(reference, torch.Tensor):
        return isinstance(value, torch.Tensor) and value.numel() == reference.numel()
    return isinstance(value, type(reference))
