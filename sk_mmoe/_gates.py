"""Gate diagnostics: per-task summaries of gate weights and the collapse warning."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

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
