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
from dataclasses import dataclass

import numpy as np
import torch

from ._targets import TaskEncoder

FORMAT = "sk_mmoe"
VERSION = 1
_JSON = "estimator.json"
_WEIGHTS = "weights.pt"


@dataclass
class Saved:
    """What a file holds, in memory: the estimator assembles itself from this.

    ``params`` are the constructor arguments, ``fitted`` the plain fitted
    attributes, ``encoder`` the fitted :class:`~sk_mmoe._targets.TaskEncoder`,
    ``history`` skorch's history as a list, ``state`` the ``state_dict`` of
    the module and of the criterion.
    """

    class_name: str
    params: dict
    fitted: dict
    encoder: TaskEncoder
    history: list
    state: dict


def save(path, saved):
    """Write ``saved`` (a :class:`Saved`) to ``path`` (see module docstring)."""
    weights = io.BytesIO()
    torch.save(saved.state, weights)
    weights = weights.getvalue()
    document = {
        "format": FORMAT,
        "version": VERSION,
        "class": saved.class_name,
        "params": _params_to_json(saved.params),
        "fitted": {**saved.fitted, "targets": saved.encoder.to_dict()},
        "history": json.loads(json.dumps(saved.history, default=_plain)),
        "weights_sha256": hashlib.sha256(weights).hexdigest(),
    }
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(_JSON, json.dumps(document, indent=1))
        archive.writestr(_WEIGHTS, weights)


def load(path, class_name):
    """Read the file at ``path``, which must hold an estimator of class ``class_name``.

    Returns a :class:`Saved`; raises ``ValueError`` for anything but a valid
    file of that class.
    """
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
        return _read_document(document, weights, path, class_name)
    except (KeyError, TypeError, AttributeError, IndexError) as exc:
        raise ValueError(f"{path} is not a valid sk_mmoe file: missing or bad {exc}") from None


def _read_document(document, weights, path, class_name):
    if document.get("format") != FORMAT:
        raise ValueError(f"{path} is not an sk_mmoe file.")
    if document.get("version") != VERSION:
        raise ValueError(
            f"{path} has format version {document.get('version')}; this sk_mmoe reads "
            f"version {VERSION}."
        )
    if document["class"] != class_name:
        raise ValueError(
            f"{path} holds a {document['class']}; load it with {document['class']}.load."
        )
    if hashlib.sha256(weights).hexdigest() != document["weights_sha256"]:
        raise ValueError(f"{path}: the weights do not match their checksum (file altered).")
    state = torch.load(io.BytesIO(weights), weights_only=True, map_location="cpu")
    fitted = dict(document["fitted"])
    encoder = TaskEncoder.from_dict(fitted.pop("targets"))
    return Saved(
        class_name=class_name,
        params=_params_from_json(document["params"]),
        fitted=fitted,
        encoder=encoder,
        history=document["history"],
        state=state,
    )


def _plain(value):
    """JSON fallback for numpy scalars in the history."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot store {type(value).__name__} in JSON")


def _params_to_json(params):
    params = dict(params)
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
