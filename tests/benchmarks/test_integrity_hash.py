"""benchmarks/integrity_hash.py runs at tiny size and reports both checks and their ratio."""

from __future__ import annotations

import pytest

from .benchmark_modules import benchmark_module


def test_integrity_hash_benchmark_prints_both_checks(capsys):
    result = benchmark_module("integrity_hash").main(["--images", "4", "--canvas", "32", "--repeats", "1"])
    assert result["crc32_gb_s"] > 0 and result["sha256_gb_s"] > 0
    assert result["ratio"] == pytest.approx(result["crc32_gb_s"] / result["sha256_gb_s"])
    out = capsys.readouterr().out
    assert "| CRC-32 (pixels_crc32) |" in out and "| sha256 |" in out and "CRC-32 / sha256 speed" in out
