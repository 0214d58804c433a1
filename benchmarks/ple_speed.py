"""PLE against MMoE per epoch, at three sizes, timed side by side in one run.

    python benchmarks/ple_speed.py                 # 7 rounds, about a minute
    python benchmarks/ple_speed.py --rounds 1 --epochs 1 --rows 2000   # smoke

Each round fits, alternately, an MMoE and a PLE of the same setting and
keeps each fit's median epoch (wall clock, one thread: the estimators'
``n_jobs=None`` default at these sizes); the table shows the medians over the
rounds and the median of the per-round ratios. Settings:

- ``run.py``: the speed table's model (d = 100, 8 experts of 16 units,
  towers of 8, batch 256) and its PLE of about the same parameter count
  (2 levels of 3 shared + 2 per task experts of 16 units);
- ``main job``: the MMoE and PLE of ``python -m sk_mmoe`` (d = 10, ELU,
  batch 256; PLE: 2 levels of 2 shared + 1 per task experts of 14 units, the
  width set for the MMoE's parameter count);
- ``defaults``: both estimators at their defaults (``architecture="ple"``
  only) on 20,000 x 50. Here PLE has 2.7 times the MMoE's parameters: two
  levels of 10 experts of 64 units against 8 experts of 64 units; so the
  last row sets it against an MMoE of about its parameter count (23 experts).

Uses the public API and the main job's public helpers.
"""

from __future__ import annotations

import argparse

import numpy as np
from _measure import epoch_timer_callback, timer_of

from sk_mmoe import MMoERegressor
from sk_mmoe.__main__ import Setup, model_params
from sk_mmoe.datasets import make_mmoe_tasks


def settings():
    """name -> (n_features, MMoE parameters, PLE parameters)."""
    paper = {"n_experts": 8, "expert_units": (16,), "tower_units": (8,), "batch_size": 256}
    main = model_params(Setup())
    return {
        "run.py": (100, paper, dict(paper, architecture="ple", n_experts=3, n_task_experts=2)),
        "main job": (Setup().n_features, main["MMoE"], main["PLE"]),
        "defaults": (50, {}, {"architecture": "ple"}),
        # the MMoE given PLE's parameter count at the defaults: 23 experts
        "defaults, MMoE of PLE's size": (50, {"n_experts": 23}, {"architecture": "ple"}),
    }


def epoch_time(params, X, Y, epochs):
    """The median epoch of one fit."""
    fixed = {"max_epochs": epochs, "early_stopping": False, "random_state": 0}
    est = MMoERegressor(**{**params, **fixed}, callbacks=[epoch_timer_callback()])
    est.fit(X, Y)
    return float(np.median([epoch["wall"] for epoch in timer_of(est.net_).times]))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rows", type=int, default=20_000)
    args = parser.parse_args(argv)
    print(f"{args.rows:,} rows, {args.epochs} epochs per fit, {args.rounds} rounds, wall clock")
    columns = ["setting", "MMoE parameters", "PLE parameters", "MMoE s / epoch", "PLE s / epoch"]
    print("| " + " | ".join([*columns, "PLE × MMoE"]) + " |")
    print("|---|---|---|---|---|---|")
    for name, (n_features, mmoe, ple) in settings().items():
        X, Y = make_mmoe_tasks(args.rows, n_features=n_features, random_state=0)
        times = {"MMoE": [], "PLE": []}
        for _ in range(args.rounds):
            for model, params in (("MMoE", mmoe), ("PLE", ple)):
                times[model].append(epoch_time(params, X, Y, args.epochs))
        ratio = np.median(np.array(times["PLE"]) / np.array(times["MMoE"]))
        fitted = [
            MMoERegressor(**{**p, "max_epochs": 1}).fit(X[:300], Y[:300]) for p in (mmoe, ple)
        ]
        counts = [sum(p.numel() for p in est.module_.parameters()) for est in fitted]
        print(
            f"| {name} | {counts[0]:,} | {counts[1]:,} | {np.median(times['MMoE']):.3f} "
            f"| {np.median(times['PLE']):.3f} | {ratio:.2f} |"
        )


if __name__ == "__main__":
    main()
