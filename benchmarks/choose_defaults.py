"""Which default hyperparameters? Candidate settings compared on the real-data suite.

Every candidate is ``MMoEMultiTask`` (mmoe) with the defaults of the version
under test, changed only where the candidate says, cross-validated on the
six data sets of ``real_data.py`` (the same folds for every candidate, each
data set subsampled to ``--rows`` rows to keep the run short). The table
gives, per candidate, the mean difference of the score (ROC AUC, accuracy or
R²) from the first candidate over all tasks, on how many tasks it is ahead,
and the total fit time. The defaults of sk_mmoe were chosen with it.

    python benchmarks/choose_defaults.py                      # about an hour on 2 cores
    python benchmarks/choose_defaults.py --candidates early_stopping,no_early_stopping
    python benchmarks/choose_defaults.py --quick              # smoke run
    python benchmarks/choose_defaults.py --csv a.csv          # keep the scores, then
    python benchmarks/choose_defaults.py --load a.csv,b.csv   # report several runs

Uses the public API only.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from real_data import DATASETS, SEED, load
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.model_selection import KFold
from sklearn.pipeline import make_pipeline


class SmoothClipScaler(TransformerMixin, BaseEstimator):
    """RealMLP's robust scaling with smooth clipping, on the numeric columns only.

    ``(x - median) / scale`` with ``scale`` from the 25-75% quantiles (the
    5-95% range where those agree), then ``x / sqrt(1 + (x / 3)**2)``.
    Categorical columns pass through untouched.
    """

    def fit(self, X, y=None):
        numeric = X.select_dtypes("number")
        self.columns_ = list(numeric.columns)
        q = numeric.quantile([0.05, 0.25, 0.5, 0.75, 0.95])
        iqr = (q.loc[0.75] - q.loc[0.25]) / 1.349
        wide = (q.loc[0.95] - q.loc[0.05]) / 3.29
        self.center_ = q.loc[0.5]
        self.scale_ = iqr.where(iqr > 0, wide).where(lambda s: s > 0, 1.0)
        return self

    def transform(self, X):
        z = (X[self.columns_] - self.center_) / self.scale_
        return X.assign(**(z / np.sqrt(1 + (z / 3) ** 2)).to_dict("series"))


def _plateau():
    from skorch.callbacks import LRScheduler

    return [LRScheduler("ReduceLROnPlateau", monitor="valid_loss", patience=3, factor=0.3)]


#: what every candidate has unless it says otherwise: early stopping on, so
#: that a candidate is judged at its best epoch
COMMON = {"early_stopping": True, "max_epochs": 200}
#: name -> (parameters on top of COMMON, wrap in SmoothClipScaler)
CANDIDATES = {
    "early_stopping": ({}, False),
    # the defaults before numeric embeddings and one-hot columns (the baseline of the
    # second round in benchmarks/README)
    "previous_defaults": ({"numeric_embedding": None, "one_hot_max_categories": None}, False),
    "no_early_stopping": ({"early_stopping": False, "max_epochs": 100}, False),
    "plateau_lr": ({"callbacks": "plateau"}, False),
    "lr_3e-3": ({"lr": 3e-3}, False),
    "batch_512": ({"batch_size": 512}, False),
    "dropout_0.1": ({"dropout": 0.1}, False),
    "adamw_1e-2": ({"optimizer": "adamw", "weight_decay": 1e-2}, False),
    "experts_128": ({"expert_units": (128,)}, False),
    "smooth_clip": ({}, True),
    "embedding_8": ({"embedding_dim": 8}, False),
    "min_frequency_10": ({"min_frequency": 10}, False),
    # RealMLP's rule: one-hot for few categories, embeddings above
    "one_hot_9": ({"one_hot_max_categories": 9}, False),
    "one_hot_32": ({"one_hot_max_categories": 32}, False),
    # numeric-feature embeddings (Gorishniy et al. 2022; TabM uses piecewise-linear)
    "piecewise_linear": ({"numeric_embedding": "piecewise_linear"}, False),
    "periodic": ({"numeric_embedding": "periodic"}, False),
    "piecewise_linear+one_hot_9": (
        {"numeric_embedding": "piecewise_linear", "one_hot_max_categories": 9},
        False,
    ),
    "periodic+one_hot_9": ({"numeric_embedding": "periodic", "one_hot_max_categories": 9}, False),
    # a TabM-style in-model ensemble of 4 members
    "ensemble_4": ({"n_ensemble": 4}, False),
    "periodic+ensemble_4": ({"numeric_embedding": "periodic", "n_ensemble": 4}, False),
    # the task-balancing methods against fixed weights, on real data
    "uncertainty": ({"task_weights": "uncertainty"}, False),
    "dwa": ({"task_weights": "dwa"}, False),
    "gradnorm": ({"task_weights": "gradnorm"}, False),
    "pcgrad": ({"task_weights": "pcgrad"}, False),
}


def candidate(name, task_types_):
    from sk_mmoe import MMoEMultiTask

    params, clip = CANDIDATES[name]
    params = {**COMMON, **params}
    if params.get("callbacks") == "plateau":
        params["callbacks"] = _plateau()
    estimator = MMoEMultiTask(
        task_types=task_types_, missing_targets="ignore", random_state=SEED, **params
    )
    return make_pipeline(SmoothClipScaler(), estimator) if clip else estimator


def run(names, datasets, n_folds, n_rows, max_epochs):
    from sk_mmoe.model_selection import multitask_gain

    rows = []
    for data in datasets:
        X, Y, explicit = load(data, n_rows)
        splits = list(KFold(n_folds, shuffle=True, random_state=SEED).split(X))
        for name in names:
            estimator = candidate(name, explicit)
            if max_epochs is not None:
                key = "mmoemultitask__max_epochs" if hasattr(estimator, "steps") else "max_epochs"
                estimator.set_params(**{key: max_epochs})
            start = time.perf_counter()
            result = multitask_gain(estimator, X, Y, cv=splits, single_task=False)
            scores = result.scores.assign(candidate=name, data=data)
            rows.append(scores)
            print(
                f"{data:10s} {name:18s} "
                + " ".join(
                    f"{t}={s:.4f}"
                    for t, s in scores.groupby("task", sort=False)["score"].mean().items()
                )
                + f"  ({time.perf_counter() - start:.0f} s)",
                flush=True,
            )
    return pd.concat(rows, ignore_index=True)


def report(scores, names):
    """Markdown: per candidate, mean score difference from the first, tasks ahead, fit time."""
    mean = scores.groupby(["candidate", "data", "task"])["score"].mean().unstack("candidate")
    spread = scores.groupby(["candidate", "data", "task"])["score"].std().unstack("candidate")
    seconds = scores.groupby(["candidate", "data", "fold"])["fit_time"].first()
    seconds = seconds.groupby("candidate").sum()
    first = names[0]
    lines = [
        f"| candidate | mean Δ score vs {first} | tasks ahead | tasks ahead by > 1 spread "
        "| fit s (all folds) |",
        "|---|---|---|---|---|",
    ]
    for name in names:
        delta = mean[name] - mean[first]
        ahead = int((delta > 0).sum())
        clear = int((delta > spread[first]).sum())
        lines.append(
            f"| {name} | {delta.mean():+.4f} | {ahead} of {len(delta)} | {clear} "
            f"| {seconds[name]:.0f} |"
        )
    lines += ["", "Per task (mean over folds):", "", mean[names].round(4).to_string()]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", default=",".join(CANDIDATES))
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--max-epochs", type=int, default=None)
    parser.add_argument("--csv", default=None, help="also write the per-fold scores here")
    parser.add_argument("--quick", action="store_true", help="400 rows, 2 folds, 2 epochs")
    parser.add_argument(
        "--load", default=None, help="comma-separated --csv files: report them, fit nothing"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.folds, args.max_epochs = 400, 2, 2
    names = args.candidates.split(",")
    if args.load:
        scores = pd.concat([pd.read_csv(f) for f in args.load.split(",")], ignore_index=True)
        names = [n for n in names if n in set(scores["candidate"])]
        print(report(scores, names))
        return
    scores = run(names, args.datasets.split(","), args.folds, args.rows, args.max_epochs)
    if args.csv:
        scores.to_csv(args.csv, index=False)
    print()
    print(report(scores, names))


if __name__ == "__main__":
    main()
