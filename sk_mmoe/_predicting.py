"""Network outputs for new rows, decoded, and the estimators' score: a mixin of ``_BaseMMoE``.

Rows in memory go through input validation (``_prepare_X``) and the
batched, thread-limited forward pass of :mod:`sk_mmoe._inference`; a
registered data source (a Parquet folder) gives its outputs batch by batch.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from sklearn.metrics import accuracy_score, r2_score
from sklearn.utils.validation import _check_sample_weight, check_consistent_length, check_is_fitted

from ._inference import run_module
from ._targets import missing_mask, natural, split_columns
from ._task_types import REGRESSION
from .data._sources import find_source


class Prediction:
    """``_forward``, ``_decoded`` and ``_score_tasks`` (a mixin of ``_BaseMMoE``)."""

    def _forward(self, X, method="forward"):
        """Network outputs for ``X`` as float32 numpy, computed batch by batch.

        ``method`` is ``"forward"`` (``(n, sum C)``) or ``"gate_weights"``
        (``(n, T, E)``).
        """
        if "net_" not in self.__dict__:  # check_is_fitted costs a one-row predict 5%
            check_is_fitted(self, "net_")
        source = find_source(X)
        if source is not None:
            out = source.outputs(self, X, method)
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

    def _score_tasks(self, X, y, sample_weight):
        """Mean over tasks of R² (regression) or accuracy (classification).

        Missing labels are left out of their task's metric.
        """
        check_is_fitted(self)
        source = find_source(X)
        if source is not None:
            y, sample_weight = source.targets(X, y, sample_weight)
        columns, _, _ = split_columns(y)
        if source is None:
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
