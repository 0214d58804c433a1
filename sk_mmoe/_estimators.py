"""Public estimators: thin fronts over :class:`~sk_mmoe._base._BaseMMoE`."""

from __future__ import annotations

import inspect

import numpy as np
from sklearn.base import ClassifierMixin, RegressorMixin, _fit_context
from sklearn.utils import ClassifierTags, RegressorTags
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from ._base import _BaseMMoE
from ._targets import infer_task_type
from ._task_types import CLASSIFICATION, REGRESSION, TASK_TYPES

# The parameters and attributes every estimator shares, inserted into each
# class docstring by ``_document``. Written without indentation: the class
# docstrings are dedented (``inspect.cleandoc``) before they are filled in,
# so the result is the same on every Python version.
_SHARED_PARAMETERS = """\
architecture : {"mmoe", "moe", "shared_bottom", "cgc", "ple"}, default="mmoe"
    The network (see ``sk_mmoe.architectures.ARCHITECTURES``). ``"mmoe"``:
    one softmax gate per task over shared experts (Ma et al., 2018).
    ``"moe"``: one gate shared by all tasks. ``"shared_bottom"``: one
    shared MLP (of widths ``expert_units``) under the task towers.
    ``"cgc"``: shared experts plus ``n_task_experts`` experts per task;
    task k's gate mixes the shared experts and task k's own only (Tang
    et al., 2020). ``"ple"``: CGC levels stacked ``n_levels`` deep, each
    level but the last with a shared gate over all its experts that feeds
    the next level's shared experts.
n_experts : int, default=8
    Number of experts (ignored by ``"shared_bottom"``); for ``"cgc"`` and
    ``"ple"`` the number of shared experts per level (each level then has
    ``n_experts + n_tasks * n_task_experts`` experts).
n_task_experts : int, default=1
    ``"cgc"`` and ``"ple"`` only (ignored by the others): experts of each
    task per level.
n_levels : int, default=2
    ``"ple"`` only (ignored by the others, so one grid can search it
    with ``architecture``): number of extraction levels; ``"cgc"`` is one
    level, and ``"ple"`` with ``n_levels=1`` is the same network.
categorical_features : "from_dtype", array-like or None, default="from_dtype"
    Which columns of ``X`` are categorical and get a learned embedding, as
    in ``HistGradientBoostingClassifier``: ``"from_dtype"`` (the category,
    object, string and bool columns of a DataFrame; none of a numeric
    array), column names, indices or a boolean mask, or None for none.
embedding_dim : int, dict or "auto", default="auto"
    Embedding width of each categorical column: one int for all, a dict
    by column name (other columns get ``"auto"``), or ``"auto"``:
    ``round(1.6 * n_codes ** 0.56)`` capped at 32, where ``n_codes`` is the
    column's number of categories plus 2 ("missing" and "other"); e.g. 2 for
    a boolean column, 6 for 8 categories, 21 for 100.
min_frequency : int, default=1
    Categories seen in fewer than this many training rows share one
    embedding (code "other") with the categories never seen in fit; that
    embedding starts at zero and is learnt from the rare categories. A
    missing value (NaN, None, ``pd.NA``) in a categorical column is a
    category of its own.
numeric_scaling : {"auto", "standard"} or None, default="auto"
    Standardisation of the numeric columns inside the estimator (mean and
    scale learnt in ``fit``, saved with the model). ``"auto"``: when ``X``
    has categorical columns, so a raw DataFrame of ages and dollar amounts
    trains as well as after a ``StandardScaler``; an all-numeric ``X``
    (array or DataFrame) is used as given, like a plain MLP would.
    ``"standard"``: always. None: never.
expert_units : tuple of int, default=(64,)
    Hidden widths of each expert; the last is the expert output width.
tower_units : tuple of int, default=(32,)
    Hidden widths of each task tower (may be empty).
activation : {"relu", "gelu", "silu", "tanh", "elu", "selu", \
"leaky_relu", "sigmoid"}, default="relu"
    Activation after every hidden layer of the experts and towers.
dropout : float in [0, 1), default=0.0
    Dropout after every hidden layer of the experts and towers.
gate_dropout : float in [0, 1), default=0.0
    During training, drop each expert from each gate's mixture with this
    probability and renormalise (expert-utilisation dropout, Zhao et al.,
    RecSys 2019). It does not prevent gate collapse: in our measurements
    (user guide, "Gates and their diagnostics") 0.1 left the gates' entropy where it was and
    0.3 raised it only a little; use ``gate_entropy_bonus``.
gate_entropy_bonus : float >= 0, default=0.0
    Subtract this times the gates' entropy (in nats: each gate's entropy
    averaged over the rows, summed over the gates of every level) from the
    training loss, so that gates keep mixing experts instead of collapsing
    onto one. Gated architectures only. 0.01 prevented the collapse we
    measured without a measurable change of test ROC AUC (user guide,
    "Gates and their diagnostics"); 0.1 makes the gates almost uniform.
gate_collapse_threshold : float in (0, 1] or None, default=0.95
    After ``fit``, warn (``GateCollapseWarning``) when a task's gate puts
    more than this mean weight on one expert (for ``"ple"``, the gates of
    the last level, which feed the towers); None disables the check. See
    ``gate_summary``.
task_weights : array-like of shape (n_tasks,) or {"uncertainty", "dwa", \
"gradnorm", "pcgrad"}, default=None
    Fixed non-negative loss weight per task (None: all 1), or a balancing
    method (see "Balancing tasks" in the user guide): ``"uncertainty"`` learns
    the weights (Kendall et al., 2018); ``"dwa"`` sets them each epoch from
    the ratio of each task's last two epoch losses (Liu et al., 2019);
    ``"gradnorm"`` learns them so that the tasks' gradient norms on the last
    shared layer follow their training rates (Chen et al., 2018);
    ``"pcgrad"`` keeps equal weights and removes, at every step, the part of
    each task's gradient on the shared parameters that conflicts with
    another's (Yu et al., 2020). ``"gradnorm"`` and ``"pcgrad"`` run one
    backward pass per task. The learned weights are in
    ``net_.history[:, "task_weights"]``; for the learned weights
    (``"uncertainty"``, ``"dwa"``, ``"gradnorm"``) ``valid_loss`` is the
    unweighted sum of the task losses.
dwa_temperature : float > 0, default=2.0
    ``task_weights="dwa"`` only: the softmax temperature; larger is closer
    to equal weights.
gradnorm_alpha : float >= 0, default=1.5
    ``task_weights="gradnorm"`` only: how strongly tasks whose loss falls
    slower are given larger gradients (0: equal gradient norms).
track_task_conflict : bool, default=False
    Record, each epoch, the cosine similarity between each pair of tasks'
    gradients on the shared parameters and each task's gradient norm
    (``net_.history`` keys ``task_grad_cosine``, ``task_grad_conflict``, the
    share of steps where a pair's cosine was negative, and
    ``task_grad_norm``; see ``sk_mmoe.plotting.TaskConflictDisplay``).
    Costs one backward pass per task at every step.
max_epochs : int, default=100
    Epochs per ``fit`` (``partial_fit`` runs one).
batch_size : int or "auto", default="auto"
    Rows per training step. ``"auto"``: 256, or 512 when ``fit`` gets
    50,000 rows or more, 1,024 from 100,000 rows (fewer, larger steps keep
    large fits fast). Prediction uses its own, larger chunks.
lr : float, default=1e-3
    Learning rate.
optimizer : {"adam", "adamw", "sgd", "rmsprop", "adagrad"} or \
torch.optim.Optimizer subclass, default="adam"
    The optimizer, by name or class.
weight_decay : float, default=0.0
    The optimizer's ``weight_decay`` (L2 penalty; decoupled for
    ``"adamw"``).
early_stopping : "auto" or bool, default="auto"
    Hold out ``validation_fraction`` of the rows, stop after
    ``n_iter_no_change`` epochs without an improvement of the validation
    loss by at least ``tol``, and restore the best weights. ``"auto"``
    stops early when ``fit`` gets at least 1,000 labelled rows (a hold-out
    of 100 rows or more) and trains all ``max_epochs`` otherwise: on the
    real-data suite (``benchmarks/choose_defaults.py``) 100 epochs without
    it overfit badly, down to negative R² on 3,000 rows. ``True`` is not available with
    ``partial_fit``; ``"auto"`` never stops early there, and ``partial_fit``
    cannot continue a model that ``fit`` stopped early.
validation_fraction : float in (0, 1), default=0.1
    Share of the rows held out for early stopping (ignored otherwise).
n_iter_no_change : int, default=10
    Epochs without improvement before early stopping ends the fit.
tol : float, default=1e-4
    Smallest decrease of the validation loss that counts as an improvement.
missing_targets : {"error", "ignore"}, default="error"
    ``"error"``: missing labels (NaN, None, ``pd.NA``) in ``y`` raise.
    ``"ignore"``: a missing cell adds no loss for its task; rows missing
    every task are dropped with a warning.
callbacks : list of skorch callbacks, default=None
    Extra skorch callbacks (copied before use) or ``(name, callback)``
    pairs.
device : str or torch.device, default="cpu"
    Where the network trains and predicts, e.g. ``"cuda"`` or
    ``"cuda:1"``.
accelerator : accelerate.Accelerator or None, default=None
    Train through Hugging Face ``accelerate`` (several GPUs, mixed
    precision) with skorch's ``AccelerateMixin``: create it with
    ``Accelerator(device_placement=False)``, pass each process's device
    (``device=str(accelerator.device)``) and run ``fit`` in every process
    launched by ``accelerate launch``; each process trains on its share of
    the batches. Nets trained this way are not guaranteed to pickle; use
    ``save``. See ``examples/multi_gpu_accelerate.py``.
random_state : int, RandomState instance or None, default=None
    Seeds initialisation, shuffling and dropout without touching torch's
    global random state. The same int gives identical predictions.
verbose : int, default=0
    0 silent; 1 progress bar and one log line per epoch.
warm_start : bool, default=False
    If True, ``fit`` continues training the current network."""

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
        encoder = self.target_encoder_
        blocks = encoder.split(self._forward(X))
        proba = [
            None if kind == REGRESSION else encoder.probabilities(j, block)
            for j, (kind, block) in enumerate(zip(encoder.task_types, blocks))
        ]
        return proba[0] if self._single_output else proba


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
        super().__init__(
            architecture=architecture,
            n_experts=n_experts,
            n_task_experts=n_task_experts,
            n_levels=n_levels,
            categorical_features=categorical_features,
            embedding_dim=embedding_dim,
            min_frequency=min_frequency,
            numeric_scaling=numeric_scaling,
            expert_units=expert_units,
            tower_units=tower_units,
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
            callbacks=callbacks,
            device=device,
            accelerator=accelerator,
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
