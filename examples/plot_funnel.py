"""
=====================================================================
Click, then conversion: a funnel learned over all impressions (ESMM)
=====================================================================

A conversion can only happen after a click. Training a conversion model on
the clicked impressions alone is what a naive pipeline does, but that model
then scores every impression, most of which it never saw, and it learns from
few rows. ``task_sequence=["click", "convert"]`` learns P(click) and
P(convert | click) in one network with shared experts, and trains the joint
P(click and convert) = P(click) x P(convert | click) on every impression, as
ESMM does (Ma et al., SIGIR 2018).

On :func:`sk_mmoe.datasets.make_funnel_tasks` data this example compares:

- **funnel**: ``MMoEClassifier(task_sequence=["click", "convert"])``;
- **click x conversion on clicks**: a click model on every impression times a
  conversion model trained on the clicked impressions only;
- **independent tasks**: one ``MMoEClassifier`` on both columns without the
  funnel, its "convert" probability read as the joint (and divided by the
  click probability for the conditional).

For each it reports the ROC AUC of the joint over all test impressions (does
the model rank the impressions that end in a conversion first?), the ROC
AUC of the conditional among the clicked test impressions (given a click,
does it rank the conversions first?) and the rank correlation of the joint
with the generator's true P(click and convert), as mean and standard
deviation over seeds, in two settings: few clicks and conversions, and
plenty of both.

Run ``python examples/plot_funnel.py``; set ``SK_MMOE_EXAMPLE_QUICK=1`` for a
few-second smoke run (used by the tests). The figure is written to
``funnel.png``.
"""

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from sk_mmoe import MMoEClassifier  # noqa: E402
from sk_mmoe.datasets import make_funnel_tasks  # noqa: E402

QUICK = os.environ.get("SK_MMOE_EXAMPLE_QUICK") == "1"
N_TRAIN = 1_500 if QUICK else 20_000
N_TEST = 1_500 if QUICK else 20_000
SEEDS = (0, 1) if QUICK else (0, 1, 2)
EPOCHS = 2 if QUICK else 50
SETTINGS = {
    "few clicks (2%), 10% convert": dict(click_rate=0.02, conversion_rate=0.1),
    "many clicks (30%), 30% convert": dict(click_rate=0.3, conversion_rate=0.3),
}
MODELS = ("funnel", "click x conversion on clicks", "independent tasks")


def make_model(seed, **params):
    """The same network for every model: only the targets and the loss differ."""
    return MMoEClassifier(
        n_experts=4,
        expert_units=(32,),
        tower_units=(16,),
        max_epochs=EPOCHS,
        lr=3e-3,
        random_state=seed,
        **params,
    )


def scores(y_test, true_joint, joint, conditional):
    """ROC AUC of the joint over all impressions and of the conditional among clicks.

    And the rank correlation of the joint with the true P(click and convert)
    over all impressions: the labels of the few conversions make a noisy
    AUC, the generator's probabilities do not.
    """
    clicked = y_test["click"].to_numpy() == 1
    return {
        "joint ROC AUC": roc_auc_score(y_test["convert"], joint),
        "conditional ROC AUC": roc_auc_score(y_test["convert"][clicked], conditional[clicked]),
        "joint vs truth (Spearman)": spearmanr(joint, true_joint).statistic,
    }


rows = []
for setting, rates in SETTINGS.items():
    for seed in SEEDS:
        X, y, truth = make_funnel_tasks(
            N_TRAIN + N_TEST, **rates, return_proba=True, random_state=seed
        )
        X_train, X_test = X[:N_TRAIN], X[N_TRAIN:]
        y_train, y_test = y[:N_TRAIN], y[N_TRAIN:]
        true_joint = truth["click_and_convert"][N_TRAIN:]

        # (a) the funnel: conditional towers, joint loss over every impression
        funnel = make_model(seed, task_sequence=["click", "convert"]).fit(X_train, y_train)
        joint = funnel.predict_proba(X_test)[1][:, 1]
        conditional = funnel.conditional_proba(X_test)[1][:, 1]
        rows.append(
            {
                "setting": setting,
                "model": MODELS[0],
                **scores(y_test, true_joint, joint, conditional),
            }
        )

        # (b) a click model times a conversion model trained on clicked rows only
        click_model = make_model(seed).fit(X_train, y_train["click"])
        clicked = y_train["click"].to_numpy() == 1
        cvr_model = make_model(seed).fit(X_train[clicked], y_train["convert"][clicked])
        conditional = cvr_model.predict_proba(X_test)[:, 1]
        joint = click_model.predict_proba(X_test)[:, 1] * conditional
        rows.append(
            {
                "setting": setting,
                "model": MODELS[1],
                **scores(y_test, true_joint, joint, conditional),
            }
        )

        # (c) two independent tasks: "convert" read as the joint
        independent = make_model(seed).fit(X_train, y_train)
        click, joint = (p[:, 1] for p in independent.predict_proba(X_test))
        conditional = joint / click
        rows.append(
            {
                "setting": setting,
                "model": MODELS[2],
                **scores(y_test, true_joint, joint, conditional),
            }
        )
        print(f"{setting}, seed {seed}: done")

results = pd.DataFrame(rows)
metrics = ["joint ROC AUC", "conditional ROC AUC", "joint vs truth (Spearman)"]
summary = results.groupby(["setting", "model"], sort=False)[metrics].agg(["mean", "std"])
table = pd.DataFrame(
    {
        metric: [
            f"{mean:.3f} ± {std:.3f}"
            for mean, std in zip(summary[(metric, "mean")], summary[(metric, "std")])
        ]
        for metric in metrics
    },
    index=summary.index,
)
print(f"\n{N_TRAIN} training and {N_TEST} test impressions, {len(SEEDS)} seeds (mean ± std):")
print(table.to_string())

fig, axes = plt.subplots(1, len(metrics), figsize=(14, 3.6), layout="constrained")
width = 0.25
for ax, metric in zip(axes, metrics):
    for k, model in enumerate(MODELS):
        part = summary.xs(model, level="model")
        positions = np.arange(len(SETTINGS)) + (k - 1) * width
        ax.bar(
            positions,
            part[(metric, "mean")],
            width,
            yerr=part[(metric, "std")],
            label=model,
            capsize=3,
        )
    ax.set_xticks(np.arange(len(SETTINGS)), [name.replace(", ", "\n") for name in SETTINGS])
    low = (summary[(metric, "mean")] - summary[(metric, "std")]).min() - 0.02
    ax.set_ylim(max(0.0, low), 1.0)
    ax.set_title(metric)
axes[0].legend(loc="lower right", fontsize="small")
fig.savefig("funnel.png", dpi=100)
print("wrote funnel.png")
