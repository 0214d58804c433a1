"""Scaling out: a hyperparameter search on a Dask cluster, the Accelerate path.

The Dask test starts a two-process ``LocalCluster`` and checks that a
``GridSearchCV`` run through joblib's ``"dask"`` backend finds exactly what
the same search finds in this process. The Accelerate tests need no GPU:
they check that ``examples/multi_gpu_accelerate.py`` trains through skorch's
``AccelerateMixin`` with the pieces it promises (whole-batch, shardable data
loaders, the accelerator's backward pass), using a stand-in accelerator when
``accelerate`` is not installed.
"""

import contextlib
import importlib.util
import pickle
import sys
from pathlib import Path

import joblib
import numpy as np
import pytest
import torch
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


class RecordingAccelerator:
    """Stand-in for ``accelerate.Accelerator`` in one CPU process.

    Implements what ``skorch.hf.AccelerateMixin`` calls and records it.
    """

    device_placement = False
    is_main_process = True
    num_processes = 1

    def __init__(self):
        self.prepared = []
        self.n_backward = 0

    def prepare(self, obj):
        self.prepared.append(obj)
        return obj

    def accumulate(self, model):
        return contextlib.nullcontext()

    def autocast(self):
        return contextlib.nullcontext()

    def backward(self, loss):
        self.n_backward += 1
        loss.backward()

    def wait_for_everyone(self):
        pass

    def unwrap_model(self, model, keep_fp32_wrapper=True):
        return model

    def gather_for_metrics(self, output):
        return output


def test_example_trains_through_accelerate_mixin(example, data):
    X, Y = data

    class Recorded(example.AcceleratedMMoERegressor):
        def _make_accelerator(self):
            return RecordingAccelerator()

    reg = Recorded(max_epochs=2, batch_size=64, random_state=0).fit(X, Y)
    net, accelerator = reg.net_, reg.net_.accelerator

    assert isinstance(net, AccelerateMixin)
    assert isinstance(accelerator, RecordingAccelerator)
    assert net.device == "cpu"
    kinds = {type(obj).__name__ for obj in accelerator.prepared}
    assert {type(reg.module_).__name__, "Adam", "DataLoader"} <= kinds
    # every training step went through the accelerator's backward
    n_batches = -(-len(X) // 64)
    assert accelerator.n_backward == 2 * n_batches
    assert len(net.history) == 2
    # the loader that accelerate shards yields whole float32 batches
    loader = next(obj for obj in accelerator.prepared if type(obj).__name__ == "DataLoader")
    assert isinstance(loader.batch_sampler, torch.utils.data.BatchSampler)
    Xb, yb = next(iter(loader))
    assert Xb.shape == (64, X.shape[1])
    assert Xb.dtype == torch.float32
    assert yb.shape == (64, Y.shape[1] + 1)  # targets + sample weight
    # the estimator around it works as usual
    assert reg.predict(X[:7]).shape == (7, 2)
    assert np.isfinite(reg.predict(X)).all()


def test_example_is_quiet_when_verbose_is_0(example, data, capsys):
    X, Y = data

    class Recorded(example.AcceleratedMMoERegressor):
        def _make_accelerator(self):
            return RecordingAccelerator()

    Recorded(max_epochs=1, random_state=0).fit(X, Y)
    assert capsys.readouterr().out == ""


def test_example_with_accelerate_on_cpu(example, data):
    pytest.importorskip("accelerate")
    X, Y = data
    reg = example.AcceleratedMMoERegressor(max_epochs=2, batch_size=64, random_state=0)
    reg.fit(X, Y)
    assert type(reg.net_.accelerator).__name__ == "Accelerator"
    # the modules are unwrapped after training; in one CPU process the
    # estimator pickles (skorch does not promise this for accelerated nets)
    restored = pickle.loads(pickle.dumps(reg))
    np.testing.assert_array_equal(restored.predict(X), reg.predict(X))


def test_example_loader_shards_across_processes(example, data):
    accelerate_data_loader = pytest.importorskip("accelerate.data_loader")
    X, _ = data
    # indexable by a tensor of row indices, like the dataset sk_mmoe trains on
    dataset = torch.utils.data.TensorDataset(torch.from_numpy(X), torch.zeros(len(X), 3))
    rows = []
    for rank in range(2):
        loader = accelerate_data_loader.prepare_data_loader(
            example.batch_loader(dataset, batch_size=32),
            num_processes=2,
            process_index=rank,
        )
        batches = [Xb for Xb, _ in loader]
        assert all(len(Xb) == 32 for Xb in batches)
        rows.append(torch.cat(batches))
    # each process gets half of the 7 batches (the last one padded from the
    # start); together they cover every row
    assert len(rows[0]) == len(rows[1]) == 4 * 32
    assert not torch.equal(rows[0][:32], rows[1][:32])
    together = torch.cat(rows).numpy()
    np.testing.assert_array_equal(np.unique(together, axis=0), np.unique(X, axis=0))
