"""One model trained in several processes: which process writes, and cross-process sums.

With ``accelerator=`` (an ``accelerate.Accelerator``) and several processes
(``accelerate launch``, ``torchrun``), every process runs ``fit`` on the same
data and ends with the same weights. Files are written by the main process
only: :func:`writes_files` is the rule that ``save`` and
:class:`~sk_mmoe.callbacks.TrainingCheckpoint` follow, as skorch's
``AccelerateMixin.save_params`` does.

The collectives below run only when a torch process group with more than one
process is up (one process, or a stand-in accelerator, runs none of them).
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def writes_files(accelerator) -> bool:
    """Whether this process writes the model files of a fit with ``accelerator``.

    Parameters
    ----------
    accelerator : accelerate.Accelerator or None
        The estimator's ``accelerator`` (or the net's).

    Returns
    -------
    bool
        True without an accelerator and on the main process
        (``accelerator.is_main_process``); False on the other processes,
        whose weights are the main process's.
    """
    return accelerator is None or bool(getattr(accelerator, "is_main_process", True))


def n_processes(accelerator) -> int:
    """Processes that train together: the process group's size (1 without one).

    ``accelerator.num_processes`` alone is not enough: a stand-in accelerator
    may report several processes without a process group to talk to.
    """
    if int(getattr(accelerator, "num_processes", 1)) < 2:
        return 1
    if not (dist.is_available() and dist.is_initialized()):
        return 1
    return dist.get_world_size()


def all_reduce_sum(values, device) -> torch.Tensor:
    """Sum of the float64 tensor ``values`` over all processes (a new CPU tensor).

    ``device`` is where the collective runs: the CPU for gloo, this process's
    GPU for NCCL (the net's device).
    """
    total = values.to(device=device, dtype=torch.float64, copy=True)
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total.cpu()


def broadcast_rng_state(device) -> None:
    """Give every process the CPU random state of process 0.

    Shuffling (one permutation per epoch, sharded between the processes) and
    dropout draw from it; with it, the processes agree on each epoch's
    permutation even when they were seeded differently (``random_state=None``).
    """
    state = torch.get_rng_state().to(device)
    dist.broadcast(state, src=0)
    torch.set_rng_state(state.cpu())


def check_same_rows(dataset, device) -> None:
    """Raise ``ValueError`` on every process unless all hold the same training rows.

    Each process trains on its share of the batches of one data set: the
    processes must agree on its rows, their order (the validation split) and
    their targets. A fingerprint (row count, sums of ``X`` and ``y``, a
    position-weighted sum of the row index) is compared across processes in
    one collective, so every process raises or none does.
    """
    fingerprint = _fingerprint(dataset)
    both = torch.cat([fingerprint, -fingerprint])
    total = both.to(device=device, copy=True)
    dist.all_reduce(total, op=dist.ReduceOp.MAX)
    total = total.cpu()
    n = len(fingerprint)
    highest, lowest = total[:n], -total[n:]
    if not torch.equal(highest, lowest):
        raise ValueError(
            "accelerator=: the processes were given different training rows. Every "
            "process must call fit with the same X, y and sample_weight and the same int "
            "random_state; the estimator gives each process its share of the batches."
        )


def _fingerprint(dataset) -> torch.Tensor:
    """``(4,)`` float64: rows, sum of ``X``, NaN-ignoring sum of ``y``, index checksum."""
    if hasattr(dataset, "fingerprint_values"):  # a streamed source
        return dataset.fingerprint_values()
    X, y, index = dataset.X, dataset.y, dataset.index
    x_sum = float(X.sum(dtype=torch.float64)) if isinstance(X, torch.Tensor) else float(X.sum())
    y_sum = 0.0 if y is None else float(y.double().nansum())
    if index is None:
        index_sum = 0.0
    else:
        positions = torch.arange(1, len(index) + 1, dtype=torch.float64)
        index_sum = float((index.double() * positions).sum())
    return torch.tensor([len(dataset), x_sum, y_sum, index_sum], dtype=torch.float64)
