"""benchmarks/gpu_label.py: its timing and report helpers, and a whole --tiny run on the CPU."""

from __future__ import annotations

import json
import sys

import pytest
import torch

from .benchmark_modules import ROOT, benchmark_module

ROWS = (
    "(a) semantic",
    "(b) grounded",
    "(ref) SAM image encoder, SDPA",
    "(ref) SAM image encoder, original",
    "(ref) box decoding, one call per batch",
    "(ref) box decoding, one call per image",
    "(ref) fusion",
    "(ref) Mask2Former + DINO",
    "(c) pipeline",
    "(d) sam-amg",
)


def test_measure_warms_up_then_times_at_least_one_call_within_the_budget():
    bench, calls = benchmark_module("gpu_label"), []
    times = bench.measure(lambda: calls.append(1), torch.device("cpu"), budget_s=0.0, warmup=2)
    assert len(calls) == 3 and len(times) == 1  # budget already spent: still one timed call
    times = bench.measure(lambda: calls.append(1), torch.device("cpu"), budget_s=60.0, warmup=0, max_calls=4)
    assert len(times) == 4 and all(t >= 0 for t in times)


def test_a_failing_stage_is_one_line_and_the_report_goes_on(capsys):
    bench = benchmark_module("gpu_label")
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
    assert "goal >= 15 images/s per GPU end to end (< 3 h on 8 GPUs): met" in out and result["goal"] == "met"
    assert "smoke run" not in out


def test_a_smoke_run_judges_no_goal(capsys):
    """--tiny models measure nothing: the report says so instead of judging the goal."""
    bench = benchmark_module("gpu_label")
    rows = [bench.Row("(c) pipeline", 30, 2.0), bench.Row("(d) sam-amg", 2, 4.0)]
    result = bench.report(rows, smoke=True)
    out = capsys.readouterr().out
    assert bench.SMOKE_NOTE in out and "no goal judged" in out
    assert "goal >=" not in out and result["goal"] is None
    assert "ratio pipeline / sam-amg: 30.0x" in out  # the rest of the report as before


def test_encoder_flops_are_the_matmuls_and_convolutions_of_the_vit():
    """FlopCounterMode's count for a tiny encoder against the count by hand: patch embedding, per
    block qkv + proj + MLP + attention (windowed blocks on 4 × 4 windows, block 1 global) + the
    decomposed relative positions, and the neck's two convolutions."""
    bench = benchmark_module("gpu_label")
    encoder = bench.build_sam(tiny=True).image_encoder  # 256², patch 16, width 64, depth 2, MLP 2, out 32
    tokens, width, window, out = 16 * 16, 64, 4, 32
    patch = 2 * tokens * width * 3 * 16 * 16
    linear = 2 * tokens * width * (3 * width + width + 2 * 2 * width)
    windowed = 4 * tokens * window**2 * width + 4 * tokens * window * width
    global_ = 4 * tokens * tokens * width + 4 * tokens * 16 * width
    neck = 2 * tokens * width * out + 2 * tokens * out * out * 9
    assert bench.encoder_flops(encoder) == patch + 2 * linear + windowed + global_ + neck


def test_the_bf16_peak_follows_the_card_name():
    bench = benchmark_module("gpu_label")
    assert bench.bf16_peak_tflops("NVIDIA H200") == 989.0
    assert bench.bf16_peak_tflops("NVIDIA H100 80GB HBM3") == 989.0
    assert bench.bf16_peak_tflops("NVIDIA H100 PCIe") == 756.0
    assert bench.bf16_peak_tflops("CPU (2 cores)") is None


