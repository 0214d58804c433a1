"""Train one sk_mmoe model on several GPUs with skorch's Accelerate integration.

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

What does not carry over from the plain estimator:

* Pickling. skorch does not support pickling accelerated nets, and ``net_``
  holds the ``Accelerator``. The modules are unwrapped after training
  (skorch's ``unwrap_after_train=True``), and in one CPU process the fitted
  estimator did pickle, but don't rely on it in a multi-process run: save
  the weights with ``reg.net_.save_params(f_params=...)`` (call it on every
  process; only the main one writes) or ``reg.module_.state_dict()``.
* ``fit`` must run in every process with the same data and ``random_state``;
  only the main process should print or write files.
* ``device`` is each process's own GPU (``cuda:<local rank>``), and the
  ``Accelerator`` is built with ``device_placement=False``: skorch moves the
  batches, so the estimator's ``predict`` keeps working after ``fit``.
* Each process predicts all the rows it is given (``predict`` is not sharded).
* Optimizers that need a closure (LBFGS) cannot be used (see skorch's docs).

sk_mmoe has no public hook to choose the skorch net class yet, so
:class:`AcceleratedMMoERegressor` overrides the private ``_build_net``;
see docs/scaling.md.
"""

from __future__ import annotations

import argparse
import time

import torch
from skorch import NeuralNet
from skorch.hf import AccelerateMixin
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    RandomSampler,
    SequentialSampler,
)

from sk_mmoe import MMoERegressor
from sk_mmoe.datasets import make_mmoe_tasks


class AcceleratedNet(AccelerateMixin, NeuralNet):
    """skorch ``NeuralNet`` trained through ``accelerate``."""


class WholeBatches(Dataset):
    """View of a dataset that a ``DataLoader`` reads one batch at a time.

    ``__getitems__`` receives a batch's indices and indexes the dataset once
    with all of them, instead of collating the batch row by row (sk_mmoe's
    training dataset accepts a tensor of indices).
    """

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, i):
        return self.dataset[i]

    def __getitems__(self, indices):
        return self.dataset[torch.as_tensor(indices)]


def _batch_as_is(batch):
    return batch


def _quiet(*args, **kwargs):
    """Sink for skorch's epoch log when ``verbose=0``."""


def batch_loader(dataset, batch_size, shuffle=False):
    """A ``DataLoader`` over whole batches, which ``accelerate`` shards.

    ``accelerate`` gives each process its share of a ``DataLoader``'s batches;
    sk_mmoe's own batch iterator is not a ``DataLoader``, so every process
    would train on all of them.
    """
    order = RandomSampler(dataset) if shuffle else SequentialSampler(dataset)
    return DataLoader(
        WholeBatches(dataset),
        batch_sampler=BatchSampler(order, batch_size, drop_last=False),
        collate_fn=_batch_as_is,
    )


class AcceleratedMMoERegressor(MMoERegressor):
    """:class:`~sk_mmoe.MMoERegressor` whose net trains through ``accelerate``."""

    def _make_accelerator(self):
        from accelerate import Accelerator

        return Accelerator(device_placement=False, cpu=torch.device(self.device).type == "cpu")

    def _build_net(self, *args, **kwargs):
        # stop-gap: rebuild the net sk_mmoe configured as an AcceleratedNet
        params = super()._build_net(*args, **kwargs).get_params(deep=False)
        params = {k: v for k, v in params.items() if not k.startswith("_")}
        params.update(iterator_train=batch_loader, iterator_valid=batch_loader)
        if not self.verbose:
            params["callbacks__print_log__sink"] = _quiet
        return AcceleratedNet(**params, accelerator=self._make_accelerator())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--n-samples", type=int, default=200_000)
    parser.add_argument("--n-features", type=int, default=100)
    parser.add_argument("--max-epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=1024)
    args = parser.parse_args(argv)

    from accelerate import PartialState

    state = PartialState(cpu=args.device == "cpu")
    X, Y = make_mmoe_tasks(
        args.n_samples, n_features=args.n_features, correlation=0.5, random_state=0
    )
    X = X.astype("float32")
    n_train = int(0.8 * len(X))
    reg = AcceleratedMMoERegressor(
        device=str(state.device),  # this process's GPU: cuda:<local rank>
        max_epochs=args.max_epochs,
        batch_size=args.batch_size,
        random_state=0,  # the same on every process
    )
    start = time.perf_counter()
    reg.fit(X[:n_train], Y[:n_train])
    seconds = time.perf_counter() - start
    r2 = reg.score(X[n_train:], Y[n_train:])
    if state.is_main_process:
        print(
            f"{state.num_processes} process(es) on {state.device.type}: "
            f"{args.max_epochs} epochs in {seconds:.1f} s, "
            f"train loss {reg.net_.history[-1, 'train_loss']:.4f}, held-out R2 {r2:.3f}"
        )
    return reg


if __name__ == "__main__":
    main()
