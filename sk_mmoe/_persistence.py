"""A safe file format for fitted estimators: JSON plus tensor weights.

``save`` writes one zip file holding ``estimator.json`` (format version,
class, hyperparameters, fitted attributes, target encodings, training
history, SHA-256 of the weights) and ``weights.pt`` (the module's and the
criterion's ``state_dict``). ``load`` reads the JSON with :mod:`json` and the
weights with ``torch.load(weights_only=True)``: nothing in the file can run
code. Unlike pickle, the file is safe to load from an untrusted source.
"""

from __future__ import annotations

import hashlib
import io
import json
import warnings
import zipfile

import numpy as np
import torch
from sklearn.preprocessing import LabelEncoder, StandardScaler
from skorch.history import History

from ._targets import TaskEncoder

FORMAT = "sk_mmoe"
VERSION = 1
_JSON = "estimator.json"
_WEIGHTS = "weights.pt"


def save(estimator, path):
    """Write a fitted estimator to ``path`` (see module docstring)."""
    weights = io.BytesIO()
    torch.save(
        {
            "module": estimator.net_.module_.state_dict(),
            "criterion": estimator.net_.criterion_.state_dict(),
        },
        weights,
    )
    weights = weights.getvalue()
    document = {
        "format": FORMAT,
        "version": VERSION,
        "class": type(estimator).__name__,
        "params": _params_to_json(estimator),
        "fitted": {
            "n_features_in_": int(estimator.n_features_in_),
            "feature_names_in_": (
                [str(n) for n in estimator.feature_names_in_]
                if hasattr(estimator, "feature_names_in_")
                else None
            ),
            "n_tasks_": int(estimator.n_tasks_),
            "target_names_": [str(n) for n in estimator.target_names_],
            "single_output": bool(estimator._single_output),
            "random_seed_": int(estimator.random_seed_),
            "targets": _encoder_to_json(estimator.target_encoder_),
        },
        "history": json.loads(json.dumps(estimator.net_.history.to_list(), default=_plain)),
        "weights_sha256": hashlib.sha256(weights).hexdigest(),
    }
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(_JSON, json.dumps(document, indent=1))
        archive.writestr(_WEIGHTS, weights)


def load(cls, path):
    """Read an estimator of class ``cls`` written by :func:`save`."""
    try:
        with zipfile.ZipFile(path) as archive:
            document = json.loads(archive.read(_JSON).decode("utf-8"))
            weights = archive.read(_WEIGHTS)
    except (
        zipfile.BadZipFile,
        KeyError,
        UnicodeDecodeError,
        json.JSONDecodeError,
        EOFError,
    ) as exc:
        raise ValueError(f"{path} is not a valid sk_mmoe file: {exc}") from None
    try:
        return _restore(cls, document, weights, path)
    except (KeyError, TypeError, AttributeError, IndexError) as exc:
        raise ValueError(f"{path} is not a valid sk_mmoe file: missing or bad {exc}") from None


def _restore(cls, document, weights, path):
    if document.get("format") != FORMAT:
        raise ValueError(f"{path} is not an sk_mmoe file.")
    if document.get("version") != VERSION:
        raise ValueError(
            f"{path} has format version {document.get('version')}; this sk_mmoe reads "
            f"version {VERSION}."
        )
    if document["class"] != cls.__name__:
        raise ValueError(
            f"{path} holds a {document['class']}; load it with {document['class']}.load."
        )
    if hashlib.sha256(weights).hexdigest() != document["weights_sha256"]:
        raise ValueError(f"{path}: the weights do not match their checksum (file altered).")
    state = torch.load(io.BytesIO(weights), weights_only=True, map_location="cpu")

    estimator = cls(**_params_from_json(document["params"]))
    fitted = document["fitted"]
    encoder = _encoder_from_json(fitted["targets"])
    names = np.asarray(fitted["target_names_"], dtype=object)
    estimator.n_features_in_ = fitted["n_features_in_"]
    hyper = estimator._check_hyperparameters()
    task_weights = estimator._check_task_weights(fitted["n_tasks_"])
    net = estimator._build_net(encoder, hyper, task_weights, names)
    net.initialize()
    try:
        net.module_.load_state_dict(state["module"])
        net.criterion_.load_state_dict(state["criterion"])
    except RuntimeError as exc:
        raise ValueError(f"{path}: the weights do not fit the saved model: {exc}") from None
    net.history = History(document["history"])

    if fitted["feature_names_in_"] is not None:
        estimator.feature_names_in_ = np.asarray(fitted["feature_names_in_"], dtype=object)
    estimator._set_fitted(net, encoder, fitted["random_seed_"], names, fitted["single_output"])
    return estimator


