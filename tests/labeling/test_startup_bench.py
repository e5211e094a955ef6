"""benchmarks/imagenet_startup.py at tiny size: builds its tree, times a first and a resumed shard."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

from datasets_spec import open_store
from datasets_spec.validate import validate

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_startup_benchmark_times_a_first_and_a_resumed_shard(tmp_path, capsys):
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    bench = importlib.import_module("benchmarks.imagenet_startup")
    flags = ["--cache", str(tmp_path / "tree"), "--images", "96", "--shard-size", "4", "--keep", str(tmp_path / "ds")]
    rows = bench.main(flags)
    assert rows["first shard done (s)"] > 0 and rows["resume: first new shard (s)"] > 0
    assert rows["driver peak RSS, first run (MB)"] > 0 and rows["driver peak RSS, resume (MB)"] > 0
    classes = list((tmp_path / "tree/imagenet/train").iterdir())
    assert len(classes) == 1000 and sum(len(list(c.iterdir())) for c in classes) == 96
    done = open_store(tmp_path / "ds").done_shards()
    assert len(done) >= 2 and validate(tmp_path / "ds") == []
    assert bench._markers(tmp_path / "ds") == {f"shard-{s:06d}.json" for s in done}  # not markers/zarr.json
    out = capsys.readouterr().out
    assert "load average (1, 5, 15 min): before" in out and "resume: first new shard (s)" in out
