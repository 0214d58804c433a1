"""One benchmark measurement in its own process (the worker behind ``run.py``).

    python benchmarks/_systems.py '{"system": "sk_mmoe", "rows": 100000, ...}'

prints one JSON line: per-epoch fit times, prediction times, or peak memory.
Every system trains the same model size (d inputs, E experts of one hidden
layer, towers of one hidden layer, T regression tasks) with Adam, learning
rate 1e-3, the same batch size and shuffling every epoch, on the same data
(``sk_mmoe.datasets.make_mmoe_tasks``). Times are taken with both a wall clock
and the process CPU clock; ``run.py`` chooses which one to report.

``SYSTEMS`` is the one table of trained systems: the worker runs them by
name, ``run.py`` shows their labels, checks their optional modules and picks
the architecture table's rows from it. ``JOBS`` are the other measurements
(serving latency, predict memory, scaling, a default fit).
"""

from __future__ import annotations

import functools
import json
import sys
from typing import NamedTuple

import _serving
import _trainers
from _measure import make_data


class System(NamedTuple):
    """One trained system of the speed table.

    ``run(spec, X, Y)`` trains it (a function of ``_trainers``); ``label`` is
    its row; ``requires`` a module that must be importable (a peer library,
    shown as "not installed" otherwise); ``architecture`` its row in the
    architecture table; ``row`` False for a yardstick that only other tables
    time.
    """

    label: str
    run: object
    requires: str | None = None
    architecture: str | None = None
    row: bool = True


#: CGC and PLE next to the MMoE (8 experts of 16 units): the same experts of
#: 16 units and towers, numbers of experts chosen for about the same parameter
#: count on the paper-sized model (MMoE 14,834; CGC 14,430; PLE 15,393)
CGC = {"architecture": "cgc", "n_experts": 4, "n_task_experts": 2}
PLE = {"architecture": "ple", "n_experts": 3, "n_task_experts": 2, "n_levels": 2}

#: worker name -> system, in the order of the speed table's rows
SYSTEMS = {
    "plain": System("plain PyTorch loop (same module, randperm slicing)", _trainers.plain),
    "plain_tuned": System(
        "same loop, index_select + fused Adam (tighter floor)",
        functools.partial(_trainers.plain, tuned=True),
    ),
    "plain_loader": System(
        "same loop with torch DataLoader", functools.partial(_trainers.plain, loader=True)
    ),
    "skorch": System("skorch NeuralNetRegressor, same module, defaults", _trainers.skorch_net),
    "sk_mmoe": System("sk_mmoe MMoERegressor", _trainers.sk_mmoe, architecture="MMoE"),
    "sk_mmoe_cgc": System(
        "sk_mmoe CGC (4 shared + 2 per task experts)",
        functools.partial(_trainers.sk_mmoe, **CGC),
        architecture="CGC",
    ),
    "sk_mmoe_ple": System(
        "sk_mmoe PLE (2 levels of 3 shared + 2 per task)",
        functools.partial(_trainers.sk_mmoe, **PLE),
        architecture="PLE",
    ),
    "deepctr": System("DeepCTR-Torch MMOE", _trainers.deepctr, requires="deepctr_torch"),
    "rechub": System("torch-rechub MMOE", _trainers.rechub, requires="torch_rechub"),
    "mlp": System("sklearn MLPRegressor (128, 16)", _trainers.mlp),
    # the tighter floor plus one backward pass per task: the balancing table's yardstick
    "plain_backward_per_task": System(
        "plain loop + one backward pass per task (yardstick)",
        lambda spec, X, Y: _trainers.plain(spec, X, Y, tuned=True, extra_backward=spec["tasks"]),
        row=False,
    ),
}


def scaling(spec):
    """Per-epoch times of one system for each of ``spec["configs"]``, in turn."""
    results = []
    for config in spec["configs"]:
        X, Y = make_data(config)
        results.append(SYSTEMS[spec["inner"]].run({**config, "predict": False}, X, Y)["epochs"])
        del X, Y
    return {"configs": results}


def default_fit(spec):
    """A default ``MMoERegressor`` fit of the spec's data size (``_trainers.default_fit``)."""
    X, Y = make_data(spec)
    return _trainers.default_fit(spec, X, Y)


#: measurements other than a system's training: name -> function of the spec
JOBS = {
    "latency": _serving.latency,
    "predict_memory": _serving.predict_memory,
    "scaling": scaling,
    "default_fit": default_fit,
}


def measure(spec):
    """The measurement ``spec["system"]`` names: a job, or a system's training."""
    name = spec["system"]
    if name in JOBS:
        return JOBS[name](spec)
    X, Y = make_data(spec)
    return SYSTEMS[name].run(spec, X, Y)


def main():
    print(json.dumps(measure(json.loads(sys.argv[1]))))


if __name__ == "__main__":
    main()
