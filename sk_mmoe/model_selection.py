"""Does multi-task learning help? Paired comparison with per-task baselines.

:func:`multitask_gain` cross-validates a multi-task estimator, one
single-task clone of it per task, and any per-task baseline (e.g. one
gradient-boosting model per target) on the same folds, and reports each
task's score per fold and the gain of the multi-task model over each
baseline. :func:`mean_confidence_interval` is the t-interval it reports,
for paired differences computed elsewhere (seeds, folds).
"""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from scipy import stats
from sklearn.base import clone, is_classifier, is_regressor
from sklearn.metrics import accuracy_score, log_loss, mean_squared_error, r2_score, roc_auc_score
from sklearn.model_selection import check_cv
from sklearn.utils import Bunch

from ._targets import infer_task_type, missing_mask, natural, split_columns
from ._task_types import BINARY, MULTICLASS, REGRESSION

__all__ = ["mean_confidence_interval", "multitask_gain"]

#: name -> (metric, response method, sign); sign -1 makes a loss a score
SCORINGS = {
    "roc_auc": (roc_auc_score, "predict_proba", 1),
    "accuracy": (accuracy_score, "predict", 1),
    "r2": (r2_score, "predict", 1),
    "neg_mean_squared_error": (mean_squared_error, "predict", -1),
    "neg_log_loss": (log_loss, "predict_proba", -1),
}
#: the model whose gains are reported, and the single-task clones' name
MULTI_TASK, SINGLE_TASK = "multi-task", "single-task"


def multitask_gain(
    estimator,
    X,
    y,
    *,
    cv=5,
    scoring=None,
    baselines=None,
    single_task=True,
    n_jobs=None,
    verbose=0,
):
    """Cross-validate a multi-task model against one model per task, on shared folds.

    The multi-task ``estimator`` is fitted on all tasks; a clone of it (same
    hyperparameters) on each task alone; and each estimator in ``baselines``
    on each task alone. All are scored per task on the same test folds, so
    the comparison is paired: the gain of the multi-task model over a
    baseline is computed fold by fold. A task where the multi-task model
    scores lower than a baseline on average is flagged (``loses``); a
    baseline against which some tasks gain and others lose shows the
    "seesaw" of multi-task learning.

    Parameters
    ----------
    estimator : sk_mmoe estimator
        ``MMoERegressor``, ``MMoEClassifier`` or ``MMoEMultiTask`` (or a
        Pipeline ending in one), unfitted. With missing labels in ``y`` it
        needs ``missing_targets="ignore"``.
    X : array-like or DataFrame of shape (n_samples, n_features)
        Inputs.
    y : array-like or DataFrame of shape (n_samples, n_tasks)
        Targets, one column per task; missing labels (NaN, None) are left out
        of the single-task fits and of every task's score.
    cv : int, cross-validation generator or iterable, default=5
        As in :func:`sklearn.model_selection.cross_validate`; a splitter's
        ``split`` gets the first task's labels as ``y``. Every model sees the
        same folds.
    scoring : str, callable, dict or None, default=None
        Per-task score, greater is better. None: ROC AUC for binary tasks,
        accuracy for multiclass tasks, R² for regression tasks. A string
        (``"roc_auc"``, ``"accuracy"``, ``"r2"``, ``"neg_mean_squared_error"``,
        ``"neg_log_loss"``) or a callable ``metric(y_true, y_pred)`` on
        ``predict`` for every task, or a dict of these by task name.
    baselines : dict, default=None
        Other per-task models to compare with, by name: an estimator (cloned
        and fitted on each task alone), or a dict with keys
        ``"regression"`` and ``"classification"`` giving the estimator for
        each kind of task, e.g. ``{"HGB": {"regression":
        HistGradientBoostingRegressor(), "classification":
        HistGradientBoostingClassifier()}}``.
    single_task : bool, default=True
        Whether to fit the single-task clones (the ``"single-task"``
        baseline). False scores the multi-task model (and ``baselines``)
        only, e.g. to add another architecture to a comparison on the same
        folds.
    n_jobs : int, default=None
        Fits run in parallel through joblib (so the Dask backend works).
    verbose : int, default=0
        The verbosity of joblib.

    Returns
    -------
    result : sklearn.utils.Bunch
        ``scores``: DataFrame with one row per model, task and fold
        (columns ``model``, ``task``, ``fold``, ``score``, ``fit_time``);
        ``gains``: DataFrame indexed by ``(baseline, task)`` with the mean
        gain of the multi-task model over the folds, its standard deviation,
        a 95% t-interval (``ci_low``, ``ci_high``) and ``loses`` (mean gain
        below 0); ``seesaw``: dict baseline -> whether some tasks gain and
        others lose; ``scoring``: dict task -> the score used.

    See Also
    --------
    sk_mmoe.plotting.MultiTaskGainDisplay : Plot the gains.

    Examples
    --------
    >>> from sk_mmoe import MMoERegressor
    >>> from sk_mmoe.datasets import make_mmoe_tasks
    >>> from sk_mmoe.model_selection import multitask_gain
    >>> X, Y = make_mmoe_tasks(300, n_features=5, correlation=0.9, random_state=0)
    >>> result = multitask_gain(MMoERegressor(max_epochs=3, random_state=0), X, Y, cv=2)
    >>> result.gains.index.tolist()
    [('single-task', 'task_0'), ('single-task', 'task_1')]
    >>> sorted(result.scores["model"].unique())
    ['multi-task', 'single-task']
    """
    columns, names, _ = split_columns(y)
    names = (
        [str(n) for n in names]
        if names is not None
        else [f"task_{k}" for k in range(len(columns))]
    )
    frame = pd.DataFrame(dict(zip(names, columns)))
    task_types = _task_types(estimator, columns, names)
    scorers = _scorers(scoring, names, task_types)
    baselines = dict(baselines or {})
    if MULTI_TASK in baselines or SINGLE_TASK in baselines:
        raise ValueError(f"baselines may not be named {MULTI_TASK!r} or {SINGLE_TASK!r}.")

    splitter = check_cv(cv)
    splits = list(splitter.split(X, natural(columns[0])))
    jobs = []
    for fold, (train, test) in enumerate(splits):
        jobs.append((MULTI_TASK, None, fold, estimator, train, test))
        for k in range(len(names)):
            if single_task:
                jobs.append((SINGLE_TASK, k, fold, _single_task(estimator, k, names), train, test))
            for name, baseline in baselines.items():
                jobs.append((name, k, fold, _for_task(baseline, task_types[k], name), train, test))
    results = Parallel(n_jobs=n_jobs, verbose=verbose)(
        delayed(_fit_and_score)(model, task, fold, est, X, frame, train, test, scorers, names)
        for model, task, fold, est, train, test in jobs
    )
    scores = pd.DataFrame(
        [row for rows in results for row in rows],
        columns=["model", "task", "fold", "score", "fit_time"],
    )
    gains = _gains(scores, [SINGLE_TASK] * single_task + list(baselines), names)
    seesaw = {
        baseline: bool((group["mean"] > 0).any() and (group["mean"] < 0).any())
        for baseline, group in gains.groupby(level="baseline", sort=False)
    }
    return Bunch(
        scores=scores,
        gains=gains,
        seesaw=seesaw,
        scoring={n: s[3] for n, s in zip(names, scorers)},
    )


