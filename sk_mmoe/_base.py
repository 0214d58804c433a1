"""The one implementation behind every public estimator.

``_BaseMMoE`` validates inputs, encodes targets per task, builds and trains a
skorch net and decodes its outputs. The public estimators only choose how
each target column is treated (regression or classification) and which
methods they expose.
"""

from __future__ import annotations

import functools
import math
import warnings

import numpy as np
import pandas as pd
import torch
from scipy.sparse import issparse
from sklearn.base import BaseEstimator, _fit_context
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.utils import check_array, check_random_state
from sklearn.utils.validation import (
    _check_sample_weight,
    check_consistent_length,
    check_is_fitted,
    validate_data,
)
from skorch.helper import predefined_split
from skorch.history import History

from . import _persistence
from ._checkpoint import TrainingRun, checkpointing
from ._distributed import writes_files
from ._factory import build_net
from ._gates import GATE_CHECK_ROWS, summarize, warn_on_collapse
from ._hyperparameters import (
    AUTO_EARLY_STOPPING_ROWS,
    PARAMETER_CONSTRAINTS,
    check_hyperparameters,
    check_task_weights,
    resolve_batch_size,
)
from ._inference import check_float32_range, run_module, stack_tasks
from ._inputs import InputEncoder, resolve_categorical
from ._net import TensorDataset, as_tensor, seeded
from ._targets import (
    TaskEncoder,
    check_target_values,
    missing_mask,
    natural,
    split_columns,
)
from ._task_types import REGRESSION


