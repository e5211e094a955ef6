"""benchmarks/data_at_scale.py at a tiny size: its stores and its table of commands."""

import os

from datasets_spec import open_store
from datasets_spec.validate import validate

from .benchmark_modules import ROOT, benchmark_module

scale = benchmark_module("data_at_scale")


def test_store_builder_makes_a_complete_and_a_partial_store_once(tmp_path):
    complete, partial, images = scale.build_stores(tmp_path / "cache", 122, canvas=16, shard_size=4, distinct=5)
    store = open_store(complete)
    assert store.layout.num_images == 122 and len(store.done_shards()) == store.layout.num_shards == 31
    assert validate(complete) == []
    keys = store.keys()
    assert len(set(keys.tolist())) == 122
    photos = [images / k for k in keys]
    assert all(p.is_file() for p in photos)
    assert os.stat(photos[0]).st_ino == os.stat(photos[5]).st_ino  # repeated images are links, not copies
    assert (store.read(5).semantic == store.read(0).semantic).all()
    assert open_store(partial).done_shards() == list(range(scale.PARTIAL_DONE))
    assert validate(partial) == []
    stamp = (complete / "zarr.json").stat().st_mtime_ns
    assert scale.build_stores(tmp_path / "cache", 122, canvas=16, shard_size=4, distinct=5)[0] == complete
    assert (complete / "zarr.json").stat().st_mtime_ns == stamp  # reused, not rebuilt


def test_table_measures_commands_and_skips_those_missing(tmp_path, monkeypatch):
    stores = scale.build_stores(tmp_path / "cache", 100, canvas=16, shard_size=4, distinct=3)
    missing = scale.Command("not here", "complete", ("no-such-command", "{store}"), ("no-such-command", None))
    monkeypatch.setattr(scale, "COMMANDS", (*scale.COMMANDS, missing))
    rows = scale.run_table(ROOT, stores, only=["info", "stats, 29", "not here"])
    by_name = {row["command"]: row for row in rows}
    assert set(by_name) == {"info", "stats, 29 shards done", "not here"}
    assert by_name["info"]["rc"] == 0 and by_name["info"]["peak_mb"] > 10 and by_name["info"]["seconds"] > 0
    assert by_name["stats, 29 shards done"]["rc"] == 0
    assert by_name["not here"]["note"].startswith("skipped")
