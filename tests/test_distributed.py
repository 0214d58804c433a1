"""Scaling out: a hyperparameter search on a Dask cluster, the Accelerate path.

The Dask test starts a two-process ``LocalCluster`` and checks that a
``GridSearchCV`` run through joblib's ``"dask"`` backend finds exactly what
the same search finds in this process. The Accelerate tests need no GPU:
they check that ``examples/multi_gpu_accelerate.py`` trains through skorch's
``AccelerateMixin`` with the pieces it promises (whole-batch, shardable data
loaders, the accelerator's backward pass), using a stand-in accelerator when
``accelerate`` is not installed.
"""

import importlib.util
import sys
from pathlib import Path

import joblib
import numpy as np
import pytest
import torch
from conftest import RecordingAccelerator
from sklearn.model_selection import GridSearchCV, KFold
from skorch.hf import AccelerateMixin

from sk_mmoe import MMoERegressor
from sk_mmoe.datasets import make_mmoe_tasks

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "multi_gpu_accelerate.py"

GRID = {"n_experts": [2, 4], "lr": [1e-3, 1e-2]}


@pytest.fixture(scope="module")
def data():
    X, Y = make_mmoe_tasks(200, n_features=5, correlation=0.5, random_state=0)
    return X.astype(np.float32), Y


def _search(X, Y, n_jobs):
    search = GridSearchCV(
        MMoERegressor(expert_units=(8,), tower_units=(4,), max_epochs=3, random_state=0),
        GRID,
        cv=KFold(2),
        n_jobs=n_jobs,
    )
    return search.fit(X, Y)


# ------------------------------------------------------------------- Dask
@pytest.fixture(scope="module")
def dask_client():
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
    )
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


def test_grid_search_on_dask_matches_local(data, dask_client):
    from distributed import get_task_stream

    X, Y = data
    local = _search(X, Y, n_jobs=None)
    # scatter: send X and Y to the workers once, not with every task
    with get_task_stream(dask_client) as tasks, joblib.parallel_backend("dask", scatter=[X, Y]):
        remote = _search(X, Y, n_jobs=-1)

    assert len(tasks.data) > 0, "the search did not run on the Dask workers"
    # same seeds, same arithmetic: equal, not merely close
    assert remote.best_params_ == local.best_params_
    np.testing.assert_array_equal(
        remote.cv_results_["mean_test_score"], local.cv_results_["mean_test_score"]
    )
    np.testing.assert_array_equal(remote.predict(X), local.predict(X))


def test_dask_workers_run_one_torch_thread(dask_client):
    # the nanny sets OMP_NUM_THREADS=1 before a worker starts; torch follows
    # it, and sk_mmoe never calls torch.set_num_threads itself
    threads = dask_client.run(torch.get_num_threads)
    assert sorted(threads.values()) == [1, 1]


# ------------------------------------------------------------- Accelerate
@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("multi_gpu_accelerate", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # so that pickle finds its classes
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def test_accelerator_parameter_trains_through_accelerate_mixin(data):
    X, Y = data
    accelerator = RecordingAccelerator()
    reg = MMoERegressor(accelerator=accelerator, max_epochs=2, batch_size=64, random_state=0)
    reg.fit(X, Y)
    net = reg.net_
    assert isinstance(net, AccelerateMixin)
    assert net.accelerator.accelerator is accelerator  # behind PlainModulesAccelerator
    kinds = {type(obj).__name__ for obj in accelerator.prepared}
    assert {type(reg.module_).__name__, "Adam", "BatchIterator"} <= kinds
    # every training step went through the accelerator's backward
    n_batches = -(-len(X) // 64)
    assert accelerator.n_backward == 2 * n_batches
    assert len(net.history) == 2
    assert reg.predict(X[:7]).shape == (7, 2)
    assert np.isfinite(reg.predict(X)).all()


def test_accelerator_refuses_the_per_task_gradient_methods_and_runs_dwa(data):
    X, Y = data
    for params in ({"task_weights": "pcgrad"}, {"track_task_conflict": True}):
        with pytest.raises(ValueError, match="accelerator"):
            MMoERegressor(accelerator=RecordingAccelerator(), **params).fit(X, Y)
    reg = MMoERegressor(
        accelerator=RecordingAccelerator(), task_weights="dwa", max_epochs=3, random_state=0
    ).fit(X, Y)
    assert len(reg.net_.history[:, "task_weights"]) == 3


def test_each_process_trains_on_its_share_of_the_batches(data):
    X, Y = data
    n_batches = -(-len(X) // 64)
    for rank in range(3):
        accelerator = RecordingAccelerator(num_processes=3, process_index=rank)
        MMoERegressor(accelerator=accelerator, max_epochs=1, batch_size=64, random_state=0).fit(
            X, Y
        )
        assert accelerator.n_backward == -(-n_batches // 3)


def test_accelerator_with_device_placement_is_refused(data):
    X, Y = data
    accelerator = RecordingAccelerator()
    accelerator.device_placement = True
    with pytest.raises(ValueError, match="device_placement=False"):
        MMoERegressor(accelerator=accelerator, max_epochs=1).fit(X, Y)


def test_accelerated_fit_is_quiet_when_verbose_is_0(data, capsys):
    X, Y = data
    MMoERegressor(accelerator=RecordingAccelerator(), max_epochs=1, random_state=0).fit(X, Y)
    assert capsys.readouterr().out == ""


def test_example_with_accelerate_on_cpu(example):
    pytest.importorskip("accelerate")
    reg = example.main(["--device", "cpu", "--n-samples", "600", "--max-epochs", "2"])
    assert type(reg.net_.accelerator.accelerator).__name__ == "Accelerator"
    assert np.isfinite(reg.predict(np.zeros((3, 100)))).all()
