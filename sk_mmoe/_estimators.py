"""Public estimators: thin fronts over :class:`~sk_mmoe._base._BaseMMoE`."""

from __future__ import annotations

import inspect

import numpy as np
from sklearn.base import ClassifierMixin, RegressorMixin, _fit_context
from sklearn.utils import ClassifierTags, RegressorTags
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from ._base import _BaseMMoE
from ._hyperparameters import HYPERPARAMETERS
from ._targets import infer_task_type
from ._task_types import CLASSIFICATION, REGRESSION, TASK_TYPES

# The parameters and attributes every estimator shares, inserted into each
# class docstring by ``_document``; the parameters' entries come from the
# hyperparameter table. Written without indentation: the class docstrings are
# dedented (``inspect.cleandoc``) before they are filled in, so the result is
# the same on every Python version.
_SHARED_PARAMETERS = "\n".join(row.doc_entry for row in HYPERPARAMETERS)

_SHARED_ATTRIBUTES = """\
n_features_in_ : int
    Number of input columns seen in ``fit``.
feature_names_in_ : ndarray of shape (``n_features_in_``,)
    Defined only when ``X`` has string column names.
is_categorical_ : ndarray of bool of shape (``n_features_in_``,) or None
    Which input columns were treated as categorical (embedded); None when
    none were.
categories_ : dict or None
    For each categorical column (by name, or by index for an array), the
    categories that have their own embedding, in code order; None when no
    column is categorical. Kept by ``partial_fit`` and ``warm_start``:
    categories that first appear later map to "other".
input_encoder_ : object or None
    The fitted input encoding (categories, embedding widths, numeric
    scaling); None when ``X`` is used as given.
n_tasks_ : int
    Number of tasks (target columns).
target_names_ : ndarray of shape (``n_tasks_``,)
    Column names of a DataFrame ``y``, else ``"task_0"``, ``"task_1"``, ...
net_ : skorch.NeuralNet
    The trained net; ``net_.history`` is the training log.
module_ : torch.nn.Module
    The trained network.
expert_names_ : list of str
    Label of each expert, in the order of ``gate_weights``' last axis:
    ``"expert_0"``, ... for ``"mmoe"`` and ``"moe"``; ``"shared_0"``, ...
    then ``"<task name>_0"``, ... for ``"cgc"`` and ``"ple"``; empty for
    ``"shared_bottom"``.
n_iter_ : int
    Epochs trained in total. With ``early_stopping``, ``net_.history``
    holds ``valid_loss`` and ``valid_loss_<task name>`` for each epoch."""


def _document(cls):
    """Fill the shared parameters and attributes into ``cls``'s docstring."""
    cls.__doc__ = (
        inspect.cleandoc(cls.__doc__)
        .replace("{parameters}", _SHARED_PARAMETERS)
        .replace("{attributes}", _SHARED_ATTRIBUTES)
        + "\n"
    )
    return cls


def _has_task_sequence(estimator):
    """Whether ``conditional_proba`` is available: a funnel was given."""
    return estimator.task_sequence is not None


class _ClassOutputs:
    """``classes_`` and ``predict_proba`` for estimators with classification tasks."""

    @property
    def classes_(self):
        """The labels of each task (None for a regression task); one array for 1-D ``y``."""
        check_is_fitted(self)
        classes = self.target_encoder_.classes
        return classes[0] if self._single_output else classes

    def predict_proba(self, X):
        """Class probabilities of each classification task.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Input rows.

        Returns
        -------
        proba : list, or ndarray of shape (n_samples, n_classes)
            One entry per task: an array of shape (n_samples, n_classes_k),
            columns in the order of ``classes_[k]``, for a classification
            task; None for a regression task (``MMoEMultiTask`` only). A
            single array when fitted on 1-D ``y``.
        """
        check_is_fitted(self)
        proba = self.target_encoder_.all_probabilities(self._forward(X))
        return proba[0] if self._single_output else proba

    @available_if(_has_task_sequence)
    def conditional_proba(self, X):
        """Probabilities of each funnel step given the earlier one (``task_sequence``).

        ``predict_proba`` gives a later funnel step's joint probability
        (e.g. P(click and convert)); this method gives its conditional
        probability (P(convert | click)), the one its tower learns. The
        first step and the tasks outside the funnel are as in
        ``predict_proba``. Available only with a ``task_sequence``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Input rows.

        Returns
        -------
        proba : list
            One entry per task, as ``predict_proba``: an array of shape
            (n_samples, n_classes_k), or None for a regression task. For a
            later funnel step, ``[1 - P(step | earlier), P(step | earlier)]``;
            its column 1 times the earlier step's ``predict_proba`` column 1
            is its ``predict_proba`` column 1.
        """
        check_is_fitted(self)
        return self.target_encoder_.all_probabilities(self._forward(X), conditional=True)


