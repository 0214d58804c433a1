"""A safe file format for fitted estimators: JSON plus tensor weights.

``save`` writes one zip file holding ``estimator.json`` (format version,
class, hyperparameters, fitted attributes, target encodings, training
history, SHA-256 of the weights) and ``weights.pt`` (the ``state_dict`` of
the module, of the criterion and of the optimizer); the zip comment holds
the SHA-256 of ``estimator.json``, so any change to either member is
detected. A training checkpoint is the same file with a ``training`` entry
in both members (random state and early stopping's progress, see
``sk_mmoe.persistence._checkpoint``).

Version 2 added the optimizer's state and the batch size the net trained
with (``fitted["train_batch_size"]``); files of version 1 still load: their
batch size is read back from the training history, their optimizer starts
afresh (a version 1 checkpoint kept its optimizer state under ``training``).

Writing is atomic: the file is written under a temporary name in the target's
directory, flushed to disk, then renamed over the target; if anything fails
the temporary file is removed and the target is untouched.

``load`` reads the JSON with :mod:`json` and the weights with
``torch.load(weights_only=True)``: nothing in the file can run code. It also
refuses, with ``ValueError``, files built to exhaust memory: members that
unpack to far more than the file's size or than the network's own tensors
need, counts and widths beyond what the weights can hold, deep or duplicate
JSON, unexpected or duplicate members.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import re
import secrets
import shutil
import struct
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from numbers import Integral

import numpy as np
import torch
from sklearn.utils._param_validation import validate_parameter_constraints

from .._hyperparameters import HYPERPARAMETERS, check_hyperparameters, resolve_batch_size
from .._targets import TaskEncoder
from ..architectures import ARCHITECTURES
from ..inputs import InputEncoder
from ..training._factory import build_module

FORMAT = "sk_mmoe"
VERSION = 2
#: the versions ``load`` reads (1: no optimizer state, the input encoding as one record)
READABLE_VERSIONS = (1, 2)
_JSON = "estimator.json"
_WEIGHTS = "weights.pt"

#: no member may unpack to more than this many times the size of the whole
#: file (plus ``SLACK``): a real file's JSON compresses 5-10x, its weights
#: barely, while a zip bomb unpacks to up to 1000x
MAX_EXPANSION = 100
#: bytes every bound allows on top, so that tiny files are never refused
SLACK = 1 << 20
#: the weights may be at most this many times the network's own tensors
#: (plus ``SLACK``): room for the optimizer state (up to 3x for torch's
#: optimizers but LBFGS) and a checkpoint's early stopping best weights (1x)
MAX_STATE_FACTOR = 8
_COMMENT = re.compile(rb"sk_mmoe estimator\.json sha256=([0-9a-f]{64})")

#: what zipfile raises on a malformed archive (and an OSError for a seek to a
#: bad offset, see ``_reading``)
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    EOFError,
    NotImplementedError,  # an unknown compression method
    RuntimeError,  # an encrypted member
    ValueError,
    OverflowError,
    struct.error,
    UnicodeDecodeError,
    KeyError,
)


@dataclass
class Saved:
    """What a file holds, in memory: the estimator assembles itself from this.

    ``params`` are the constructor arguments, ``fitted`` the plain fitted
    attributes (with ``"train_batch_size"``, the batch size the net trained
    with), ``encoder`` the fitted :class:`~sk_mmoe._targets.TaskEncoder`,
    ``history`` skorch's history as a list, ``state`` the ``state_dict`` of
    the module (``"module"``), of the criterion (``"criterion"``) and of the
    optimizer (``"optimizer"``; None in a file of version 1), and, in a
    checkpoint, ``"training"``: tensors to resume training. ``training`` is
    a checkpoint's JSON part (None in a plain model file). ``inputs`` is the
    fitted :class:`~sk_mmoe.inputs.InputEncoder` (None when ``X`` is used
    as given).
    """

    class_name: str
    params: dict
    fitted: dict
    encoder: TaskEncoder
    history: list
    state: dict
    training: dict | None = None
    inputs: InputEncoder | None = None


# ------------------------------------------------------------------- writing
def save(path, saved):
    """Write ``saved`` (a :class:`Saved`) to ``path`` atomically (see module docstring)."""
    buffer = io.BytesIO()
    torch.save(saved.state, buffer)
    weights = buffer.getvalue()
    network = _tensor_bytes(saved.state["module"])
    if len(weights) > MAX_STATE_FACTOR * network + SLACK:
        raise ValueError(
            f"The weights and training state take {len(weights)} bytes, more than "
            f"{MAX_STATE_FACTOR}x the network's {network}: load would refuse the file."
        )
    document = {
        "format": FORMAT,
        "version": VERSION,
        "class": saved.class_name,
        "params": _params_to_json(saved.params),
        "fitted": {
            **saved.fitted,
            "targets": saved.encoder.to_dict(),
            "inputs": None if saved.inputs is None else saved.inputs.to_dict(),
        },
        "history": json.loads(json.dumps(saved.history, default=_plain)),
        "weights_sha256": hashlib.sha256(weights).hexdigest(),
    }
    if saved.training is not None:
        document["training"] = saved.training
    text = json.dumps(document, indent=1).encode("utf-8")
    comment = b"sk_mmoe estimator.json sha256=" + hashlib.sha256(text).hexdigest().encode()
    _write_atomically(path, [(_JSON, text), (_WEIGHTS, weights)], comment)


def _write_atomically(path, members, comment):
    """A zip of ``members`` (name, bytes) at ``path``, or ``path`` untouched.

    The zip is written to a new file beside the target (the same filesystem,
    so the final rename is atomic), flushed and fsynced, given the target's
    permission bits, and renamed over the target. A symlink is followed: the
    file it points to is replaced.
    """
    target = os.path.realpath(os.fspath(path))
    directory, name = os.path.split(target)
    temporary = os.path.join(directory, f".{name}.{secrets.token_hex(8)}.tmp")
    # "x": a new file (never another writer's), created with the permissions
    # a plain open gives; tempfile.mkstemp would make it owner-only
    file = open(temporary, "xb")  # noqa: SIM115 (closed below, before the rename)
    try:
        with file:
            with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_DEFLATED) as archive:
                archive.comment = comment
                for member, data in members:
                    archive.writestr(member, data)
            file.flush()
            os.fsync(file.fileno())
        with contextlib.suppress(FileNotFoundError):
            shutil.copymode(target, temporary)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temporary)
        raise
    _sync_directory(directory)


def _sync_directory(directory):
    """Make the rename itself durable (POSIX); best effort.

    Windows cannot open a directory and some filesystems refuse to fsync
    one; the new file is in place either way, so this never fails a save.
    """
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ------------------------------------------------------------------- reading
def load(path, estimator_class):
    """Read the file at ``path``, which must hold an estimator of ``estimator_class``.

    Returns a :class:`Saved` whose ``params`` are complete (defaults for
    any the file lacks) and validated; raises ``ValueError`` for anything
    but a valid file of that class. Errors of the filesystem itself
    (a missing file, a read error) are raised as they are.
    """
    with open(path, "rb") as file:
        budget = MAX_EXPANSION * os.fstat(file.fileno()).st_size + SLACK
        with _reading(path):
            archive = zipfile.ZipFile(file)
        with archive:
            infos = _members(archive, budget, path)
            with _reading(path):
                text = archive.read(infos[_JSON])
            _check_comment(archive.comment, text, path)
            document = _parse(text, path)
            saved, weights_sha256 = _read_document(document, path, estimator_class)
            version = document["version"]
            _check_weights_size(saved, infos[_WEIGHTS].file_size, path)
            with _reading(path):
                weights = archive.read(infos[_WEIGHTS])
    if hashlib.sha256(weights).hexdigest() != weights_sha256:
        raise ValueError(f"{path}: the weights do not match their checksum (file altered).")
    saved.state = _load_weights(weights, path, version)
    return saved


@contextlib.contextmanager
def _reading(path, member=""):
    """Turn what zipfile raises on a malformed archive into ``ValueError``.

    An OSError is one only for a seek to a bad offset (EINVAL); other
    filesystem errors pass through.
    """
    prefix = f"{member}: " if member else ""
    try:
        yield
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
        raise _invalid(path, f"{prefix}{exc}") from None
    except _ZIP_ERRORS as exc:
        raise _invalid(path, f"{prefix}{exc or type(exc).__name__}") from None


def _invalid(path, reason):
    return ValueError(f"{path} is not a valid sk_mmoe file: {reason}")


def _members(archive, budget, path):
    """The two members' ``ZipInfo``, after checking the archive holds exactly them."""
    infos = archive.infolist()
    names = [info.filename for info in infos]
    if sorted(names) != sorted([_JSON, _WEIGHTS]):
        shown = names[:4] + (["..."] if len(names) > 4 else [])
        raise _invalid(path, f"it must hold {_JSON!r} and {_WEIGHTS!r} once each, holds {shown}")
    for info in infos:
        if info.flag_bits & 0x1:
            raise _invalid(path, f"{info.filename!r} is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise _invalid(path, f"{info.filename!r} has compression method {info.compress_type}")
        if info.file_size > budget:
            raise _invalid(
                path,
                f"{info.filename!r} unpacks to {info.file_size} bytes, more than "
                f"{MAX_EXPANSION}x the file's size (a zip bomb?)",
            )
    return {info.filename: info for info in infos}


def _check_comment(comment, text, path):
    """The zip comment holds the JSON's SHA-256 (files of older versions have none)."""
    if not comment:
        return
    match = _COMMENT.fullmatch(comment)
    if match is None or match[1].decode() != hashlib.sha256(text).hexdigest():
        raise ValueError(f"{path}: {_JSON} does not match its checksum (file altered).")


def _unique_keys(pairs):
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise ValueError("duplicate keys in a JSON object")
    return obj


def _parse(text, path):
    try:
        document = json.loads(text.decode("utf-8"), object_pairs_hook=_unique_keys)
    except RecursionError:
        raise _invalid(path, f"{_JSON} is nested too deeply") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise _invalid(path, f"{_JSON}: {exc}") from None
    if not isinstance(document, dict):
        raise _invalid(path, f"{_JSON} is not an object")
    return document


def _read_document(document, path, estimator_class):
    """The :class:`Saved` record (weights not yet read) and the weights' SHA-256."""
    class_name = estimator_class.__name__
    if document.get("format") != FORMAT:
        raise ValueError(f"{path} is not an sk_mmoe file.")
    version = document.get("version")
    if not _is_int(version) or version not in READABLE_VERSIONS:
        raise ValueError(
            f"{path} has format version {version!r}; this sk_mmoe reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))}."
        )
    if document.get("class") != class_name:
        raise ValueError(
            f"{path} holds a {document.get('class')}; load it with {document.get('class')}.load."
        )
    try:
        weights_sha256 = document["weights_sha256"]
        _require(isinstance(weights_sha256, str), "weights_sha256 is not a string")
        fitted = dict(document["fitted"])
        encoder = TaskEncoder.from_dict(fitted.pop("targets"))
        inputs = fitted.pop("inputs", None)
        inputs = None if inputs is None else InputEncoder.from_dict(inputs)
        _check_fitted(fitted, encoder, inputs)
        history = document["history"]
        _require(
            isinstance(history, list) and all(isinstance(e, dict) for e in history),
            "history is not a list of objects",
        )
        training = document.get("training")
        _require(training is None or isinstance(training, dict), "training is not an object")
        params = _params_from_json(document["params"], estimator_class)
        if version == 1:
            fitted["train_batch_size"] = _batch_size_from_history(history, params["batch_size"])
        _require(_is_int(fitted["train_batch_size"], 1), "train_batch_size")
    except (
        KeyError,
        TypeError,
        AttributeError,
        IndexError,
        ValueError,
        OverflowError,  # a label beyond its dtype's range
        RuntimeError,  # torch.device of a malformed device string
    ) as exc:
        raise _invalid(path, f"missing or bad {exc}") from None
    saved = Saved(
        class_name, params, fitted, encoder, history, state={}, training=training, inputs=inputs
    )
    return saved, weights_sha256


def _require(condition, message):
    if not condition:
        raise ValueError(message)


def _is_int(value, low=0):
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _check_fitted(fitted, encoder, inputs):
    """The fitted attributes agree with each other and with the target encoder."""
    n_features, n_tasks = fitted["n_features_in_"], fitted["n_tasks_"]
    _require(_is_int(n_features, 1), f"n_features_in_={n_features!r}")
    names = fitted["feature_names_in_"]
    _require(
        names is None
        or (
            isinstance(names, list)
            and len(names) == n_features
            and all(isinstance(n, str) for n in names)
        ),
        "feature_names_in_",
    )
    targets = fitted["target_names_"]
    _require(_is_int(n_tasks, 1), f"n_tasks_={n_tasks!r}")
    _require(
        isinstance(targets, list)
        and len(targets) == n_tasks == len(encoder.task_types) == len(encoder.names)
        and all(isinstance(n, str) for n in targets),
        "target_names_ (one name per task)",
    )
    _require(isinstance(fitted["single_output"], bool), "single_output")
    _require(not fitted["single_output"] or n_tasks == 1, "single_output with several tasks")
    _require(_is_int(fitted["random_seed_"]), "random_seed_")
    _require(
        inputs is None or len(inputs.is_categorical) == n_features,
        "inputs: is_categorical does not match n_features_in_",
    )


def _check_weights_size(saved, size, path):
    """The weights member is no smaller than the network it must fill, and not far larger.

    The network's size comes from building it on torch's ``meta`` device
    (shapes only, no memory), after checking that no count or width in the
    JSON exceeds what ``size`` bytes could hold.
    """
    hyper = check_hyperparameters(saved.params)
    architecture = ARCHITECTURES[hyper["architecture"]]
    n_features = saved.fitted["n_features_in_"]
    widths = saved.encoder.output_widths
    limit = size // 4  # every count or width means at least one float32 weight
    counts = [n_features, len(widths), hyper["n_ensemble"]]
    if saved.inputs is not None:
        counts += saved.inputs.size_hints()
    for value in architecture.module_kwargs(hyper).values():
        values = value if isinstance(value, (list, tuple)) else [value]
        if isinstance(value, (list, tuple)):
            counts.append(len(values))
        counts += [v for v in values if isinstance(v, Integral) and not isinstance(v, bool)]
    if max(counts) > limit:
        raise _invalid(
            path,
            f"a count or width of {max(counts)} in {_JSON} needs more weights than the "
            f"{size} bytes of {_WEIGHTS}",
        )
    try:
        with torch.device("meta"):
            module = build_module(
                hyper, n_features, widths, saved.inputs, saved.encoder.task_types
            )
    except (RuntimeError, ValueError, TypeError, KeyError, IndexError, OverflowError) as exc:
        raise _invalid(path, f"cannot build the network it describes: {exc}") from None
    network = _tensor_bytes(module.state_dict())
    if not network <= size <= MAX_STATE_FACTOR * network + SLACK:
        raise _invalid(
            path,
            f"{_WEIGHTS} unpacks to {size} bytes but the network it describes has "
            f"{network} bytes of weights",
        )


def _tensor_bytes(state):
    return sum(t.numel() * t.element_size() for t in state.values())


def _load_weights(weights, path, version):
    """``torch.load(weights_only=True)`` of the weights, refusing malformed ones.

    ``weights.pt`` is itself a zip (torch's format) of uncompressed records:
    each is checked to fit in the bytes present before torch reads it, since
    torch allocates a record's declared size up front. The optimizer's state
    is always under ``"optimizer"`` in the result (None: a version 1 model
    file, which did not save it).
    """
    with _reading(path, _WEIGHTS):
        inner = zipfile.ZipFile(io.BytesIO(weights))
    for info in inner.infolist():
        if info.compress_type != zipfile.ZIP_STORED or info.file_size > len(weights):
            raise _invalid(path, f"{_WEIGHTS} has a malformed record {info.filename!r}")
    try:
        state = torch.load(io.BytesIO(weights), weights_only=True, map_location="cpu")
    except Exception as exc:  # noqa: BLE001 (untrusted bytes: any failure is a bad file)
        raise _invalid(path, f"{_WEIGHTS}: {exc}") from None
    if not (
        isinstance(state, dict)
        and isinstance(state.get("module"), dict)
        and isinstance(state.get("criterion"), dict)
    ):
        raise _invalid(path, f"{_WEIGHTS} does not hold the module's and criterion's weights")
    training = state.get("training")
    if version == 1 and isinstance(training, dict) and "optimizer" in training:
        state["optimizer"] = training.pop("optimizer")  # a version 1 checkpoint
    optimizer = state.setdefault("optimizer", None)
    if not (optimizer is None and version == 1) and not _is_optimizer_state(optimizer):
        raise _invalid(path, f"{_WEIGHTS} does not hold the optimizer's state")
    return state


def _is_optimizer_state(state):
    """Whether ``state`` has the layout of an optimizer's ``state_dict``.

    Whether it fits the net (its parameters' number and shapes) is checked
    when it is loaded into one (``sk_mmoe.persistence._checkpoint.restore_net``).
    """
    return (
        isinstance(state, dict)
        and isinstance(state.get("state"), dict)
        and isinstance(state.get("param_groups"), list)
        and all(isinstance(g, dict) for g in state["param_groups"])
    )


def _batch_size_from_history(history, batch_size):
    """The batch size a fit of file version 1 trained with, read from its history.

    "auto" resolved to one size for the fit's number of rows; a batch of
    the history is smaller only when the whole training set was (so the
    size of small data, ``resolve_batch_size("auto", 0)``, is the lower
    bound).
    """
    if not isinstance(batch_size, str):
        return batch_size
    sizes = [
        b.get("train_batch_size", 0)
        for epoch in history
        for b in epoch.get("batches", ())
        if isinstance(b, dict)
    ]
    sizes = [s for s in sizes if _is_int(s, 1)]
    return max([*sizes, resolve_batch_size(batch_size, 0)])


# ---------------------------------------------------------- hyperparameters
def _plain(value):
    """JSON fallback for numpy scalars in the history."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot store {type(value).__name__} in JSON")


def _params_to_json(params):
    """The constructor arguments as JSON values, each through its row's codec."""
    params = dict(params)
    # a loop, not a comprehension (a frame of its own): the codecs' warnings
    # count the frames up to the caller
    for row in HYPERPARAMETERS:
        if row.name in params:
            params[row.name] = row.codec.to_json(params[row.name])
    try:
        return json.loads(json.dumps(params, default=_plain))
    except TypeError as exc:
        raise TypeError(f"Cannot save these hyperparameters as JSON: {exc}") from None


def _params_from_json(params, estimator_class):
    """The constructor arguments: the file's, defaults for the rest, validated."""
    defaults = estimator_class().get_params(deep=False)
    _require(isinstance(params, dict), "params is not an object")
    unknown = sorted(set(params) - set(defaults))
    _require(not unknown, f"unknown hyperparameters {unknown[:5]}")
    params = dict(params)
    for row in HYPERPARAMETERS:
        if row.name in params:
            params[row.name] = row.codec.from_json(params[row.name])
    # a parameter the file does not have: what files of its time trained with
    missing = {row.name: row.file_default for row in HYPERPARAMETERS}
    params = {**defaults, **missing, **params}
    device = torch.device(params["device"])  # RuntimeError for a malformed string
    if not _available(device):
        warnings.warn(
            f"The model was saved with device={params['device']!r}, which is not "
            "available here; it is loaded on the CPU (device='cpu').",
            UserWarning,
            stacklevel=4,
        )
        params["device"] = "cpu"
    validate_parameter_constraints(
        estimator_class._parameter_constraints, params, caller_name=estimator_class.__name__
    )
    check_hyperparameters(params)
    return params


def _available(device):
    """Whether torch can place tensors on ``device`` in this process."""
    if device.type == "cpu":
        return True
    backend = getattr(torch, device.type, None)
    if backend is None or not hasattr(backend, "is_available") or not backend.is_available():
        return False
    count = getattr(backend, "device_count", None)
    return device.index is None or count is None or device.index < count()
