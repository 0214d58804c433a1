"""Plots of fitted models, in scikit-learn's ``Display`` style.

Matplotlib is imported only when something is drawn, and the displays use
only public estimator methods, so they work on any estimator that has
``gate_weights`` (and, optionally, ``target_names_``).
"""

from __future__ import annotations

import numpy as np

__all__ = ["GateWeightsDisplay", "MultiTaskGainDisplay"]


def _import_pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - matplotlib is a test dependency
        raise ImportError(
            "sk_mmoe.plotting needs matplotlib: pip install 'sk-mmoe[plot]'."
        ) from exc
    return plt


class GateWeightsDisplay:
    """Heatmap of the mean gate weight each task gives each expert.

    A row per task, a column per expert: row ``k`` is the mixture over the
    experts that task ``k``'s gate uses on average over the rows of ``X``.
    In an MMoE, tasks that share little use different experts; in a one-gate
    MoE all rows are equal. For CGC and PLE the columns are the shared
    experts and then each task's own (``expert_names_``), and a task's row is
    0 on the other tasks' experts. Build it with :meth:`from_estimator`, or from an
    array of mean gate weights and then call :meth:`plot`.

    Parameters
    ----------
    gate_weights : array-like of shape (n_tasks, n_experts)
        Mean gate weight of each task over each expert (rows sum to 1).
    task_names : array-like of str of shape (n_tasks,), default=None
        Row labels; None gives ``"task_0"``, ``"task_1"``, ...
    expert_names : array-like of str of shape (n_experts,), default=None
        Column labels; None numbers the experts from 0.

    Attributes
    ----------
    im_ : matplotlib.image.AxesImage
        The heatmap.
    text_ : ndarray of shape (n_tasks, n_experts) of matplotlib.text.Text, or None
        The cell labels; None when ``include_values=False``.
    ax_ : matplotlib.axes.Axes
        Axes of the heatmap.
    figure_ : matplotlib.figure.Figure
        Figure of the heatmap.

    See Also
    --------
    sklearn.metrics.ConfusionMatrixDisplay : The display this one mimics.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sk_mmoe import MMoERegressor
    >>> from sk_mmoe.datasets import make_mmoe_tasks
    >>> from sk_mmoe.plotting import GateWeightsDisplay
    >>> X, Y = make_mmoe_tasks(300, n_features=5, correlation=0.5, random_state=0)
    >>> reg = MMoERegressor(n_experts=4, max_epochs=3, random_state=0).fit(X, Y)
    >>> disp = GateWeightsDisplay.from_estimator(reg, X)
    >>> disp.gate_weights.shape
    (2, 4)
    >>> disp.gate_weights.sum(axis=1).round(6).tolist()
    [1.0, 1.0]
    >>> [t.get_text() for t in disp.ax_.get_yticklabels()]
    ['task_0', 'task_1']
    """

    def __init__(self, gate_weights, *, task_names=None, expert_names=None):
        self.gate_weights = gate_weights
        self.task_names = task_names
        self.expert_names = expert_names

    def plot(
        self,
        ax=None,
        *,
        cmap="viridis",
        include_values=True,
        values_format=".2f",
        colorbar=True,
        vmin=0.0,
        vmax=None,
        im_kw=None,
        text_kw=None,
    ):
        """Draw the heatmap.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw on; None creates a new figure.
        cmap : str or matplotlib Colormap, default="viridis"
            Colour map of the heatmap.
        include_values : bool, default=True
            Write each mean weight in its cell.
        values_format : str, default=".2f"
            Format spec of the cell values.
        colorbar : bool, default=True
            Whether to draw a colour bar.
        vmin, vmax : float, default=0.0 and None
            Colour limits; ``vmax=None`` uses the largest weight.
        im_kw : dict, default=None
            Extra keywords for :meth:`matplotlib.axes.Axes.imshow`.
        text_kw : dict, default=None
            Extra keywords for :meth:`matplotlib.axes.Axes.text`.

        Returns
        -------
        display : GateWeightsDisplay
            ``self``, with ``im_``, ``text_``, ``ax_`` and ``figure_`` set.
        """
        weights = np.asarray(self.gate_weights, dtype=float)
        if weights.ndim != 2:
            raise ValueError(
                f"gate_weights must be 2-D (n_tasks, n_experts), got shape {weights.shape}."
            )
        n_tasks, n_experts = weights.shape
        task_names = _labels(self.task_names, n_tasks, "task_names", "task_{}")
        expert_names = _labels(self.expert_names, n_experts, "expert_names", "{}")

        if ax is None:
            _, ax = _import_pyplot().subplots(figsize=(1.0 + 0.6 * n_experts, 1.2 + 0.5 * n_tasks))
        vmax = float(weights.max()) if vmax is None else vmax
        im_kw = {"cmap": cmap, "vmin": vmin, "vmax": vmax, "aspect": "auto", **(im_kw or {})}
        self.im_ = ax.imshow(weights, **im_kw)

        self.text_ = None
        if include_values:
            cmap_obj = self.im_.cmap
            midpoint = (vmin + vmax) / 2.0
            self.text_ = np.empty_like(weights, dtype=object)
            for k in range(n_tasks):
                for e in range(n_experts):
                    value = weights[k, e]
                    # light text on the dark end of the colormap, dark on the light end
                    color = cmap_obj(1.0) if value < midpoint else cmap_obj(0.0)
                    kwargs = {"ha": "center", "va": "center", "color": color, **(text_kw or {})}
                    self.text_[k, e] = ax.text(e, k, format(value, values_format), **kwargs)

        if colorbar:
            ax.figure.colorbar(self.im_, ax=ax, label="mean gate weight")
        ax.set(
            xticks=np.arange(n_experts),
            xticklabels=expert_names,
            yticks=np.arange(n_tasks),
            yticklabels=task_names,
            xlabel="expert",
            ylabel="task",
        )
        if max(map(len, expert_names)) > 2:  # "shared_0", "expert_0": slanted, or they overlap
            for label in ax.get_xticklabels():
                label.set(rotation=45, ha="right", rotation_mode="anchor")
        self.ax_ = ax
        self.figure_ = ax.figure
        return self

    @classmethod
    def from_estimator(
        cls,
        estimator,
        X,
        *,
        task_names=None,
        expert_names=None,
        level=None,
        ax=None,
        **plot_kw,
    ):
        """Mean gate weights of a fitted gated model (MMoE, MoE, CGC, PLE) over ``X``.

        Parameters
        ----------
        estimator : fitted MMoERegressor, MMoEClassifier or Pipeline ending in one
            Anything with a public ``gate_weights(X)`` returning an array of
            shape ``(n_samples, n_tasks, n_experts)``. For a
            :class:`~sklearn.pipeline.Pipeline`, ``X`` goes through the
            pipeline's transformers first.
        X : array-like of shape (n_samples, n_features)
            Rows to average the gate weights over.
        task_names : array-like of str, default=None
            Row labels; None uses the estimator's ``target_names_`` if it has
            one (and ``"shared"`` for a PLE level's shared gate).
        expert_names : array-like of str, default=None
            Column labels; None uses the estimator's ``expert_names_`` if it
            has them, else numbers the experts from 0.
        level : int, default=None
            Passed on as ``gate_weights(X, level=level)`` (which PLE level);
            None calls ``gate_weights(X)``.
        ax : matplotlib Axes, default=None
            Axes to draw on; a new figure is created when None.
        **plot_kw
            Passed to :meth:`plot`.

        Returns
        -------
        display : GateWeightsDisplay
        """
        from sklearn.pipeline import Pipeline

        if isinstance(estimator, Pipeline):
            # the gates see what the last step sees
            X = estimator[:-1].transform(X)
            estimator = estimator[-1]
        if not hasattr(estimator, "gate_weights"):
            raise TypeError(
                f"{type(estimator).__name__} has no gate_weights method; pass a fitted "
                "MMoERegressor or MMoEClassifier (or a Pipeline ending in one)."
            )
        kwargs = {} if level is None else {"level": level}
        weights = np.asarray(estimator.gate_weights(X, **kwargs))
        if weights.ndim != 3:
            raise ValueError(
                "gate_weights(X) must return (n_samples, n_tasks, n_experts), got shape "
                f"{weights.shape}."
            )
        if task_names is None:
            task_names = getattr(estimator, "target_names_", None)
            if task_names is not None and weights.shape[1] == len(task_names) + 1:
                task_names = [*task_names, "shared"]  # a PLE level's shared gate
        if expert_names is None:
            expert_names = getattr(estimator, "expert_names_", None)
        display = cls(weights.mean(axis=0), task_names=task_names, expert_names=expert_names)
        return display.plot(ax=ax, **plot_kw)