def mean_confidence_interval(values, confidence=0.95):
    """Mean of ``values`` and the Student-t confidence interval of that mean.

    The interval is ``mean ± t * s / sqrt(n)``, with ``s`` the sample standard
    deviation (``ddof=1``) and ``t`` the ``(1 + confidence) / 2`` quantile of
    Student's t distribution with ``n - 1`` degrees of freedom: the usual
    interval for the mean of paired differences over seeds or folds. Folds of
    a cross-validation are not independent, so there it is a guide, not a test.

    Parameters
    ----------
    values : array-like of shape (n_values,)
        The measurements, e.g. one paired difference per seed.
    confidence : float, default=0.95
        Coverage of the interval, in (0, 1).

    Returns
    -------
    mean : float
        The mean of ``values``.
    low : float
        Lower end of the interval; NaN with fewer than two values.
    high : float
        Upper end of the interval; NaN with fewer than two values.

    See Also
    --------
    multitask_gain : Reports this interval for the gain over each baseline.

    Examples
    --------
    >>> from sk_mmoe.model_selection import mean_confidence_interval
    >>> mean, low, high = mean_confidence_interval([0.10, 0.12, 0.08, 0.11])
    >>> print(f"{mean:.4f} [{low:.4f}, {high:.4f}]")
    0.1025 [0.0753, 0.1297]
    """
    values = np.asarray(values, dtype=float)
    if values.ndim != 1 or len(values) == 0:
        raise ValueError(f"values must be a non-empty 1-D array-like, got shape {values.shape}.")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}.")
    mean, n = float(values.mean()), len(values)
    if n < 2:
        return mean, float("nan"), float("nan")
    half = stats.t.ppf((1 + confidence) / 2, n - 1) * values.std(ddof=1) / math.sqrt(n)
    return mean, float(mean - half), float(mean + half)


def _task_types(estimator, columns, names):
    """The type of each task, as the multi-task estimator will see it."""
    final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    if is_regressor(final):
        return [REGRESSION] * len(columns)
    spec = final.get_params().get("task_types", "auto")
    if isinstance(spec, dict):
        spec = [spec[n] for n in names]
    types = []
    for k, (column, name) in enumerate(zip(columns, names)):
        if is_classifier(final) or isinstance(spec, str):
            kind = infer_task_type(natural(column[~missing_mask(column)]), name)
            if is_classifier(final) and kind == REGRESSION:
                kind = MULTICLASS
        else:
            kind = spec[k]
        types.append(kind)
    return types


