"""What every report of ``run.py`` shares: workers, busy loops, medians, tables."""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

WORKER = Path(__file__).with_name("_systems.py")

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


def busy_header(levels):
    """Column titles of the busy levels: ``idle``, ``1 busy process``, ``2 busy processes``."""
    return [
        "idle" if level == 0 else f"{level} busy process" + ("es" if level > 1 else "")
        for level in levels
    ]


def progress(message):
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


def fmt(value, spec="{:.3g}", missing=""):
    return missing if value is None else spec.format(value)


def table(header, rows):
    """A markdown table, columns padded to their widest cell."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    lines = [
        "| " + " | ".join(str(c).ljust(w) for c, w in zip(header, widths)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    lines += ["| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |" for r in rows]
    return "\n".join(lines)


def parse_kwargs(text):
    """Keyword arguments written as in a call: ``"n_jobs=1, lr=0.01"`` -> dict.

    Values are Python literals; a bare name is a string (``optimizer=sgd``).
    Raises ``argparse.ArgumentTypeError`` on anything else, so it can be an
    argparse ``type``.
    """
    if not text.strip():
        return {}
    try:
        call = ast.parse(f"f({text})", mode="eval").body
        if call.args or any(kw.arg is None for kw in call.keywords):
            raise ValueError("positional argument")
        return {
            kw.arg: kw.value.id if isinstance(kw.value, ast.Name) else ast.literal_eval(kw.value)
            for kw in call.keywords
        }
    except (SyntaxError, ValueError) as exc:
        raise argparse.ArgumentTypeError(
            f"expected name=value pairs such as 'n_jobs=1, lr=0.01', got {text!r} ({exc})"
        ) from None
