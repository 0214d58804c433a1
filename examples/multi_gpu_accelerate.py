"""
=================================================================================
Train one sk_mmoe model in several processes with skorch's Accelerate integration
=================================================================================

Data parallelism: one process per GPU (or per CPU worker), each holding the
whole data set and a copy of the model. Every process runs ``fit`` on the
same rows with the same ``random_state``; the estimator gives each process
its half (third, ...) of every epoch's batches, ``DistributedDataParallel``
averages the gradients after each step, and every process ends with the
same weights. Only the main process writes files.

Commands (``accelerate`` comes with the ``multiprocess`` extra)::

    python -m pip install "sk-mmoe[multiprocess]"
    # 2 processes on the CPU (gloo)
    torchrun --standalone --nproc_per_node 2 examples/multi_gpu_accelerate.py \\
        --device cpu --n-samples 2000 --max-epochs 2
    # one machine, 2 GPUs (NCCL)
    torchrun --standalone --nproc_per_node 2 examples/multi_gpu_accelerate.py
    # or: accelerate launch --multi_gpu --num_processes 2 examples/multi_gpu_accelerate.py

What has been run: the CPU command above, 2 processes with gloo (and
``tests/test_distributed_training.py`` runs it in CI). The GPU command has
not been run yet; ``device="cuda"`` (this script's default) is the same code
path with NCCL instead of gloo.

How: pass an ``accelerate.Accelerator(device_placement=False)`` as the
estimator's ``accelerator`` parameter and this process's device as
``device``. The estimator trains a skorch net with
:class:`skorch.hf.AccelerateMixin` (backward, mixed precision and gradient
synchronisation through the accelerator). In each fit, with several
processes:

* the processes must hold the same training rows (same ``X``, ``y``,
  ``sample_weight`` and int ``random_state``): a fit where they differ
  stops with a ``ValueError`` on every process;
* ``train_loss`` and ``valid_loss`` are averaged over the processes, so
  early stopping stops every process at the same epoch;
* a loss with learned weights (``task_weights="uncertainty"``) is
  synchronised like the network;
* ``save`` and :class:`~sk_mmoe.callbacks.TrainingCheckpoint` write on the
  main process only (``save`` does nothing on the others).

What does not carry over from the plain estimator:

* Pickling: skorch does not support pickling accelerated nets, and ``net_``
  holds the ``Accelerator``. Use ``reg.save(path)`` (it stores no
  accelerator).
* ``predict`` is not sharded: each process predicts all the rows it is given.
* ``task_weights="gradnorm"`` / ``"pcgrad"`` and ``track_task_conflict``
  need sk_mmoe's own training step and are refused; optimizers that need a
  closure (LBFGS) cannot be used (see skorch's docs).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from sk_mmoe import MMoERegressor
from sk_mmoe.datasets import make_mmoe_tasks


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[1])
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--n-samples", type=int, default=200_000)
    parser.add_argument("--n-features", type=int, default=100)
    parser.add_argument("--max-epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--save", default=None, help="where the main process saves the model")
    args = parser.parse_args(argv)

    from accelerate import Accelerator

    accelerator = Accelerator(device_placement=False, cpu=args.device == "cpu")
    X, Y = make_mmoe_tasks(
        args.n_samples, n_features=args.n_features, correlation=0.5, random_state=0
    )
    X = X.astype("float32")
    n_train = int(0.8 * len(X))
    reg = MMoERegressor(
        accelerator=accelerator,
        device=str(accelerator.device),  # this process's device: cuda:<local rank> or cpu
        max_epochs=args.max_epochs,
        batch_size=args.batch_size,
        random_state=0,  # the same in every process
    )
    start = time.perf_counter()
    reg.fit(X[:n_train], Y[:n_train])  # in every process, the same rows
    seconds = time.perf_counter() - start
    r2 = reg.score(X[n_train:], Y[n_train:])
    path = args.save or os.path.join(tempfile.gettempdir(), "multi_gpu_accelerate.skmmoe")
    reg.save(path)  # written by the main process only
    if accelerator.is_main_process:
        print(
            f"{accelerator.num_processes} process(es) on {accelerator.device.type}: "
            f"{args.max_epochs} epochs in {seconds:.1f} s, "
            f"train loss {reg.net_.history[-1, 'train_loss']:.4f}, held-out R2 {r2:.3f}; "
            f"saved to {path}"
        )
    return reg


if __name__ == "__main__":
    reg = main()
    # drop the accelerator's references to its DDP wrappers, then leave the
    # process group, before exiting: gloo may abort the exit of a process whose
    # wrappers outlive their group
    reg.accelerator.free_memory()
    reg.accelerator.end_training()
