"""The main job: ``python -m sk_mmoe`` (also the ``sk-mmoe`` console script)."""

import contextlib
import io
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from sk_mmoe.__main__ import (
    MODELS,
    Setup,
    count_parameters,
    differences_table,
    main,
    markdown_table,
    model_params,
    summarize,
)

pytest.importorskip("matplotlib")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """One tiny run of the main job, shared by the tests of this module."""
    output = tmp_path_factory.mktemp("main") / "figure.png"
    threads = torch.get_num_threads()
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        status = main(["--quick", "--seeds", "2", "--output", str(output)])
    return {
        "status": status,
        "stdout": stdout.getvalue(),
        "stderr": stderr.getvalue(),
        "output": output,
        "threads_before": threads,
    }


def test_prints_a_markdown_table(quick_run):
    assert quick_run["status"] == 0
    out = quick_run["stdout"]
    assert "| model | parameters | p = 0.5 | p = 0.9 | p = 1.0 |" in out
    for name in MODELS:
        row = re.search(rf"^\| {re.escape(name)} \| ([\d,]+) \|(.*)\|$", out, re.MULTILINE)
        assert row, f"no table row for {name}:\n{out}"
        cells = row.group(2).split("|")
        assert len(cells) == 3
        for cell in cells:
            # "0.1234 ± 0.0100", the best of each column in bold
            assert re.fullmatch(r"\s*(\*\*)?\d+\.\d{4} ± \d+\.\d{4}(\*\*)?\s*", cell), cell
    # exactly one bold (lowest) cell per correlation column
    assert out.count("**") == 2 * 3
    assert "lowest mean test MSE: p = 0.5: " in out


def test_prints_paired_differences_with_intervals(quick_run):
    out = quick_run["stdout"]
    assert "| paired difference | p = 0.5 | p = 0.9 | p = 1.0 |" in out
    for pair in ("MMoE - Shared-Bottom", "MMoE - MoE", "PLE - MMoE"):
        row = re.search(rf"^\| {re.escape(pair)} \|(.*)\|$", out, re.MULTILINE)
        assert row, f"no row for {pair}:\n{out}"
        for cell in row.group(1).split("|"):
            # "+0.0123 [-0.0045, +0.0291]": mean and 95% interval over the seeds
            number = r"[+-]\d+\.\d{4}"
            assert re.fullmatch(rf"\s*{number} \[{number}, {number}\]\s*", cell), cell


def test_prints_comparable_parameter_counts(quick_run):
    counts = {
        name: int(n.replace(",", ""))
        for name, n in re.findall(r"^  (\S+)\s+([\d,]+) parameters", quick_run["stdout"], re.M)
    }
    assert set(counts) == set(MODELS)
    assert abs(counts["Shared-Bottom"] - counts["MMoE"]) / counts["MMoE"] < 0.05
    assert abs(counts["PLE"] - counts["MMoE"]) / counts["MMoE"] < 0.05


def test_writes_the_figure(quick_run):
    path = quick_run["output"]
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 10_000
    assert f"figure written to {path}" in quick_run["stdout"]


def test_shows_a_tqdm_progress_bar_and_leaves_threads_alone(quick_run):
    # 3 correlations x 2 seeds x 4 models
    assert "24/24" in quick_run["stderr"]
    assert torch.get_num_threads() == quick_run["threads_before"]


def test_help():
    result = subprocess.run(
        [sys.executable, "-m", "sk_mmoe", "--help"], capture_output=True, text=True, check=True
    )
    for option in ("--full", "--quick", "--output", "--seeds", "--epochs"):
        assert option in result.stdout


def test_shared_bottom_width_matches_mmoe_parameters():
    for setup in (Setup(), Setup.paper()):
        params = model_params(setup)
        counts = {name: count_parameters(params[name], setup.n_features) for name in MODELS}
        assert abs(counts["Shared-Bottom"] - counts["MMoE"]) / counts["MMoE"] < 0.01
        assert abs(counts["PLE"] - counts["MMoE"]) / counts["MMoE"] < 0.05
        assert params["MoE"]["expert_units"] == params["MMoE"]["expert_units"]
        assert params["PLE"]["architecture"] == "ple" and params["PLE"]["n_levels"] == 2
    # the paper's sizes give about the paper's 113-unit bottom
    assert 100 < model_params(Setup.paper())["Shared-Bottom"]["expert_units"][0] < 140


