"""The one implementation behind every public estimator.

``_BaseMMoE`` validates inputs, encodes targets per task, builds and trains a
skorch net and decodes its outputs. The public estimators only choose how
each target column is treated (regression or classification) and which
methods they expose.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, _fit_context

from ._gates import GateDiagnostics
from ._hyperparameters import (
    PARAMETER_CONSTRAINTS,
    check_hyperparameters,
    check_task_weights,
)
from ._inference import stack_tasks
from ._predicting import Prediction
from ._validation import InputValidation
from .persistence._saving import Persistence
from .training._factory import build_net
from .training._fit_run import FitRun


class _BaseMMoE(InputValidation, Prediction, GateDiagnostics, Persistence, BaseEstimator):
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
        one_hot_max_categories=9,
        numeric_scaling="auto",
        numeric_embedding="auto",
        n_bins="auto",
        numeric_embedding_dim=16,
        frequency_scale=0.01,
        expert_units=(64,),
        tower_units=(32,),
        n_ensemble=1,
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
        task_sequence=None,
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
        self.one_hot_max_categories = one_hot_max_categories
        self.numeric_scaling = numeric_scaling
        self.numeric_embedding = numeric_embedding
        self.n_bins = n_bins
        self.numeric_embedding_dim = numeric_embedding_dim
        self.frequency_scale = frequency_scale
        self.expert_units = expert_units
        self.tower_units = tower_units
        self.n_ensemble = n_ensemble
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
        self.task_sequence = task_sequence
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

    def _use_task_sequence(self, encoder, target_names, continuing=False):
        """Set ``encoder.sequence`` from ``task_sequence`` (checked against the tasks).

        A continued fit (``partial_fit``, ``warm_start``) keeps its network's
        funnel: a changed ``task_sequence`` raises ``ValueError``.
        """
        sequence = encoder.resolve_sequence(self.task_sequence, target_names)
        if continuing and sequence != encoder.sequence:
            raise ValueError(
                f"task_sequence={self.task_sequence!r} differs from the funnel this "
                "estimator was fitted with; call fit (not partial_fit / warm_start) to "
                "change it."
            )
        encoder.sequence = sequence

    def _build_net(self, hyper, encoder, target_names):
        """The untrained net for these hyperparameters, targets and ``input_encoder_``."""
        self._use_task_sequence(encoder, target_names)
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
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        tags.input_tags.sparse = True
        tags.input_tags.categorical = True
        tags.input_tags.string = True
        return tags
