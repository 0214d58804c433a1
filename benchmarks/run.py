"""Speed and memory of sk_mmoe next to a plain PyTorch loop and its peers.

    python benchmarks/run.py            # the full run (about 10 minutes)
    python benchmarks/run.py --quick    # a smoke test (under a minute)

Each measurement runs in a fresh Python process (``_systems.py``); the
systems are run in turn, round after round (``--repeats``), so that a slow
spell of a shared machine hits them all alike. Per round, a system's time
per epoch is the median over its epochs; tables show the median over rounds,
and ratios are the median of the per-round ratios. Nothing is installed
here: DeepCTR-Torch and torch-rechub are timed when they are importable and
shown as "not installed" otherwise (see README.md for installing them).

``--threads`` (default 1) sets ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS`` and
``OPENBLAS_NUM_THREADS`` for every worker, so torch and scikit-learn's BLAS
use the same number of threads -- except in the serving-latency tables and
the fit-beside-busy-processes table, whose workers run with every library's
default threads (those variables removed), as a server or a user's fit
started without tuning would; ``--busy`` (default ``0,1,2``) lists how many
busy-loop processes run beside them, one table column per level.

This file holds the settings, the flags and the order of the report; each
section is a ``_report_*.py`` module, the workers are ``_systems.py`` (the
one table of systems) with ``_trainers.py`` and ``_serving.py``, and
``_harness.py`` runs workers and formats tables.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from pathlib import Path

import _report_balancing
import _report_fit_busy
import _report_latency
import _report_memory
import _report_scaling
import _report_speed
from _harness import MODEL, parse_kwargs
from _systems import SYSTEMS

#: the paper's model as MMoERegressor parameters (the fit-beside-busy table's small fit)
PAPER_MODEL = {
    "n_experts": MODEL["experts"],
    "expert_units": (MODEL["expert_units"],),
    "tower_units": (MODEL["tower_units"],),
}

FULL = {
    "rows": 100_000,
    "epochs": 3,
    "repeats": 5,
    "one_row_calls": 300,
    "predict_repeats": 3,
    "memory_rows": 1_000_000,
    "scaling_repeats": 3,
    "balancing_repeats": 5,
    "latency_repeats": 3,
    "block_calls": 50,
    "busy": "0,1,2",
    "scaling": {
        "experts": [1, 4, 16, 64],
        "tasks": [1, 4, 16],
        "rows": [10_000, 100_000, 1_000_000],
    },
    "fit_busy_repeats": 3,
    "fit_busy": [
        {"rows": 20_000, "features": 50, "params": {"max_epochs": 3, "random_state": 0}},
        {
            "rows": 2_000,
            "features": MODEL["features"],
            "params": {
                **PAPER_MODEL,
                "max_epochs": 30,
                "early_stopping": False,
                "random_state": 0,
            },
        },
    ],
}
QUICK = {
    "rows": 5_000,
    "epochs": 2,
    "repeats": 1,
    "one_row_calls": 50,
    "predict_repeats": 1,
    "memory_rows": 50_000,
    "scaling_repeats": 1,
    "balancing_repeats": 1,
    "latency_repeats": 1,
    "block_calls": 5,
    "busy": "0",
    "scaling": {"experts": [1, 8], "tasks": [1, 4], "rows": [2_000, 5_000]},
    "fit_busy_repeats": 1,
    "fit_busy": [
        {"rows": 2_000, "features": 50, "params": {"max_epochs": 1, "random_state": 0}},
        {
            "rows": 500,
            "features": MODEL["features"],
            "params": {**PAPER_MODEL, "max_epochs": 3, "early_stopping": False, "random_state": 0},
        },
    ],
}


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    names = [name for name, system in SYSTEMS.items() if system.row]
    parser.add_argument("--quick", action="store_true", help="small sizes, one round")
    parser.add_argument(
        "--rows", type=int, help="training rows of the main table (and of every busy fit)"
    )
    parser.add_argument("--epochs", type=int, help="epochs per fit")
    parser.add_argument("--repeats", type=int, help="rounds of the main table")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1, help="0: leave the defaults")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall")
    parser.add_argument(
        "--systems",
        default=",".join(names),
        help="comma-separated subset of: " + ", ".join(names),
    )
    parser.add_argument(
        "--treat-as-missing",
        default="",
        help="comma-separated peers to report as not installed (for testing)",
    )
    parser.add_argument("--no-scaling", action="store_true")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--no-balancing", action="store_true")
    parser.add_argument(
        "--only-balancing", action="store_true", help="run the task-balancing table alone"
    )
    parser.add_argument("--no-latency", action="store_true")
    parser.add_argument(
        "--only-latency", action="store_true", help="run the serving-latency tables alone"
    )
    parser.add_argument(
        "--only-fit-busy",
        action="store_true",
        help="run the fit-beside-busy-processes table alone (never part of the full run)",
    )
    parser.add_argument(
        "--fit-params",
        action="append",
        type=lambda text: (text.strip(), parse_kwargs(text)),
        help="estimator parameters of the busy fits, as in a call: 'n_jobs=1, lr=0.01'; "
        "repeat the flag to time several settings side by side (default: none)",
    )
    parser.add_argument(
        "--busy",
        help="comma-separated numbers of busy-loop processes beside the latency "
        "and busy-fit measurements (default 0,1,2; --quick: 0; the busy fits "
        "always include 0, the base of their ratios)",
    )
    parser.add_argument("--json", help="also write every measurement to this file")
    args = parser.parse_args(argv)
    args.systems = set(args.systems.split(","))
    if args.busy is not None:
        args.busy = [int(n) for n in args.busy.split(",")]
    if args.fit_params is None:
        args.fit_params = [("", {})]
    unknown = args.systems - set(names)
    if unknown:
        parser.error(f"unknown systems: {', '.join(sorted(unknown))}")
    return args


def settings_of(args):
    """The run's sizes: ``FULL`` or ``QUICK``, with the flags that override them."""
    settings = dict(QUICK if args.quick else FULL)
    if args.busy is None:
        args.busy = [int(n) for n in settings["busy"].split(",")]
    for key in ("rows", "epochs", "repeats"):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    fits = []
    for fit in settings["fit_busy"]:
        fit = {**fit, "params": dict(fit["params"])}
        if args.rows is not None:
            fit["rows"] = args.rows
        if args.epochs is not None:
            fit["params"]["max_epochs"] = args.epochs
        fits.append(fit)
    settings["fit_busy"] = fits
    return settings


