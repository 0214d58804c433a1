"""One model trained by two processes: ``accelerator=`` under ``torchrun``, on the CPU (gloo).

``python -m torch.distributed.run --standalone --nproc_per_node 2`` runs a
small script (``SCRIPT``) in a subprocess, with a timeout, once for all its
cases. Every process fits the same rows with an
``accelerate.Accelerator(cpu=True, device_placement=False)``; the estimator
gives each its half of every epoch's batches and DDP averages the
gradients. Each process writes what it ended with to a JSON file, which the
tests compare: the same predictions on a common test set (to 1e-6), weights
that moved from their initial values, files written by process 0 only, and
the same epoch losses (so early stopping stops both at the same epoch). A
second launch runs ``examples/multi_gpu_accelerate.py`` on the CPU.

About 25 s for the two launches on a shared 2-core machine (most of it
starting Python, torch and the process group).
"""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import sk_mmoe

pytest.importorskip("accelerate")

TIMEOUT = 120  # seconds per launch
ROOT = Path(sk_mmoe.__file__).resolve().parents[1]

SCRIPT = """
import json, sys
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from skorch.callbacks import Callback

from sk_mmoe import MMoERegressor
from sk_mmoe.callbacks import TrainingCheckpoint
from sk_mmoe.datasets import make_mmoe_tasks


INITIAL = {}  # the estimator copies its callbacks: they report here


class InitialOutputs(Callback):
    # the network's raw outputs on the test rows before the first step
    def __init__(self, X):
        self.X = X

    def on_train_begin(self, net, **kwargs):
        with torch.no_grad():
            INITIAL["outputs"] = net.module_(torch.as_tensor(self.X)).tolist()


def fit(out, case):
    out.mkdir(exist_ok=True)
    X, Y = make_mmoe_tasks(460, n_features=6, correlation=0.7, random_state=0)
    X = X.astype(np.float32)
    X_train, Y_train, X_test = X[:400], Y[:400], X[400:]
    if case == "different_rows":  # each process passes its own half: refused
        X_train, Y_train = X_train[rank::2], Y_train[rank::2]
    params = dict(expert_units=(8,), tower_units=(4,), n_experts=3, batch_size=40, lr=0.01)
    if case == "early_stopping":
        params.update(early_stopping=True, n_iter_no_change=2, tol=1e-2, max_epochs=60)
    else:
        params.update(early_stopping=False, max_epochs=4)
    if case == "uncertainty":
        params.update(task_weights="uncertainty")
    callbacks = [("initial", InitialOutputs(X_test))]
    if case != "different_rows":
        callbacks.append(TrainingCheckpoint(out / f"fit_rank{rank}.ckpt"))
    reg = MMoERegressor(
        accelerator=accelerator, device="cpu", callbacks=callbacks, random_state=0, **params
    )
    try:
        reg.fit(X_train, Y_train)
    except ValueError as exc:
        return {"error": str(exc)}
    reg.save(out / f"model_rank{rank}.skmmoe")
    history = reg.net_.history
    with torch.no_grad():
        final = reg.module_(torch.as_tensor(X_test)).tolist()
    return {
        "predictions": reg.predict(X_test).tolist(),
        "initial_outputs": INITIAL["outputs"],
        "final_outputs": final,
        "train_loss": history[:, "train_loss"],
        "valid_loss": history[:, "valid_loss"] if "valid_loss" in history[-1] else None,
        "train_batch_count": history[-1, "train_batch_count"],
        "first_batch_losses": history[0, "batches", :, "train_loss"],
        "task_weights": history[:, "task_weights"] if "task_weights" in history[-1] else None,
    }


out = Path(sys.argv[1])
accelerator = Accelerator(cpu=True, device_placement=False)
rank = accelerator.process_index
for case in sys.argv[2:]:
    record = fit(out / case, case)
    (out / case / f"rank{rank}.json").write_text(json.dumps(record))
# drop the accelerator's references to the DDP wrappers, then leave the process group,
# before the interpreter exits (gloo aborts if a wrapper outlives its group)
accelerator.free_memory()
accelerator.end_training()
"""


def _torchrun(args, cwd):
    """Run ``python -m torch.distributed.run`` with 2 processes on ``args``; its output."""
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = "1"  # two processes on two cores
    # the sk_mmoe under test, whether installed or not
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        *map(str, args),
    ]
    # a session of its own: on timeout the launcher and both workers are killed
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"torchrun did not finish in {TIMEOUT} s:\n{output[-4000:]}")
    assert process.returncode == 0, f"torchrun failed:\n{output[-4000:]}"
    return output


def _launch(tmp_path, cases):
    """Run ``SCRIPT`` on ``cases`` in two processes, one launch for all."""
    script = tmp_path / "fit_two_processes.py"
    script.write_text(SCRIPT)
    _torchrun([script, tmp_path, *cases], cwd=tmp_path)


