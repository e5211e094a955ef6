"""Many processes writing disjoint shards; writers killed with SIGKILL mid-shard, and what they leave."""

import signal
from pathlib import Path

import numpy as np
import pytest

from datasets_spec import open_store, schema, storage, write_shard
from datasets_spec.stale_files import remove_stale_files
from datasets_spec.validate import validate
from plumbing.files import write_temp

from .store_fixtures import make_store
from .writer_process import start_writer


def _of_shard(rel: Path, shard: int) -> bool:
    """Whether a store file holds shard `shard`'s data: <array>/c/<shard>/... or <sidecar>/shard-<shard>.*"""
    return (len(rel.parts) > 2 and rel.parts[1] == "c" and rel.parts[2] == str(shard)) or rel.name.startswith(
        storage.shard_name(shard)
    )


def _assert_equal_to_results(store, results, shards):
    for shard in shards:
        start, stop = store.layout.shard_range(shard)
        sem, inst = store.read_masks(range(start, stop))
        for j, result in enumerate(results[start:stop]):
            if result.error is None:
                assert np.array_equal(sem[j], result.semantic) and np.array_equal(inst[j], result.instance)


def test_four_processes_writing_disjoint_shards_read_back_exactly(tmp_path):
    path = tmp_path / "ds"
    layout, _, results = make_store(path, n=64, shard_size=4, write=False)
    procs = [start_writer(path, range(w, layout.num_shards, 4)) for w in range(4)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    store = open_store(path)
    assert store.pending_shards() == []
    _assert_equal_to_results(store, results, range(layout.num_shards))
    assert validate(path) == []


@pytest.mark.parametrize("die_before", ["records", "marker"])
def test_writer_killed_mid_shard_leaves_it_pending_and_the_rest_intact(tmp_path, die_before):
    path = tmp_path / "ds"
    layout, _, results = make_store(path, n=24, shard_size=8, write=False)
    assert start_writer(path, [0, 2]).wait(timeout=60) == 0
    before = {p.relative_to(path): p.read_bytes() for p in path.rglob("*") if p.is_file()}
    proc = start_writer(path, [1], "--die-before", die_before)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    store = open_store(path)
    assert store.pending_shards() == [1]
    assert (store.status()[8:16] == schema.PENDING).all()
    for rel, data in before.items():  # every file outside shard 1 is unchanged
        if not _of_shard(rel, 1):
            assert (path / rel).read_bytes() == data, rel
    _assert_equal_to_results(store, results, [0, 2])
    assert validate(path) == []
    write_shard(path, 1, results[8:16])
    store = open_store(path)
    assert store.pending_shards() == []
    _assert_equal_to_results(store, results, [0, 1, 2])
    assert validate(path) == []


def test_rewriting_a_done_shard_killed_midway_makes_it_pending(tmp_path):
    path = tmp_path / "ds"
    make_store(path, n=16, shard_size=8)
    assert start_writer(path, [0], "--die-before", "marker").wait(timeout=60) == -signal.SIGKILL
    assert open_store(path).pending_shards() == [0]
    assert validate(path) == []


def test_writer_output_is_byte_identical_across_runs(tmp_path):
    files = []
    for run in ("a", "b"):
        make_store(tmp_path / run, n=16, shard_size=8)
        root = tmp_path / run
        files.append(
            {
                p.relative_to(root): p.read_bytes()
                for p in sorted(root.rglob("*"))
                if p.is_file() and p.name != "zarr.json"
            }
        )
    assert files[0] == files[1]


def test_the_temporary_file_of_a_killed_local_write_is_what_the_stale_file_clean_up_removes(tmp_path):
    path = tmp_path / "ds"
    make_store(path, n=16, shard_size=8)
    marker = path / storage.marker_path(1)
    left = write_temp(marker, b'{"half": ')  # what a writer killed before its rename leaves
    assert remove_stale_files(path) == [left]
    assert sorted(p.name for p in marker.parent.iterdir() if p.name.startswith(".")) == []
    assert validate(path) == []
