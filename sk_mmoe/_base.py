"""The one implementation behind every public estimator.

``_BaseMMoE`` validates inputs, encodes targets per task, builds and trains a
skorch net and decodes its outputs. The public estimators only choose how
each target column is treated (regression or classification) and which
methods they expose.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from sklearn.base import BaseEstimator, _fit_context
from sklearn.metrics import accuracy_score, r2_score
from sklearn.utils.validation import (
    _check_sample_weight,
    check_consistent_length,
    check_is_fitted,
)
from skorch.history import History

from . import _persistence
from ._factory import build_net
from ._fit_run import FitRun
from ._gates import GateDiagnostics
from ._hyperparameters import (
    PARAMETER_CONSTRAINTS,
    check_hyperparameters,
    check_task_weights,
    resolve_batch_size,
)
from ._inference import run_module, stack_tasks
from ._net import seeded
from ._parquet import is_source
from ._stream_fit import read_targets, stream_outputs
from ._targets import (
    missing_mask,
    natural,
    split_columns,
)
from ._task_types import REGRESSION
from ._validation import InputValidation


class _BaseMMoE(InputValidation, GateDiagnostics, BaseEstimator):
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
        n_jobs=None,
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
        self.n_jobs = n_jobs
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
        run = FitRun(self, incremental=incremental, classes=classes, resume=resume)
        return run.run(X, y, sample_weight)

    def _build_net(self, hyper, encoder, target_names):
        """The untrained net for these hyperparameters, targets and ``input_encoder_``."""
        return build_net(
            hyper,
            n_features=self.n_features_in_,
            encoder=encoder,
            target_names=target_names,
            task_weights=self._check_task_weights(len(target_names)),
            inputs=self.input_encoder_,
        )

    def _set_fitted(self, net, encoder, random_seed, target_names, single_output, inputs):
        """Set the fitted attributes (after training, or when loading a file)."""
        self.input_encoder_ = inputs
        if inputs is not None and inputs.is_categorical.any():
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
        if is_source(X):
            out = stream_outputs(self, X, method)
        else:
            X = self._prepare_X(X, reset=False)
            out = run_module(self.module_, method, X, self.net_.device, self.n_jobs)
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

        Parameters
        ----------
        path : str or path-like
            Where to write the file.
        """
        check_is_fitted(self)
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
            params=self.get_params(deep=False),
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

    def _score_tasks(self, X, y, sample_weight):
        """Mean over tasks of R² (regression) or accuracy (classification).

        Missing labels are left out of their task's metric.
        """
        check_is_fitted(self)
        if is_source(X):
            y, sample_weight = read_targets(X, y, sample_weight)
        columns, _, _ = split_columns(y)
        if not is_source(X):
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


def _trained_batch_size(history, batch_size):
    """The batch size a saved fit trained with: "auto" read back from its history."""
    if not isinstance(batch_size, str):
        return batch_size
    sizes = [b.get("train_batch_size", 0) for epoch in history for b in epoch.get("batches", ())]
    return max(sizes, default=0) or resolve_batch_size(batch_size, 0)
