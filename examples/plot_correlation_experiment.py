"""
======================================================================
Shared-Bottom, one-gate MoE and MMoE as the tasks' correlation changes
======================================================================

A small, single-seed version of the synthetic experiment of Ma et al. (KDD
2018); ``python -m sk_mmoe`` runs the averaged one. Two regression tasks are
generated with :func:`sk_mmoe.datasets.make_mmoe_tasks` at several
correlations; the three architectures train with the same budget and a
comparable number of parameters, and the test MSE is plotted against the
correlation.

Run ``python examples/plot_correlation_experiment.py``; set
``SK_MMOE_EXAMPLE_QUICK=1`` for a few-second smoke run (used by the tests).
The figure is written to ``correlation_experiment.png``.
"""

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import mean_squared_error  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

from sk_mmoe import MMoERegressor  # noqa: E402
from sk_mmoe.datasets import make_mmoe_tasks  # noqa: E402

QUICK = os.environ.get("SK_MMOE_EXAMPLE_QUICK") == "1"
N_SAMPLES = 600 if QUICK else 12_000
EPOCHS = 2 if QUICK else 30
SEED = 0

# Same budget for every model: epochs, batch size, learning rate, towers.
common = dict(tower_units=(8,), activation="elu", max_epochs=EPOCHS, lr=3e-3, random_state=SEED)
models = {
    # a wider bottom so that the Shared-Bottom has as many parameters as the MMoE
    "Shared-Bottom": MMoERegressor(architecture="shared_bottom", expert_units=(68,), **common),
    "MoE (one gate)": MMoERegressor(architecture="moe", n_experts=8, expert_units=(16,), **common),
    "MMoE": MMoERegressor(architecture="mmoe", n_experts=8, expert_units=(16,), **common),
}

correlations = [0.5, 0.9, 1.0]
mse = {name: [] for name in models}
for correlation in correlations:
    X, Y = make_mmoe_tasks(
        N_SAMPLES, n_features=10, correlation=correlation, scale=2.0, random_state=SEED
    )
    X_train, X_test, Y_train, Y_test = train_test_split(X, Y, test_size=1 / 6, random_state=SEED)
    for name, model in models.items():
        model.fit(X_train, Y_train)
        mse[name].append(mean_squared_error(Y_test, model.predict(X_test)))

n_parameters = {
    name: sum(p.numel() for p in model.module_.parameters()) for name, model in models.items()
}
print(f"{'model':<15} {'parameters':>10}  " + "  ".join(f"p={p:<5}" for p in correlations))
for name in models:
    row = "  ".join(f"{value:<7.4f}" for value in mse[name])
    print(f"{name:<15} {n_parameters[name]:>10,}  {row}")

fig, ax = plt.subplots(figsize=(5, 3.5), layout="constrained")
for name, values in mse.items():
    ax.plot(correlations, values, marker="o", label=name)
ax.set(
    xlabel="task correlation",
    ylabel="test MSE",
    xticks=correlations,
    title=f"one seed, {N_SAMPLES:,} rows",
)
ax.legend()
fig.savefig("correlation_experiment.png", dpi=100)
print("wrote correlation_experiment.png")
for i, p in enumerate(correlations):
    print(f"lowest test MSE at p={p}: {min(mse, key=lambda name: mse[name][i])}")
assert np.all(np.isfinite(np.array(list(mse.values()))))
