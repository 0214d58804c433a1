"""Task balancing: time per epoch of each balancing method against fixed weights."""

from __future__ import annotations

from _harness import MODEL, epoch_time, fmt, median, progress, run_worker, table

#: label, sk_mmoe settings, kind ("loss": within 5% of fixed weights;
#: "gradient": about one extra backward pass per task)
BALANCING = [
    ("fixed weights (default)", {}, None),
    ('task_weights="uncertainty"', {"task_weights": "uncertainty"}, "loss"),
    ('task_weights="dwa"', {"task_weights": "dwa"}, "loss"),
    ('task_weights="gradnorm"', {"task_weights": "gradnorm"}, "gradient"),
    ('task_weights="pcgrad"', {"task_weights": "pcgrad"}, "gradient"),
    ("track_task_conflict=True", {"track_task_conflict": True}, "gradient"),
]


def balancing_table(args, settings):
    """Time per epoch of each task-balancing method against fixed weights.

    Every round runs each method and two plain loops (the tighter floor, and
    it with one more backward pass per task) in fresh processes. A loss-only
    method's target is 1.05x fixed weights; a per-task-gradient method's
    extra time over fixed weights should be about what one extra backward pass
    per task costs the plain loop (met at 1.25x that cost or less).
    """
    spec = {
        **MODEL,
        "rows": settings["rows"],
        "epochs": settings["epochs"],
        "batch_size": args.batch_size,
        "predict": False,
    }
    runs = [(label, {"system": "sk_mmoe", **extra}) for label, extra, _ in BALANCING]
    runs += [
        ("floor", {"system": "plain_tuned"}),
        ("floor_backward", {"system": "plain_backward_per_task"}),
    ]
    times = {label: [] for label, _ in runs}
    for r in range(settings["balancing_repeats"]):
        for label, extra in runs:
            res = run_worker({**spec, **extra}, args.threads)
            note = res.get("error", "ok")
            progress(f"  balancing round {r + 1}: {label} ({note})")
            times[label].append(epoch_time(res, args.clock) if "epochs" in res else None)

    def ratios(a, b):
        return [x / y for x, y in zip(times[a], times[b]) if x is not None and y]

    fixed = BALANCING[0][0]
    # per round: what T extra backward passes add to the floor, as a share of fixed weights
    budget = [
        (b - f) / s
        for f, b, s in zip(times["floor"], times["floor_backward"], times[fixed])
        if None not in (f, b, s) and s
    ]
    rows, lines = [], []
    for label, _, kind in BALANCING:
        ratio = median(ratios(label, fixed))
        rows.append([label, fmt(median(times[label]), "{:.3f}"), fmt(ratio, "{:.2f}")])
        if kind == "loss":
            ok = ratio is not None and ratio <= 1.05
            lines.append(
                f"- {label} within 5% of fixed weights: {'met' if ok else 'NOT met'} "
                f"({fmt(ratio, '{:.3f}', '?')}x)"
            )
        elif kind == "gradient":
            extra = [x - 1 for x in ratios(label, fixed)]
            per_round = [e / b for e, b in zip(extra, budget) if b > 0]
            share = median(per_round)
            ok = share is not None and share <= 1.25
            lines.append(
                f"- {label} about one extra backward pass per task: "
                f"{'met' if ok else 'NOT met'} (extra time "
                f"{fmt(median(extra), '{:+.0%}', '?')} of fixed weights; "
                f"{MODEL['tasks']} extra backward passes cost the plain loop "
                f"{fmt(median(budget), '{:+.0%}', '?')}: {fmt(share, '{:.2f}', '?')}x that)"
            )
    rows.append(
        [
            f"plain loop + {MODEL['tasks']} backward passes (yardstick)",
            fmt(median(times["floor_backward"]), "{:.3f}"),
            fmt(median(ratios("floor_backward", "floor")), "{:.2f}") + " × floor",
        ]
    )
    header = ["method", "s / epoch", "× fixed weights"]
    return table(header, rows), lines, times


def report(args, settings, out):
    text, lines, times = balancing_table(args, settings)
    print()
    print(
        f"Task balancing (time per epoch, {settings['balancing_repeats']} rounds, "
        "medians of per-round ratios):"
    )
    print(text)
    print("\n".join(lines), flush=True)
    out["balancing"] = times
