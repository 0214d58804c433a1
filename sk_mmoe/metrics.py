"""Scorers that apply a scikit-learn metric to each task and average.

scikit-learn's ``"accuracy"`` and ``"roc_auc"`` scorers reject
multiclass-multioutput targets, and its regression scorers give no per-task
view. :func:`make_task_scorer` turns any metric ``metric(y_true, y_pred)``
into a scorer that is computed task by task (rows with a missing label are
left out of that task) and averaged, usable wherever scikit-learn takes
``scoring=``.

============================  ============================
replace this string           with
============================  ============================
``"accuracy"``                ``task_accuracy_scorer``
``"roc_auc"``                 ``task_roc_auc_scorer``
``"neg_log_loss"``            ``task_neg_log_loss_scorer``
``"r2"``                      ``task_r2_scorer``
``"neg_mean_squared_error"``  ``task_neg_mse_scorer``
============================  ============================
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    log_loss,
    mean_squared_error,
    r2_score,
    roc_auc_score,
)

from ._targets import missing_mask, natural, split_columns

__all__ = [
    "TaskScorer",
    "make_task_scorer",
    "task_accuracy_scorer",
    "task_neg_log_loss_scorer",
    "task_neg_mse_scorer",
    "task_r2_scorer",
    "task_roc_auc_scorer",
]

_RESPONSE_METHODS = ("predict", "predict_proba")


class TaskScorer:
    """Callable ``scorer(estimator, X, y, sample_weight=None)``; see :func:`make_task_scorer`.

    Parameters
    ----------
    metric : callable
        ``metric(y_true, y_pred, **kwargs)`` for one task.
    response_method : {"predict", "predict_proba"}
        The estimator method whose output is scored.
    sign : {1, -1}
        -1 turns a loss into a score (greater is better).
    per_task : bool
        Return a dict of per-task scores (and their mean) instead of the mean.
    kwargs : dict
        Extra keyword arguments for ``metric``.
    """

    def __init__(self, metric, response_method, sign, per_task, kwargs):
        self.metric = metric
        self.response_method = response_method
        self.sign = sign
        self.per_task = per_task
        self.kwargs = kwargs

    def __repr__(self):
        name = getattr(self.metric, "__name__", repr(self.metric))
        return (
            f"make_task_scorer({name}, response_method={self.response_method!r}, "
            f"greater_is_better={self.sign > 0}, per_task={self.per_task})"
        )

    def __call__(self, estimator, X, y, sample_weight=None):
        columns, _, _ = split_columns(y)
        if self.response_method == "predict":
            pred = np.asarray(estimator.predict(X))
            outputs = (
                [natural(pred)]
                if pred.ndim == 1
                else [natural(pred[:, k]) for k in range(pred.shape[1])]
            )
            classes = [None] * len(columns)
        else:
            proba = estimator.predict_proba(X)
            outputs = [proba] if isinstance(proba, np.ndarray) else list(proba)
            classes = estimator.classes_
            classes = [classes] if isinstance(classes, np.ndarray) else list(classes)
        if len(outputs) != len(columns):
            raise ValueError(f"y has {len(columns)} tasks, the estimator predicts {len(outputs)}.")
        if sample_weight is not None:
            sample_weight = np.asarray(sample_weight)
        scores = {}
        names = getattr(estimator, "target_names_", None)
        for k, (true, out, labels) in enumerate(zip(columns, outputs, classes)):
            if out is None:  # a task this response method does not cover
                continue
            keep = ~missing_mask(true)
            kwargs = dict(self.kwargs)
            if sample_weight is not None:
                kwargs["sample_weight"] = sample_weight[keep]
            out = out[keep]
            true = natural(true[keep])
            if self.response_method == "predict_proba":
                if self.metric is roc_auc_score and out.shape[1] == 2:
                    out = out[:, 1]  # the positive class, classes_[k][1]
                elif self.metric in (roc_auc_score, log_loss):
                    kwargs.setdefault("labels", labels)
                    if self.metric is roc_auc_score:
                        kwargs.setdefault("multi_class", "ovr")
            name = str(names[k]) if names is not None else f"task_{k}"
            scores[name] = self.sign * float(self.metric(true, out, **kwargs))
        if not scores:
            raise ValueError(f"No task of this estimator supports {self.response_method}.")
        mean = float(np.mean(list(scores.values())))
        if self.per_task:
            return {"mean": mean, **scores}
        return mean


def make_task_scorer(
    metric, *, response_method="predict", greater_is_better=True, per_task=False, **kwargs
):
    """Make a scorer that applies ``metric`` to each task and averages.

    Parameters
    ----------
    metric : callable
        ``metric(y_true, y_pred, **kwargs)`` for one task, e.g.
        :func:`sklearn.metrics.accuracy_score`.
    response_method : {"predict", "predict_proba"}, default="predict"
        What the metric is given: labels / values from ``predict``, or the
        task's probability matrix from ``predict_proba`` (for a binary task
        :func:`~sklearn.metrics.roc_auc_score` gets the positive column;
        tasks without probabilities, i.e. regression tasks of
        ``MMoEMultiTask``, are skipped).
    greater_is_better : bool, default=True
        If False the scores are negated, as scikit-learn's ``neg_*`` scorers.
    per_task : bool, default=False
        If True the scorer returns a dict ``{"mean": ..., <task name>: ...}``
        (for ``GridSearchCV(scoring=..., refit="mean")``); else the mean.
    **kwargs
        Passed to ``metric``.

    Returns
    -------
    scorer : TaskScorer
        Callable as ``scorer(estimator, X, y, sample_weight=None)``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.metrics import f1_score
    >>> from sk_mmoe import MMoEClassifier
    >>> from sk_mmoe.metrics import make_task_scorer
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(200, 3))
    >>> Y = np.column_stack([X[:, 0] > 0, np.digitize(X[:, 1], [-0.5, 0.5])])
    >>> clf = MMoEClassifier(max_epochs=20, random_state=0).fit(X, Y)
    >>> scorer = make_task_scorer(f1_score, average="macro", per_task=True)
    >>> sorted(scorer(clf, X, Y))
    ['mean', 'task_0', 'task_1']
    """
    if response_method not in _RESPONSE_METHODS:
        raise ValueError(
            f"response_method must be one of {_RESPONSE_METHODS}, got {response_method!r}."
        )
    if not callable(metric):
        raise TypeError(f"metric must be callable, got {metric!r}.")
    return TaskScorer(metric, response_method, 1 if greater_is_better else -1, per_task, kwargs)


task_accuracy_scorer = make_task_scorer(accuracy_score)
task_roc_auc_scorer = make_task_scorer(roc_auc_score, response_method="predict_proba")
task_neg_log_loss_scorer = make_task_scorer(
    log_loss, response_method="predict_proba", greater_is_better=False
)
task_r2_scorer = make_task_scorer(r2_score)
task_neg_mse_scorer = make_task_scorer(mean_squared_error, greater_is_better=False)