CASES = ("early_stopping", "uncertainty", "plain", "different_rows")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The folder of each case, holding what process 0 and process 1 wrote."""
    out = tmp_path_factory.mktemp("two_processes")
    _launch(out, CASES)
    return {case: out / case for case in CASES}


def _records(folder):
    return [json.loads((folder / f"rank{rank}.json").read_text()) for rank in (0, 1)]


def _check_trained_alike(folder):
    rank0, rank1 = _records(folder)
    # every process ends with the same model ...
    np.testing.assert_allclose(rank0["predictions"], rank1["predictions"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(rank0["final_outputs"], rank1["final_outputs"], rtol=0, atol=1e-6)
    # ... starting from the same one, which training changed
    np.testing.assert_array_equal(rank0["initial_outputs"], rank1["initial_outputs"])
    change = np.abs(np.subtract(rank0["final_outputs"], rank0["initial_outputs"])).max()
    assert change > 1e-2
    # each process trained on its own half of the batches: 400 rows (or the
    # 320 left by early stopping's split) in batches of 40, 10 (8) batches
    n_batches = len(rank0["first_batch_losses"])
    assert rank0["train_batch_count"] == rank1["train_batch_count"] == n_batches
    assert n_batches in (4, 5)
    assert rank0["first_batch_losses"] != rank1["first_batch_losses"]
    # the epoch's training loss is averaged over the processes: the same on both
    assert rank0["train_loss"] == rank1["train_loss"]
    # files: process 0 writes, process 1 does not
    assert (folder / "model_rank0.skmmoe").is_file()
    assert (folder / "fit_rank0.ckpt").is_file()
    assert not (folder / "model_rank1.skmmoe").exists()
    assert not (folder / "fit_rank1.ckpt").exists()
    # what process 0 saved is the model both processes hold
    loaded = sk_mmoe.MMoERegressor.load(folder / "model_rank0.skmmoe")
    X_test = _test_rows()
    np.testing.assert_allclose(loaded.predict(X_test), rank1["predictions"], rtol=0, atol=1e-6)
    return rank0, rank1


def _test_rows():
    from sk_mmoe.datasets import make_mmoe_tasks

    X, _ = make_mmoe_tasks(460, n_features=6, correlation=0.7, random_state=0)
    return X.astype(np.float32)[400:]


def test_two_processes_with_early_stopping(runs):
    rank0, rank1 = _check_trained_alike(runs["early_stopping"])
    # the same validation losses, so both stopped at the same epoch, early
    assert rank0["valid_loss"] == rank1["valid_loss"]
    assert 2 < len(rank0["valid_loss"]) < 60


def test_two_processes_with_uncertainty_weighting(runs):
    rank0, rank1 = _check_trained_alike(runs["uncertainty"])
    # the loss's learned weights are synchronised too, and they were learned
    weights0, weights1 = np.asarray(rank0["task_weights"]), np.asarray(rank1["task_weights"])
    np.testing.assert_allclose(weights0, weights1, rtol=0, atol=1e-6)
    assert np.abs(weights0[-1] - 1.0).max() > 1e-3


def test_two_processes_with_fixed_task_weights(runs):
    # the loss module has no trainable parameter: DDP must not wrap it
    _check_trained_alike(runs["plain"])


def test_processes_with_different_rows_are_refused_on_every_process(runs):
    for record in _records(runs["different_rows"]):
        assert "different training rows" in record["error"]


def test_example_runs_in_two_processes_on_the_cpu(tmp_path):
    path = tmp_path / "model.skmmoe"
    output = _torchrun(
        [
            ROOT / "examples" / "multi_gpu_accelerate.py",
            "--device=cpu",
            "--n-samples=600",
            "--n-features=10",
            "--max-epochs=2",
            f"--save={path}",
        ],
        cwd=tmp_path,
    )
    assert output.count("2 process(es) on cpu: 2 epochs") == 1  # the main process prints
    assert path.is_file()


STREAM_SCRIPT = """
import json, sys
import numpy as np
from accelerate import Accelerator
from sk_mmoe import MMoERegressor

folder, out = sys.argv[1], sys.argv[2]
accelerator = Accelerator(cpu=True, device_placement=False)
rank = accelerator.process_index
model = MMoERegressor(
    accelerator=accelerator, device="cpu", random_state=0, max_epochs=3,
    early_stopping=True, batch_size=50, expert_units=(8,), tower_units=(4,), n_experts=2,
)
model.fit(folder, y=["y0", "y1"])
record = {
    "predictions": model.predict(folder).tolist(),
    "batches": [int(b) for b in model.net_.history[:, "train_batch_count"]],
}
with open(f"{out}/stream_rank{rank}.json", "w") as f:
    json.dump(record, f)
accelerator.free_memory()  # the DDP wrappers must not outlive the process group
accelerator.end_training()
"""


def test_a_streamed_source_is_shared_out_between_two_processes(tmp_path):
    """Each process reads its own row groups of a Parquet source; both end with one model."""
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    rng = np.random.RandomState(0)
    folder = tmp_path / "source"
    folder.mkdir()
    for part in range(2):
        X = rng.normal(size=(800, 4))
        table = pa.table(
            {
                **{f"x{j}": X[:, j] for j in range(4)},
                "y0": X[:, 0] + X[:, 1],
                "y1": X[:, 2] - X[:, 3],
            }
        )
        pq.write_table(table, folder / f"part-{part}.parquet", row_group_size=100)
    script = tmp_path / "stream_two_processes.py"
    script.write_text(STREAM_SCRIPT)
    _torchrun([script, folder, tmp_path], cwd=tmp_path)
    first, second = (json.loads((tmp_path / f"stream_rank{r}.json").read_text()) for r in (0, 1))
    np.testing.assert_allclose(first["predictions"], second["predictions"], atol=1e-6)
    # 16 row groups, 2 held out: each process reads 7 of the 14 others (700 rows, 14
    # batches of 50), not all 1,400 rows (28 batches)
    assert first["batches"] == second["batches"] == [14, 14, 14]
