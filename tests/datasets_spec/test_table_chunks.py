"""`key` and `label` are written once, at creation, in chunks of many shards: creating a store of
many shards costs a few hundred objects (PUTs on object storage), not two per shard."""

from __future__ import annotations

import math

import pytest

from datasets_spec import StoreError, create_store, open_store, schema, storage, write_shard
from datasets_spec.validate import validate

from .store_fixtures import LABEL_SPACE, make_results

N, K = 4_000, 4  # 1,000 shards


@pytest.fixture(params=["local", "s3"])
def root(request, tmp_path):
    if request.param == "local":
        return tmp_path / "ds"
    return f"{request.getfixturevalue('s3_bucket')}/ds"


def test_a_store_of_many_shards_is_created_with_few_objects_and_reads_as_before(root):
    keys = [f"c{i % 7}/{i:05d}.jpg" for i in range(N)]  # unique, not sorted
    labels = [i % 5 - 1 for i in range(N)]
    layout = create_store(root, keys, labels, label_space=LABEL_SPACE, canvas=8, shard_size=K)
    assert layout.table_chunk == schema.TABLE_CHUNK_SHARDS * K
    objects = storage.list_all(root)
    for name in (schema.KEY, schema.LABEL):
        chunks = [rel for rel in objects if rel.startswith(f"{name}/c/")]
        assert len(chunks) == math.ceil(N / (schema.TABLE_CHUNK_SHARDS * K)) == 16  # not 1,000
    assert len(objects) < 60

    store = open_store(root)
    assert store.keys().tolist() == keys and store.labels().tolist() == labels
    shard = 234  # inside the 4th key chunk
    start, stop = layout.shard_range(shard)
    assert store.shard_keys(shard) == keys[start:stop] and store.read(start + 1).key == keys[start + 1]
    results = make_results(K, 8, fail_every=2)
    marker = write_shard(root, shard, results)
    assert [f["key"] for f in marker["failures"]] == [keys[start + 1], keys[start + 3]]
    assert validate(root) == []


def test_tiny_stores_have_one_table_chunk_and_keys_must_differ(tmp_path):
    layout = create_store(tmp_path / "ds", ["b", "a", "c"], [0, 1, 2], label_space=LABEL_SPACE, shard_size=2)
    assert layout.table_chunk == 4  # both shards of 2 images, in one Zarr shard reaching past N
    assert open_store(tmp_path / "ds").keys().tolist() == ["b", "a", "c"]
    with pytest.raises(StoreError, match="not unique"):
        create_store(tmp_path / "x", ["b", "a", "b"], [0, 0, 0], label_space=LABEL_SPACE)
