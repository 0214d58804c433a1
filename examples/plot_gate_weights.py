"""
======================================================
Which experts does each task use? Gate-weight heatmaps
======================================================

An MMoE gives every task its own softmax gate over the shared experts.
:class:`sk_mmoe.plotting.GateWeightsDisplay` draws the mean weight each
task's gate puts on each expert. With weakly related tasks (correlation 0.5)
the two rows tend to differ more than with identical tasks (correlation 1.0);
a one-gate MoE has one gate for all tasks, so its rows are equal.

Run ``python examples/plot_gate_weights.py``; set ``SK_MMOE_EXAMPLE_QUICK=1``
for a few-second smoke run (used by the tests). The figure is written to
``gate_weights.png``.
"""

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from sk_mmoe import MMoERegressor  # noqa: E402
from sk_mmoe.datasets import make_mmoe_tasks  # noqa: E402
from sk_mmoe.plotting import GateWeightsDisplay  # noqa: E402

QUICK = os.environ.get("SK_MMOE_EXAMPLE_QUICK") == "1"
N_SAMPLES = 500 if QUICK else 10_000
EPOCHS = 2 if QUICK else 30

panels = [("mmoe", 0.5), ("mmoe", 1.0), ("moe", 0.5)]
fitted = []
for architecture, correlation in panels:
    X, Y = make_mmoe_tasks(
        N_SAMPLES, n_features=10, correlation=correlation, scale=2.0, random_state=0
    )
    # a DataFrame y: its column names label the heatmap's rows
    Y = pd.DataFrame(Y, columns=["task A", "task B"])
    model = MMoERegressor(
        architecture=architecture,
        n_experts=6,
        expert_units=(16,),
        tower_units=(8,),
        activation="elu",
        max_epochs=EPOCHS,
        lr=3e-3,
        random_state=0,
    ).fit(X, Y)
    fitted.append((architecture, correlation, model, X))

# one colour scale for all panels
vmax = max(model.gate_weights(X).mean(axis=0).max() for _, _, model, X in fitted)
fig, axes = plt.subplots(1, len(panels), figsize=(13, 2.6), layout="constrained")
for ax, (architecture, correlation, model, X) in zip(axes, fitted):
    display = GateWeightsDisplay.from_estimator(model, X, ax=ax, colorbar=False, vmax=vmax)
    rows = display.gate_weights
    # total variation distance between the two tasks' mean mixtures
    distance = 0.5 * np.abs(rows[0] - rows[1]).sum()
    ax.set_title(f"{architecture.upper()}, correlation {correlation}: distance {distance:.2f}")
    print(f"{architecture} p={correlation}: mean gate weights\n{np.round(rows, 2)}")

fig.colorbar(display.im_, ax=axes, label="mean gate weight")
fig.savefig("gate_weights.png", dpi=100)
print("wrote gate_weights.png")