def _scorers(scoring, names, task_types):
    """One ``(metric, response method, sign, description)`` per task."""
    out = []
    for name, kind in zip(names, task_types):
        spec = scoring.get(name) if isinstance(scoring, dict) else scoring
        if isinstance(scoring, dict) and name not in scoring:
            raise ValueError(f"scoring has no entry for task {name!r}; it has {list(scoring)}.")
        if spec is None:
            spec = {REGRESSION: "r2", BINARY: "roc_auc", MULTICLASS: "accuracy"}[kind]
        if isinstance(spec, str):
            if spec not in SCORINGS:
                raise ValueError(f"scoring {spec!r} is not one of {sorted(SCORINGS)}.")
            if SCORINGS[spec][1] == "predict_proba" and kind == REGRESSION:
                raise ValueError(
                    f"scoring {spec!r} needs probabilities; task {name!r} is a regression."
                )
            out.append((*SCORINGS[spec], spec))
        elif callable(spec):
            out.append((spec, "predict", 1, getattr(spec, "__name__", repr(spec))))
        else:
            raise TypeError(
                f"scoring for task {name!r} must be a string or a callable, got {spec!r}."
            )
    return out


def _for_task(baseline, kind, name):
    """The baseline estimator for a task of type ``kind``."""
    if not isinstance(baseline, dict):
        return baseline
    key = "regression" if kind == REGRESSION else "classification"
    if key not in baseline:
        raise ValueError(
            f"baselines[{name!r}] has no {key!r} estimator, needed for a {kind} task."
        )
    return baseline[key]


def _single_task(estimator, k, names):
    """A clone of ``estimator`` for task ``k`` alone (task-indexed parameters narrowed)."""
    single = clone(estimator)
    final = single.steps[-1][1] if hasattr(single, "steps") else single
    params = final.get_params(deep=False)
    update = {}
    if isinstance(params.get("task_types"), (list, tuple)):
        update["task_types"] = [params["task_types"][k]]
    if params.get("task_weights") is not None and not isinstance(params["task_weights"], str):
        update["task_weights"] = None
    final.set_params(**update)
    return single


def _fit_and_score(model, task, fold, estimator, X, frame, train, test, scorers, names):
    """Fit one model on one fold; one row ``(model, task, fold, score, fit_time)`` per task."""
    estimator = clone(estimator)
    X_train, X_test = _rows(X, train), _rows(X, test)
    tasks = range(len(names)) if task is None else [task]
    y_train = frame.iloc[train, list(tasks)]
    if task is not None:
        y_train = y_train.iloc[:, 0]
        labelled = ~missing_mask(y_train.to_numpy())
        X_train, y_train = _rows(X_train, np.flatnonzero(labelled)), y_train[labelled]
        y_train = pd.Series(natural(y_train.to_numpy()), name=names[task])
    start = time.perf_counter()
    estimator.fit(X_train, y_train)
    fit_time = time.perf_counter() - start
    responses = {}
    rows = []
    for k in tasks:
        metric, method, sign, _ = scorers[k]
        if method not in responses:
            responses[method] = getattr(estimator, method)(X_test)
        out = responses[method]
        if task is None and method == "predict":
            out = np.asarray(out)
            out = out if out.ndim == 1 else out[:, k]
        elif task is None:
            out = out[k] if isinstance(out, list) else out
        true = frame.iloc[test, k].to_numpy()
        keep = ~missing_mask(true)
        true, out = natural(true[keep]), out[keep]
        if method == "predict":
            out = natural(np.asarray(out))
        elif out.shape[1] == 2 and metric is roc_auc_score:
            out = out[:, 1]
        rows.append((model, names[k], fold, sign * float(metric(true, out)), fit_time))
    return rows


def _rows(X, index):
    return X.iloc[index] if hasattr(X, "iloc") else X[index]


def _gains(scores, baselines, names):
    """Mean, spread and 95% t-interval over folds of multi-task minus each baseline."""
    table = scores.pivot_table(index=["task", "fold"], columns="model", values="score")
    rows = []
    for baseline in baselines:
        for name in names:
            diff = (table.loc[name, MULTI_TASK] - table.loc[name, baseline]).to_numpy()
            mean, low, high = mean_confidence_interval(diff)
            std = float(diff.std(ddof=1)) if len(diff) > 1 else float("nan")
            rows.append((baseline, name, mean, std, low, high, mean < 0))
    return pd.DataFrame(
        rows, columns=["baseline", "task", "mean", "std", "ci_low", "ci_high", "loses"]
    ).set_index(["baseline", "task"])
