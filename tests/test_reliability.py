"""Bad input, training faults, safe persistence and determinism."""

import contextlib
import copy
import io
import subprocess
import sys
import textwrap
import warnings
import zipfile

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from conftest import fast
from sklearn.exceptions import NotFittedError
from sklearn.utils._param_validation import InvalidParameterError
from skorch.callbacks import Callback

from sk_mmoe import MMoEClassifier, MMoEMultiTask, MMoERegressor

FAST = fast(max_epochs=2)
RNG = np.random.RandomState(0)
X = RNG.normal(size=(40, 3))
Y = np.column_stack([X[:, 0] + X[:, 1], X[:, 2] ** 2])
LABELS = pd.DataFrame({"colour": np.where(X[:, 0] > 0, "red", "blue"), "n": np.arange(40) % 3})


@pytest.fixture(scope="module")
def fitted_reg():
    return MMoERegressor(**FAST).fit(X, Y)


@pytest.fixture(scope="module")
def fitted_clf():
    return MMoEClassifier(**FAST).fit(pd.DataFrame(X, columns=["a", "b", "c"]), LABELS)


def _with(array, row, col, value):
    out = array.copy()
    out[row, col] = value
    return out


def _y_nan():
    y = LABELS.copy()
    y.loc[3, "colour"] = None
    return y


