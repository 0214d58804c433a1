"""Crash-safe saving and hostile files.

``save`` is checked with faults injected at every step (the archive's
members, the weights, the flush, the rename, every write offset of the file
through a file size limit, a process killed mid-save): the previous file
always loads and predicts as before and nothing is left behind. ``load`` is
checked against files built to exhaust memory and against valid files
mutated byte by byte and by structure, under a cap on the address space.
"""

import contextlib
import errno
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import fast
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from skorch.callbacks import Callback

from sk_mmoe import MMoEClassifier, MMoEMultiTask, MMoERegressor
from sk_mmoe.callbacks import TrainingCheckpoint, resume_fit

ROOT = Path(__file__).resolve().parents[1]
RNG = np.random.RandomState(0)
X = RNG.normal(size=(60, 3))
Y = pd.DataFrame(
    {
        "value": X[:, 0] + X[:, 1],
        "side": np.where(X[:, 2] > 0, "up", "down"),
        "level": np.digitize(X[:, 0], [-0.5, 0.5]),
    }
)
ENOSPC = OSError(errno.ENOSPC, "No space left on device")
FUZZ = settings(
    max_examples=100,
    deadline=10_000,  # ms: a load takes milliseconds; a hang or a slow path fails
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module")
def old():
    return MMoEMultiTask(**fast(max_epochs=2)).fit(X, Y)


@pytest.fixture(scope="module")
def new():
    return MMoEMultiTask(**fast(max_epochs=3)).fit(X, Y)


@pytest.fixture(scope="module")
def valid_bytes(old, tmp_path_factory):
    path = tmp_path_factory.mktemp("valid") / "model.skmmoe"
    old.save(path)
    return path.read_bytes()


def assert_same_model(loaded, original):
    assert loaded.get_params() == original.get_params()
    np.testing.assert_array_equal(loaded.predict(X), original.predict(X))
    for a, b in zip(loaded.predict_proba(X), original.predict_proba(X)):
        assert (a is None and b is None) or np.array_equal(a, b)
    assert loaded.net_.history[:, "train_loss"] == original.net_.history[:, "train_loss"]
    assert loaded.target_names_.tolist() == original.target_names_.tolist()


@contextlib.contextmanager
def memory_cap(extra=2 << 30):
    """Cap this process's address space at its current size plus ``extra`` bytes.

    Anything in the block that tries to allocate more fails with
    ``MemoryError`` (or torch's RuntimeError) instead of exhausting the machine.
    """
    resource = pytest.importorskip("resource")
    status = Path("/proc/self/status")
    if not status.exists():
        pytest.skip("needs /proc (Linux) to read the process size")
    size_kb = int(status.read_text().split("VmSize:")[1].split()[0])
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (size_kb * 1024 + extra, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


# --------------------------------------------------------------- atomic save
def _fail_on_call(monkeypatch, owner, name, n, exc):
    """Make the ``n``-th call of ``owner.name`` raise ``exc``."""
    original = getattr(owner, name)
    calls = []

    def failing(*args, **kwargs):
        calls.append(None)
        if len(calls) == n:
            raise exc
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, failing)


# (the step that fails, what fails there, the call count, the error)
FAULTS = [
    ("writing estimator.json into the archive", zipfile.ZipFile, "writestr", 1, ENOSPC),
    ("writing weights.pt into the archive", zipfile.ZipFile, "writestr", 2, ENOSPC),
    ("Ctrl-C while writing the weights", zipfile.ZipFile, "writestr", 2, KeyboardInterrupt()),
    ("serialising the weights", torch, "save", 1, RuntimeError("out of memory")),
    ("flushing the file to disk", os, "fsync", 1, OSError(errno.EIO, "I/O error")),
    ("renaming over the old file", os, "replace", 1, PermissionError(errno.EACCES, "denied")),
]


@pytest.mark.parametrize(
    ("step", "owner", "name", "n", "error"), FAULTS, ids=[f[0] for f in FAULTS]
)
def test_a_failed_save_keeps_the_old_file(step, owner, name, n, error, old, new, tmp_path):
    path = tmp_path / "model.skmmoe"
    old.save(path)
    before = path.read_bytes()
    with pytest.MonkeyPatch.context() as patch:
        _fail_on_call(patch, owner, name, n, error)
        with pytest.raises(type(error)):
            new.save(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.skmmoe"]  # no temporary file left
    assert_same_model(MMoEMultiTask.load(path), old)
    # and without a previous file, nothing is created
    with pytest.MonkeyPatch.context() as patch:
        _fail_on_call(patch, owner, name, n, error)
        with pytest.raises(type(error)):
            new.save(tmp_path / "fresh.skmmoe")
    assert os.listdir(tmp_path) == ["model.skmmoe"]


def test_save_replaces_and_keeps_permissions_and_links(old, new, tmp_path):
    path = tmp_path / "model.skmmoe"
    old.save(path)
    if os.name == "posix":
        path.chmod(0o600)
    link = tmp_path / "latest.skmmoe"
    link.symlink_to(path.name)
    new.save(link)  # replaces the file the link points to, not the link
    assert link.is_symlink()
    assert sorted(os.listdir(tmp_path)) == ["latest.skmmoe", "model.skmmoe"]
    if os.name == "posix":
        assert path.stat().st_mode & 0o777 == 0o600
    assert_same_model(MMoEMultiTask.load(path), new)


SWEEP = textwrap.dedent(
    """
    import errno, os, resource, sys
    import numpy as np
    from sk_mmoe import MMoERegressor

    X = np.random.RandomState(0).normal(size=(40, 3))
    y = X[:, 0] + X[:, 1]
    tiny = dict(random_state=0, expert_units=(8,), tower_units=(4,))
    old = MMoERegressor(max_epochs=1, **tiny).fit(X, y)
    new = MMoERegressor(max_epochs=2, **tiny).fit(X, y)
    directory = sys.argv[1]
    path = os.path.join(directory, "model.skmmoe")
    new.save(path)
    size = os.path.getsize(path)
    old.save(path)
    with open(path, "rb") as file:
        before = file.read()
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    limits = sorted(set(range(0, size, 61)) | {size - 1})
    for limit in limits:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
        try:
            new.save(path)
        except OSError as exc:
            assert exc.errno == errno.EFBIG, exc
        else:
            raise AssertionError(f"saved {size} bytes under a limit of {limit}")
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        assert os.listdir(directory) == ["model.skmmoe"], (limit, os.listdir(directory))
        with open(path, "rb") as file:
            assert file.read() == before, limit  # not a byte changed
    assert MMoERegressor.load(path).predict(X).tobytes() == old.predict(X).tobytes()
    new.save(path)
    assert MMoERegressor.load(path).predict(X).tobytes() == new.predict(X).tobytes()
    print(len(limits), size)
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_FSIZE semantics")
def test_disk_full_at_every_write_offset_keeps_the_old_file(tmp_path):
    # a file size limit makes every write past it fail with EFBIG, as a full
    # disk fails with ENOSPC: swept over the whole file, it hits the local
    # headers, both members' data and the central directory
    result = subprocess.run(
        [sys.executable, "-c", SWEEP, str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    n_faults, size = map(int, result.stdout.split())
    assert n_faults > size // 61


KILLED = textwrap.dedent(
    """
    import os, sys
    import numpy as np
    from sk_mmoe import MMoERegressor

    X = np.random.RandomState(0).normal(size=(40, 3))
    y = X[:, 0] + X[:, 1]
    wide = dict(random_state=0, expert_units=(256,), tower_units=(64,))
    models = [MMoERegressor(max_epochs=e, **wide).fit(X, y) for e in (1, 2)]
    directory = sys.argv[1]
    for name, model in zip("ab", models):  # the two files the target may hold
        model.save(os.path.join(directory, "references", name))
    path = os.path.join(directory, "model.skmmoe")
    models[0].save(path)
    print("saving", flush=True)
    i = 0
    while True:
        i += 1
        models[i % 2].save(path)
    """
)


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL")
def test_process_killed_while_saving_leaves_a_whole_file(tmp_path):
    (tmp_path / "references").mkdir()
    process = subprocess.Popen(
        [sys.executable, "-c", KILLED, str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert process.stdout.readline().strip() == "saving", process.stderr.read()
        time.sleep(0.5)  # some saves of about 1 MB each
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
        process.stdout.close()
        process.stderr.close()
    X40 = np.random.RandomState(0).normal(size=(40, 3))
    loaded = MMoERegressor.load(tmp_path / "model.skmmoe").predict(X40)
    references = [MMoERegressor.load(tmp_path / "references" / n).predict(X40) for n in "ab"]
    assert any(np.array_equal(loaded, r) for r in references)
    # a killed process cannot clean up: at most its one temporary file remains
    leftovers = sorted(set(os.listdir(tmp_path)) - {"model.skmmoe", "references"})
    assert len(leftovers) <= 1
    assert all(name.startswith(".model.skmmoe.") for name in leftovers)


# ------------------------------------------------------------ hostile files
def _members(data):
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return [(info, archive.read(info)) for info in archive.infolist()], archive.comment


def _zip(members, comment=b"", compression=zipfile.ZIP_DEFLATED):
    """A zip of ``(name, bytes)`` pairs (duplicates allowed)."""
    buffer = io.BytesIO()
    with (
        zipfile.ZipFile(buffer, "w", compression=compression) as archive,
        _quiet_duplicates(),
    ):
        archive.comment = comment
        for name, data in members:
            archive.writestr(name, data)
    return buffer.getvalue()


@contextlib.contextmanager
def _quiet_duplicates():
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Duplicate name")
        yield


def _signed(document, weights):
    """A file an attacker builds: a changed JSON with every checksum recomputed."""
    document = {**document, "weights_sha256": hashlib.sha256(weights).hexdigest()}
    text = json.dumps(document).encode()
    comment = b"sk_mmoe estimator.json sha256=" + hashlib.sha256(text).hexdigest().encode()
    return _zip([("estimator.json", text), ("weights.pt", weights)], comment)


def _parts(valid_bytes):
    members, _ = _members(valid_bytes)
    parts = {info.filename: data for info, data in members}
    return json.loads(parts["estimator.json"]), parts["weights.pt"]


def _with(document, path, value):
    document = json.loads(json.dumps(document))
    node = document
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return document


def _deep(depth):
    return json.loads("[" * 50 + "]" * 50) if depth <= 50 else "[" * depth + "]" * depth


def _hostile_files(valid_bytes):
    document, weights = _parts(valid_bytes)
    text = json.dumps(document).encode()
    sign = b"sk_mmoe estimator.json sha256=" + hashlib.sha256(text).hexdigest().encode()
    padded = text[:-1] + b" " * (30 << 20) + b"}"  # still valid JSON, 30 MB
    deep = text[:-1] + b', "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    duplicate_key = text[:-1] + b', "class": "MMoEMultiTask"}'
    inflated = _inflate_a_record(weights)
    return {
        "zip bomb in estimator.json": _zip([("estimator.json", padded), ("weights.pt", weights)]),
        "zip bomb in weights.pt": _zip(
            [("estimator.json", text), ("weights.pt", weights + bytes(60 << 20))]
        ),
        "weights far larger than the network": _zip(
            [("estimator.json", text), ("weights.pt", weights + os.urandom(9 << 20))],
            compression=zipfile.ZIP_STORED,
        ),
        "declared size of 4 GB": _declared_size(valid_bytes, 2**32 - 1),
        "n_experts of a billion": _signed(
            _with(document, ["params", "n_experts"], 10**9), weights
        ),
        "expert width of a billion": _signed(
            _with(document, ["params", "expert_units"], [10**9]), weights
        ),
        "a hundred thousand layers": _signed(
            _with(document, ["params", "tower_units"], [1] * 10**5), weights
        ),
        "n_features_in_ of 10**12": _signed(
            _with(document, ["fitted", "n_features_in_"], 10**12), weights
        ),
        "a million classes": _signed(
            _with(
                document,
                ["fitted", "targets", "tasks", 2, "classes"],
                {"dtype": "<i8", "values": list(range(10**6))},
            ),
            weights,
        ),
        "label dtype 400 MB wide": _signed(
            _with(
                document,
                ["fitted", "targets", "tasks", 1, "classes", "dtype"],
                "<U100000000",
            ),
            weights,
        ),
        "negative n_experts": _signed(_with(document, ["params", "n_experts"], -1), weights),
        "very deep JSON": _zip([("estimator.json", deep), ("weights.pt", weights)]),
        "very long JSON history": _signed(
            _with(document, ["history"], [{"epoch": 1}] * 2_000_000), weights
        ),
        "duplicate JSON key": _zip([("estimator.json", duplicate_key), ("weights.pt", weights)]),
        "huge integer literal": _zip(
            [
                ("estimator.json", text[:-1] + b', "x": ' + b"9" * 100_000 + b"}"),
                ("weights.pt", weights),
            ]
        ),
        "duplicate member": _zip(
            [("estimator.json", text), ("weights.pt", weights), ("weights.pt", weights)], sign
        ),
        "path-like member name": _zip(
            [("../estimator.json", text), ("weights.pt", weights)], sign
        ),
        "absolute member name": _zip([("estimator.json", text), ("/etc/weights.pt", weights)]),
        "extra member": _zip(
            [("estimator.json", text), ("weights.pt", weights), ("run.py", b"print(1)")], sign
        ),
        "missing member": _zip([("estimator.json", text)], sign),
        "bzip2 member": _zip(
            [("estimator.json", text), ("weights.pt", weights)], sign, zipfile.ZIP_BZIP2
        ),
        "encrypted member": _encrypted(valid_bytes),
        "torch records claiming 4 GB": _signed(document, inflated),
        "weights not a state dict": _signed(document, _torch_bytes([torch.zeros(1000)])),
        "no optimizer state": _signed(document, _with_optimizer(weights, None)),
        "optimizer state of another shape": _signed(
            document, _with_optimizer(weights, _reshaped_first_moment)
        ),
        "optimizer state of an unknown parameter": _signed(
            document, _with_optimizer(weights, _state_of_unknown_parameter)
        ),
        "optimizer hyperparameter of another type": _signed(
            document, _with_optimizer(weights, _lr_as_text)
        ),
        "not a JSON object": _zip([("estimator.json", b"[1, 2]"), ("weights.pt", weights)]),
        "empty file": b"",
    }


def _with_optimizer(weights, change):
    """The weights with the optimizer's state dropped (``change`` None) or changed."""
    state = torch.load(io.BytesIO(weights), weights_only=True)
    if change is None:
        del state["optimizer"]
    else:
        change(state["optimizer"])
    return _torch_bytes(state)


def _reshaped_first_moment(optimizer):
    entry = optimizer["state"][0]
    entry["exp_avg"] = torch.zeros(entry["exp_avg"].numel() + 1)


def _state_of_unknown_parameter(optimizer):
    optimizer["state"][10**6] = {"exp_avg": torch.zeros(3)}


def _lr_as_text(optimizer):
    optimizer["param_groups"][0]["lr"] = "0.001"


def _torch_bytes(obj):
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _inflate_a_record(weights):
    """torch's weights with one record claiming 4 GB: torch would allocate that up front."""
    data = bytearray(weights)
    with zipfile.ZipFile(io.BytesIO(weights)) as inner:
        info = next(i for i in inner.infolist() if "/data/" in i.filename)
    huge = (2**32 - 1).to_bytes(4, "little")
    data[info.header_offset + 18 : info.header_offset + 26] = huge * 2  # local header sizes
    entry = data.find(b"PK\x01\x02" + bytes(data[info.header_offset + 4 : info.header_offset + 8]))
    while True:  # its central directory entry
        name_length = int.from_bytes(data[entry + 28 : entry + 30], "little")
        if data[entry + 46 : entry + 46 + name_length] == info.filename.encode():
            break
        entry = data.find(b"PK\x01\x02", entry + 4)
    data[entry + 20 : entry + 28] = huge * 2
    return bytes(data)


def _declared_size(data, size):
    """The file with its central directory claiming ``size`` bytes for estimator.json."""
    data = bytearray(data)
    start = data.find(b"PK\x01\x02")  # the first central directory entry: estimator.json
    data[start + 24 : start + 28] = size.to_bytes(4, "little")
    return bytes(data)


def _encrypted(data):
    data = bytearray(data)
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = data.find(signature)
        data[start + offset] |= 0x1
    return bytes(data)


@pytest.fixture(scope="module")
def hostile(valid_bytes):
    return _hostile_files(valid_bytes)


def _hostile_names():
    # the names, without building the files at collection time
    return [
        "zip bomb in estimator.json",
        "zip bomb in weights.pt",
        "weights far larger than the network",
        "declared size of 4 GB",
        "n_experts of a billion",
        "expert width of a billion",
        "a hundred thousand layers",
        "n_features_in_ of 10**12",
        "a million classes",
        "label dtype 400 MB wide",
        "negative n_experts",
        "very deep JSON",
        "very long JSON history",
        "duplicate JSON key",
        "huge integer literal",
        "duplicate member",
        "path-like member name",
        "absolute member name",
        "extra member",
        "missing member",
        "bzip2 member",
        "encrypted member",
        "torch records claiming 4 GB",
        "weights not a state dict",
        "no optimizer state",
        "optimizer state of another shape",
        "optimizer state of an unknown parameter",
        "optimizer hyperparameter of another type",
        "not a JSON object",
        "empty file",
    ]


def test_hostile_cases_are_all_listed(hostile):
    assert sorted(hostile) == sorted(_hostile_names())


@pytest.mark.parametrize("case", _hostile_names())
def test_hostile_files_are_refused_with_value_error(case, hostile, tmp_path):
    path = tmp_path / "hostile.skmmoe"
    path.write_bytes(hostile[case])
    with memory_cap(), pytest.raises(ValueError, match="hostile.skmmoe"):
        MMoEMultiTask.load(path)


def test_a_file_of_another_version_still_loads_without_the_json_checksum(
    old, valid_bytes, tmp_path
):
    # files written before the zip comment held the JSON's checksum
    members, _ = _members(valid_bytes)
    path = tmp_path / "older.skmmoe"
    path.write_bytes(_zip([(info.filename, data) for info, data in members]))
    assert_same_model(MMoEMultiTask.load(path), old)


# -------------------------------------------------------- mutation fuzzing
def _outcome(data, path):
    """Load ``data``: the model, or the ValueError; anything else fails the test."""
    path.write_bytes(data)
    try:
        return MMoEMultiTask.load(path)
    except ValueError as exc:
        return exc


@pytest.fixture(scope="module")
def fuzz_path(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz") / "mutated.skmmoe"


@FUZZ
@given(data=st.data())
def test_byte_mutations_load_the_same_model_or_raise_value_error(
    data, valid_bytes, old, fuzz_path
):
    mutated = bytearray(valid_bytes)
    kind = data.draw(st.sampled_from(["flip", "truncate", "insert", "delete"]))
    position = data.draw(st.integers(0, len(mutated) - 1))
    if kind == "flip":
        for _ in range(data.draw(st.integers(1, 4))):
            mutated[data.draw(st.integers(0, len(mutated) - 1))] = data.draw(st.integers(0, 255))
    elif kind == "truncate":
        del mutated[position:]
    elif kind == "insert":
        mutated[position:position] = data.draw(st.binary(min_size=1, max_size=16))
    else:
        del mutated[position : position + data.draw(st.integers(1, 64))]
    with memory_cap():
        outcome = _outcome(bytes(mutated), fuzz_path)
    if not isinstance(outcome, ValueError):
        assert_same_model(outcome, old)


def _structural(valid_bytes, draw):
    """The file rebuilt with one change to its zip structure or its JSON (not re-signed)."""
    members, comment = _members(valid_bytes)
    pairs = [(info.filename, data) for info, data in members]
    document = json.loads(pairs[0][1])
    ops = {
        "reorder": lambda: _zip(pairs[::-1], comment),
        "stored": lambda: _zip(pairs, comment, zipfile.ZIP_STORED),
        "drop comment": lambda: _zip(pairs),
        "other comment": lambda: _zip(pairs, draw(st.binary(max_size=80))),
        "drop a member": lambda: _zip(pairs[draw(st.integers(0, 1)) :][:1], comment),
        "duplicate a member": lambda: _zip(pairs + pairs[draw(st.integers(0, 1)) :][:1], comment),
        "rename a member": lambda: _zip(
            [
                (
                    draw(
                        st.sampled_from(["../x", "/weights.pt", "a/../weights.pt", "WEIGHTS.PT"])
                    ),
                    d,
                )
                if i == draw(st.integers(0, 1))
                else (n, d)
                for i, (n, d) in enumerate(pairs)
            ],
            comment,
        ),
        "extra member": lambda: _zip(
            pairs + [(draw(st.text(alphabet="abc./_", min_size=1, max_size=8)), b"x")], comment
        ),
        "swap contents": lambda: _zip(
            [(pairs[0][0], pairs[1][1]), (pairs[1][0], pairs[0][1])], comment
        ),
        "change the JSON": lambda: _zip(
            [("estimator.json", json.dumps(_mutate_json(document, draw)).encode()), pairs[1]],
            comment,
        ),
    }
    return ops[draw(st.sampled_from(sorted(ops)))]()


HOSTILE_VALUES = st.sampled_from(
    [10**9, -1, 0, 2**63, 1e308, float("nan"), "<U1000000000", "", [], {}, None, True]
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=8,
)


def _paths(node, prefix=()):
    """Every path into the JSON document (the history: its first epoch only)."""
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node[:1] if prefix == ("history",) else node):
            yield from _paths(value, (*prefix, i))


def _mutate_json(document, draw):
    document = json.loads(json.dumps(document))
    paths = [p for p in _paths(document) if p]
    path = draw(st.sampled_from(paths))
    parent = document
    for key in path[:-1]:
        parent = parent[key]
    if draw(st.booleans()) and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = draw(HOSTILE_VALUES | JSON_VALUES)
    return document


@FUZZ
@given(data=st.data())
def test_structural_mutations_load_the_same_model_or_raise_value_error(
    data, valid_bytes, old, fuzz_path
):
    mutated = _structural(valid_bytes, data.draw)
    with memory_cap():
        outcome = _outcome(mutated, fuzz_path)
    if not isinstance(outcome, ValueError):
        assert_same_model(outcome, old)


@FUZZ
@given(data=st.data())
def test_forged_files_load_or_raise_value_error(data, valid_bytes, fuzz_path):
    # an attacker recomputes every checksum: the file loads as some model or
    # is refused with ValueError, never another error, within the memory cap
    document, weights = _parts(valid_bytes)
    forged = _signed(_mutate_json(document, data.draw), weights)
    with memory_cap():
        _outcome(forged, fuzz_path)


def test_load_leaves_the_global_random_state_alone(tmp_path):
    import numpy as np
    import torch

    from sk_mmoe import MMoERegressor

    rng = np.random.RandomState(0)
    X, Y = rng.normal(size=(50, 3)), rng.normal(size=(50, 2))
    MMoERegressor(max_epochs=1, random_state=0).fit(X, Y).save(tmp_path / "m.skmmoe")
    state = torch.random.get_rng_state()
    MMoERegressor.load(tmp_path / "m.skmmoe")
    assert torch.equal(torch.random.get_rng_state(), state)


# ------------------------------------------- training on after save and load
def _round_trip(model, path):
    model.save(path)
    return type(model).load(path)


def test_auto_batch_size_survives_save_and_load(tmp_path):
    # fitted on 100 rows the batches hold all 100; "auto" is still 256 rows
    rng = np.random.RandomState(0)
    X_big = rng.normal(size=(2000, 3))
    y_big = X_big[:, :2] @ np.array([[1.0, 0.5], [-0.5, 1.0]])
    model = MMoERegressor(warm_start=True, **fast(max_epochs=1))
    model.fit(X_big[:100], y_big[:100])
    loaded = _round_trip(model, tmp_path / "model.skmmoe")
    model.fit(X_big, y_big)
    loaded.fit(X_big, y_big)
    assert model.net_.history[-1, "train_batch_count"] == 8  # 2000 rows / 256
    assert loaded.net_.history[-1, "train_batch_count"] == 8
    np.testing.assert_array_equal(loaded.predict(X_big), model.predict(X_big))


def _regression_task():
    return MMoERegressor, Y[["value"]].assign(twice=2 * Y["value"] - X[:, 2])


def _classification_task():
    return MMoEClassifier, Y[["side", "level"]]


@pytest.mark.parametrize("task", [_regression_task, _classification_task])
@pytest.mark.parametrize("how", ["warm_start", "partial_fit"])
def test_training_on_after_save_and_load_is_training_on_without(task, how, tmp_path):
    cls, y = task()
    # Adam's moments and dropout make the continued fit depend on more than the weights
    params = fast(max_epochs=3, batch_size=16, lr=0.01, dropout=0.2)
    model = cls(warm_start=how == "warm_start", **params).fit(X, y)
    loaded = _round_trip(model, tmp_path / "model.skmmoe")
    for estimator in (model, loaded):
        if how == "warm_start":
            estimator.fit(X, y)
        else:
            estimator.partial_fit(X, y)
            estimator.partial_fit(X, y)
    assert len(loaded.net_.history) == len(model.net_.history) == (6 if how == "warm_start" else 5)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    if cls is MMoEClassifier:
        for ours, theirs in zip(model.predict_proba(X), loaded.predict_proba(X)):
            np.testing.assert_array_equal(theirs, ours)


def _as_version_1(data):
    """A file of version 2 rewritten as version 1 wrote it (same training state)."""
    document, weights = _parts(data)
    document = {**document, "version": 1}
    del document["fitted"]["train_batch_size"]
    state = torch.load(io.BytesIO(weights), weights_only=True)
    optimizer = state.pop("optimizer")
    if "training" in state:  # version 1 checkpoints kept it there
        state["training"]["optimizer"] = optimizer
    return _signed(document, _torch_bytes(state))


class _Crash(Callback):
    def on_epoch_end(self, net, **kwargs):
        if len(net.history) == 3:
            raise RuntimeError("power loss")


def test_a_checkpoint_of_version_1_still_resumes(tmp_path):
    path = tmp_path / "fit.ckpt"
    params = fast(max_epochs=5, batch_size=16, lr=0.01, dropout=0.2)
    with pytest.raises(RuntimeError, match="power loss"):
        MMoERegressor(callbacks=[_Crash(), TrainingCheckpoint(path, every=2)], **params).fit(
            X, Y[["value"]]
        )
    path.write_bytes(_as_version_1(path.read_bytes()))
    resumed = resume_fit(MMoERegressor(**params), path, X, Y[["value"]])
    whole = MMoERegressor(**params).fit(X, Y[["value"]])
    np.testing.assert_array_equal(resumed.predict(X), whole.predict(X))


def test_a_model_of_version_1_trains_on_with_its_batch_size(tmp_path):
    # version 1 did not record the batch size: "auto" is read back from the
    # history, and a fit on 60 rows still trained with "auto"'s 256 rows
    model = MMoERegressor(warm_start=True, **fast(max_epochs=1)).fit(X, Y[["value"]])
    path = tmp_path / "old.skmmoe"
    model.save(path)
    path.write_bytes(_as_version_1(path.read_bytes()))
    loaded = MMoERegressor.load(path)
    assert loaded.net_.batch_size == model.net_.batch_size == 256
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
