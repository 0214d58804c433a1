"""Is PLE's lead in the main job its gating or its depth?

    python benchmarks/depth_check.py            # the main job's 12 seeds x 3 correlations

At the same parameter count the main job's PLE (``python -m sk_mmoe``) is
deeper than its MMoE: two levels of experts against one. This script trains,
on the main job's data, seeds and training budget, its MMoE, its PLE and a
deep MMoE whose experts have two hidden layers of 9 units (1,866 parameters,
against the MMoE's 1,874 and the PLE's 1,914), and prints the paired per-seed
differences of test MSE with 95% t-intervals: deep MMoE - MMoE (what depth
alone buys) and PLE - deep MMoE (what PLE's structure buys on top).

Uses the public API and the main job's public helpers.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from sk_mmoe import MMoERegressor
from sk_mmoe.__main__ import Setup, count_parameters, model_params
from sk_mmoe.model_selection import mean_confidence_interval


def interval(values):
    """``"mean [low, high]"``: the mean and its 95% t-interval."""
    mean, low, high = mean_confidence_interval(values)
    return f"{mean:+.4f} [{low:+.4f}, {high:+.4f}]"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=Setup().n_seeds)
    parser.add_argument("--correlations", type=float, nargs="+")
    args = parser.parse_args(argv)
    setup = Setup(n_seeds=args.seeds)
    correlations = args.correlations or setup.correlations
    params = model_params(setup)
    models = {
        "MMoE": params["MMoE"],
        "deep MMoE": dict(params["MMoE"], expert_units=(9, 9)),
        "PLE": params["PLE"],
    }
    counts = {name: count_parameters(p, setup.n_features) for name, p in models.items()}
    print("parameters: " + ", ".join(f"{name} {n:,}" for name, n in counts.items()))
    started = time.perf_counter()
    print("| paired difference | " + " | ".join(f"p = {p}" for p in correlations) + " |")
    print("|---|" + "---|" * len(correlations))
    rows = {"deep MMoE - MMoE": [], "PLE - deep MMoE": []}
    for correlation in correlations:
        mse = {name: [] for name in models}
        for seed in range(setup.first_seed, setup.first_seed + setup.n_seeds):
            X_train, Y_train, X_test, Y_test = setup.tasks(correlation, seed)
            for name, p in models.items():
                est = MMoERegressor(**p, random_state=seed).fit(X_train, Y_train)
                mse[name].append(np.mean((est.predict(X_test) - Y_test) ** 2))
        mse = {name: np.array(values) for name, values in mse.items()}
        rows["deep MMoE - MMoE"].append(interval(mse["deep MMoE"] - mse["MMoE"]))
        rows["PLE - deep MMoE"].append(interval(mse["PLE"] - mse["deep MMoE"]))
    for label, cells in rows.items():
        print(f"| {label} | " + " | ".join(cells) + " |")
    print(f"{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
