"""
============================================================================
Train one sk_mmoe model on several GPUs with skorch's Accelerate integration
============================================================================

skorch's :class:`skorch.hf.AccelerateMixin` hands the module, criterion,
optimizer and data loader to Hugging Face ``accelerate``, which wraps the
module in ``DistributedDataParallel`` and gives each process its share of
every epoch's batches. One process runs per GPU; each holds the whole data
set in memory (this is data parallelism, not model sharding).

Commands (``accelerate`` is not a dependency of sk_mmoe)::

    python -m pip install accelerate
    # one machine, 2 GPUs
    accelerate launch --multi_gpu --num_processes 2 examples/multi_gpu_accelerate.py
    # one process on the CPU: a quick check that the path works
    python examples/multi_gpu_accelerate.py --device cpu --n-samples 2000 --max-epochs 2

How: pass an ``accelerate.Accelerator`` as the estimator's ``accelerator``
parameter. The estimator then trains a skorch net with
:class:`skorch.hf.AccelerateMixin` (backward, mixed precision and gradient
synchronisation through the accelerator) and gives each process its share of
every epoch's batches.

What does not carry over from the plain estimator:

* Pickling. skorch does not support pickling accelerated nets, and ``net_``
  holds the ``Accelerator``. The modules are unwrapped after training
  (skorch's ``unwrap_after_train=True``), and in one CPU process the fitted
  estimator did pickle, but don't rely on it in a multi-process run: use
  ``reg.save(path)`` on the main process (it stores no accelerator).
* ``fit`` must run in every process with the same data and ``random_state``;
  only the main process should print or write files.
* ``device`` is each process's own GPU (``cuda:<local rank>``), and the
  ``Accelerator`` is built with ``device_placement=False``: skorch moves the
  batches, so the estimator's ``predict`` keeps working after ``fit``.
* Each process predicts all the rows it is given (``predict`` is not sharded).
* Optimizers that need a closure (LBFGS) cannot be used (see skorch's docs).
"""

from __future__ import annotations

import argparse
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
        device=str(accelerator.device),  # this process's GPU: cuda:<local rank>
        max_epochs=args.max_epochs,
        batch_size=args.batch_size,
        random_state=0,  # the same on every process
    )
    start = time.perf_counter()
    reg.fit(X[:n_train], Y[:n_train])
    seconds = time.perf_counter() - start
    r2 = reg.score(X[n_train:], Y[n_train:])
    if accelerator.is_main_process:
        print(
            f"{accelerator.num_processes} process(es) on {accelerator.device.type}: "
            f"{args.max_epochs} epochs in {seconds:.1f} s, "
            f"train loss {reg.net_.history[-1, 'train_loss']:.4f}, held-out R2 {r2:.3f}"
        )
    return reg


if __name__ == "__main__":
    main()
