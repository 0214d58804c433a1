"""Threads: ``n_jobs`` inside a fit, the caller's count given back, the workers' share.

A skorch callback records, at the start of every epoch, the thread count
torch computes with and the count of torch's OpenMP runtime as threadpoolctl
reads it, on the thread that trains. In a search run by joblib (loky
processes, or a Dask cluster of two processes) it appends them to a file per
process, so that the test reads what the workers' fits really used.
"""

import os

import joblib
import numpy as np
import pytest
import torch
from sklearn.model_selection import GridSearchCV, KFold, cross_validate
from sklearn.utils._openmp_helpers import _openmp_effective_n_threads
from skorch.callbacks import Callback
from threadpoolctl import ThreadpoolController

from sk_mmoe import MMoEClassifier, MMoERegressor
from sk_mmoe.datasets import make_mmoe_tasks

SMALL = dict(expert_units=(8,), tower_units=(4,), n_experts=2, max_epochs=2, random_state=0)
CORES = _openmp_effective_n_threads()


def torch_openmp_threads():
    """The calling thread's count of torch's OpenMP runtime(s), as threadpoolctl reads it."""
    torch_dir = os.path.dirname(os.path.realpath(torch.__file__))
    libs = ThreadpoolController().select(user_api="openmp").lib_controllers
    own = [lib for lib in libs if os.path.realpath(lib.filepath).startswith(torch_dir + os.sep)]
    return [lib.get_num_threads() for lib in own or libs]


class RecordThreads(Callback):
    """At each epoch's start, record ``(torch threads, [OpenMP runtime threads])``.

    With ``directory``, append ``pid torch_threads openmp_threads...`` to a
    file of this process in it (the callback is copied into each fit, and
    into other processes); otherwise keep them in ``seen``, shared by copies.
    """

    def __init__(self, directory=None, seen=None, fail=False):
        self.directory = directory
        self.seen = seen
        self.fail = fail

    def on_epoch_begin(self, net, **kwargs):
        record = (torch.get_num_threads(), torch_openmp_threads())
        if self.directory is not None:
            path = os.path.join(self.directory, f"{os.getpid()}.txt")
            with open(path, "a") as f:
                f.write(" ".join(map(str, [os.getpid(), record[0], *record[1]])) + "\n")
        if self.seen is not None:
            self.seen.append(record)
        if self.fail:
            raise RuntimeError("callback failed")

    # a list shared by every copy: sk_mmoe copies callbacks before use
    def __deepcopy__(self, memo):
        return RecordThreads(self.directory, self.seen, self.fail)


def read_records(directory):
    """``{pid: [(torch threads, openmp threads...), ...]}`` from the files in ``directory``."""
    records = {}
    for name in os.listdir(directory):
        with open(os.path.join(directory, name)) as f:
            for line in f:
                pid, *counts = map(int, line.split())
                records.setdefault(pid, []).append(tuple(counts))
    return records


@pytest.fixture(scope="module")
def data():
    X, Y = make_mmoe_tasks(120, n_features=5, correlation=0.5, random_state=0)
    return X.astype(np.float32), Y


