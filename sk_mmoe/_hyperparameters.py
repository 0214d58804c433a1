"""The estimators' hyperparameters: declared constraints and the checks beyond them.

``PARAMETER_CONSTRAINTS`` is scikit-learn's ``_parameter_constraints`` for
every estimator; :func:`check_hyperparameters` does what constraints cannot
express and returns the values the net factory needs.
"""

from __future__ import annotations

import numbers
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from skorch.callbacks import Callback

from ._modules import ACTIVATIONS
from .architectures import ARCHITECTURES

#: ``early_stopping="auto"`` stops early in ``fit`` on at least this many rows
AUTO_EARLY_STOPPING_ROWS = 1_000
#: ``batch_size="auto"``: (at least this many rows, batch size), largest first;
#: 256 below them
AUTO_BATCH_SIZES = ((100_000, 1024), (50_000, 512))
AUTO_BATCH_SIZE = 256

OPTIMIZERS = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
    "rmsprop": torch.optim.RMSprop,
    "adagrad": torch.optim.Adagrad,
}

PARAMETER_CONSTRAINTS = {
    # a live view of the registry: a newly registered architecture is valid
    "architecture": [StrOptions(ARCHITECTURES.keys())],
    "n_experts": [Interval(Integral, 1, None, closed="left")],
    "n_task_experts": [Interval(Integral, 1, None, closed="left")],
    "n_levels": [Interval(Integral, 1, None, closed="left")],
    "categorical_features": [None, StrOptions({"from_dtype"}), "array-like"],
    "embedding_dim": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"}), dict],
    "min_frequency": [Interval(Integral, 1, None, closed="left")],
    "numeric_scaling": [None, StrOptions({"auto", "standard"})],
    "expert_units": [Interval(Integral, 1, None, closed="left"), tuple, list],
    "tower_units": [Interval(Integral, 1, None, closed="left"), tuple, list],
    "activation": [StrOptions(set(ACTIVATIONS))],
    "dropout": [Interval(Real, 0, 1, closed="left")],
    "gate_dropout": [Interval(Real, 0, 1, closed="left")],
    "gate_entropy_bonus": [Interval(Real, 0, None, closed="left")],
    "gate_collapse_threshold": [None, Interval(Real, 0, 1, closed="right")],
    "task_weights": [None, "array-like", StrOptions({"uncertainty", "dwa", "gradnorm", "pcgrad"})],
    "dwa_temperature": [Interval(Real, 0, None, closed="neither")],
    "gradnorm_alpha": [Interval(Real, 0, None, closed="left")],
    "track_task_conflict": ["boolean"],
    "max_epochs": [Interval(Integral, 1, None, closed="left")],
    "batch_size": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
    "lr": [Interval(Real, 0, None, closed="neither")],
    "optimizer": [StrOptions(set(OPTIMIZERS)), type],
    "weight_decay": [Interval(Real, 0, None, closed="left")],
    "early_stopping": ["boolean", StrOptions({"auto"})],
    "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
    "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
    "tol": [Interval(Real, 0, None, closed="left")],
    "missing_targets": [StrOptions({"error", "ignore"})],
    "callbacks": [None, list],
    "device": [str, torch.device],
    "accelerator": [None, HasMethods(["prepare", "backward"])],
    "random_state": ["random_state"],
    "verbose": ["verbose"],
    "warm_start": ["boolean"],
}


def check_hyperparameters(params):
    """Checks that ``PARAMETER_CONSTRAINTS`` cannot express.

    ``params`` is ``get_params(deep=False)``. Returns it with the widths as
    lists of int and the optimizer as a class.
    """
    expert_units = _units(params["expert_units"], "expert_units", allow_empty=False)
    tower_units = _units(params["tower_units"], "tower_units", allow_empty=True)
    optimizer = params["optimizer"]
    if isinstance(optimizer, str):
        optimizer = OPTIMIZERS[optimizer]
    elif not issubclass(optimizer, torch.optim.Optimizer):
        raise TypeError(
            "optimizer must be one of "
            f"{sorted(OPTIMIZERS)} or a torch.optim.Optimizer subclass, got {optimizer!r}."
        )
    device = params["device"]
    try:
        device_type = torch.device(device).type
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device={device!r} is not a torch device: {exc}") from None
    if device_type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but CUDA is not available.")
    accelerator = params["accelerator"]
    if accelerator is not None and getattr(accelerator, "device_placement", False):
        raise ValueError(
            "accelerator must be created with device_placement=False; pass each "
            "process's device as device=str(accelerator.device)."
        )
    if accelerator is not None and (
        params["task_weights"] in ("gradnorm", "pcgrad") or params["track_task_conflict"]
    ):
        raise ValueError(
            "task_weights='gradnorm' or 'pcgrad' and track_task_conflict=True need "
            "sk_mmoe's own training step, which accelerator= runs replace; train "
            "without the accelerator or use fixed, 'uncertainty' or 'dwa' task weights."
        )
    for cb in params["callbacks"] or []:
        obj = cb[1] if isinstance(cb, tuple) and len(cb) == 2 else cb
        if not isinstance(obj, Callback):
            raise TypeError(
                "callbacks must be skorch Callback instances or (name, Callback) "
                f"pairs, got {cb!r}."
            )
    return {
        **params,
        "expert_units": expert_units,
        "tower_units": tower_units,
        "optimizer": optimizer,
    }


def check_task_weights(task_weights, n_tasks):
    """Fixed task weights as a list of float, or None (equal or learned weights)."""
    if task_weights is None or isinstance(task_weights, str):
        return None
    try:
        weights = np.asarray(task_weights, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"task_weights must be numbers, got {task_weights!r}.") from None
    if weights.ndim != 1 or len(weights) != n_tasks:
        raise ValueError(f"task_weights has {weights.size} entries but y has {n_tasks} tasks.")
    if not np.all(np.isfinite(weights)) or np.any(weights < 0) or not weights.any():
        raise ValueError(
            f"task_weights must be finite, non-negative and not all zero, got {weights.tolist()}."
        )
    return weights.tolist()


def _units(value, name, allow_empty):
    """Hidden widths as a list of positive ints."""
    values = [value] if isinstance(value, numbers.Integral) else list(value)
    if not values and not allow_empty:
        raise ValueError(f"{name} must have at least one layer width, got {value!r}.")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
            raise ValueError(f"{name} must be positive integers, got {value!r}.")
    return [int(v) for v in values]


def resolve_batch_size(batch_size, n_rows):
    """``batch_size`` with "auto" replaced by its size for ``n_rows`` training rows."""
    if not isinstance(batch_size, str):
        return batch_size
    for rows, size in AUTO_BATCH_SIZES:
        if n_rows >= rows:
            return size
    return AUTO_BATCH_SIZE
