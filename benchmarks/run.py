"""Speed and memory of sk_mmoe next to a plain PyTorch loop and its peers.

    python benchmarks/run.py            # the full run (about 10 minutes)
    python benchmarks/run.py --quick    # a smoke test (under a minute)

Each measurement runs in a fresh Python process (``_systems.py``); the
systems are run in turn, round after round (``--repeats``), so that a slow
spell of a shared machine hits them all alike. Per round, a system's time
per epoch is the median over its epochs; tables show the median over rounds,
and ratios are the median of the per-round ratios. Nothing is installed
here: DeepCTR-Torch and torch-rechub are timed when they are importable and
shown as "not installed" otherwise (see README.md for installing them).

``--threads`` (default 1) sets ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS`` and
``OPENBLAS_NUM_THREADS`` for every worker, so torch and scikit-learn's BLAS
use the same number of threads -- except in the serving-latency tables, whose
workers run with every library's default threads (those variables removed),
as a server started without tuning would; ``--busy`` (default ``0,1,2``) lists
how many busy-loop processes run beside them, one table column per level.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

WORKER = Path(__file__).with_name("_systems.py")

#: label, worker name, importable module needed (None: always available)
SYSTEMS = [
    ("plain PyTorch loop (same module, randperm slicing)", "plain", None),
    ("same loop, index_select + fused Adam (tighter floor)", "plain_tuned", None),
    ("same loop with torch DataLoader", "plain_loader", None),
    ("skorch NeuralNetRegressor, same module, defaults", "skorch", None),
    ("sk_mmoe MMoERegressor", "sk_mmoe", None),
    ("sk_mmoe CGC (4 shared + 2 per task experts)", "sk_mmoe_cgc", None),
    ("sk_mmoe PLE (2 levels of 3 shared + 2 per task)", "sk_mmoe_ple", None),
    ("DeepCTR-Torch MMOE", "deepctr", "deepctr_torch"),
    ("torch-rechub MMOE", "rechub", "torch_rechub"),
    ("sklearn MLPRegressor (128, 16)", "mlp", None),
]

FULL = {
    "rows": 100_000,
    "epochs": 3,
    "repeats": 5,
    "one_row_calls": 300,
    "predict_repeats": 3,
    "memory_rows": 1_000_000,
    "scaling_repeats": 3,
    "balancing_repeats": 5,
    "latency_repeats": 3,
    "block_calls": 50,
    "busy": "0,1,2",
    "scaling": {
        "experts": [1, 4, 16, 64],
        "tasks": [1, 4, 16],
        "rows": [10_000, 100_000, 1_000_000],
    },
}
QUICK = {
    "rows": 5_000,
    "epochs": 2,
    "repeats": 1,
    "one_row_calls": 50,
    "predict_repeats": 1,
    "memory_rows": 50_000,
    "scaling_repeats": 1,
    "balancing_repeats": 1,
    "latency_repeats": 1,
    "block_calls": 5,
    "busy": "0",
    "scaling": {"experts": [1, 8], "tasks": [1, 4], "rows": [2_000, 5_000]},
}
#: the paper's model: d=100, 8 experts of 16 units, towers of 8, 2 tasks
MODEL = {"features": 100, "tasks": 2, "experts": 8, "expert_units": 16, "tower_units": 8}


THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def run_worker(spec, threads):
    """One measurement in a fresh process; ``threads`` None: the libraries' defaults."""
    env = dict(os.environ)
    for name in THREAD_VARIABLES:
        if threads:
            env[name] = str(threads)
        elif threads is None:
            env.pop(name, None)
    proc = subprocess.run(
        [sys.executable, str(WORKER), json.dumps(spec)],
        capture_output=True,
        text=True,
        env=env,
    )
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        return {"error": lines[-1] if lines else f"exit code {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _progress(message):
    print(message, file=sys.stderr, flush=True)


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def epoch_time(result, clock):
    return median([e[clock] for e in result["epochs"]]) if "epochs" in result else None


def paired_ratio(rounds, a, b, key):
    """Median over rounds of ``key(a) / key(b)``."""
    ratios = []
    for results in rounds:
        x, y = key(results.get(a, {})), key(results.get(b, {}))
        if x is not None and y:
            ratios.append(x / y)
    return median(ratios)


# ------------------------------------------------------------ formatting
def fmt(value, spec="{:.3g}", missing=""):
    return missing if value is None else spec.format(value)


def table(header, rows):
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    lines = [
        "| " + " | ".join(str(c).ljust(w) for c, w in zip(header, widths)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    lines += ["| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |" for r in rows]
    return "\n".join(lines)


# ------------------------------------------------------------ main table
def main_table(args, settings, missing):
    spec = {
        **MODEL,
        "rows": settings["rows"],
        "epochs": settings["epochs"],
        "batch_size": args.batch_size,
        "one_row_calls": settings["one_row_calls"],
        "predict_repeats": settings["predict_repeats"],
    }
    chosen = [s for s in SYSTEMS if s[1] in args.systems]
    rounds = []
    for r in range(settings["repeats"]):
        results = {}
        for _, name, _ in chosen:
            if name in missing:
                continue
            started = time.perf_counter()
            results[name] = run_worker({**spec, "system": name}, args.threads)
            took = time.perf_counter() - started
            note = results[name].get("error", f"{took:.0f} s")
            _progress(f"  round {r + 1}/{settings['repeats']}: {name} ({note})")
        rounds.append(results)

    clock = args.clock

    def per_epoch(res):
        return epoch_time(res, clock)

    def one(res):
        return res.get("predict_one", {}).get(clock)

    def whole(res):
        return res.get("predict_all", {}).get(clock)

    rows, summary = [], {}
    for label, name, _ in chosen:
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


# -------------------------------------------------------------- balancing
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
            _progress(f"  balancing round {r + 1}: {label} ({note})")
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


# ---------------------------------------------------------- architectures
#: sk_mmoe's architectures side by side, each as a ratio to the MMoE
ARCHITECTURE_ROWS = [("MMoE", "sk_mmoe"), ("CGC", "sk_mmoe_cgc"), ("PLE", "sk_mmoe_ple")]


def architecture_table(rounds, summary, clock):
    """Parameters, time per epoch and the paired ratio to the MMoE of each architecture."""
    rows = []
    for label, name in ARCHITECTURE_ROWS:
        if name not in summary:
            continue
        n_parameters = median([res[name].get("n_parameters") for res in rounds if name in res])
        ratio = paired_ratio(rounds, name, "sk_mmoe", lambda res: epoch_time(res, clock))
        summary[name]["x_mmoe"] = ratio
        rows.append(
            [
                label,
                fmt(n_parameters, "{:,.0f}"),
                fmt(summary[name]["s_per_epoch"], "{:.3f}"),
                fmt(ratio, "{:.2f}"),
            ]
        )
    return table(["architecture", "parameters", "s / epoch", "× MMoE"], rows)


# ---------------------------------------------------------------- latency
#: label, serving system of ``_systems.latency``, importable module needed
SERVING = [
    ("sk_mmoe predict (native)", "native", None),
    ("sk_mmoe through onnxruntime", "onnxruntime", "onnxruntime"),
    ("sklearn MLPRegressor (128, 16)", "mlp", None),
    ("plain PyTorch forward, same module", "torch", None),
]
#: rows of the second latency table
LATENCY_ROWS = 1000


@contextlib.contextmanager
def busy_processes(n):
    """``n`` processes spinning a Python loop (each keeps one core busy) meanwhile."""
    # each spins until its parent (this process) is gone, even if this one is killed
    loop = "import os\nparent = os.getppid()\nwhile os.getppid() == parent: pass"
    procs = [subprocess.Popen([sys.executable, "-c", loop]) for _ in range(n)]
    try:
        time.sleep(0.5 if n else 0)  # let them start spinning
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


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
        (label, serve)
        for label, serve, module in SERVING
        if module is None or importlib.util.find_spec(module) is not None
    ]
    times = {}  # (serve, level, key) -> [wall seconds per round]
    for r in range(settings["latency_repeats"]):
        for level in levels:
            with busy_processes(level):
                for _, serve in systems:
                    res = run_worker({**spec, "serve": serve}, None)
                    note = res.get("error", "ok")
                    _progress(f"  latency round {r + 1}, {level} busy: {serve} ({note})")
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
        header = [f"predict {title}: ms (× MLP)"] + [
            "idle" if level == 0 else f"{level} busy process" + ("es" if level > 1 else "")
            for level in levels
        ]
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


def latency(args, settings, out):
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


# ---------------------------------------------------------------- scaling
def scaling_table(args, settings):
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
            _progress(f"  scaling round {r + 1}: {system} ({note})")
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


# ----------------------------------------------------------------- memory
def memory_line(args, settings):
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


# ---------------------------------------------------------------- targets
def target_lines(summary):
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


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one round")
    parser.add_argument("--rows", type=int, help="training rows of the main table")
    parser.add_argument("--epochs", type=int, help="epochs per fit")
    parser.add_argument("--repeats", type=int, help="rounds of the main table")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1, help="0: leave the defaults")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall")
    parser.add_argument(
        "--systems",
        default=",".join(name for _, name, _ in SYSTEMS),
        help="comma-separated subset of: " + ", ".join(name for _, name, _ in SYSTEMS),
    )
    parser.add_argument(
        "--treat-as-missing",
        default="",
        help="comma-separated peers to report as not installed (for testing)",
    )
    parser.add_argument("--no-scaling", action="store_true")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--no-balancing", action="store_true")
    parser.add_argument(
        "--only-balancing", action="store_true", help="run the task-balancing table alone"
    )
    parser.add_argument("--no-latency", action="store_true")
    parser.add_argument(
        "--only-latency", action="store_true", help="run the serving-latency tables alone"
    )
    parser.add_argument(
        "--busy",
        help="comma-separated numbers of busy-loop processes beside the latency "
        "measurements (default 0,1,2; --quick: 0)",
    )
    parser.add_argument("--json", help="also write every measurement to this file")
    args = parser.parse_args(argv)
    args.systems = set(args.systems.split(","))
    if args.busy is not None:
        args.busy = [int(n) for n in args.busy.split(",")]
    unknown = args.systems - {name for _, name, _ in SYSTEMS}
    if unknown:
        parser.error(f"unknown systems: {', '.join(sorted(unknown))}")
    return args


def balancing(args, settings, out):
    text, lines, times = balancing_table(args, settings)
    print()
    print(
        f"Task balancing (time per epoch, {settings['balancing_repeats']} rounds, "
        "medians of per-round ratios):"
    )
    print(text)
    print("\n".join(lines), flush=True)
    out["balancing"] = times
    if args.json and args.only_balancing:
        Path(args.json).write_text(json.dumps(out, indent=1))


def main(argv=None):
    args = parse_args(argv)
    settings = dict(QUICK if args.quick else FULL)
    if args.busy is None:
        args.busy = [int(n) for n in settings["busy"].split(",")]
    for key in ("rows", "epochs", "repeats"):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    pretend = set(filter(None, args.treat_as_missing.split(",")))
    missing = {
        name
        for _, name, module in SYSTEMS
        if module and (name in pretend or importlib.util.find_spec(module) is None)
    }

    import platform

    import numpy
    import sklearn
    import skorch
    import torch

    print(
        f"sk_mmoe benchmark: d={MODEL['features']}, {MODEL['experts']} experts x "
        f"{MODEL['expert_units']} units, towers of {MODEL['tower_units']}, "
        f"{MODEL['tasks']} regression tasks, Adam lr 1e-3, batch {args.batch_size}, "
        f"{settings['rows']:,} rows, {settings['epochs']} epochs x {settings['repeats']} rounds"
    )
    print(
        f"torch {torch.__version__}, skorch {skorch.__version__}, scikit-learn "
        f"{sklearn.__version__}, numpy {numpy.__version__}, Python {platform.python_version()}, "
        f"{os.cpu_count()} cores, threads per worker: {args.threads or 'default'}, "
        f"clock: {args.clock}, CUDA: {'available' if torch.cuda.is_available() else 'none'}"
    )
    out = {"settings": settings, "args": {k: str(v) for k, v in vars(args).items()}}

    sys.stdout.flush()
    if args.only_balancing:
        balancing(args, settings, out)
        return
    if args.only_latency:
        latency(args, settings, out)
        if args.json:
            Path(args.json).write_text(json.dumps(out, indent=1))
        return
    text, summary, rounds = main_table(args, settings, missing)
    print()
    print(text, flush=True)
    out["summary"], out["rounds"] = summary, rounds
    if "sk_mmoe" in summary and len(summary.keys() & dict(ARCHITECTURE_ROWS).values()) > 1:
        print()
        print("sk_mmoe's architectures (same data and training; × MMoE: median per-round ratio):")
        print(architecture_table(rounds, summary, args.clock), flush=True)

    if not args.no_memory:
        line, res = memory_line(args, settings)
        print()
        print(line)
        out["memory"] = res

    print()
    print("Targets:")
    print("\n".join(target_lines(summary)))

    if not args.no_latency:
        latency(args, settings, out)

    if not args.no_balancing and "sk_mmoe" in args.systems:
        balancing(args, settings, out)

    if not args.no_scaling and {"plain", "sk_mmoe"} <= args.systems:
        text, scaling = scaling_table(args, settings)
        print()
        print(f"Scaling (time per epoch; {settings['scaling_repeats']} rounds, medians):")
        print(text)
        out["scaling"] = scaling

    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
