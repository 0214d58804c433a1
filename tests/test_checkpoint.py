"""Training checkpoints and resumed fits.

A fit resumed from the checkpoint of any epoch ends bitwise identical to the
uninterrupted fit: checked from every epoch's checkpoint, with dropout,
shuffling, early stopping, learned task weights, sample weights, warm
starts and an unseeded fit, and with a real process killed mid-fit.
"""

import os
import pickle
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import fast
from skorch.callbacks import Callback

from sk_mmoe import MMoEClassifier, MMoEMultiTask, MMoERegressor
from sk_mmoe.callbacks import TrainingCheckpoint, resume_fit

ROOT = Path(__file__).resolve().parents[1]
RNG = np.random.RandomState(0)
X = RNG.normal(size=(80, 4))
Y = np.column_stack([X[:, 0] + X[:, 1], X[:, 2] * X[:, 3]])
LABELS = pd.DataFrame({"side": np.where(X[:, 0] > 0, "a", "b"), "level": X[:, 1].round() % 3})
MIXED = pd.DataFrame({"value": Y[:, 0], "side": LABELS["side"]})
WEIGHTS = RNG.uniform(0.5, 2.0, size=80)
GAPS = RNG.uniform(size=80)


class Snapshots(Callback):
    """Copy the checkpoint at the start of each epoch: the state after the previous one."""

    def __init__(self, path, directory):
        self.path = path
        self.directory = directory

    def on_epoch_begin(self, net, **kwargs):
        if os.path.exists(self.path):
            shutil.copy(self.path, os.path.join(self.directory, f"{len(net.history) - 1}.ckpt"))


class Crash(Callback):
    """Raise at the end of epoch ``at`` (counted over the history)."""

    def __init__(self, at):
        self.at = at

    def on_epoch_end(self, net, **kwargs):
        if len(net.history) == self.at:
            raise RuntimeError("power loss")


def _predictions(model, X):
    outputs = [model.predict(X)]
    if hasattr(model, "predict_proba"):
        outputs += [p for p in model.predict_proba(X) if p is not None]
    return outputs


def _assert_identical(a, b, X):
    for p, q in zip(_predictions(a, X), _predictions(b, X)):
        np.testing.assert_array_equal(p, q)
    assert a.n_iter_ == b.n_iter_
    assert a.random_seed_ == b.random_seed_