def test_the_table_has_every_row_and_says_why_a_figure_is_missing(tmp_path):
    table = benchmark_module("gpu_table")
    label = {
        "rows": [
            {"name": "(c) pipeline", "images_s": 6.0, "error": None},
            {"name": "(d) sam-amg", "images_s": 2.0, "error": None},
            {"name": "(ref) SAM image encoder, SDPA (default)", "images_s": 30.0, "error": None},
        ],
        "pipeline_over_amg": 3.0,
        "encoder_flops_per_image": 3e12,
        "encoder_tflops": 90.0,
        "bf16_peak_tflops": 989.0,
        "encoder_peak_share": 90 / 989,
        "card": "NVIDIA H200",
    }
    (tmp_path / "label.json").write_text(json.dumps(label))
    modes = {"mae": {"step_s": 0.1, "images_s": 2560.0}, "c2fmae": {"step_s": 0.125, "images_s": 2048.0}}
    (tmp_path / "train_cpu.json").write_text(
        json.dumps({"modes": modes, "loader": {"images_s": 3072.0, "workers": 15}})
    )
    (tmp_path / "train_gpu.skipped").write_text("no --decode option\n")
    lines = table.table(tmp_path).splitlines()
    rows = {name: next(line for line in lines if line.startswith(name)) for name, _ in table.ROWS}
    assert "3.00x" in rows["pipeline / SAM AMG loop"] and "(c) 6.0 vs (d) 2.0" in rows["pipeline / SAM AMG loop"]
    assert "9.1%" in rows["SAM encoder: achieved / bf16 dense peak"]
    assert "1.50x" in rows["loader, decode cpu / c2fmae step"] and "1.25x" in rows["c2fmae step / mae step"]
    assert (
        "n/a" in rows["loader, decode gpu / c2fmae step"]
        and "no --decode option" in rows["loader, decode gpu / c2fmae step"]
    )
    assert (
        "n/a" in rows["SAM encoder: SDPA / original attention"]
        and "not run" in rows["SAM encoder: SDPA / original attention"]
    )
    (tmp_path / "label.json").unlink()
    assert "no label.json" in next(
        line for line in table.table(tmp_path).splitlines() if line.startswith("pipeline / SAM")
    )


@pytest.mark.slow
def test_gpu_all_cpu_smoke_prints_one_table_with_every_row(tmp_path):
    """benchmarks/gpu_all.sh --cpu-smoke: the whole script at tiny sizes on the CPU."""
    import os
    import subprocess

    table = benchmark_module("gpu_table")
    done = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_all.sh"), "--cpu-smoke", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHON": sys.executable},
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    printed = done.stdout.split("=== gpu_all:")[1].splitlines()
    assert sum(line.startswith("figure ") for line in printed) == 1  # one table
    for name, _ in table.ROWS:
        line = next(line for line in printed if line.startswith(name))
        value = line[len(name) :].split()[0]
        if name.startswith(("SAM encoder: achieved", "loader, decode gpu")):  # no bf16 peak, no GPU decoding on a CPU
            assert value == "n/a", line
        else:
            assert value.endswith(("x", "%")) and float(value.rstrip("x%")) > 0, line
    _check_label_run(done.stdout, json.loads((tmp_path / "label.json").read_text()))
    train = json.loads((tmp_path / "train_cpu.json").read_text())
    assert set(train["modes"]) == {"c2fmae", "mae"} and all(r["step_s"] > 0 for r in train["modes"].values())
    assert train["loader"]["images_s"] > 0 and train["loader"]["decode"] == "cpu"
    assert printed[-1] == (
        "--cpu-smoke: a smoke run (tiny models on the CPU) checks that the script works and measures nothing; "
        "no goal judged"
    )


def _check_label_run(out: str, result: dict) -> None:
    """What benchmarks/gpu_label.py --tiny printed (`out`) and wrote as JSON (`result`)."""
    for row in ROWS:
        line = next(line for line in out.splitlines() if line.startswith(row))
        assert float(line[46:].split()[0]) > 0, line  # images/s
    assert "ratio pipeline / sam-amg:" in out and "on 8 GPUs: pipeline" in out
    assert "no goal judged" in out and "goal >=" not in out and result["goal"] is None
    assert "pipeline / models alone" in out
    label_lines = out.split("=== gpu_all:")[0].splitlines()
    assert "n/a" not in "".join(line for line in label_lines if "of the bf16 dense peak" not in line)
    assert [r["error"] for r in result["rows"]] == [None] * len(ROWS)
    assert result["pipeline_over_amg"] > 0 and result["encoder_sdpa_over_original"] > 0
    assert result["boxes_batched_over_per_image"] > 0 and result["encoder_flops_per_image"] > 0
    assert result["encoder_peak_share"] is None  # no bf16 peak for a CPU
