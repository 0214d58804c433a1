"""Scaling: time per epoch of the plain loop and sk_mmoe as experts, tasks and rows grow."""

from __future__ import annotations

import time

from _harness import MODEL, epoch_time, fmt, median, progress, run_worker, table


def scaling_table(args, settings):
    """The scaling table and sk_mmoe's per-round times per configuration."""
    grid = settings["scaling"]
    base = {**MODEL, "rows": settings["rows"]}
    configs = (
        [("experts", e, {**base, "experts": e}) for e in grid["experts"]]
        + [("tasks", t, {**base, "tasks": t}) for t in grid["tasks"]]
        + [("rows", n, {**base, "rows": n}) for n in grid["rows"]]
    )
    specs = [
        {
            **config,
            "epochs": 1 if config["rows"] >= 500_000 else settings["epochs"],
            "batch_size": args.batch_size,
        }
        for _, _, config in configs
    ]
    results = {}  # (axis, value, system) -> [per-epoch time per round]
    for r in range(settings["scaling_repeats"]):
        # one process per system and round runs every configuration in turn
        for system in ("plain", "sk_mmoe"):
            started = time.perf_counter()
            spec = {"system": "scaling", "inner": system, "configs": specs}
            res = run_worker(spec, args.threads)
            note = res.get("error", f"{time.perf_counter() - started:.0f} s")
            progress(f"  scaling round {r + 1}: {system} ({note})")
            per_config = res.get("configs", [None] * len(configs))
            for (axis, value, _), epochs in zip(configs, per_config):
                seconds = None if epochs is None else epoch_time({"epochs": epochs}, args.clock)
                results.setdefault((axis, value, system), []).append(seconds)
    rows = []
    for axis, value, config in configs:
        plain = results[(axis, value, "plain")]
        ours = results[(axis, value, "sk_mmoe")]
        ratios = [a / b for a, b in zip(ours, plain) if a is not None and b]
        per_row = None if median(ours) is None else 1e6 * median(ours) / config["rows"]
        rows.append(
            [
                f"{axis} = {value:,}",
                f"E={config['experts']}, T={config['tasks']}, n={config['rows']:,}",
                fmt(median(plain), "{:.3f}"),
                fmt(median(ours), "{:.3f}"),
                fmt(median(ratios), "{:.2f}"),
                fmt(per_row, "{:.2f}"),
            ]
        )
    header = ["varied", "model / data", "plain s/epoch", "sk_mmoe s/epoch", "ratio", "µs/row"]
    return table(header, rows), {f"{a}={v}": results[(a, v, "sk_mmoe")] for a, v, _ in configs}


def report(args, settings, out):
    text, scaling = scaling_table(args, settings)
    print()
    print(f"Scaling (time per epoch; {settings['scaling_repeats']} rounds, medians):")
    print(text)
    out["scaling"] = scaling