# (estimator class, hyperparameters, y, sample_weight)
CASES = {
    "dropout and shuffling": (MMoERegressor, fast(max_epochs=6, dropout=0.3), Y, None),
    "early stopping fires": (
        MMoEClassifier,
        fast(max_epochs=30, early_stopping=True, n_iter_no_change=2, tol=0.5, gate_dropout=0.2),
        LABELS,
        None,
    ),
    "learned task weights, rmsprop, sample weights": (
        MMoEMultiTask,
        fast(max_epochs=5, task_weights="uncertainty", optimizer="rmsprop", batch_size=16),
        MIXED,
        WEIGHTS,
    ),
    "unseeded": (MMoERegressor, fast(max_epochs=5, random_state=None, dropout=0.2), Y, None),
    "dwa, missing labels": (
        MMoEMultiTask,
        fast(max_epochs=5, task_weights="dwa", missing_targets="ignore", batch_size=16),
        # a label missing from one task or the other, never both
        MIXED.mask(np.column_stack([GAPS < 0.3, GAPS > 0.7])),
        None,
    ),
    "gradnorm, conflict diagnostics": (
        MMoERegressor,
        fast(max_epochs=4, task_weights="gradnorm", track_task_conflict=True, batch_size=16),
        Y,
        WEIGHTS,
    ),
    "pcgrad": (MMoERegressor, fast(max_epochs=4, task_weights="pcgrad", batch_size=16), Y, None),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_resuming_from_every_epoch_gives_the_uninterrupted_fit(case, tmp_path):
    cls, params, y, weight = CASES[case]
    path = str(tmp_path / "fit.ckpt")
    full = cls(callbacks=[TrainingCheckpoint(path), Snapshots(path, tmp_path)], **params)
    full.fit(X, y, sample_weight=weight)
    if params["random_state"] is not None:
        # checkpointing changes nothing in the fit
        _assert_identical(full, cls(**params).fit(X, y, sample_weight=weight), X)
    snapshots = sorted(tmp_path.glob("*[0-9].ckpt"), key=lambda p: int(p.stem))
    assert len(snapshots) == full.n_iter_ - 1
    if params.get("early_stopping"):
        assert full.n_iter_ < params["max_epochs"]  # it stopped early
    for snapshot in [*snapshots, Path(path)]:
        resumed = resume_fit(cls(**params), snapshot, X, y, sample_weight=weight)
        _assert_identical(resumed, full, X)


def test_a_crashed_fit_resumes_and_goes_on_checkpointing(tmp_path):
    path = tmp_path / "fit.ckpt"
    params = fast(max_epochs=8, dropout=0.2)
    with pytest.raises(RuntimeError, match="power loss"):
        MMoERegressor(callbacks=[Crash(5), TrainingCheckpoint(path, every=2)], **params).fit(X, Y)
    assert MMoERegressor.load(path).n_iter_ == 4  # the checkpoint is a model file too
    resumed = resume_fit(
        MMoERegressor(callbacks=[TrainingCheckpoint(path, every=2)], **params), path, X, Y
    )
    _assert_identical(resumed, MMoERegressor(**params).fit(X, Y), X)
    assert resumed.net_.callbacks_[-1][1].run_ is None  # no training data kept
    pickle.dumps(resumed)
    # the finished fit wrote a final checkpoint: resuming it trains nothing more
    again = resume_fit(MMoERegressor(**params), path, X, Y)
    _assert_identical(again, resumed, X)


def test_a_crashed_warm_start_continuation_resumes(tmp_path):
    path = tmp_path / "fit.ckpt"
    params = fast(max_epochs=3, warm_start=True, dropout=0.2)
    uninterrupted = MMoERegressor(**params).fit(X[:40], Y[:40]).fit(X, Y)
    model = MMoERegressor(callbacks=[Crash(5), TrainingCheckpoint(path)], **params)
    model.fit(X[:40], Y[:40])
    with pytest.raises(RuntimeError, match="power loss"):
        model.fit(X, Y)  # the second call dies in its second epoch
    assert MMoERegressor.load(path).n_iter_ == 4
    resumed = resume_fit(MMoERegressor(**params), path, X, Y)
    _assert_identical(resumed, uninterrupted, X)


def test_resume_refuses_a_different_fit(tmp_path):
    path = tmp_path / "fit.ckpt"
    params = fast(max_epochs=2)
    model = MMoERegressor(callbacks=[TrainingCheckpoint(path)], **params).fit(X, Y)
    with pytest.raises(ValueError, match=r"lr=0\.1 \(checkpoint: 0\.001\)"):
        resume_fit(MMoERegressor(**{**params, "lr": 0.1}), path, X, Y)
    with pytest.raises(ValueError, match="differ from the training data"):
        resume_fit(MMoERegressor(**params), path, X[::-1], Y[::-1])
    with pytest.raises(ValueError, match="differ from the training data"):
        resume_fit(MMoERegressor(**params), path, X, Y, sample_weight=WEIGHTS)
    with pytest.raises(ValueError, match="holds a MMoERegressor"):
        resume_fit(MMoEClassifier(**params), path, X, LABELS)
    with pytest.warns(UserWarning, match="callbacks are not saved"):
        model.save(tmp_path / "model.skmmoe")
    with pytest.raises(ValueError, match="not a training checkpoint"):
        resume_fit(MMoERegressor(**params), tmp_path / "model.skmmoe", X, Y)
    with pytest.raises(FileNotFoundError):
        resume_fit(MMoERegressor(**params), tmp_path / "missing.ckpt", X, Y)
    with pytest.raises(ValueError, match="every must be a positive int"):
        MMoERegressor(callbacks=[TrainingCheckpoint(path, every=0)], **params).fit(X, Y)


def test_partial_fit_checkpoints_each_call(tmp_path):
    path = tmp_path / "fit.ckpt"
    model = MMoERegressor(callbacks=[TrainingCheckpoint(path)], **fast())
    for _ in range(3):
        model.partial_fit(X, Y)
        loaded = MMoERegressor.load(path)
        assert loaded.n_iter_ == model.n_iter_
        np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


KILLED_FIT = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from skorch.callbacks import Callback
    from sk_mmoe import MMoERegressor
    from sk_mmoe.callbacks import TrainingCheckpoint

    class Slow(Callback):
        def on_epoch_end(self, net, **kwargs):
            print(len(net.history), flush=True)
            time.sleep(0.2)

    rng = np.random.RandomState(0)
    X = rng.normal(size=(200, 6))
    y = np.column_stack([X[:, 0] * X[:, 1], np.sin(X[:, 2])])
    params = dict(max_epochs=12, dropout=0.1, batch_size=64, random_state=0, expert_units=(16,))
    MMoERegressor(callbacks=[Slow(), TrainingCheckpoint(sys.argv[1])], **params).fit(X, y)
    print("finished", flush=True)
    """
)


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL")
def test_a_killed_process_resumes_to_the_uninterrupted_fit(tmp_path):
    path = tmp_path / "fit.ckpt"
    process = subprocess.Popen(
        [sys.executable, "-c", KILLED_FIT, str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        for line in process.stdout:
            if line.strip() == "3":
                break  # killed around epoch 3's checkpoint
        else:
            pytest.fail(f"the fit ended early: {process.stderr.read()}")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
        process.stdout.close()
        process.stderr.close()
    assert process.returncode == -signal.SIGKILL
    rng = np.random.RandomState(0)
    X = rng.normal(size=(200, 6))
    y = np.column_stack([X[:, 0] * X[:, 1], np.sin(X[:, 2])])
    params = dict(max_epochs=12, dropout=0.1, batch_size=64, random_state=0, expert_units=(16,))
    done = MMoERegressor.load(path).n_iter_
    assert 2 <= done < 12
    resumed = resume_fit(MMoERegressor(**params), path, X, y)
    assert resumed.n_iter_ == 12
    np.testing.assert_array_equal(resumed.predict(X), MMoERegressor(**params).fit(X, y).predict(X))
