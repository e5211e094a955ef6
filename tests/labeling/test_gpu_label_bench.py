"""benchmarks/gpu_label.py: its timing and report helpers, and a whole --tiny run on the CPU."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
ROWS = ("(a) semantic", "(b) grounded", "(ref) SAM image encoder", "(ref) fusion", "(ref) Mask2Former + DINO",
        "(c) pipeline", "(d) sam-amg")


def _bench():
    """benchmarks/gpu_label.py as a module (benchmarks/ is a plain folder of scripts)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return importlib.import_module("benchmarks.gpu_label")


def test_measure_warms_up_then_times_at_least_one_call_within_the_budget():
    bench, calls = _bench(), []
    times = bench.measure(lambda: calls.append(1), torch.device("cpu"), budget_s=0.0, warmup=2)
    assert len(calls) == 3 and len(times) == 1  # budget already spent: still one timed call
    times = bench.measure(lambda: calls.append(1), torch.device("cpu"), budget_s=60.0, warmup=0, max_calls=4)
    assert len(times) == 4 and all(t >= 0 for t in times)


def test_a_failing_stage_is_one_line_and_the_report_goes_on(capsys):
    bench = _bench()
    rows: list = []

    def broken():
        raise ValueError("no model\nsecond line")

    bench.stage(rows, "semantic", torch.device("cpu"), broken)
    bench.stage(rows, "pipeline", torch.device("cpu"), lambda: bench.Row("(c) pipeline", 30, 2.0))
    bench.stage(rows, "amg", torch.device("cpu"), lambda: bench.Row("(d) sam-amg", 2, 4.0))
    result = bench.report(rows)
    out = capsys.readouterr().out
    assert "stage 'semantic' failed: ValueError: no model (" in out and "second line" not in out
    assert "FAILED" in out and result["pipeline_over_amg"] == pytest.approx(30.0)
    assert "ratio pipeline / sam-amg: 30.0x" in out
    assert result["hours_8_gpus"]["pipeline"] == pytest.approx(1_281_167 / (15 * 8) / 3600)
    assert f"on 8 GPUs: pipeline {1_281_167 / 120 / 3600:.1f} h" in out


@pytest.mark.slow
def test_tiny_run_prints_every_stage_and_the_ratios(tmp_path, capsys):
    code = _bench().main(["--tiny", "--budget-s", "0.5", "--json", str(tmp_path / "result.json")])
    out = capsys.readouterr().out
    assert code == 0, out
    for row in ROWS:
        line = next(line for line in out.splitlines() if line.startswith(row))
        assert float(line[46:].split()[0]) > 0, line  # images/s
    assert "ratio pipeline / sam-amg:" in out and "on 8 GPUs: pipeline" in out and "goal >= 15 images/s" in out
    assert "pipeline / models alone" in out and "n/a" not in out
    result = json.loads((tmp_path / "result.json").read_text())
    assert [r["error"] for r in result["rows"]] == [None] * len(ROWS)
    assert result["pipeline_over_amg"] > 0