# (case id, what to call, expected error, words the message must contain)
BAD_INPUT = [
    ("nan in X", lambda: MMoERegressor(**FAST).fit(_with(X, 0, 0, np.nan), Y), ValueError, "NaN"),
    (
        "inf in X",
        lambda: MMoERegressor(**FAST).fit(_with(X, 0, 0, np.inf), Y),
        ValueError,
        "infinity",
    ),
    (
        "nan in y",
        lambda: MMoERegressor(**FAST).fit(X, _with(Y, 1, 1, np.nan)),
        ValueError,
        "missing values",
    ),
    ("None in y", lambda: MMoEClassifier(**FAST).fit(X, _y_nan()), ValueError, "missing values"),
    (
        "inf in y",
        lambda: MMoERegressor(**FAST).fit(X, _with(Y, 1, 1, np.inf)),
        ValueError,
        "infinity",
    ),
    (
        "X beyond float32",
        lambda: MMoERegressor(**FAST).fit(_with(X, 0, 0, 1e39), Y),
        ValueError,
        "float32 range",
    ),
    ("empty X", lambda: MMoERegressor(**FAST).fit(X[:0], Y[:0]), ValueError, "0 sample"),
    ("one sample", lambda: MMoERegressor(**FAST).fit(X[:1], Y[:1]), ValueError, "minimum of 2"),
    ("3-D X", lambda: MMoERegressor(**FAST).fit(X.reshape(40, 3, 1), Y), ValueError, "dim 3"),
    (
        "3-D y",
        lambda: MMoERegressor(**FAST).fit(X, Y.reshape(40, 2, 1)),
        ValueError,
        "shape (40, 2, 1)",
    ),
    (
        "string X",
        lambda: MMoERegressor(**FAST).fit(X.astype(str).astype(object) + "x", Y),
        ValueError,
        "could not convert",
    ),
    (
        "sparse X with categorical columns",
        lambda: MMoERegressor(categorical_features=[0], **FAST).fit(sp.csr_matrix(X), Y),
        ValueError,
        "categorical_features cannot be used with a sparse X",
    ),
    ("sparse y", lambda: MMoERegressor(**FAST).fit(X, sp.csr_matrix(Y)), TypeError, "dense"),
    (
        "row mismatch",
        lambda: MMoERegressor(**FAST).fit(X, Y[:30]),
        ValueError,
        "inconsistent numbers of samples",
    ),
    ("y None", lambda: MMoERegressor(**FAST).fit(X, None), ValueError, "requires y"),
    (
        "n_experts 0",
        lambda: MMoERegressor(n_experts=0).fit(X, Y),
        InvalidParameterError,
        "n_experts",
    ),
    (
        "batch_size 0",
        lambda: MMoERegressor(batch_size=0).fit(X, Y),
        InvalidParameterError,
        "batch_size",
    ),
    ("lr 0", lambda: MMoERegressor(lr=0).fit(X, Y), InvalidParameterError, "lr"),
    ("lr negative", lambda: MMoERegressor(lr=-1e-3).fit(X, Y), InvalidParameterError, "lr"),
    ("dropout 1", lambda: MMoERegressor(dropout=1.0).fit(X, Y), InvalidParameterError, "dropout"),
    (
        "dropout negative",
        lambda: MMoERegressor(dropout=-0.1).fit(X, Y),
        InvalidParameterError,
        "dropout",
    ),
    (
        "gate_dropout 1",
        lambda: MMoERegressor(gate_dropout=1.0).fit(X, Y),
        InvalidParameterError,
        "gate_dropout",
    ),
    (
        "max_epochs 0",
        lambda: MMoERegressor(max_epochs=0).fit(X, Y),
        InvalidParameterError,
        "max_epochs",
    ),
    (
        "weight_decay < 0",
        lambda: MMoERegressor(weight_decay=-1).fit(X, Y),
        InvalidParameterError,
        "weight_decay",
    ),
    (
        "expert_units 0",
        lambda: MMoERegressor(expert_units=(0,)).fit(X, Y),
        ValueError,
        "expert_units",
    ),
    (
        "expert_units float",
        lambda: MMoERegressor(expert_units=(2.5,)).fit(X, Y),
        ValueError,
        "expert_units",
    ),
    (
        "validation_fraction 0",
        lambda: MMoERegressor(validation_fraction=0.0).fit(X, Y),
        InvalidParameterError,
        "validation_fraction",
    ),
    (
        "unknown architecture",
        lambda: MMoERegressor(architecture="transformer").fit(X, Y),
        InvalidParameterError,
        "architecture",
    ),
    (
        "unknown activation",
        lambda: MMoERegressor(activation="swish").fit(X, Y),
        InvalidParameterError,
        "activation",
    ),
    (
        "unknown optimizer",
        lambda: MMoERegressor(optimizer="lion").fit(X, Y),
        InvalidParameterError,
        "optimizer",
    ),
    (
        "optimizer not an Optimizer",
        lambda: MMoERegressor(optimizer=dict).fit(X, Y),
        TypeError,
        "optimizer",
    ),
    (
        "task_weights length",
        lambda: MMoERegressor(task_weights=[1, 1, 1], **FAST).fit(X, Y),
        ValueError,
        "task_weights has 3 entries",
    ),
    (
        "task_weights negative",
        lambda: MMoERegressor(task_weights=[1, -1], **FAST).fit(X, Y),
        ValueError,
        "non-negative",
    ),
    (
        "task_weights all zero",
        lambda: MMoERegressor(task_weights=[0, 0], **FAST).fit(X, Y),
        ValueError,
        "not all zero",
    ),
    (
        "task_weights strings",
        lambda: MMoERegressor(task_weights=["a", "b"], **FAST).fit(X, Y),
        TypeError,
        "task_weights",
    ),
    (
        "single class",
        lambda: MMoEClassifier(**FAST).fit(X, np.array(["a"] * 40)),
        ValueError,
        "single class",
    ),
    (
        "continuous y to classifier",
        lambda: MMoEClassifier(**FAST).fit(X, Y),
        ValueError,
        "Unknown label type",
    ),
    (
        "mixed labels in a column",
        lambda: MMoEClassifier(**FAST).fit(X, np.array(["a", 1] * 20, dtype=object)),
        TypeError,
        "mixes label types",
    ),
    (
        "non-numeric regression y",
        lambda: MMoEMultiTask(task_types=["regression"], **FAST).fit(X, np.array(["a", "b"] * 20)),
        ValueError,
        "numeric",
    ),
    ("bad device", lambda: MMoERegressor(device="gpu:7", **FAST).fit(X, Y), ValueError, "device"),
    ("cuda missing", lambda: MMoERegressor(device="cuda", **FAST).fit(X, Y), ValueError, "CUDA"),
    (
        "callbacks not callbacks",
        lambda: MMoERegressor(callbacks=[print], **FAST).fit(X, Y),
        TypeError,
        "callbacks",
    ),
]


