"""Fit beside busy processes: a default ``MMoERegressor`` fit, idle and with busy neighbours.

Every fit runs in a fresh process with the libraries' default threads (as a
user's fit would; the serving-latency tables do the same), round after
round; within a round the idle fit and the fits beside 1, 2, ... busy-loop
processes run back to back, so each busy/idle ratio is paired in time.
``--fit-params`` adds estimator parameters (e.g. ``n_jobs=1``); given more
than once, each setting is one more row, timed in the same rounds.
"""

from __future__ import annotations

import os

from _harness import MODEL, busy_header, busy_processes, fmt, median, progress, run_worker, table


def fit_label(fit, extra_text):
    """``"20,000 x 50, max_epochs=3"``: the data and the parameters that are not defaults."""
    params = {k: v for k, v in fit["params"].items() if k != "random_state"}
    label = f"{fit['rows']:,} x {fit['features']}"
    label += "".join(f", {k}={v!r}" for k, v in params.items())
    return label + (f" + {extra_text}" if extra_text else "")


def fit_busy_table(args, settings):
    """The table (wall seconds and × idle per busy level), error lines, raw times.

    ``settings["fit_busy"]`` lists the fits (``rows``, ``features``,
    ``params``); ``args.fit_params`` the settings, ``(text, kwargs)`` pairs,
    each added to every fit's parameters.
    """
    levels = [0] + [level for level in args.busy if level != 0]  # idle: every ratio's base
    runs = [
        (fit_label(fit, text), {**fit, "params": {**fit["params"], **extra}})
        for fit in settings["fit_busy"]
        for text, extra in args.fit_params
    ]
    times = {}  # (label, level) -> [wall seconds per round]
    errors = {}  # label -> the first error
    for r in range(settings["fit_busy_repeats"]):
        for level in levels:
            with busy_processes(level):
                for label, fit in runs:
                    spec = {"system": "default_fit", "tasks": MODEL["tasks"], **fit}
                    res = run_worker(spec, None)
                    if "error" in res:
                        errors.setdefault(label, res["error"])
                    note = res.get("error", f"{res['fit']['wall']:.2f} s" if "fit" in res else "")
                    progress(f"  fit round {r + 1}, {level} busy: {label} ({note})")
                    wall = res["fit"]["wall"] if "fit" in res else None
                    times.setdefault((label, level), []).append(wall)

    rows = []
    for label, _ in runs:
        row = [label]
        idle = times[(label, 0)]
        for level in levels:
            seconds = median(times[(label, level)])
            if seconds is None:
                row.append("failed")
            elif level == 0:
                row.append(f"{seconds:.2f}")
            else:
                pairs = zip(times[(label, level)], idle)
                ratio = median([a / b for a, b in pairs if a is not None and b])
                row.append(f"{seconds:.2f} ({fmt(ratio, '{:.2f}', '?')}x)")
        rows.append(row)
    header = ["fit: wall s (× idle)", *busy_header(levels)]
    lines = [f"- {label}: failed: {error}" for label, error in errors.items()]
    record = {f"{label} | {level} busy": v for (label, level), v in times.items()}
    return table(header, rows), lines, record


def report(args, settings, out):
    text, lines, record = fit_busy_table(args, settings)
    print()
    print(
        f"Fit beside busy processes (MMoERegressor defaults but the settings shown, "
        f"{MODEL['tasks']} tasks; default threads, {os.cpu_count()} cores, "
        f"{settings['fit_busy_repeats']} rounds; median wall s; "
        "× idle: median per-round ratio):"
    )
    print(text)
    if lines:
        print("\n".join(lines))
    out["fit_busy"] = record
