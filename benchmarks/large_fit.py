"""How long does a default fit take on 200,000 rows x 40 mixed columns?

The table: 30 numeric columns and 10 categorical ones (pandas ``category``,
5 to 1,000 levels), two tasks (a regression and a binary classification)
that depend on both kinds of column. ``MMoEMultiTask()`` with its
defaults (early stopping on; the data's 20% hold-out rows are not used),
then the same with ``--params`` changed. Prints the fit time, the epochs
trained, the seconds per epoch and the test scores.

    python benchmarks/large_fit.py                           # the defaults
    python benchmarks/large_fit.py --threads 2               # torch threads (default: torch's)
    python benchmarks/large_fit.py --params '{"batch_size": 256}'

Uses the public API only.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pandas as pd


def make_table(n_rows=200_000, n_numeric=30, n_categorical=10, seed=0):
    """X (DataFrame) and Y (regression, binary) with signal in both kinds of column."""
    rng = np.random.RandomState(seed)
    numeric = rng.normal(size=(n_rows, n_numeric))
    levels = np.geomspace(5, 1000, n_categorical).astype(int)
    codes = [rng.zipf(1.3, n_rows) % k for k in levels]
    effects = [rng.normal(size=k) for k in levels]
    signal = np.tanh(numeric[:, :10] @ rng.normal(size=10) / 3) + sum(
        e[c] for e, c in zip(effects[:5], codes[:5])
    ) / np.sqrt(5)
    other = numeric[:, 5:15] @ rng.normal(size=10) / 3 + sum(
        e[c] for e, c in zip(effects[3:], codes[3:])
    ) / np.sqrt(7)
    X = pd.DataFrame(numeric, columns=[f"x{j}" for j in range(n_numeric)])
    for j, c in enumerate(codes):
        X[f"c{j}"] = pd.Categorical.from_codes(c, [f"v{i}" for i in range(levels[j])])
    Y = pd.DataFrame(
        {
            "amount": signal + 0.5 * other + rng.normal(scale=0.5, size=n_rows),
            "flag": (signal - 0.5 * other + rng.logistic(size=n_rows) > 0).astype(int),
        }
    )
    return X, Y


def main(argv=None):
    from sklearn.metrics import r2_score, roc_auc_score
    from sklearn.model_selection import train_test_split

    from sk_mmoe import MMoEMultiTask

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--params", default="{}", help="JSON: estimator parameters to change")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    args = parser.parse_args(argv)
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    X, Y = make_table(int(args.rows / 0.8))
    X_train, X_test, Y_train, Y_test = train_test_split(X, Y, test_size=0.2, random_state=0)
    params = {"task_types": ["regression", "binary"], "random_state": 0}
    params.update(json.loads(args.params))
    model = MMoEMultiTask(**params)
    start = time.perf_counter()
    model.fit(X_train, Y_train)
    seconds = time.perf_counter() - start
    epochs = len(model.net_.history)
    proba = model.predict_proba(X_test)[1][:, 1]
    print(
        f"{len(X_train):,} rows x {X.shape[1]} columns, {json.loads(args.params) or 'defaults'}: "
        f"fit {seconds:.1f} s, {epochs} epochs ({seconds / epochs:.2f} s/epoch); "
        f"test R² {r2_score(Y_test['amount'], model.predict(X_test)[:, 0].astype(float)):.4f}, "
        f"ROC AUC {roc_auc_score(Y_test['flag'], proba):.4f}"
    )


if __name__ == "__main__":
    main()
