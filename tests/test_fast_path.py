"""The small-input prediction path: same numbers, same errors, threads left as they were.

A plain float array skips ``validate_data`` (``_BaseMMoE._plain_floats``), and
with ``n_jobs=None`` inputs of at most ``ONE_THREAD_ROWS`` rows run on the
calling thread's OpenMP count of one (``_inference._limit_threads``); an
explicit ``n_jobs`` sets the count for any input. These tests compare that path
with the validated path (the same rows as a list) and with slices of a large
input, which runs with torch's threads in chunks of 4096 rows.
"""

import copy
import pickle
import threading

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import architecture_names, fast
from sklearn.utils._openmp_helpers import _openmp_effective_n_threads

from sk_mmoe import MMoEClassifier, MMoEMultiTask, MMoERegressor
from sk_mmoe._inference import MIN_PREDICT_ROWS, ONE_THREAD_ROWS

RNG = np.random.default_rng(0)
N_BIG = 4200  # more than one chunk of 4096 rows, so more than ONE_THREAD_ROWS
X17 = RNG.standard_normal((N_BIG, 17))  # an odd width: narrow BLAS kernels differ by rows
Y_REG = np.column_stack([X17[:, 0] * X17[:, 1], X17[:, 2] + 1.0])
LABELS = pd.DataFrame(
    {
        "side": np.where(X17[:, 3] > 0, "up", "down"),
        "level": np.digitize(X17[:, 4], [-0.5, 0.5]),
    }
)
MIXED = pd.DataFrame({"value": Y_REG[:, 0], "side": LABELS["side"], "level": LABELS["level"]})
SIZES = range(1, 201)


@pytest.fixture
def torch_threads():
    """An explicit torch thread count other than 1, restored after the test."""
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    yield 3
    torch.set_num_threads(before)


def _outputs(est, method, X):
    out = getattr(est, method)(X)
    return [o for o in out if o is not None] if isinstance(out, list) else [out]


def _assert_small_inputs_match(est, method, X):
    """Every n in SIZES: the fast path, the validated path and a slice of a big input agree."""
    full = _outputs(est, method, X)
    for n in SIZES:
        fast_path = _outputs(est, method, X[:n])
        validated = _outputs(est, method, X[:n].tolist())
        for a, b, c in zip(fast_path, validated, full):
            np.testing.assert_array_equal(a, b, err_msg=f"{method}, {n} rows")
            np.testing.assert_array_equal(a, c[:n], err_msg=f"{method}, {n} rows")


@pytest.mark.parametrize("architecture", architecture_names())
def test_regressor_small_inputs_bitwise_equal_to_the_normal_path(architecture):
    est = MMoERegressor(architecture=architecture, **fast(max_epochs=1))
    est.fit(X17[:500], Y_REG[:500])
    _assert_small_inputs_match(est, "predict", X17)
    if est.module_.has_gates:
        _assert_small_inputs_match(est, "gate_weights", X17)


@pytest.mark.parametrize("architecture", ["mmoe", "ple"])
def test_classifier_and_multitask_small_inputs_bitwise_equal(architecture):
    params = fast(max_epochs=1, architecture=architecture)
    clf = MMoEClassifier(**params).fit(X17[:500], LABELS[:500])
    multi = MMoEMultiTask(**params).fit(X17[:500], MIXED[:500])
    for est in (clf, multi):
        for method in ("predict", "predict_proba"):
            _assert_small_inputs_match(est, method, X17)


@pytest.mark.parametrize("architecture", ["mmoe", "cgc", "shared_bottom"])
def test_categorical_inputs_bitwise_equal_for_every_row_count(architecture):
    frame = pd.DataFrame(X17[:, :5], columns=[f"x{j}" for j in range(5)])
    frame["city"] = pd.Categorical(np.array(["a", "b", "c", "d"])[RNG.integers(0, 4, N_BIG)])
    est = MMoEMultiTask(**fast(max_epochs=1, architecture=architecture))
    est.fit(frame[:500], MIXED[:500])
    for method in ("predict", "predict_proba"):
        full = _outputs(est, method, frame)
        for n in SIZES:
            for a, b in zip(_outputs(est, method, frame[:n]), full):
                np.testing.assert_array_equal(a, b[:n], err_msg=f"{method}, {n} rows")


# -------------------------------------------------------------- threads
@pytest.fixture(scope="module")
def model():
    return MMoERegressor(**fast(max_epochs=1)).fit(X17[:500], Y_REG[:500])


def _record_threads(est, seen, wait=None):
    """Make the module's forward record ``torch.get_num_threads()`` when it runs."""
    forward = est.module_.forward

    def recording(x):
        seen.append(torch.get_num_threads())
        if wait is not None:
            wait()
        return forward(x)

    est.module_.forward = recording  # an instance attribute: run_module looks it up


def test_small_inputs_run_on_one_thread_and_give_the_count_back(model, torch_threads):
    est = copy.deepcopy(model)
    seen = []
    _record_threads(est, seen)
    est.predict(X17[:1])
    est.predict(X17[:ONE_THREAD_ROWS])
    assert torch.get_num_threads() == torch_threads
    # larger inputs keep torch's threads, at most the cores this process may use
    est.predict(X17[: ONE_THREAD_ROWS + 1])
    assert seen == [1, 1, min(torch_threads, _openmp_effective_n_threads())]
    assert torch.get_num_threads() == torch_threads


