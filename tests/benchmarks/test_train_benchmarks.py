"""The training benchmarks run end to end at tiny size on the CPU and print their tables."""

from __future__ import annotations

import pytest

from .benchmark_modules import benchmark_module


@pytest.mark.slow
def test_train_step_benchmark_reports_every_reader_and_mode(capsys):
    module = benchmark_module("train_step")
    result = module.main(["--tiny"])
    assert set(result["steps"]) == set(result["step_ratios"]) == set(module.STEP_ROWS)
    assert {"c2fmae", "parallel", "mae", "c2fmae, modality dropout 0.5", "c2fmae, token budget 16"} <= set(
        result["steps"]
    )
    assert result["step_ratios"]["mae"] == 1.0 and all(r > 0 for r in result["step_ratios"].values())
    assert all(v > 0 for v in result["loaders"].values()) and len(result["loaders"]) == 7
    assert all(v > 0 for v in result["large_loaders"].values()) and len(result["large_loaders"]) == 5
    assert 0 <= result["wait_fraction"] <= 1
    table = capsys.readouterr().out
    assert "vs PIL" in table and "vs mae" in table and "data-wait fraction" in table
    assert table.count("vs old canvas path") == 2 and table.count("JPEG draft on vs off") == 2
    assert all(r > 0 for ratios in (result["ratios"], result["large_ratios"]) for r in ratios.values())


@pytest.mark.slow
def test_train_step_flop_count_sees_what_each_switch_saves_and_adds():
    module = benchmark_module("train_step")
    flops = module.count_flops(module.step_rows(module.ARCH), module.ARCH, n=2)
    c2f = flops["c2fmae"]
    assert flops["c2fmae, token budget 16"] == flops["c2fmae, input_fusion sum"] < c2f and flops["mae"] < c2f
    assert flops["c2fmae, modality dropout 0.5"] == c2f < flops["c2fmae, loss probe every step"]


@pytest.mark.slow
def test_gpu_benchmark_measures_the_gpu_decode_loader_on_the_cpu_when_tiny(capsys):
    """Every mode, and the decode that benchmarks/gpu_all.sh --cpu-smoke (test_gpu_label.py) does not run."""
    result = benchmark_module("gpu_train").main(["--tiny", "--decode", "gpu", "--modes", "mae", "parallel", "c2fmae"])
    assert set(result["modes"]) == {"mae", "parallel", "c2fmae"}
    assert all(r["step_s"] > 0 for r in result["modes"].values())
    assert result["loader"]["decode"] == "gpu" and result["loader"]["device"] == "cpu"
    assert result["loader"]["images_s"] > 0
    out = capsys.readouterr().out
    assert "loader (decode gpu on cpu)" in out and "vs mae" in out