@_document
class MMoERegressor(RegressorMixin, _BaseMMoE):
    """Multi-task regressor: Multi-gate Mixture-of-Experts (MMoE).

    Each target column is a task. Targets are standardised per task inside,
    so tasks on different scales train evenly, and mapped back on predict.

    Parameters
    ----------
    {parameters}

    Attributes
    ----------
    {attributes}

    See Also
    --------
    MMoEClassifier : The same model for classification targets.

    References
    ----------
    J. Ma, Z. Zhao, X. Yi, J. Chen, L. Hong, E. H. Chi. Modeling Task
    Relationships in Multi-task Learning with Multi-gate Mixture-of-Experts.
    KDD 2018.

    Examples
    --------
    >>> from sk_mmoe import MMoERegressor
    >>> from sk_mmoe.datasets import make_mmoe_tasks
    >>> X, Y = make_mmoe_tasks(500, n_features=10, correlation=0.5, random_state=0)
    >>> reg = MMoERegressor(max_epochs=5, random_state=0).fit(X, Y)
    >>> reg.predict(X[:3]).shape
    (3, 2)
    >>> reg.gate_weights(X[:3]).shape
    (3, 2, 8)
    """

    def _task_types(self, columns, names):
        if self.task_sequence is not None:
            raise ValueError(
                "MMoERegressor does not take a task_sequence: funnel steps are binary "
                "tasks, and a regressor's tasks are continuous. Use MMoEClassifier or "
                "MMoEMultiTask for a funnel."
            )
        return [REGRESSION] * len(columns)

    score = _BaseMMoE.score  # not RegressorMixin's: missing labels, per-task mean

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.regressor_tags.poor_score = True
        return tags


@_document
class MMoEClassifier(ClassifierMixin, _ClassOutputs, _BaseMMoE):
    """Multi-task classifier: Multi-gate Mixture-of-Experts (MMoE).

    Each target column is a task with its own labels (strings, integers,
    booleans; columns of a DataFrame may differ in type). A task with two
    classes has one logit and a binary cross-entropy loss; a task with more
    has a softmax and a cross-entropy loss.

    Parameters
    ----------
    {parameters}

    Attributes
    ----------
    classes_ : list of ndarray, or ndarray
        The labels of each task; a single array when fitted on 1-D ``y``.
    {attributes}

    See Also
    --------
    MMoERegressor : The same model for continuous targets.

    Notes
    -----
    ``score`` is the mean of the per-task accuracies; scikit-learn's
    ``"accuracy"`` scorer rejects multiclass-multioutput targets, so use
    :mod:`sk_mmoe.metrics` scorers (or the default ``score``) for model
    selection.

    Examples
    --------
    >>> import pandas as pd
    >>> from sk_mmoe import MMoEClassifier
    >>> X = [[0.0, 1.0], [1.0, 0.0], [0.2, 0.9], [0.9, 0.1]] * 10
    >>> y = pd.DataFrame({"colour": ["red", "blue", "red", "blue"] * 10,
    ...                   "size": [1, 2, 1, 3] * 10})
    >>> clf = MMoEClassifier(max_epochs=3, random_state=0).fit(X, y)
    >>> clf.classes_
    [array(['blue', 'red'], dtype='<U4'), array([1, 2, 3])]
    >>> clf.predict(X[:2]).shape
    (2, 2)
    >>> [p.shape for p in clf.predict_proba(X[:2])]
    [(2, 2), (2, 3)]
    """

    def _task_types(self, columns, names):
        for column in columns:
            check_classification_targets(column)
        # binary or multiclass is settled by the number of classes
        return [CLASSIFICATION] * len(columns)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """Train one epoch on ``(X, y)``, starting from the current weights.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data.
        y : array-like of shape (n_samples,) or (n_samples, n_tasks)
            Labels, one column per task.
        classes : array-like or list of array-like, default=None
            All labels of each task, required on the first call when a batch
            may not contain every label: one array for 1-D ``y``, a list of
            arrays (one per task) for 2-D ``y``.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative row weights.

        Returns
        -------
        self : MMoEClassifier
            The estimator, trained one more epoch.
        """
        if classes is not None and not hasattr(self, "net_"):
            single = np.ndim(y) == 1 or getattr(y, "ndim", 2) == 1
            classes = [np.asarray(classes)] if single else [np.asarray(c) for c in classes]
        else:
            classes = None
        return self._fit(X, y, sample_weight, incremental=True, classes=classes)

    score = _BaseMMoE.score  # not ClassifierMixin's: multiclass-multioutput y

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.poor_score = True
        tags.classifier_tags.multi_label = True
        return tags