def _labels(names, n, parameter, template):
    if names is None:
        return [template.format(i) for i in range(n)]
    names = [str(name) for name in names]
    if len(names) != n:
        raise ValueError(f"{parameter} has {len(names)} entries, expected {n}.")
    return names


class MultiTaskGainDisplay:
    """Gain of a multi-task model over per-task baselines, task by task.

    One horizontal bar per task and baseline: the mean over the folds of the
    multi-task model's score minus the baseline's, with its 95% t-interval
    as an error bar. Bars left of zero (the multi-task model loses) are
    drawn in red. Build it with :meth:`from_estimator` (which runs
    :func:`~sk_mmoe.model_selection.multitask_gain`) or :meth:`from_result`.

    Parameters
    ----------
    gains : pandas.DataFrame
        The ``gains`` table of :func:`~sk_mmoe.model_selection.multitask_gain`:
        indexed by ``(baseline, task)``, with columns ``mean``, ``ci_low`` and
        ``ci_high``.

    Attributes
    ----------
    ax_ : matplotlib Axes
        Axes with the bars.
    figure_ : matplotlib Figure
        Figure containing the bars.
    bars_ : dict
        Baseline name -> the matplotlib bar container drawn for it.

    See Also
    --------
    sk_mmoe.model_selection.multitask_gain : Computes the gains.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sk_mmoe import MMoERegressor
    >>> from sk_mmoe.datasets import make_mmoe_tasks
    >>> from sk_mmoe.plotting import MultiTaskGainDisplay
    >>> X, Y = make_mmoe_tasks(300, n_features=5, correlation=0.9, random_state=0)
    >>> display = MultiTaskGainDisplay.from_estimator(
    ...     MMoERegressor(max_epochs=3, random_state=0), X, Y, cv=2)
    >>> sorted(display.bars_)
    ['single-task']
    """

    def __init__(self, gains):
        self.gains = gains

    def plot(self, ax=None):
        """Draw the bars.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw on; a new figure is created when None.

        Returns
        -------
        display : MultiTaskGainDisplay
            This display, with ``ax_``, ``figure_`` and ``bars_`` set.
        """
        plt = _import_pyplot()
        if ax is None:
            _, ax = plt.subplots()
        gains = self.gains
        baselines = list(dict.fromkeys(gains.index.get_level_values("baseline")))
        tasks = list(dict.fromkeys(gains.index.get_level_values("task")))
        height = 0.8 / len(baselines)
        self.bars_ = {}
        for b, baseline in enumerate(baselines):
            rows = gains.loc[baseline].reindex(tasks)
            mean = rows["mean"].to_numpy()
            error = np.vstack([mean - rows["ci_low"], rows["ci_high"] - mean])
            positions = np.arange(len(tasks)) - 0.4 + height * (b + 0.5)
            self.bars_[baseline] = ax.barh(
                positions,
                mean,
                height=height,
                xerr=np.nan_to_num(error),
                color=["tab:red" if m < 0 else "tab:blue" for m in mean],
                alpha=1.0 - 0.5 * b / max(len(baselines), 1),
                label=f"vs {baseline}",
            )
        ax.axvline(0.0, color="black", linewidth=0.8)
        ax.set(
            yticks=np.arange(len(tasks)),
            yticklabels=tasks,
            xlabel="multi-task score minus baseline score (mean, 95% interval)",
            ylabel="task",
        )
        if len(baselines) > 1:
            ax.legend()
        self.ax_ = ax
        self.figure_ = ax.figure
        return self

    @classmethod
    def from_result(cls, result, *, ax=None):
        """Plot the result of :func:`~sk_mmoe.model_selection.multitask_gain`.

        Parameters
        ----------
        result : sklearn.utils.Bunch
            What ``multitask_gain`` returned.
        ax : matplotlib Axes, default=None
            Axes to draw on; a new figure is created when None.

        Returns
        -------
        display : MultiTaskGainDisplay
            The display, drawn.
        """
        return cls(result.gains).plot(ax=ax)

    @classmethod
    def from_estimator(cls, estimator, X, y, *, ax=None, **gain_kw):
        """Run :func:`~sk_mmoe.model_selection.multitask_gain` and plot it.

        Parameters
        ----------
        estimator : sk_mmoe estimator or Pipeline ending in one
            The unfitted multi-task model.
        X : array-like or DataFrame of shape (n_samples, n_features)
            Inputs.
        y : array-like or DataFrame of shape (n_samples, n_tasks)
            Targets, one column per task.
        ax : matplotlib Axes, default=None
            Axes to draw on; a new figure is created when None.
        **gain_kw
            Passed to ``multitask_gain`` (``cv``, ``scoring``, ``baselines``,
            ``n_jobs``).

        Returns
        -------
        display : MultiTaskGainDisplay
            The display, drawn; ``display.result_`` holds the whole result.
        """
        from .model_selection import multitask_gain

        result = multitask_gain(estimator, X, y, **gain_kw)
        display = cls.from_result(result, ax=ax)
        display.result_ = result
        return display