def print_header(args, settings):
    import platform

    import numpy
    import sklearn
    import skorch
    import torch

    print(
        f"sk_mmoe benchmark: d={MODEL['features']}, {MODEL['experts']} experts x "
        f"{MODEL['expert_units']} units, towers of {MODEL['tower_units']}, "
        f"{MODEL['tasks']} regression tasks, Adam lr 1e-3, batch {args.batch_size}, "
        f"{settings['rows']:,} rows, {settings['epochs']} epochs x {settings['repeats']} rounds"
    )
    print(
        f"torch {torch.__version__}, skorch {skorch.__version__}, scikit-learn "
        f"{sklearn.__version__}, numpy {numpy.__version__}, Python {platform.python_version()}, "
        f"{os.cpu_count()} cores, threads per worker: {args.threads or 'default'}, "
        f"clock: {args.clock}, CUDA: {'available' if torch.cuda.is_available() else 'none'}"
    )
    sys.stdout.flush()


def main(argv=None):
    args = parse_args(argv)
    settings = settings_of(args)
    pretend = set(filter(None, args.treat_as_missing.split(",")))
    missing = {
        name
        for name, system in SYSTEMS.items()
        if system.requires
        and (name in pretend or importlib.util.find_spec(system.requires) is None)
    }
    print_header(args, settings)
    out = {"settings": settings, "args": {k: str(v) for k, v in vars(args).items()}}

    if args.only_balancing:
        _report_balancing.report(args, settings, out)
    elif args.only_latency:
        _report_latency.report(args, settings, out)
    elif args.only_fit_busy:
        _report_fit_busy.report(args, settings, out)
    else:
        summary = _report_speed.report(args, settings, missing, out)
        if not args.no_memory:
            _report_memory.report(args, settings, out)
        _report_speed.print_targets(summary)
        if not args.no_latency:
            _report_latency.report(args, settings, out)
        if not args.no_balancing and "sk_mmoe" in args.systems:
            _report_balancing.report(args, settings, out)
        if not args.no_scaling and {"plain", "sk_mmoe"} <= args.systems:
            _report_scaling.report(args, settings, out)

    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