@_document
class MMoEMultiTask(_ClassOutputs, _BaseMMoE):
    """Multi-task model mixing regression and classification tasks.

    The typical case is a recommender's click (binary) and watch time
    (regression) predicted by one MMoE network. Each target column is a task
    of its own type; regression targets are standardised inside, class labels
    keep their original values.

    Parameters
    ----------
    task_types : "auto", list of str or dict, default="auto"
        ``"auto"``: per column, continuous values (by
        :func:`~sklearn.utils.multiclass.type_of_target`) are a regression
        task, anything else (strings, integers, booleans) a classification
        task. Otherwise one of ``"regression"``, ``"binary"``,
        ``"multiclass"`` per column, as a list in column order or a dict by
        column name (``target_names_``; ``"task_0"``, ... for arrays). Use it
        for integer-valued regression targets such as counts, which ``"auto"``
        reads as classes.
    {parameters}

    Attributes
    ----------
    task_types_ : list of str
        ``"regression"``, ``"binary"`` or ``"multiclass"`` per task.
    classes_ : list
        The labels of each classification task; None for regression tasks.
    {attributes}

    See Also
    --------
    MMoERegressor : All tasks regression.
    MMoEClassifier : All tasks classification.

    Notes
    -----
    ``predict`` returns an array of shape (n_samples, n_tasks); it has object
    dtype when task types mix (labels for classification columns, floats for
    regression columns). ``predict_proba`` returns a list with one entry per
    task: an array (n_samples, n_classes_k) for a classification task and
    None for a regression task. ``score`` is the mean over tasks of R²
    (regression tasks) and accuracy (classification tasks).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from sk_mmoe import MMoEMultiTask
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(200, 5))
    >>> y = pd.DataFrame({"click": np.where(X[:, 0] > 0, "yes", "no"),
    ...                   "watch_time": 3.0 * X[:, 1] + 10.0})
    >>> model = MMoEMultiTask(max_epochs=5, random_state=0).fit(X, y)
    >>> model.task_types_
    ['binary', 'regression']
    >>> model.predict(X[:2]).dtype
    dtype('O')
    >>> [None if p is None else p.shape for p in model.predict_proba(X[:2])]
    [(2, 2), None]
    """

    _parameter_constraints: dict = {
        **_BaseMMoE._parameter_constraints,
        "task_types": [StrOptions({"auto"}), list, tuple, dict],
    }

    def __init__(
        self,
        *,
        task_types="auto",
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
        super().__init__(
            architecture=architecture,
            n_experts=n_experts,
            n_task_experts=n_task_experts,
            n_levels=n_levels,
            categorical_features=categorical_features,
            embedding_dim=embedding_dim,
            min_frequency=min_frequency,
            one_hot_max_categories=one_hot_max_categories,
            numeric_scaling=numeric_scaling,
            numeric_embedding=numeric_embedding,
            n_bins=n_bins,
            numeric_embedding_dim=numeric_embedding_dim,
            frequency_scale=frequency_scale,
            expert_units=expert_units,
            tower_units=tower_units,
            n_ensemble=n_ensemble,
            activation=activation,
            dropout=dropout,
            gate_dropout=gate_dropout,
            gate_entropy_bonus=gate_entropy_bonus,
            gate_collapse_threshold=gate_collapse_threshold,
            task_weights=task_weights,
            dwa_temperature=dwa_temperature,
            gradnorm_alpha=gradnorm_alpha,
            track_task_conflict=track_task_conflict,
            max_epochs=max_epochs,
            batch_size=batch_size,
            lr=lr,
            optimizer=optimizer,
            weight_decay=weight_decay,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            n_iter_no_change=n_iter_no_change,
            tol=tol,
            missing_targets=missing_targets,
            task_sequence=task_sequence,
            callbacks=callbacks,
            device=device,
            accelerator=accelerator,
            n_jobs=n_jobs,
            random_state=random_state,
            verbose=verbose,
            warm_start=warm_start,
        )
        self.task_types = task_types

    def _task_types(self, columns, names):
        spec = self.task_types
        if isinstance(spec, str):  # "auto"
            return [infer_task_type(col, name) for col, name in zip(columns, names)]
        if isinstance(spec, dict):
            unknown = sorted(set(map(str, spec)) - set(names))
            missing = [n for n in names if n not in spec]
            if unknown or missing:
                raise ValueError(
                    f"task_types must name every target column {names}; "
                    f"unknown: {unknown}, missing: {missing}."
                )
            spec = [spec[n] for n in names]
        spec = list(spec)
        if len(spec) != len(columns):
            raise ValueError(f"task_types has {len(spec)} entries but y has {len(columns)} tasks.")
        for kind, col, name in zip(spec, columns, names):
            if kind not in TASK_TYPES:
                raise ValueError(
                    f"task_types[{name!r}] must be one of {TASK_TYPES}, got {kind!r}."
                )
            if kind != REGRESSION:
                check_classification_targets(col)
        return spec

    @property
    def task_types_(self):
        """``"regression"``, ``"binary"`` or ``"multiclass"`` per task."""
        check_is_fitted(self)
        return list(self.target_encoder_.task_types)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # classification tasks are possible (predict_proba): describe them as
        # the classifier does, without making this estimator a classifier
        tags.classifier_tags = ClassifierTags(multi_label=True, poor_score=True)
        tags.regressor_tags = RegressorTags(poor_score=True)
        return tags
