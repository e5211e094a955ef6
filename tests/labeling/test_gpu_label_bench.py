"""benchmarks/gpu_label.py: its timing and report helpers, and a whole --tiny run on the CPU."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
ROWS = ("(a) semantic", "(b) grounded", "(ref) SAM image encoder, SDPA", "(ref) SAM image encoder, original",
        "(ref) box decoding, one call per batch", "(ref) box decoding, one call per image", "(ref) fusion",
        "(ref) Mask2Former + DINO", "(c) pipeline", "(d) sam-amg")


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
    assert "pipeline / models alone" in out
    assert "n/a" not in "".join(line for line in out.splitlines() if "of the bf16 dense peak" not in line)
    result = json.loads((tmp_path / "result.json").read_text())
    assert [r["error"] for r in result["rows"]] == [None] * len(ROWS)
    assert result["pipeline_over_amg"] > 0 and result["encoder_sdpa_over_original"] > 0
    assert result["boxes_batched_over_per_image"] > 0 and result["encoder_flops_per_image"] > 0
    assert result["encoder_peak_share"] is None  # no bf16 peak for a CPU


def test_encoder_flops_are_the_matmuls_and_convolutions_of_the_vit():
    """FlopCounterMode's count for a tiny encoder against the count by hand: patch embedding, per
    block qkv + proj + MLP + attention (windowed blocks on 4 × 4 windows, block 1 global) + the
    decomposed relative positions, and the neck's two convolutions."""
    bench = _bench()
    encoder = bench.build_sam(tiny=True).image_encoder  # 256², patch 16, width 64, depth 2, MLP 2, out 32
    tokens, width, window, out = 16 * 16, 64, 4, 32
    patch = 2 * tokens * width * 3 * 16 * 16
    linear = 2 * tokens * width * (3 * width + width + 2 * 2 * width)
    windowed = 4 * tokens * window**2 * width + 4 * tokens * window * width
    global_ = 4 * tokens * tokens * width + 4 * tokens * 16 * width
    neck = 2 * tokens * width * out + 2 * tokens * out * out * 9
    assert bench.encoder_flops(encoder) == patch + 2 * linear + windowed + global_ + neck


def test_the_bf16_peak_follows_the_card_name():
    bench = _bench()
    assert bench.bf16_peak_tflops("NVIDIA H200") == 989.0
    assert bench.bf16_peak_tflops("NVIDIA H100 80GB HBM3") == 989.0
    assert bench.bf16_peak_tflops("NVIDIA H100 PCIe") == 756.0
    assert bench.bf16_peak_tflops("CPU (2 cores)") is None