def _fitted_cases():
    return [
        ("features at predict", lambda reg, clf: reg.predict(X[:, :2]), ValueError, "2 features"),
        ("1-D X at predict", lambda reg, clf: reg.predict(X[0]), ValueError, "Expected 2D array"),
        (
            "nan at predict",
            lambda reg, clf: reg.predict(_with(X, 0, 0, np.nan)),
            ValueError,
            "NaN",
        ),
        (
            "tasks at score",
            lambda reg, clf: reg.score(X, Y[:, :1]),
            ValueError,
            "1 tasks, expected 2",
        ),
        (
            "unseen labels at score",
            lambda reg, clf: clf.score(
                pd.DataFrame(X, columns=["a", "b", "c"]), LABELS.replace("red", "green")
            ),
            ValueError,
            "not seen during fit: ['green']",
        ),
        (
            "renamed columns",
            lambda reg, clf: clf.predict(pd.DataFrame(X, columns=["a", "b", "z"])),
            ValueError,
            "feature names",
        ),
        (
            "gate weights shared bottom",
            lambda reg, clf: (
                MMoERegressor(architecture="shared_bottom", **FAST).fit(X, Y).gate_weights(X)
            ),
            ValueError,
            "no gates",
        ),
    ]


def _snapshot():
    return copy.deepcopy((X, Y, LABELS))


@pytest.mark.parametrize(
    ("case", "call", "error", "words"), BAD_INPUT, ids=[c[0] for c in BAD_INPUT]
)
def test_bad_input_before_fit(case, call, error, words):
    before = _snapshot()
    with pytest.raises(error) as info:
        call()
    assert words in str(info.value)
    assert "torch" not in type(info.value).__module__
    after = (X, Y, LABELS)
    np.testing.assert_array_equal(before[0], after[0])
    np.testing.assert_array_equal(before[1], after[1])
    pd.testing.assert_frame_equal(before[2], after[2])


@pytest.mark.parametrize(
    ("case", "call", "error", "words"), _fitted_cases(), ids=[c[0] for c in _fitted_cases()]
)
def test_bad_input_after_fit(case, call, error, words, fitted_reg, fitted_clf):
    before = _snapshot()
    with pytest.raises(error) as info:
        call(fitted_reg, fitted_clf)
    assert words in str(info.value)
    np.testing.assert_array_equal(before[0], X)
    pd.testing.assert_frame_equal(before[2], LABELS)


@pytest.mark.parametrize("method", ["predict", "score", "gate_weights", "gate_summary", "save"])
def test_not_fitted(method, tmp_path):
    args = {"score": (X, Y), "save": (tmp_path / "m",)}.get(method, (X,))
    with pytest.raises(NotFittedError):
        getattr(MMoERegressor(), method)(*args)
    with pytest.raises(NotFittedError):
        MMoEClassifier().predict_proba(X)


def test_dataframe_inputs_are_not_modified():
    Xf = pd.DataFrame(X, columns=["a", "b", "c"])
    yf = LABELS.astype(object)
    yf.iloc[0, 0] = None
    Xf_before, yf_before = Xf.copy(), yf.copy()
    MMoEClassifier(missing_targets="ignore", **FAST).fit(Xf, yf)
    pd.testing.assert_frame_equal(Xf, Xf_before)
    pd.testing.assert_frame_equal(yf, yf_before)


