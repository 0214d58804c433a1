"""Streamed fits from Parquet against the same fits in memory: rows per second and peak RSS.

For each size (default 1M and 5M rows x 40 columns: 36 numeric, 4
categorical, two regression targets) the data are written once as Parquet
(row groups of 65,536 rows, one file per million rows). Each measurement
runs in a fresh process so its peak RSS (``VmHWM``) is its own:

- ``stream``: ``MMoERegressor().fit(path, y=[...])`` for one epoch, then
  ``predict(path)``;
- ``memory``: ``pandas.read_parquet(path)`` and the same fit and predict on
  the DataFrame (the rows are in memory as a user would hold them).

Printed: fit rows per second, predict rows per second, peak RSS in MB and
the streamed/in-memory ratios, side by side, plus the R² of both fits on
the first 100,000 rows (a streamed fit scores as the fit in memory).

``python benchmarks/streaming.py`` (full) or ``--rows 200000,1000000``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
TARGETS = ["t0", "t1"]


def write(path, n_rows, seed=0, chunk=250_000):
    """Write ``n_rows`` rows of the benchmark table as Parquet under ``path``."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    os.makedirs(path, exist_ok=True)
    rng = np.random.RandomState(seed)
    w = rng.normal(size=36)
    writer, file_rows, part = None, 0, 0
    for start in range(0, n_rows, chunk):
        n = min(chunk, n_rows - start)
        X = rng.normal(size=(n, 36)).astype(np.float32)
        frame = pd.DataFrame(X, columns=[f"x{j}" for j in range(36)])
        cats = rng.randint(0, 20, size=(n, 4))
        for j in range(4):
            frame[f"c{j}"] = pd.Categorical.from_codes(cats[:, j], [f"v{i}" for i in range(20)])
        effect = (cats[:, 0] % 3) - 1.0
        frame["t0"] = X @ w / 6 + effect + rng.normal(scale=0.5, size=n)
        frame["t1"] = np.sin(X[:, 0]) * 2 + effect * X[:, 1] + rng.normal(scale=0.5, size=n)
        table = pa.Table.from_pandas(frame, preserve_index=False)
        if writer is None or file_rows >= 1_000_000:
            if writer is not None:
                writer.close()
            writer = pq.ParquetWriter(os.path.join(path, f"part-{part:03d}.parquet"), table.schema)
            part, file_rows = part + 1, 0
        writer.write_table(table, row_group_size=65_536)
        file_rows += n
    writer.close()


def worker(mode, path, n_rows):
    """One measurement in this process; prints a JSON line."""
    sys.path.insert(0, HERE)
    import pandas as pd
    from _rss import status_mb

    from sk_mmoe import MMoERegressor

    params = dict(max_epochs=1, early_stopping=False, random_state=0)
    start = time.perf_counter()
    if mode == "stream":
        model = MMoERegressor(**params).fit(path, y=TARGETS)
        fit_s = time.perf_counter() - start
        start = time.perf_counter()
        predictions = model.predict(path)
    else:
        frame = pd.read_parquet(path)
        X, y = frame.drop(columns=TARGETS), frame[TARGETS]
        del frame
        model = MMoERegressor(**params).fit(X, y)
        fit_s = time.perf_counter() - start
        start = time.perf_counter()
        predictions = model.predict(X)
    predict_s = time.perf_counter() - start
    peak = status_mb("VmHWM")  # before the score reads its rows
    head = _head(path)
    score = model.score(head.drop(columns=TARGETS), head[TARGETS])
    assert len(predictions) == n_rows
    print(
        json.dumps(
            {
                "fit_rows_per_s": n_rows / fit_s,
                "predict_rows_per_s": n_rows / predict_s,
                "peak_rss_mb": peak,
                "r2": score,
            }
        )
    )


def _head(path):
    import pyarrow.dataset as ds

    return ds.dataset(path, format="parquet").head(100_000).to_pandas()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="1000000,5000000", help="comma-separated row counts")
    parser.add_argument(
        "--worker", nargs=3, metavar=("MODE", "PATH", "ROWS"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.worker:
        mode, path, rows = args.worker
        worker(mode, path, int(rows))
        return
    rows_list = [int(r) for r in args.rows.split(",")]
    print(
        f"{'rows':>10} {'mode':>7} {'fit rows/s':>11} {'predict rows/s':>15} "
        f"{'peak RSS MB':>12} {'R2':>7}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for n_rows in rows_list:
            path = os.path.join(tmp, f"rows{n_rows}")
            write(path, n_rows)
            results = {}
            for mode in ("stream", "memory"):
                out = subprocess.run(
                    [sys.executable, __file__, "--worker", mode, path, str(n_rows)],
                    capture_output=True,
                    text=True,
                )
                if out.returncode:
                    sys.exit(f"the {mode} worker failed:\n{out.stderr}")
                results[mode] = json.loads(out.stdout.strip().splitlines()[-1])
                r = results[mode]
                print(
                    f"{n_rows:>10,} {mode:>7} {r['fit_rows_per_s']:>11,.0f} "
                    f"{r['predict_rows_per_s']:>15,.0f} {r['peak_rss_mb']:>12,.0f} "
                    f"{r['r2']:>7.3f}",
                    flush=True,
                )
            s, m = results["stream"], results["memory"]
            print(
                f"{n_rows:>10,} {'ratio':>7} {s['fit_rows_per_s'] / m['fit_rows_per_s']:>11.2f} "
                f"{s['predict_rows_per_s'] / m['predict_rows_per_s']:>15.2f} "
                f"{s['peak_rss_mb'] / m['peak_rss_mb']:>12.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