def test_summary_and_table_from_records():
    records = [
        dict(model=m, correlation=p, seed=s, test_mse=mse)
        for p, table in {
            0.5: {"Shared-Bottom": [3.0, 4.0], "MoE": [2.0, 2.0], "MMoE": [1.0, 3.0]},
            1.0: {"Shared-Bottom": [5.0, 5.0], "MoE": [1.0, 1.0], "MMoE": [2.0, 2.0]},
        }.items()
        for m, values in table.items()
        for s, mse in enumerate(values)
    ]
    summary = summarize(records)
    assert summary["MMoE"][0.5] == pytest.approx((2.0, 1.0))
    assert summary["wins"][0.5] == {"Shared-Bottom": 0, "MoE": 1, "MMoE": 1}
    assert summary["wins"][1.0] == {"Shared-Bottom": 0, "MoE": 2, "MMoE": 0}
    table = markdown_table(summary).splitlines()
    assert table[0] == "| model | p = 0.5 | p = 1.0 |"
    assert table[2] == "| Shared-Bottom | 3.5000 ± 0.5000 | 5.0000 ± 0.0000 |"
    assert table[3] == "| MoE | **2.0000 ± 0.0000** | **1.0000 ± 0.0000** |"
    assert table[4] == "| MMoE | **2.0000 ± 1.0000** | 2.0000 ± 0.0000 |"
    one_seed = [r for r in records if r["seed"] == 0]
    assert np.isnan(summarize(one_seed)["Shared-Bottom"][0.5][1])
    assert "3.0000 |" in markdown_table(summarize(one_seed))  # no "± nan"


def test_paired_differences_are_per_seed_with_a_t_interval():
    mse = {"Shared-Bottom": [2.0, 9.0, 4.0], "MMoE": [1.0, 7.0, 1.0], "PLE": [1.5, 7.0, 0.5]}
    records = [
        dict(model=m, correlation=0.5, seed=s, test_mse=v)
        for m, values in mse.items()
        for s, v in enumerate(values)
    ]
    summary = summarize(records)
    # MMoE - Shared-Bottom per seed: -1, -2, -3: mean -2, sd 1, t(0.975, 2 df) = 4.3027
    half = 4.302652729911275 / np.sqrt(3)
    mean, low, high = summary["differences"][("MMoE", "Shared-Bottom")][0.5]
    assert (mean, low, high) == pytest.approx((-2.0, -2.0 - half, -2.0 + half))
    # PLE - MMoE per seed: +0.5, 0, -0.5
    assert summary["differences"][("PLE", "MMoE")][0.5][0] == pytest.approx(0.0)
    assert ("MMoE", "MoE") not in summary["differences"]  # no MoE in the records
    table = differences_table(summary).splitlines()
    assert table[0] == "| paired difference | p = 0.5 |"
    assert table[2] == f"| MMoE - Shared-Bottom | -2.0000 [{-2 - half:+.4f}, {-2 + half:+.4f}] |"


def test_default_output_is_in_the_working_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["--quick", "--no-progress", "--correlations", "0.5", "1.0"]) == 0
    assert (tmp_path / "mmoe_correlation.png").is_file()
    out = capsys.readouterr().out
    assert "| model | parameters | p = 0.5 | p = 1.0 |" in out


@pytest.mark.parametrize(
    "argv", [["--seeds", "0"], ["--epochs", "-1"], ["--full", "--quick"], ["--bogus"]]
)
def test_bad_arguments_exit_with_usage(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_without_matplotlib_prints_the_table_and_fails(tmp_path, monkeypatch, capsys):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name == "matplotlib" else find_spec(name, *args),
    )
    output = tmp_path / "figure.png"
    assert main(["--quick", "--no-progress", "--output", str(output)]) == 1
    captured = capsys.readouterr()
    assert "| MMoE |" in captured.out
    assert "matplotlib is not installed" in captured.err
    assert not output.exists()