# ----------------------------------------------------------------- training faults
@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_diverging_fit_raises_naming_the_learning_rate(optimizer):
    reg = MMoERegressor(lr=1e4, optimizer=optimizer, max_epochs=5, random_state=0)
    with pytest.raises(ValueError, match=r"diverged.*lr=10000\.0"):
        reg.fit(X, Y)
    assert not hasattr(reg, "net_")  # no half-fitted model left behind


def test_overflowing_predictions_are_not_silent(fitted_reg):
    with pytest.warns(RuntimeWarning, match="non-finite"):
        fitted_reg.predict(np.full((2, 3), 3e38))


class _Interrupt(Callback):
    def on_epoch_end(self, net, **kwargs):
        if len(net.history) == 2:
            raise KeyboardInterrupt


def test_keyboard_interrupt_leaves_a_usable_model():
    reg = MMoERegressor(max_epochs=10, callbacks=[_Interrupt()], random_state=0).fit(X, Y)
    assert reg.n_iter_ == 2
    assert np.isfinite(reg.predict(X)).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_read_only_memmap_inputs(dtype, tmp_path):
    path = tmp_path / "x.dat"
    data = np.memmap(path, dtype=dtype, mode="w+", shape=X.shape)
    data[:] = X
    data.flush()
    readonly = np.memmap(path, dtype=dtype, mode="r", shape=X.shape)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        reg = MMoERegressor(**FAST).fit(readonly, Y)
        pred = reg.predict(readonly)
    np.testing.assert_allclose(pred, reg.predict(X.astype(dtype)))


# --------------------------------------------------------------------- persistence
@pytest.fixture(scope="module")
def saved(tmp_path_factory, fitted_clf):
    path = tmp_path_factory.mktemp("model") / "clf.skmmoe"
    fitted_clf.save(path)
    return path


def test_safe_format_round_trip(saved, fitted_clf):
    Xf = pd.DataFrame(X, columns=["a", "b", "c"])
    loaded = MMoEClassifier.load(saved)
    assert loaded.get_params() == fitted_clf.get_params()
    np.testing.assert_array_equal(loaded.predict(Xf), fitted_clf.predict(Xf))
    for a, b in zip(loaded.predict_proba(Xf), fitted_clf.predict_proba(Xf)):
        np.testing.assert_array_equal(a, b)
    assert [c.tolist() for c in loaded.classes_] == [c.tolist() for c in fitted_clf.classes_]
    assert loaded.feature_names_in_.tolist() == ["a", "b", "c"]
    assert len(loaded.net_.history) == len(fitted_clf.net_.history)
    loaded.partial_fit(Xf, LABELS)  # trains on
    assert loaded.n_iter_ == fitted_clf.n_iter_ + 1


def test_safe_format_regressor_multitask_and_uncertainty(tmp_path):
    y = pd.DataFrame({"v": Y[:, 0], "flag": X[:, 1] > 0})
    model = MMoEMultiTask(task_weights="uncertainty", **FAST).fit(X, y)
    model.save(tmp_path / "m")
    loaded = MMoEMultiTask.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    np.testing.assert_array_equal(
        loaded.net_.criterion_.log_vars.detach(), model.net_.criterion_.log_vars.detach()
    )
    reg = MMoERegressor(optimizer=__import__("torch").optim.SGD, **FAST).fit(X, Y[:, 0])
    reg.save(tmp_path / "r")
    assert MMoERegressor.load(tmp_path / "r").predict(X).shape == (40,)


def test_safe_format_contains_no_pickle(saved):
    with zipfile.ZipFile(saved) as archive:
        assert sorted(archive.namelist()) == ["estimator.json", "weights.pt"]
        import torch

        # loads with weights_only=True: plain tensors only
        torch.load(io.BytesIO(archive.read("weights.pt")), weights_only=True)


def _rewrite(src, dst, name, transform):
    with zipfile.ZipFile(src) as archive:
        members = {n: archive.read(n) for n in archive.namelist()}
    members[name] = transform(members[name])
    with zipfile.ZipFile(dst, "w") as archive:
        for n, data in members.items():
            archive.writestr(n, data)