@pytest.fixture
def caller_threads():
    """A caller thread count other than 1 and other than the cores, restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(CORES + 1)
    yield CORES + 1
    torch.set_num_threads(before)


# ----------------------------------------------------------- in this process
@pytest.mark.parametrize("n_jobs", [1, 2, -1, None])
def test_fit_trains_with_n_jobs_threads_and_restores(data, caller_threads, n_jobs):
    X, Y = data
    seen = []
    est = MMoERegressor(**SMALL, n_jobs=n_jobs, callbacks=[RecordThreads(seen=seen)])
    est.fit(X, Y)
    est.partial_fit(X, Y)
    # -1: the cores this process may use; None: one thread for a network this small
    expected = {1: 1, 2: 2, -1: CORES, None: 1}[n_jobs]
    assert len(seen) == 3
    for torch_count, openmp_counts in seen:
        assert torch_count == expected
        assert openmp_counts and set(openmp_counts) == {expected}
    assert torch.get_num_threads() == caller_threads
    assert set(torch_openmp_threads()) == {caller_threads}


def test_n_jobs_none_keeps_threads_for_large_training_steps(data, caller_threads):
    X, Y = data
    seen = []
    # a step of 1e6 rows x ~5,000 parameters: above the one-thread work
    record = [RecordThreads(seen=seen)]
    MMoERegressor(max_epochs=1, batch_size=1_000_000, callbacks=record).fit(X, Y)
    assert [count for count, _ in seen] == [min(caller_threads, CORES)]
    assert torch.get_num_threads() == caller_threads


def test_threads_given_back_when_fit_raises(data, caller_threads):
    X, Y = data
    est = MMoERegressor(**SMALL, n_jobs=1, callbacks=[RecordThreads(seen=[], fail=True)])
    with pytest.raises(RuntimeError, match="callback failed"):
        est.fit(X, Y)
    assert torch.get_num_threads() == caller_threads
    assert set(torch_openmp_threads()) == {caller_threads}


def test_predict_methods_restore_threads(data, caller_threads):
    X, Y = data
    labels = (Y > 0).astype(int)
    clf = MMoEClassifier(**SMALL, n_jobs=1).fit(X, labels)
    for call in (
        lambda: clf.predict(X),
        lambda: clf.predict_proba(X),
        lambda: clf.score(X, labels),
        lambda: clf.gate_weights(X),
    ):
        call()
        assert torch.get_num_threads() == caller_threads


def test_bad_n_jobs_is_refused(data):
    X, Y = data
    with pytest.raises(ValueError, match="n_jobs"):
        MMoERegressor(n_jobs=0).fit(X, Y)


# ------------------------------------------------------------ in the workers
def _assert_worker_share(directory, n_workers):
    records = read_records(directory)
    assert records, "no fit recorded its threads"
    assert os.getpid() not in records, "the fits ran in this process, not in workers"
    share = max(1, CORES // n_workers)
    for pid, counts in records.items():
        for torch_count, *openmp_counts in counts:
            assert 1 <= torch_count <= share, (pid, counts)
            assert openmp_counts and all(1 <= c <= share for c in openmp_counts), (pid, counts)


def _estimator(directory):
    # n_jobs=-1: "all the cores this process may use", which in a worker is its share;
    # the searches run with refit=False, so that every fit runs in a worker
    return MMoERegressor(**SMALL, n_jobs=-1, callbacks=[RecordThreads(directory)])


def test_grid_search_loky_workers_use_their_share(data, tmp_path):
    X, Y = data
    grid = {"lr": [1e-3, 1e-2]}
    search = GridSearchCV(_estimator(str(tmp_path)), grid, cv=KFold(2), n_jobs=2, refit=False)
    with joblib.parallel_backend("loky"):
        search.fit(X, Y)
    _assert_worker_share(tmp_path, 2)


def test_cross_validate_loky_workers_use_their_share(data, tmp_path):
    X, Y = data
    cross_validate(_estimator(str(tmp_path)), X, Y, cv=KFold(3), n_jobs=2)
    _assert_worker_share(tmp_path, 2)


def test_grid_search_dask_workers_use_their_share(data, tmp_path):
    distributed = pytest.importorskip("distributed")
    X, Y = data
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster),
        joblib.parallel_backend("dask"),
    ):
        search = GridSearchCV(
            _estimator(str(tmp_path)), {"lr": [1e-3, 1e-2]}, cv=KFold(2), n_jobs=-1, refit=False
        )
        search.fit(X, Y)
    _assert_worker_share(tmp_path, 2)


def test_main_job_records_do_not_depend_on_its_processes():
    from sk_mmoe.__main__ import Setup, run_experiment

    setup = Setup.quick(n_seeds=2, correlations=(0.5, 1.0))
    one = run_experiment(setup, progress=False, n_jobs=1)
    two = run_experiment(setup, progress=False, n_jobs=2)
    assert [(r["model"], r["correlation"], r["seed"]) for r in two] == [
        (r["model"], r["correlation"], r["seed"]) for r in one
    ]
    for a, b in zip(one, two):
        assert a["test_mse"] == b["test_mse"]
        np.testing.assert_array_equal(a["train_loss"], b["train_loss"])
