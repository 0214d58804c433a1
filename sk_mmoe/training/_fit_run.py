"""One ``fit`` / ``partial_fit`` call: its mode, encoders, data source, net and training.

:class:`FitRun` is what ``_BaseMMoE.fit``, ``partial_fit`` and
``resume_fit`` hand their data to. Its :class:`Mode` replaces what used to
be three flags:

- ``NEW``: a fresh fit; the input and target encoders are fitted, the net
  built and initialised;
- ``CONTINUE``: ``warm_start`` or ``partial_fit`` on a fitted estimator; the
  fitted encoders and the net go on;
- ``RESUME``: finish the fit call a training checkpoint recorded
  (``sk_mmoe.callbacks.resume_fit``); the encoders and the seed come from
  the checkpoint, the net is rebuilt and its state restored.
"""

from __future__ import annotations

import enum
import functools
import warnings

import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils.validation import _check_sample_weight, check_consistent_length
from skorch.helper import predefined_split

from .._hyperparameters import AUTO_EARLY_STOPPING_ROWS, resolve_batch_size
from .._inference import fit_threads, thread_limit
from .._targets import TaskEncoder, check_target_values, missing_mask, natural, split_columns
from .._task_types import REGRESSION
from ..data._sources import InMemorySource, find_source
from ..persistence._checkpoint import TrainingRun as CheckpointedCall
from ..persistence._checkpoint import checkpointing
from ._net import seeded

_MAX_SEED = np.iinfo(np.int32).max


class Mode(enum.Enum):
    """What a fit call starts from (see the module docstring)."""

    NEW = "new"
    CONTINUE = "continue"
    RESUME = "resume"


class Targets:
    """The targets of a fit call: columns, names and how they were given."""

    def __init__(self, y):
        self.columns, names, self.single_output = split_columns(y)
        self.given_names = names
        self.labels = (
            [repr(str(n)) for n in names]
            if names is not None
            else [str(j) for j in range(len(self.columns))]
        )
        self.names = (
            names
            if names is not None
            else np.asarray([f"task_{j}" for j in range(len(self.columns))], dtype=object)
        )

    def drop_missing(self, X, sample_weight, policy):
        """Check missing labels against ``missing_targets``; drop rows labelled for no task."""
        missing = np.column_stack([missing_mask(c) for c in self.columns])
        if not missing.any():
            return X, sample_weight
        if policy == "error":
            bad = [self.labels[j] for j in np.flatnonzero(missing.any(axis=0))]
            raise ValueError(
                f"y contains missing values (NaN, None or pd.NA) in task(s) "
                f"{', '.join(bad)}. Pass missing_targets='ignore' to train each task "
                "on its labelled rows only."
            )
        empty = [self.labels[j] for j in np.flatnonzero(missing.all(axis=0))]
        if empty:
            raise ValueError(f"y has no label at all for task(s) {', '.join(empty)}.")
        keep = ~missing.all(axis=1)
        if keep.all():
            return X, sample_weight
        warnings.warn(
            f"{int((~keep).sum())} row(s) have no label for any task and were dropped.",
            UserWarning,
            stacklevel=6,
        )
        self.columns = [c[keep] for c in self.columns]
        return X[keep], sample_weight[keep]

    def present(self):
        """Each task's labelled values, checked."""
        present = [natural(c[~missing_mask(c)]) for c in self.columns]
        for values, label in zip(present, self.labels):
            check_target_values(values, label)
        return present


