"""Serving latency: one-row and 1,000-row prediction, idle and beside busy processes."""

from __future__ import annotations

import importlib.util
import os

from _harness import MODEL, busy_header, busy_processes, fmt, median, progress, run_worker, table
from _serving import SERVING

#: rows of the second latency table
LATENCY_ROWS = 1000


def latency_tables(args, settings):
    """One-row and 1,000-row prediction latency, idle and beside busy processes.

    Per round and busy level, every serving system runs in a fresh process
    (default threads) while that many busy loops run; ratios to MLPRegressor
    are the median of per-round ratios.
    """
    levels = args.busy
    spec = {
        **MODEL,
        "system": "latency",
        "rows": 500 if settings["latency_repeats"] == 1 else 2000,
        "epochs": 1,
        "batch_size": args.batch_size,
        "one_row_calls": settings["one_row_calls"],
        "block_calls": settings["block_calls"],
        "latency_rows": LATENCY_ROWS,
    }
    systems = [
        (serving.label, serve)
        for serve, serving in SERVING.items()
        if serving.requires is None or importlib.util.find_spec(serving.requires) is not None
    ]
    times = {}  # (serve, level, key) -> [wall seconds per round]
    for r in range(settings["latency_repeats"]):
        for level in levels:
            with busy_processes(level):
                for _, serve in systems:
                    res = run_worker({**spec, "serve": serve}, None)
                    note = res.get("error", "ok")
                    progress(f"  latency round {r + 1}, {level} busy: {serve} ({note})")
                    for key in ("one", "block"):
                        value = res[key]["wall"] if key in res else None
                        times.setdefault((serve, level, key), []).append(value)

    def ratio(serve, level, key):
        pairs = zip(times[(serve, level, key)], times[("mlp", level, key)])
        return median([a / b for a, b in pairs if a is not None and b])

    tables, summary = [], {}
    for key, title in (("one", "1 row"), ("block", f"{LATENCY_ROWS:,} rows")):
        rows = []
        for label, serve in systems:
            row = [label]
            for level in levels:
                ms = median(times[(serve, level, key)])
                x = ratio(serve, level, key)
                summary[f"{serve}_{key}_busy{level}"] = {
                    "ms": None if ms is None else 1e3 * ms,
                    "x_mlp": x,
                }
                row.append(
                    "failed" if ms is None else f"{1e3 * ms:.3f} ({fmt(x, '{:.2f}', '?')}x)"
                )
            rows.append(row)
        header = [f"predict {title}: ms (× MLP)", *busy_header(levels)]
        tables.append(table(header, rows))
    lines = []
    for level in levels:
        where = "idle" if level == 0 else f"{level} busy"
        native = summary.get(f"native_one_busy{level}", {}).get("x_mlp")
        lines.append(
            f"- native predict 1 row <= 2x MLPRegressor ({where}): "
            f"{'met' if native is not None and native <= 2 else 'NOT met'} "
            f"({fmt(native, '{:.2f}', '?')}x)"
        )
        onnx = summary.get(f"onnxruntime_one_busy{level}", {}).get("x_mlp")
        if onnx is not None:
            lines.append(
                f"- onnxruntime 1 row <= MLPRegressor ({where}): "
                f"{'met' if onnx <= 1 else 'NOT met'} ({onnx:.2f}x)"
            )
    return tables, lines, {"summary": summary, "rounds": {str(k): v for k, v in times.items()}}


def report(args, settings, out):
    tables, lines, record = latency_tables(args, settings)
    print()
    print(
        f"Serving latency (default threads, {os.cpu_count()} cores, "
        f"{settings['latency_repeats']} rounds; median ms; × MLP: median per-round ratio):"
    )
    for text in tables:
        print(text)
        print()
    print("\n".join(lines), flush=True)
    out["latency"] = record
