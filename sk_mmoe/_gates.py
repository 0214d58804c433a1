"""Gate diagnostics: per-task summaries of gate weights and the collapse warning."""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pandas as pd
from sklearn.utils.validation import check_is_fitted

from ._inference import run_module

#: training rows the gate-collapse check looks at
GATE_CHECK_ROWS = 2048


class GateCollapseWarning(UserWarning):
    """A task's gate puts nearly all its weight on one expert."""


def summarize(weights, task_names, expert_names):
    """Per-task mean weight of each expert, gate entropy and top expert.

    ``weights`` is ``(n, T, E)``; see ``gate_summary`` of the estimators.
    """
    mean = weights.mean(axis=0)  # (n, T, E) -> (T, E)
    entropy = -(weights * np.log(np.clip(weights, 1e-12, None))).sum(axis=2).mean(axis=0)
    summary = pd.DataFrame(
        mean,
        index=pd.Index([str(n) for n in task_names], name="task"),
        columns=list(expert_names),
    )
    summary["entropy"] = entropy
    summary["top_expert"] = mean.argmax(axis=1)
    summary["top_weight"] = mean.max(axis=1)
    return summary


def warn_on_collapse(summary, threshold, expert_names, stacklevel):
    """Warn (``GateCollapseWarning``) for tasks whose top expert's weight exceeds ``threshold``."""
    collapsed = summary[summary["top_weight"] > threshold]
    if not len(collapsed):
        return
    details = ", ".join(
        f"{task} -> {expert_names[int(row.top_expert)]} ({row.top_weight:.2f})"
        for task, row in collapsed.iterrows()
    )
    warnings.warn(
        f"Gate collapse: the gate of {details} puts more than "
        f"gate_collapse_threshold={threshold} of its weight on one expert. "
        "Consider gate_entropy_bonus > 0 (e.g. 0.01) or a lower lr.",
        GateCollapseWarning,
        stacklevel=stacklevel + 1,
    )


class GateDiagnostics:
    """The estimators' gate diagnostics (a mixin of ``_BaseMMoE``)."""

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
        weights = run_module(
            self.module_, "gate_weights", X[:GATE_CHECK_ROWS], self.net_.device, self.n_jobs
        )
        labels = self.expert_names_
        summary = summarize(weights.astype(np.float64), self.target_names_, labels)
        warn_on_collapse(summary, threshold, labels, stacklevel=5)