def test_safe_format_rejects_bad_files(saved, tmp_path):
    truncated = tmp_path / "truncated"
    truncated.write_bytes(saved.read_bytes()[:200])
    with pytest.raises(ValueError, match="not a valid sk_mmoe file"):
        MMoEClassifier.load(truncated)

    tampered = tmp_path / "tampered"
    _rewrite(saved, tampered, "weights.pt", lambda b: b[:-10] + bytes(10))
    with pytest.raises(ValueError, match="checksum"):
        MMoEClassifier.load(tampered)

    broken_json = tmp_path / "json"
    _rewrite(saved, broken_json, "estimator.json", lambda b: b[:50])
    with pytest.raises(ValueError, match="not a valid sk_mmoe file"):
        MMoEClassifier.load(broken_json)

    with pytest.raises(ValueError, match="holds a MMoEClassifier"):
        MMoERegressor.load(saved)

    wrong_shape = tmp_path / "shape"
    _rewrite(
        saved,
        wrong_shape,
        "estimator.json",
        lambda b: b.replace(b'"n_experts": 8', b'"n_experts": 3'),
    )
    with pytest.raises(ValueError, match="do not fit"):
        MMoEClassifier.load(wrong_shape)

    not_zip = tmp_path / "pickle"
    not_zip.write_bytes(b"\x80\x04K\x01.")
    with pytest.raises(ValueError, match="not a valid sk_mmoe file"):
        MMoEClassifier.load(not_zip)


def test_model_saved_on_cuda_loads_on_a_cpu_only_machine(saved, fitted_clf, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    # the file a CUDA fit writes differs only in its device (weights are saved on CPU)
    on_cuda = tmp_path / "cuda"
    _rewrite(
        saved,
        on_cuda,
        "estimator.json",
        lambda b: b.replace(b'"device": "cpu"', b'"device": "cuda:0"'),
    )
    with pytest.warns(UserWarning, match="loaded on the CPU"):
        loaded = MMoEClassifier.load(on_cuda)
    assert loaded.device == "cpu"
    Xf = pd.DataFrame(X, columns=["a", "b", "c"])
    np.testing.assert_array_equal(loaded.predict(Xf), fitted_clf.predict(Xf))


def test_save_refuses_what_json_cannot_hold(tmp_path):
    class MyAdam(__import__("torch").optim.Adam):
        pass

    reg = MMoERegressor(optimizer=MyAdam, **FAST).fit(X, Y)
    with pytest.raises(TypeError, match="optimizer"):
        reg.save(tmp_path / "m")
    with pytest.warns(UserWarning, match="callbacks are not saved"):
        MMoERegressor(callbacks=[Callback()], **FAST).fit(X, Y).save(tmp_path / "c")


# --------------------------------------------------------------------- determinism
SCRIPT = textwrap.dedent(
    """
    import sys, numpy as np
    from sk_mmoe import MMoEClassifier
    rng = np.random.RandomState(0)
    X = rng.normal(size=(200, 5)).astype(np.float32)
    y = np.column_stack([X[:, 0] > 0, np.digitize(X[:, 1], [-0.5, 0.5])])
    clf = MMoEClassifier(max_epochs=5, dropout=0.2, random_state=int(sys.argv[1])).fit(X, y)
    sys.stdout.write(np.concatenate(clf.predict_proba(X), axis=1).tobytes().hex())
    """
)


def _predict_in_process(seed):
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(seed)], capture_output=True, text=True, check=True
    )
    return result.stdout


def test_bitwise_identical_across_processes_and_fits(monkeypatch):
    first, second = _predict_in_process(3), _predict_in_process(3)
    assert first == second
    assert _predict_in_process(4) != first
    # and the same bytes in this process
    namespace = {}
    monkeypatch.setattr(sys, "argv", ["-c", "3"])
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        exec(SCRIPT.replace("sys.stdout.write", "print"), namespace)
    assert buffer.getvalue().strip() == first