def _plain(value):
    """JSON fallback for numpy scalars in the history."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot store {type(value).__name__} in JSON")


def _params_to_json(estimator):
    params = estimator.get_params(deep=False)
    if params.get("callbacks"):
        warnings.warn(
            "callbacks are not saved; the loaded estimator has callbacks=None.",
            UserWarning,
            stacklevel=4,
        )
        params["callbacks"] = None
    if params.get("accelerator") is not None:
        warnings.warn(
            "the accelerator is not saved; the loaded estimator has accelerator=None.",
            UserWarning,
            stacklevel=4,
        )
        params["accelerator"] = None
    if not isinstance(params["optimizer"], str):
        opt = params["optimizer"]
        if getattr(torch.optim, opt.__name__, None) is not opt:
            raise TypeError(
                f"Cannot save optimizer={opt!r}: only names and torch.optim classes are "
                "stored. Use pickle (trusted sources only) for custom optimizers."
            )
        params["optimizer"] = {"torch.optim": opt.__name__}
    if not isinstance(params["random_state"], (int, type(None))):
        params["random_state"] = None
    params["device"] = str(params["device"])
    for key in ("expert_units", "tower_units"):
        value = params[key]
        params[key] = value if isinstance(value, int) else list(value)
    if params["task_weights"] is not None and not isinstance(params["task_weights"], str):
        params["task_weights"] = [float(w) for w in params["task_weights"]]
    try:
        return json.loads(json.dumps(params, default=_plain))
    except TypeError as exc:
        raise TypeError(f"Cannot save these hyperparameters as JSON: {exc}") from None


def _params_from_json(params):
    params = dict(params)
    device = torch.device(params["device"])
    if device.type == "cuda" and not torch.cuda.is_available():
        warnings.warn(
            f"The model was saved with device={params['device']!r} but CUDA is not "
            "available here; it is loaded on the CPU (device='cpu').",
            UserWarning,
            stacklevel=4,
        )
        params["device"] = "cpu"
    if isinstance(params["optimizer"], dict):
        params["optimizer"] = getattr(torch.optim, params["optimizer"]["torch.optim"])
    for key in ("expert_units", "tower_units"):
        if isinstance(params[key], list):
            params[key] = tuple(params[key])
    return params


def _labels_to_json(classes):
    kinds = {type(v) for v in classes.tolist()}
    if not kinds <= {str, int, float, bool}:
        raise TypeError(
            f"Cannot save labels of type {sorted(k.__name__ for k in kinds)}; use "
            "str, int, float or bool labels, or pickle (trusted sources only)."
        )
    return {
        "dtype": classes.dtype.str if classes.dtype != object else "object",
        "values": classes.tolist(),
    }


def _encoder_to_json(encoder):
    tasks = []
    for kind, enc in zip(encoder.task_types, encoder.encoders_):
        if kind == "regression":
            tasks.append(
                {
                    "type": kind,
                    "mean": enc.mean_.tolist(),
                    "scale": enc.scale_.tolist(),
                    "var": enc.var_.tolist(),
                    "n_samples_seen": np.asarray(enc.n_samples_seen_).tolist(),
                }
            )
        else:
            tasks.append({"type": kind, "classes": _labels_to_json(enc.classes_)})
    return {"names": list(encoder.names), "tasks": tasks}


def _encoder_from_json(data):
    encoder = TaskEncoder([t["type"] for t in data["tasks"]], data["names"])
    encoder.encoders_ = []
    for task in data["tasks"]:
        if task["type"] == "regression":
            scaler = StandardScaler()
            scaler.mean_ = np.asarray(task["mean"], dtype=np.float64)
            scaler.scale_ = np.asarray(task["scale"], dtype=np.float64)
            scaler.var_ = np.asarray(task["var"], dtype=np.float64)
            scaler.n_samples_seen_ = np.asarray(task["n_samples_seen"])
            scaler.n_features_in_ = 1
            encoder.encoders_.append(scaler)
        elif task["type"] in ("binary", "multiclass"):
            label_encoder = LabelEncoder()
            dtype = task["classes"]["dtype"]
            values = task["classes"]["values"]
            label_encoder.classes_ = (
                np.asarray(values, dtype=object)
                if dtype == "object"
                else np.asarray(values, dtype=np.dtype(dtype))
            )
            encoder.encoders_.append(label_encoder)
        else:
            raise ValueError(f"unknown task type {task['type']!r}")
    return encoder
