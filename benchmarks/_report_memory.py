"""Predict memory: the peak RSS growth of ``predict`` on many float64 rows, against a budget."""

from __future__ import annotations

from _harness import MODEL, run_worker


def memory_line(args, settings):
    """One line: the growth, its budget, met or not; and the worker's result."""
    spec = {**MODEL, "system": "predict_memory", "rows": settings["memory_rows"]}
    res = run_worker(spec, args.threads)
    if "error" in res:
        return f"predict memory: failed: {res['error']}", res
    batch_mb = 4096 * MODEL["features"] * 8 / 2**20
    budget = 3 * res["output_mb"] + 4 * batch_mb
    verdict = "met" if res["extra_mb"] <= budget else "NOT met"
    note = "" if res["peak_reset"] else " (peak counter not resettable: includes setup)"
    line = (
        f"predict on {settings['memory_rows']:,} float64 rows: X {res['X_mb']:.0f} MB, "
        f"output {res['output_mb']:.1f} MB, peak RSS growth {res['extra_mb']:.1f} MB "
        f"(budget 3 x output + 4 batches of 4096 float64 rows = {budget:.1f} MB): "
        f"{verdict}{note}"
    )
    return line, res


def report(args, settings, out):
    line, res = memory_line(args, settings)
    print()
    print(line)
    out["memory"] = res
