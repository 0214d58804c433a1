"""The speed table: time per epoch and prediction time of every system, side by side.

Then sk_mmoe's architectures against each other and the targets with their
figures. Systems come from ``_systems.SYSTEMS``.
"""

from __future__ import annotations

import time

from _harness import MODEL, epoch_time, fmt, median, paired_ratio, progress, run_worker, table
from _systems import SYSTEMS


def main_table(args, settings, missing):
    """The speed table, a per-system summary and every round's raw results."""
    spec = {
        **MODEL,
        "rows": settings["rows"],
        "epochs": settings["epochs"],
        "batch_size": args.batch_size,
        "one_row_calls": settings["one_row_calls"],
        "predict_repeats": settings["predict_repeats"],
    }
    chosen = [(name, s.label) for name, s in SYSTEMS.items() if s.row and name in args.systems]
    rounds = []
    for r in range(settings["repeats"]):
        results = {}
        for name, _ in chosen:
            if name in missing:
                continue
            started = time.perf_counter()
            results[name] = run_worker({**spec, "system": name}, args.threads)
            took = time.perf_counter() - started
            note = results[name].get("error", f"{took:.0f} s")
            progress(f"  round {r + 1}/{settings['repeats']}: {name} ({note})")
        rounds.append(results)

    clock = args.clock

    def per_epoch(res):
        return epoch_time(res, clock)

    def one(res):
        return res.get("predict_one", {}).get(clock)

    def whole(res):
        return res.get("predict_all", {}).get(clock)

    rows, summary = [], {}
    for name, label in chosen:
        if name in missing:
            rows.append([label, "not installed", "", "", "", "", ""])
            continue
        errors = [res[name]["error"] for res in rounds if "error" in res.get(name, {})]
        if errors:
            rows.append([label, f"failed: {errors[0]}"[:70], "", "", "", "", ""])
            continue
        s_epoch = median([per_epoch(res[name]) for res in rounds])
        p_one = median([one(res[name]) for res in rounds])
        p_all = median([whole(res[name]) for res in rounds])
        summary[name] = {
            "s_per_epoch": s_epoch,
            "x_plain": paired_ratio(rounds, name, "plain", per_epoch),
            "x_sk_mmoe": paired_ratio(rounds, name, "sk_mmoe", per_epoch),
            "x_plain_tuned": paired_ratio(rounds, name, "plain_tuned", per_epoch),
            "predict_one_ms": None if p_one is None else 1e3 * p_one,
            "x_mlp_one": paired_ratio(rounds, name, "mlp", one),
            "predict_all_s": p_all,
            "x_plain_all": paired_ratio(rounds, name, "plain", whole),
        }
        s = summary[name]
        rows.append(
            [
                label,
                fmt(s_epoch, "{:.3f}"),
                fmt(s["x_plain"], "{:.2f}"),
                fmt(s["predict_one_ms"], "{:.3f}"),
                fmt(s["x_mlp_one"], "{:.2f}"),
                fmt(p_all, "{:.3f}"),
                fmt(s["x_plain_all"], "{:.2f}"),
            ]
        )
    header = [
        "system",
        "s / epoch",
        "× plain loop",
        "predict 1 row (ms)",
        "× MLP",
        f"predict {settings['rows']:,} rows (s)",
        "× plain forward",
    ]
    return table(header, rows), summary, rounds


def architecture_table(rounds, summary, clock):
    """Parameters, time per epoch and the paired ratio to the MMoE of each architecture."""
    rows = []
    for name, system in SYSTEMS.items():
        if system.architecture is None or name not in summary:
            continue
        n_parameters = median([res[name].get("n_parameters") for res in rounds if name in res])
        ratio = paired_ratio(rounds, name, "sk_mmoe", lambda res: epoch_time(res, clock))
        summary[name]["x_mmoe"] = ratio
        rows.append(
            [
                system.architecture,
                fmt(n_parameters, "{:,.0f}"),
                fmt(summary[name]["s_per_epoch"], "{:.3f}"),
                fmt(ratio, "{:.2f}"),
            ]
        )
    return table(["architecture", "parameters", "s / epoch", "× MMoE"], rows)


def target_lines(summary):
    """The speed targets, each met or not, with its figure."""
    s = summary.get("sk_mmoe")
    if not s:
        return ["sk_mmoe was not measured"]
    lines = []

    def check(name, value, ok, detail):
        if value is None:
            lines.append(f"- {name}: not measured ({detail})")
        else:
            lines.append(f"- {name}: {'met' if ok(value) else 'NOT met'} ({detail})")

    tuned = s["x_plain_tuned"]
    check(
        "fit per epoch <= 1.10x the plain loop",
        s["x_plain"],
        lambda v: v <= 1.10,
        f"{fmt(s['x_plain'], '{:.2f}', '?')}x"
        + ("" if tuned is None else f"; {tuned:.2f}x the tighter floor"),
    )
    for peer in ("deepctr", "rechub"):
        p = summary.get(peer)
        speedup = p["x_sk_mmoe"] if p else None
        check(
            f">= 3x faster per epoch than {peer}",
            speedup,
            lambda v: v >= 3,
            f"{fmt(speedup, '{:.1f}', '?')}x faster" if p else "peer not measured",
        )
    m = summary.get("mlp")
    ratio = 1 / m["x_sk_mmoe"] if m and m["x_sk_mmoe"] else None
    check(
        "moonshot: per epoch no slower than MLPRegressor",
        ratio,
        lambda v: v <= 1.0,
        f"{fmt(ratio, '{:.2f}', '?')}x MLPRegressor's time",
    )
    ple = summary.get("sk_mmoe_ple", {}).get("x_mmoe")
    check(
        "PLE per epoch <= 1.3x the MMoE at about its parameter count",
        ple,
        lambda v: v <= 1.3,
        f"{fmt(ple, '{:.2f}', '?')}x" if ple is not None else "PLE not measured",
    )
    check(
        "predict 1 row <= 2x MLPRegressor",
        s["x_mlp_one"],
        lambda v: v <= 2.0,
        f"{fmt(s['x_mlp_one'], '{:.2f}', '?')}x",
    )
    check(
        "predict all rows <= 1.3x a plain batched forward",
        s["x_plain_all"],
        lambda v: v <= 1.3,
        f"{fmt(s['x_plain_all'], '{:.2f}', '?')}x",
    )
    return lines


def report(args, settings, missing, out):
    """Print the speed table and, with two architectures or more, the architecture table."""
    text, summary, rounds = main_table(args, settings, missing)
    print()
    print(text, flush=True)
    out["summary"], out["rounds"] = summary, rounds
    architectures = {name for name, s in SYSTEMS.items() if s.architecture}
    if "sk_mmoe" in summary and len(summary.keys() & architectures) > 1:
        print()
        print("sk_mmoe's architectures (same data and training; × MMoE: median per-round ratio):")
        print(architecture_table(rounds, summary, args.clock), flush=True)
    return summary


def print_targets(summary):
    """Print the targets section."""
    print()
    print("Targets:")
    print("\n".join(target_lines(summary)))
