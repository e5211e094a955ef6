"""Reading one image touches only that image's chunks (counted through tensorstore's I/O metrics);
reading some arrays of a shard leaves the others unread."""

import numpy as np
import pytest
import tensorstore as ts

from datasets_spec import create_store, open_store, schema, write_shard
from datasets_spec.errors import StoreError

from .store_fixtures import make_store, noise_result

CANVAS, SHARD = 64, 16


def _file_io():
    counts = {
        m["name"].rsplit("/", 1)[1]: m["values"][0]["value"]
        for m in ts.experimental_collect_matching_metrics("/tensorstore/kvstore/file/")
        if m["name"].endswith(("/read", "/bytes_read"))
    }
    return counts.get("read", 0), counts.get("bytes_read", 0)


def test_reading_one_image_reads_only_its_chunks(tmp_path):
    path = tmp_path / "ds"
    n = 3 * SHARD
    create_store(
        path,
        [f"k{i}" for i in range(n)],
        [0] * n,
        label_space={i: str(i) for i in range(5)},
        canvas=CANVAS,
        shard_size=SHARD,
    )
    rng = np.random.default_rng(0)
    for shard in range(3):
        write_shard(path, shard, [noise_result(CANVAS, rng) for _ in range(SHARD)])
    shard_bytes = (path / "semantic" / "c" / "1" / "0" / "0").stat().st_size
    assert shard_bytes > SHARD * CANVAS * CANVAS * 2  # incompressible: each inner chunk is large

    store = open_store(path)
    store.read(0)  # opens the arrays (metadata reads)
    reads0, bytes0 = _file_io()
    view = store.read(SHARD + 5)
    reads, nbytes = _file_io()
    inner_chunk = CANVAS * CANVAS * 2 + 64  # one uint16 image, zstd on noise does not shrink it
    index = SHARD * 16 + 4
    small = 4 * 1024  # status, label, orig_hw, valid_hw chunks of that shard
    assert view.status == 1 and view.key == f"k{SHARD + 5}"
    # semantic and instance: shard index + one inner chunk each; four small per-image chunks
    assert reads - reads0 <= 2 * 2 + 4
    assert nbytes - bytes0 <= 2 * (index + inner_chunk) + small
    assert nbytes - bytes0 < shard_bytes // 4


def test_a_shard_read_of_some_arrays_leaves_the_others_unread(tmp_path):
    make_store(tmp_path / "ds", n=16, canvas=32, shard_size=8)
    store = open_store(tmp_path / "ds")
    whole = store.read_shard(1)
    (tmp_path / "ds" / "instance" / "c" / "1" / "0" / "0").write_bytes(b"garbled")
    with pytest.raises(StoreError, match="shard 1 unreadable"):
        open_store(tmp_path / "ds").read_shard(1)
    part = open_store(tmp_path / "ds").read_shard(1, (schema.SEMANTIC, schema.VALID_HW))
    assert list(part) == [schema.SEMANTIC, schema.VALID_HW]
    assert all(np.array_equal(part[n], whole[n]) for n in part)
    with pytest.raises(ValueError, match="not key"):
        store.read_shard(1, (schema.SEMANTIC, schema.KEY))