class _BaseMMoE(BaseEstimator):
    """Shared implementation of the sk_mmoe estimators; not public."""

    _parameter_constraints: dict = dict(PARAMETER_CONSTRAINTS)

    def __init__(
        self,
        *,
        architecture="mmoe",
        n_experts=8,
        n_task_experts=1,
        n_levels=2,
        categorical_features="from_dtype",
        embedding_dim="auto",
        min_frequency=1,
        numeric_scaling="auto",
        expert_units=(64,),
        tower_units=(32,),
        activation="relu",
        dropout=0.0,
        gate_dropout=0.0,
        gate_entropy_bonus=0.0,
        gate_collapse_threshold=0.95,
        task_weights=None,
        dwa_temperature=2.0,
        gradnorm_alpha=1.5,
        track_task_conflict=False,
        max_epochs=100,
        batch_size="auto",
        lr=1e-3,
        optimizer="adam",
        weight_decay=0.0,
        early_stopping="auto",
        validation_fraction=0.1,
        n_iter_no_change=10,
        tol=1e-4,
        missing_targets="error",
        callbacks=None,
        device="cpu",
        accelerator=None,
        random_state=None,
        verbose=0,
        warm_start=False,
    ):
        self.architecture = architecture
        self.n_experts = n_experts
        self.n_task_experts = n_task_experts
        self.n_levels = n_levels
        self.categorical_features = categorical_features
        self.embedding_dim = embedding_dim
        self.min_frequency = min_frequency
        self.numeric_scaling = numeric_scaling
        self.expert_units = expert_units
        self.tower_units = tower_units
        self.activation = activation
        self.dropout = dropout
        self.gate_dropout = gate_dropout
        self.gate_entropy_bonus = gate_entropy_bonus
        self.gate_collapse_threshold = gate_collapse_threshold
        self.task_weights = task_weights
        self.dwa_temperature = dwa_temperature
        self.gradnorm_alpha = gradnorm_alpha
        self.track_task_conflict = track_task_conflict
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.optimizer = optimizer
        self.weight_decay = weight_decay
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.missing_targets = missing_targets
        self.callbacks = callbacks
        self.device = device
        self.accelerator = accelerator
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start

    # ------------------------------------------------------------------ hooks
    def _task_types(self, columns, names):
        """One of the task types (``_task_types``) per target column.

        ``columns`` hold each column's labelled values only.
        """
        raise NotImplementedError

    # ------------------------------------------------------------ public API
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the network to ``X`` and the targets ``y`` (one column per task).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data.
        y : array-like or DataFrame of shape (n_samples,) or (n_samples, n_tasks)
            Targets, one column per task.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative row weights.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        return self._fit(X, y, sample_weight)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None):
        """Train one epoch on ``(X, y)``, starting from the current weights.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data.
        y : array-like or DataFrame of shape (n_samples,) or (n_samples, n_tasks)
            Targets, one column per task.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative row weights.

        Returns
        -------
        self : object
            The estimator, trained one more epoch.

        Raises
        ------
        ValueError
            With ``early_stopping=True``, which ``partial_fit`` cannot honour.
        """
        return self._fit(X, y, sample_weight, incremental=True)

    def predict(self, X):
        """Predicted targets: values for regression tasks, labels for the others.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Input rows.

        Returns
        -------
        y_pred : ndarray of shape (n_samples, n_tasks) or (n_samples,)
            Float64 for regression tasks; original labels for classification
            tasks; object dtype when the tasks' types differ; 1-D when the
            estimator was fitted on 1-D ``y``.
        """
        outputs = self._forward(X)
        values = self.target_encoder_.regression_values(outputs)
        if values is None:
            return stack_tasks(self.target_encoder_.decode(outputs), self._single_output)
        return values.ravel() if self._single_output else values

    def score(self, X, y, sample_weight=None):
        """Mean over tasks of R² (regression tasks) and accuracy (the others).

        Rows where a task's label is missing are left out of that task's
        score. Labels not seen during fit raise ``ValueError``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Test rows.
        y : array-like or DataFrame of shape (n_samples,) or (n_samples, n_tasks)
            True targets, one column per task.
        sample_weight : array-like of shape (n_samples,), default=None
            Row weights of each task's metric.

        Returns
        -------
        score : float
            The mean of the per-task scores.
        """
        return self._score_tasks(X, y, sample_weight)

    # -------------------------------------------------------------- training
    def _fit(self, X, y, sample_weight=None, *, incremental=False, classes=None, resume=None):
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None."
            )
        if (
            incremental
            and isinstance(self.early_stopping, (bool, np.bool_))
            and self.early_stopping
        ):
            raise ValueError(
                "partial_fit cannot be used with early_stopping=True: each call trains "
                "one epoch, so nothing would be stopped and validation_fraction of every "
                "batch would be held out unused. Set early_stopping=False."
            )
        # resume: a checkpoint (sk_mmoe.callbacks.resume_fit) of the fit call to finish
        continuing = resume is None and hasattr(self, "net_") and (incremental or self.warm_start)
        hyper = self._check_hyperparameters()
        X = self._prepare_X(X, reset=not continuing)
        columns, names, single_output = split_columns(y)
        check_consistent_length(X, columns[0])
        labels = (
            [repr(str(n)) for n in names]
            if names is not None
            else [str(j) for j in range(len(columns))]
        )
        if continuing and len(columns) != self.n_tasks_:
            raise ValueError(
                f"y has {len(columns)} tasks but this estimator was fitted with "
                f"{self.n_tasks_}; call fit (not partial_fit / warm_start) to change "
                "the tasks."
            )
        sample_weight = _check_sample_weight(
            sample_weight, X, dtype=np.float32, ensure_non_negative=True
        )
        X, columns, sample_weight = self._drop_missing(X, columns, labels, sample_weight)
        hyper["early_stopping"] = self._early_stopping(X.shape[0], continuing, incremental)
        hyper["batch_size"] = (
            self.net_.batch_size if continuing else resolve_batch_size(self.batch_size, X.shape[0])
        )

        target_names = (
            names
            if names is not None
            else np.asarray([f"task_{j}" for j in range(len(columns))], dtype=object)
        )
        present = [natural(c[~missing_mask(c)]) for c in columns]
        for values, label in zip(present, labels):
            check_target_values(values, label)
        if continuing:
            encoder, seed0 = self.target_encoder_, self.random_seed_
            target_names, single_output = self.target_names_, self._single_output
        elif resume is not None:
            encoder, seed0, target_names, single_output = resume.fitted(len(columns))
        else:
            task_types = self._task_types(present, [str(n) for n in target_names])
            encoder = TaskEncoder(task_types, labels)
            encoder.fit(columns, classes=classes, sample_weight=sample_weight)
            seed0 = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        encoded = encoder.transform(columns)
        task_weights = self._check_task_weights(len(columns))

        X32 = X if X.dtype == np.float32 else X.astype(np.float32)
        targets = np.concatenate([encoded, sample_weight[:, None]], axis=1)
        n_epochs_done = len(self.net_.history) if continuing else 0
        seed = (seed0 + n_epochs_done) % np.iinfo(np.int32).max if resume is None else resume.seed
        rows = X32 if issparse(X32) else as_tensor(X32)
        train, valid = self._datasets(
            rows, torch.from_numpy(targets), seed, hyper["early_stopping"]
        )

        net = (
            self.net_
            if continuing
            else build_net(
                hyper,
                n_features=self.n_features_in_,
                encoder=encoder,
                target_names=target_names,
                task_weights=task_weights,
                inputs=self.input_encoder_,
            )
        )
        net.train_split = predefined_split(valid) if valid is not None else None
        run = TrainingRun(
            saved=functools.partial(self._saved, net, encoder, seed0, target_names, single_output),
            seed=seed,
            history_start=n_epochs_done,
            epochs=1 if incremental else self.max_epochs,
            data=train,
        )
        with seeded(seed, self.device):
            if not continuing:
                net.initialize()
            try:
                with checkpointing(net, run, resume) as epochs:
                    net.partial_fit(train, None, epochs=epochs)
            finally:
                # the split holds the training data: a fitted net must not keep it
                net.train_split = None

        self._set_fitted(net, encoder, seed0, target_names, single_output, self.input_encoder_)
        self._warn_on_gate_collapse(X)
        return self

    def _set_fitted(self, net, encoder, random_seed, target_names, single_output, inputs):
        """Set the fitted attributes (after training, or when loading a file)."""
        self.input_encoder_ = inputs
        if inputs is not None and inputs.categories_:
            self.is_categorical_ = inputs.is_categorical.copy()
            names = getattr(self, "feature_names_in_", np.arange(self.n_features_in_))
            self.categories_ = dict(zip(names[inputs.is_categorical], inputs.categories_))
        else:
            self.is_categorical_ = self.categories_ = None
        self.net_ = net
        self.module_ = net.module_
        self.n_iter_ = len(net.history)
        self.target_encoder_ = encoder
        self.random_seed_ = random_seed
        self.n_tasks_ = len(target_names)
        self.target_names_ = target_names
        self._single_output = single_output

    def _drop_missing(self, X, columns, labels, sample_weight):
        missing = np.column_stack([missing_mask(c) for c in columns])
        if not missing.any():
            return X, columns, sample_weight
        if self.missing_targets == "error":
            bad = [labels[j] for j in np.flatnonzero(missing.any(axis=0))]
            raise ValueError(
                f"y contains missing values (NaN, None or pd.NA) in task(s) "
                f"{', '.join(bad)}. Pass missing_targets='ignore' to train each task "
                "on its labelled rows only."
            )
        empty = [labels[j] for j in np.flatnonzero(missing.all(axis=0))]
        if empty:
            raise ValueError(f"y has no label at all for task(s) {', '.join(empty)}.")
        keep = ~missing.all(axis=1)
        if keep.all():
            return X, columns, sample_weight
        warnings.warn(
            f"{int((~keep).sum())} row(s) have no label for any task and were dropped.",
            UserWarning,
            stacklevel=5,
        )
        return X[keep], [c[keep] for c in columns], sample_weight[keep]

    def _early_stopping(self, n_rows, continuing, incremental):
        """Whether this fit stops early: ``early_stopping`` with "auto" resolved.

        "auto" stops early in ``fit`` on at least :data:`AUTO_EARLY_STOPPING_ROWS`
        rows (after rows with no label are dropped), never in ``partial_fit``.
        A continued fit keeps its network's choice.
        """
        if continuing:
            stops = any(name == "early_stopping" for name, _ in self.net_.callbacks_)
            if incremental and stops:
                raise ValueError(
                    "partial_fit cannot continue a model fitted with early stopping "
                    f"(early_stopping={self.early_stopping!r}); fit it with "
                    "early_stopping=False to train it further with partial_fit."
                )
            return stops
        if isinstance(self.early_stopping, str):  # "auto"
            return not incremental and n_rows >= AUTO_EARLY_STOPPING_ROWS
        return bool(self.early_stopping)

    def _datasets(self, X, targets, seed, early_stopping):
        if not early_stopping:
            return TensorDataset(X, targets), None
        n = X.shape[0]
        n_valid = math.ceil(self.validation_fraction * n)
        if n - n_valid < 1:
            raise ValueError(
                f"early stopping with validation_fraction={self.validation_fraction} "
                f"leaves no training rows out of {n}."
            )
        train_idx, valid_idx = train_test_split(np.arange(n), test_size=n_valid, random_state=seed)
        return (
            TensorDataset(X, targets, torch.from_numpy(train_idx)),
            TensorDataset(X, targets, torch.from_numpy(valid_idx)),
        )

    # ------------------------------------------------------------ validation
    def _prepare_X(self, X, *, reset):
        """``X`` as the network reads it; on ``reset`` the input encoding is learnt.

        Numbers alone (an array or DataFrame with no categorical column) are
        validated and used as given, a sparse matrix kept as CSR; ``X`` with
        categorical columns (or any ``X`` with ``numeric_scaling="standard"``)
        is encoded by ``input_encoder_`` (see :mod:`sk_mmoe._inputs`).
        """
        if reset:
            self.input_encoder_ = self._new_input_encoder(X)
        elif self._plain_floats(X):
            return X
        if self.input_encoder_ is None:
            X = validate_data(
                self,
                X,
                reset=reset,
                dtype=(np.float32, np.float64),
                accept_sparse="csr",
                ensure_min_samples=2 if reset else 1,
            )
            check_float32_range(X)
            return X
        validate_data(self, X, reset=reset, skip_check_array=True)
        X = X if isinstance(X, pd.DataFrame) else _as_2d(X)
        _check_min_samples(X, 2 if reset else 1)
        names = getattr(self, "feature_names_in_", None)
        if reset:
            self.input_encoder_.fit(X, names)
        return self.input_encoder_.transform(X, names)

    def _plain_floats(self, X):
        """Whether ``validate_data`` would return ``X`` itself, unchanged and unwarned.

        True for a float32 / float64 ndarray of shape ``(n >= 1,
        n_features_in_)``, all within the float32 range (so finite), given to
        an estimator fitted on plain numbers without feature names:
        validating it again costs a one-row predict about as much as the
        network does. Anything else (and a NaN, infinite or too large value,
        for its error message) goes through ``validate_data`` and
        ``check_float32_range``.
        """
        return (
            type(X) is np.ndarray
            and X.dtype in _FLOAT_DTYPES
            and X.ndim == 2
            and X.shape[0] >= 1
            and X.shape[1] == self.n_features_in_
            and self.input_encoder_ is None
            and not hasattr(self, "feature_names_in_")
            # False for NaN (comparisons with NaN are False) and infinities
            and X.max() <= _FLOAT32_MAX
            and X.min() >= -_FLOAT32_MAX
        )

    def _new_input_encoder(self, X):
        """An unfitted encoder for categorical columns or scaling; None for plain numbers."""
        if issparse(X):
            if resolve_categorical(X, self.categorical_features, None) is not None:
                raise ValueError(
                    "categorical_features cannot be used with a sparse X; pass a DataFrame, "
                    "or one-hot encode the categorical columns."
                )
            return None
        raw = X if isinstance(X, pd.DataFrame) else _as_2d(X)
        mask = resolve_categorical(raw, self.categorical_features, getattr(raw, "columns", None))
        if mask is None and self.numeric_scaling != "standard":
            return None
        return InputEncoder(
            mask if mask is not None else np.zeros(raw.shape[1], dtype=bool),
            self.embedding_dim,
            self.min_frequency,
            scale_numeric=self.numeric_scaling is not None,
        )

    def _check_hyperparameters(self):
        return check_hyperparameters(self.get_params(deep=False))

    def _check_task_weights(self, n_tasks):
        return check_task_weights(self.task_weights, n_tasks)

    # ------------------------------------------------------------- inference
    def _forward(self, X, method="forward"):
        """Network outputs for ``X`` as float32 numpy, computed batch by batch.

        ``method`` is ``"forward"`` (``(n, sum C)``) or ``"gate_weights"``
        (``(n, T, E)``).
        """
        if "net_" not in self.__dict__:  # check_is_fitted costs a one-row predict 5%
            check_is_fitted(self, "net_")
        X = self._prepare_X(X, reset=False)
        out = run_module(self.module_, method, X, self.net_.device)
        # a sum first: one reduction where all is well (a finite sum can overflow)
        if not math.isfinite(out.sum()) and not np.isfinite(out).all():
            warnings.warn(
                "The network produced non-finite outputs (overflow) for some rows; "
                "their predictions are meaningless. Check X for extreme values.",
                RuntimeWarning,
                stacklevel=4,
            )
        return out

    def _decoded(self, X):
        outputs = self._forward(X)
        return self.target_encoder_.decode(outputs)

    def gate_weights(self, X, level=-1):
        """Mixture weights of each gate over the experts.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Input rows.
        level : int, default=-1
            Which level of gates: for ``architecture="ple"`` from 0 (the
            first) to ``n_levels - 1``, negative values counting from the
            last; the other architectures have one level (0 or -1).

        Returns
        -------
        weights : ndarray of shape (n_samples, n_gates, n_experts)
            Non-negative, each row summing to 1; experts in the order of
            ``expert_names_``. The gates are the tasks' (``n_gates =
            n_tasks``), except at a PLE level below the last, where a last
            row holds that level's shared gate (``n_gates = n_tasks + 1``).
            For ``architecture="moe"`` every task shares the one gate; for
            ``"cgc"`` and ``"ple"`` a task's gate is exactly 0 on the other
            tasks' experts.
        """
        check_is_fitted(self)
        if not self.module_.has_gates:
            raise ValueError(f"architecture={self.architecture!r} has no gates.")
        gates = functools.partial(self.module_.gate_weights, level=level)
        return self._forward(X, method=gates).astype(np.float64)

    @property
    def expert_names_(self):
        """Label of each expert, in the order of ``gate_weights``' last axis.

        ``"expert_0"``, ... for ``"mmoe"`` and ``"moe"``; ``"shared_0"``,
        ... then ``"<task name>_0"``, ... (``target_names_``) for ``"cgc"``
        and ``"ple"``; empty for ``"shared_bottom"``.
        """
        check_is_fitted(self)
        return self.module_.expert_labels([str(name) for name in self.target_names_])

    def save(self, path):
        """Save the fitted estimator to a file that is safe to load.

        The file is a zip archive of JSON (hyperparameters, fitted attributes,
        target encodings, training history) and the network weights as a
        tensor file read with ``torch.load(weights_only=True)``; loading it
        never runs code, unlike pickle or joblib, which must only be loaded
        from trusted sources. Callbacks and the optimizer state are not
        saved: a loaded estimator predicts identically and, with
        ``warm_start`` or ``partial_fit``, trains on with a fresh optimizer
        (to resume training exactly, see
        :class:`sk_mmoe.callbacks.TrainingCheckpoint`).

        The write is atomic: the file is written under a temporary name in
        the same directory, flushed to disk and then renamed over ``path``.
        If the save fails (a full disk, an interrupt), the temporary file is
        removed and a file already at ``path`` is left as it was.

        Fitted with an ``accelerator`` in several processes, only the main
        process (``accelerator.is_main_process``) writes the file; on the
        others ``save`` does nothing (they hold the same model).

        Parameters
        ----------
        path : str or path-like
            Where to write the file.
        """
        check_is_fitted(self)
        if not writes_files(self.accelerator):
            return
        _persistence.save(
            path,
            self._saved(
                self.net_,
                self.target_encoder_,
                self.random_seed_,
                self.target_names_,
                self._single_output,
            ),
        )

    def _saved(self, net, encoder, random_seed, target_names, single_output):
        """The :class:`~sk_mmoe._persistence.Saved` record of this estimator with this net.

        Fitted attributes come as arguments, so that a training checkpoint can
        record a fit in progress.
        """
        fitted = {
            "n_features_in_": int(self.n_features_in_),
            "feature_names_in_": (
                [str(n) for n in self.feature_names_in_]
                if hasattr(self, "feature_names_in_")
                else None
            ),
            "n_tasks_": len(target_names),
            "target_names_": [str(n) for n in target_names],
            "single_output": bool(single_output),
            "random_seed_": int(random_seed),
        }
        return _persistence.Saved(
            class_name=type(self).__name__,
            params=_plain_params(self.get_params(deep=False)),
            fitted=fitted,
            encoder=encoder,
            history=net.history.to_list(),
            state={
                "module": net.module_.state_dict(),
                "criterion": net.criterion_.state_dict(),
            },
            inputs=self.input_encoder_,
        )

    @classmethod
    def load(cls, path):
        """Load an estimator written by :meth:`save`.

        Parameters
        ----------
        path : str or path-like
            A file written by :meth:`save` of this class.

        Returns
        -------
        estimator : object
            A fitted estimator of this class.

        Raises
        ------
        ValueError
            If the file is not an sk_mmoe file of this class, is truncated or
            altered, its weights do not fit the saved model, or it is built
            to exhaust memory (a zip bomb, shapes beyond its weights, deep or
            duplicate JSON, unexpected or duplicate members).
        """
        saved = _persistence.load(path, cls)
        try:
            estimator = cls(**saved.params)
            fitted = saved.fitted
            names = np.asarray(fitted["target_names_"], dtype=object)
            estimator.n_features_in_ = fitted["n_features_in_"]
            inputs = saved.inputs
            hyper = estimator._check_hyperparameters()
            # the fit stopped early if it recorded validation losses
            hyper["early_stopping"] = bool(saved.history) and "valid_loss" in saved.history[-1]
            hyper["batch_size"] = _trained_batch_size(saved.history, hyper["batch_size"])
            net = build_net(
                hyper,
                n_features=estimator.n_features_in_,
                encoder=saved.encoder,
                target_names=names,
                task_weights=estimator._check_task_weights(fitted["n_tasks_"]),
                inputs=inputs,
            )
            with seeded(0, net.device):  # the weights are overwritten: leave torch's RNG alone
                net.initialize()
            try:
                net.module_.load_state_dict(saved.state["module"])
                net.criterion_.load_state_dict(saved.state["criterion"])
            except RuntimeError as exc:
                raise ValueError(
                    f"{path}: the weights do not fit the saved model: {exc}"
                ) from None
            net.history = History(saved.history)
            if fitted["feature_names_in_"] is not None:
                estimator.feature_names_in_ = np.asarray(fitted["feature_names_in_"], dtype=object)
            estimator._set_fitted(
                net,
                saved.encoder,
                fitted["random_seed_"],
                names,
                fitted["single_output"],
                inputs,
            )
        except (KeyError, TypeError, AttributeError, IndexError) as exc:
            raise ValueError(f"{path} is not a valid sk_mmoe file: missing or bad {exc}") from None
        return estimator

    def gate_summary(self, X, level=-1):
        """Per-task gate health: mean weight of each expert and gate entropy.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Input rows.
        level : int, default=-1
            Which level of gates (see ``gate_weights``).

        Returns
        -------
        summary : pandas.DataFrame
            One row per task (index ``target_names_``; at a PLE level below
            the last, a last row ``"shared"`` for the shared gate): columns
            ``expert_names_`` hold the gate's mean weight per expert
            (summing to 1); ``entropy`` the mean entropy of the gate in nats
            (0 when a gate always picks one expert, ``log(n)`` when it weighs
            all ``n`` experts it can reach equally); ``top_expert`` and
            ``top_weight`` the expert with the largest mean weight.
        """
        weights = self.gate_weights(X, level=level)
        names = list(self.target_names_) + ["shared"] * (weights.shape[1] - self.n_tasks_)
        return summarize(weights, names, self.expert_names_)

    def _warn_on_gate_collapse(self, X):
        threshold = self.gate_collapse_threshold
        if threshold is None or not self.module_.has_gates:
            return
        weights = run_module(self.module_, "gate_weights", X[:GATE_CHECK_ROWS], self.net_.device)
        labels = self.expert_names_
        summary = summarize(weights.astype(np.float64), self.target_names_, labels)
        warn_on_collapse(summary, threshold, labels, stacklevel=5)

    def _score_tasks(self, X, y, sample_weight):
        """Mean over tasks of R² (regression) or accuracy (classification).

        Missing labels are left out of their task's metric.
        """
        check_is_fitted(self)
        columns, _, _ = split_columns(y)
        check_consistent_length(X, columns[0])
        if len(columns) != self.n_tasks_:
            raise ValueError(f"y has {len(columns)} tasks, expected {self.n_tasks_}.")
        self.target_encoder_.check_labels(columns)
        predictions = self._decoded(X)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, columns[0])
        scores = []
        for j, (true, pred) in enumerate(zip(columns, predictions)):
            keep = ~missing_mask(true)
            weight = None if sample_weight is None else sample_weight[keep]
            metric = (
                r2_score if self.target_encoder_.task_types[j] == REGRESSION else accuracy_score
            )
            scores.append(metric(natural(true[keep]), pred[keep], sample_weight=weight))
        return float(np.mean(scores))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        tags.input_tags.sparse = True
        tags.input_tags.categorical = True
        tags.input_tags.string = True
        return tags


_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _as_2d(X):
    """An array-like as a 2-D array, without converting its values (they may be strings)."""
    return check_array(
        X, dtype=None, ensure_all_finite=False, ensure_min_samples=0, input_name="X"
    )


def _check_min_samples(X, minimum):
    if X.shape[0] < minimum:
        raise ValueError(
            f"Found array with {X.shape[0]} sample(s) (shape={X.shape}) while a minimum of "
            f"{minimum} is required."
        )


def _plain_params(params):
    """``get_params`` with an array ``categorical_features`` as a list, for the file."""
    spec = params.get("categorical_features")
    if spec is not None and not isinstance(spec, str):
        params = {**params, "categorical_features": np.asarray(spec).tolist()}
    return params


def _trained_batch_size(history, batch_size):
    """The batch size a saved fit trained with: "auto" read back from its history."""
    if not isinstance(batch_size, str):
        return batch_size
    sizes = [b.get("train_batch_size", 0) for epoch in history for b in epoch.get("batches", ())]
    return max(sizes, default=0) or resolve_batch_size(batch_size, 0)