@pytest.mark.parametrize("n_jobs", [1, 2, 4])
def test_n_jobs_sets_the_threads_of_any_input_size(model, torch_threads, n_jobs):
    est = copy.deepcopy(model).set_params(n_jobs=n_jobs)
    seen = []
    _record_threads(est, seen)
    est.predict(X17[:1])
    est.predict(X17[: ONE_THREAD_ROWS + 1])
    assert seen == [n_jobs, n_jobs]
    assert torch.get_num_threads() == torch_threads


def test_thread_count_given_back_when_predict_raises(model, torch_threads):
    est = copy.deepcopy(model)

    def broken(x):
        raise RuntimeError("broken forward")

    est.module_.forward = broken
    with pytest.raises(RuntimeError, match="broken forward"):
        est.predict(X17[:1])
    assert torch.get_num_threads() == torch_threads
    # a ValueError raised inside the module, by a public method
    with pytest.raises(ValueError, match="level"):
        model.gate_weights(X17[:1], level=3)
    assert torch.get_num_threads() == torch_threads


def test_the_limit_is_the_calling_threads_alone(model, torch_threads):
    """While one thread predicts on one OpenMP thread, the others keep their count."""
    est = copy.deepcopy(model)
    inside, release, seen = threading.Event(), threading.Event(), []

    def wait():
        inside.set()
        assert release.wait(30)

    _record_threads(est, seen, wait)
    worker = threading.Thread(target=est.predict, args=(X17[:1],))
    worker.start()
    try:
        assert inside.wait(30)
        assert torch.get_num_threads() == torch_threads  # this thread: unchanged
    finally:
        release.set()
        worker.join()
    assert seen == [1]


# ----------------------------------------------------------- validation
def test_fast_path_keeps_the_validation_errors(model):
    """An array the fast path cannot take goes to validate_data: its errors, unchanged."""
    for bad, match in [
        (np.full((1, 17), np.nan), "NaN"),
        (np.full((1, 17), np.inf), "infinity"),
        (np.full((1, 17), 1e300), "float32 range"),
        (np.full((1, 16), 0.0), "17 features"),
        (np.zeros((0, 17)), "0 sample"),
        (np.zeros(17), "2D array"),
    ]:
        with pytest.raises(ValueError, match=match):
            model.predict(bad)


def test_fast_path_takes_any_float_layout(model):
    X = X17[:10]
    expected = model.predict(X)
    for variant in (X.astype(np.float32), np.asfortranarray(X), X17[:20:2], X.astype(np.int64)):
        reference = model.predict(variant.tolist())
        np.testing.assert_array_equal(model.predict(variant), reference)
    np.testing.assert_array_equal(model.predict(np.asfortranarray(X)), expected)


def test_feature_names_still_checked():
    frame = pd.DataFrame(X17[:300], columns=[f"f{j}" for j in range(17)])
    est = MMoERegressor(**fast(max_epochs=1)).fit(frame, Y_REG[:300])
    with pytest.warns(UserWarning, match="feature names"):
        est.predict(X17[:1])


# ------------------------------------------------- modes after training
def _reference(est, X):
    """The eval-mode network on ``X`` zero-padded to MIN_PREDICT_ROWS rows, decoded."""
    module = copy.deepcopy(est.module_).eval()
    padded = np.zeros((MIN_PREDICT_ROWS, X.shape[1]), dtype=np.float32)
    padded[: len(X)] = X
    with torch.inference_mode():
        out = module(torch.from_numpy(padded)).numpy()[: len(X)]
    return np.column_stack(est.target_encoder_.decode(out))


def test_predictions_follow_every_change_of_the_network(tmp_path):
    """fit, partial_fit, set_params + fit, warm_start and load: predict is the eval network."""
    X, Y = X17[:300], Y_REG[:300]
    # no gate check after fit: it would run the network, in eval mode, itself
    est = MMoERegressor(**fast(max_epochs=1, dropout=0.5, gate_collapse_threshold=None))
    steps = [
        lambda: est.fit(X, Y),
        lambda: est.partial_fit(X, Y),
        lambda: est.set_params(dropout=0.3, expert_units=(6,)).fit(X, Y),
        lambda: est.set_params(warm_start=True).fit(X, Y),
        lambda: est.partial_fit(X, Y),
    ]
    previous = None
    for step in steps:
        step()
        assert est.module_.training  # training left the network in training mode
        first = est.predict(X[:3])  # with dropout 0.5, a training-mode pass would be random
        np.testing.assert_array_equal(first, _reference(est, X[:3]))
        np.testing.assert_array_equal(est.predict(X[:3]), first)
        if previous is not None:
            assert not np.array_equal(first, previous)  # the new weights are used
        previous = first
    path = tmp_path / "model.skmmoe"
    est.save(path)
    loaded = MMoERegressor.load(path)
    np.testing.assert_array_equal(loaded.predict(X[:3]), previous)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(est)).predict(X[:3]), previous)
    est.module_.train()  # switched by hand: predict still evaluates
    np.testing.assert_array_equal(est.predict(X[:3]), previous)