class FitRun:
    """One fit call of ``estimator``.

    Parameters
    ----------
    estimator : _BaseMMoE
        The estimator being fitted; its fitted attributes are set at the end.
    incremental : bool
        ``partial_fit`` (one epoch) rather than ``fit``.
    classes : list of ndarray or None
        ``partial_fit(classes=...)``: all labels of each task.
    resume : Resume or None
        A training checkpoint to finish (``sk_mmoe.callbacks.resume_fit``).
    """

    def __init__(self, estimator, *, incremental=False, classes=None, resume=None):
        self.estimator = estimator
        self.incremental = incremental
        self.classes = classes
        self.resume = resume
        if resume is not None:
            self.mode = Mode.RESUME
        elif hasattr(estimator, "net_") and (incremental or estimator.warm_start):
            self.mode = Mode.CONTINUE
        else:
            self.mode = Mode.NEW

    def run(self, X, y, sample_weight=None):
        """Validate, encode, build or reuse the net, train; returns the estimator."""
        est = self.estimator
        self._check_call(y)
        hyper = est._check_hyperparameters()
        kind = find_source(X)
        prepare = self._in_memory if kind is None else functools.partial(kind.prepare, self)
        source, fitted, gate_rows = prepare(X, y, sample_weight, hyper)
        net = self._train(hyper, source, fitted)
        est._set_fitted(net, *fitted, est.input_encoder_)
        est._warn_on_gate_collapse(gate_rows)
        return est

    def _in_memory(self, X, y, sample_weight, hyper):
        """The source, fitted encoders and gate-check rows of ``X`` in memory."""
        est = self.estimator
        X = est._prepare_X(X, reset=self.mode is not Mode.CONTINUE)
        targets = Targets(y)
        check_consistent_length(X, targets.columns[0])
        self.check_n_tasks(len(targets.columns))
        sample_weight = _check_sample_weight(
            sample_weight, X, dtype=np.float32, ensure_non_negative=True
        )
        X, sample_weight = targets.drop_missing(X, sample_weight, est.missing_targets)
        est._check_task_weights(len(targets.columns))
        self.resolve_sizes(hyper, X.shape[0])
        fitted = self.target_encoder(targets, sample_weight)
        encoded = fitted[0].transform(targets.columns)
        source = InMemorySource(X, np.concatenate([encoded, sample_weight[:, None]], axis=1))
        return source, fitted, X

    def check_n_tasks(self, n_tasks):
        est = self.estimator
        if self.mode is Mode.CONTINUE and n_tasks != est.n_tasks_:
            raise ValueError(
                f"y has {n_tasks} tasks but this estimator was fitted with "
                f"{est.n_tasks_}; call fit (not partial_fit / warm_start) to change "
                "the tasks."
            )

    def resolve_sizes(self, hyper, n_rows):
        """Early stopping and the batch size for ``n_rows`` labelled rows."""
        est = self.estimator
        hyper["early_stopping"] = self._early_stopping(n_rows)
        hyper["batch_size"] = (
            est.net_.batch_size
            if self.mode is Mode.CONTINUE
            else resolve_batch_size(est.batch_size, n_rows)
        )

    # ------------------------------------------------------------- the steps
    def _check_call(self, y):
        est = self.estimator
        if y is None:
            raise ValueError(
                f"{type(est).__name__} requires y to be passed, but the target y is None."
            )
        stopping = est.early_stopping
        if self.incremental and isinstance(stopping, (bool, np.bool_)) and stopping:
            raise ValueError(
                "partial_fit cannot be used with early_stopping=True: each call trains "
                "one epoch, so nothing would be stopped and validation_fraction of every "
                "batch would be held out unused. Set early_stopping=False."
            )

    def _early_stopping(self, n_rows):
        """Whether this fit stops early: ``early_stopping`` with "auto" resolved.

        "auto" stops early in ``fit`` on at least :data:`AUTO_EARLY_STOPPING_ROWS`
        rows (after rows with no label are dropped), never in ``partial_fit``.
        A continued fit keeps its network's choice.
        """
        est = self.estimator
        if self.mode is Mode.CONTINUE:
            stops = any(name == "early_stopping" for name, _ in est.net_.callbacks_)
            if self.incremental and stops:
                raise ValueError(
                    "partial_fit cannot continue a model fitted with early stopping "
                    f"(early_stopping={est.early_stopping!r}); fit it with "
                    "early_stopping=False to train it further with partial_fit."
                )
            return stops
        if isinstance(est.early_stopping, str):  # "auto"
            return not self.incremental and n_rows >= AUTO_EARLY_STOPPING_ROWS
        return bool(est.early_stopping)

    def target_encoder(self, targets, sample_weight, seen=None):
        """``(encoder, first seed, target names, single output)`` of this fit.

        ``seen`` (a streamed fit) holds every label of each task in the source.
        """
        est = self.estimator
        present = targets.present()
        if self.mode is Mode.CONTINUE:
            fitted = est.target_encoder_, est.random_seed_, est.target_names_, est._single_output
        elif self.mode is Mode.RESUME:
            fitted = self.resume.fitted(len(targets.columns))
        else:
            task_types = est._task_types(present, [str(n) for n in targets.names])
            encoder = TaskEncoder(task_types, targets.labels)
            classes = self.classes
            if seen is not None:
                classes = [None if kind == REGRESSION else s for kind, s in zip(task_types, seen)]
            encoder.fit(targets.columns, classes=classes, sample_weight=sample_weight)
            seed0 = int(check_random_state(est.random_state).randint(_MAX_SEED))
            fitted = encoder, seed0, targets.names, targets.single_output
        # the funnel, checked against the fitted task types; transform then
        # checks the labels against it
        est._use_task_sequence(fitted[0], fitted[2], continuing=self.mode is Mode.CONTINUE)
        return fitted

    def _train(self, hyper, source, fitted):
        """Build (or reuse) the net and train it on ``source``; returns the net."""
        est = self.estimator
        encoder, seed0, names, _ = fitted
        continuing = self.mode is Mode.CONTINUE
        n_epochs_done = len(est.net_.history) if continuing else 0
        seed = (seed0 + n_epochs_done) % _MAX_SEED if self.resume is None else self.resume.seed
        fraction = est.validation_fraction if hyper["early_stopping"] else None
        train, valid = source.datasets(fraction, seed)
        net = est.net_ if continuing else est._build_net(hyper, encoder, names)
        net.train_split = predefined_split(valid) if valid is not None else None
        call = CheckpointedCall(
            saved=functools.partial(est._saved, net, *fitted),
            seed=seed,
            history_start=n_epochs_done,
            epochs=1 if self.incremental else est.max_epochs,
            fingerprint=functools.partial(source.fingerprint, train),
        )
        with seeded(seed, est.device):
            if not continuing:
                net.initialize()
            try:
                with (
                    thread_limit(fit_threads(est.n_jobs, net, hyper["batch_size"])),
                    checkpointing(net, call, self.resume) as epochs,
                ):
                    net.partial_fit(train, None, epochs=epochs)
            finally:
                # the split holds the training data: a fitted net must not keep it
                net.train_split = None
        return net
