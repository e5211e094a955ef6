import pickle

import numpy as np
import pytest
import zarr

from datasets_spec import StoreError, open_store, schema, write_shard
from datasets_spec.geometry import fit
from datasets_spec.records import decode_rle

from .store_fixtures import make_results, make_store


def test_round_trip_reads_back_exactly(tmp_path):
    layout, keys, results = make_store(tmp_path / "ds", n=20, canvas=32, shard_size=8)
    store = open_store(tmp_path / "ds")
    assert store.layout == layout and store.done_shards() == [0, 1, 2] and store.pending_shards() == []
    assert list(store.iter_shards()) == [(0, 0, 8), (1, 8, 16), (2, 16, 20)]
    assert store.label_space[2] == "disc"
    assert store.keys().tolist() == keys
    for i, result in enumerate(results):
        view = store.read(i, records=True)
        assert view.key == keys[i] and view.label == i % 3
        if result.error:
            assert view.status == schema.FAILED and view.orig_hw == (0, 0)
            assert (view.semantic == schema.SEMANTIC_IGNORE).all() and (view.instance == 0).all()
            continue
        assert view.status == schema.DONE
        assert np.array_equal(view.semantic, result.semantic) and np.array_equal(view.instance, result.instance)
        assert view.orig_hw == tuple(result.orig_hw) and view.valid_hw == fit(*result.orig_hw, 32)
        assert [r["id"] for r in view.records] == sorted(r["id"] for r in result.records)
        for rec in view.records:
            assert rec["index"] == i and rec["key"] == keys[i]
            assert decode_rle(rec["rle"]).shape == tuple(result.orig_hw)


def test_failures_keep_their_reason(tmp_path):
    make_store(tmp_path / "ds", n=10, shard_size=5)
    store = open_store(tmp_path / "ds")
    marker = store.marker(0)
    assert marker["failed"] == 1 and marker["failures"][0]["reason"].startswith("truncated image file")
    assert marker["failures"][0]["index"] == 4 and marker["failures"][0]["key"].endswith("img_0004.JPEG")


def test_batched_reads_equal_single_reads(tmp_path):
    make_store(tmp_path / "ds", n=24)
    store = open_store(tmp_path / "ds")
    order = [17, 3, 3, 0, 23]
    sem, inst = store.read_masks(order)
    for j, i in enumerate(order):
        view = store.read(i)
        assert np.array_equal(sem[j], view.semantic) and np.array_equal(inst[j], view.instance)


def test_plain_zarr_opens_the_store(tmp_path):
    make_store(tmp_path / "ds", n=12, shard_size=4)
    group = zarr.open_group(tmp_path / "ds", mode="r")
    assert {"semantic", "instance", "key", "label", "status", "orig_hw", "valid_hw"} <= set(group.array_keys())
    assert group["semantic"].shape == (12, 32, 32) and group["semantic"].shards == (4, 32, 32)
    assert group["semantic"].chunks == (1, 32, 32)
    assert group["key"][1] == "train/n00000001/img_0001.JPEG"
    assert group.attrs["c2fmae"]["schema_version"] == 1
    assert np.array_equal(group["semantic"][2], open_store(tmp_path / "ds").read(2).semantic)


def test_unwritten_shards_are_pending(tmp_path):
    layout, _, results = make_store(tmp_path / "ds", n=20, shard_size=8, write=False)
    write_shard(tmp_path / "ds", 1, results[8:16])
    store = open_store(tmp_path / "ds")
    assert store.pending_shards() == [0, 2] and store.done_shards() == [1]
    assert (store.status()[:8] == schema.PENDING).all() and store.read(0).status == schema.PENDING
    done = [i for i in range(8, 16) if not results[i].error]
    assert len(done) > 0 and list(store.done_indices()) == done
    assert (store.status()[16:] == schema.PENDING).all() and store.read(done[0]).status == schema.DONE


def test_store_pickles_without_open_handles(tmp_path):
    make_store(tmp_path / "ds", n=8)
    store = open_store(tmp_path / "ds")
    store.read(0)
    clone = pickle.loads(pickle.dumps(store))
    assert np.array_equal(clone.read(0).semantic, store.read(0).semantic)


def test_writer_refuses_inconsistent_results(tmp_path):
    make_store(tmp_path / "ds", n=8, shard_size=8, write=False)
    results = make_results(8, 32)
    results[0].records = results[0].records[1:]
    with pytest.raises(StoreError, match=r"shard 0, image 0 .*record ids"):
        write_shard(tmp_path / "ds", 0, results)
    results = make_results(8, 32)
    with pytest.raises(StoreError, match="holds 8 images, got 7"):
        write_shard(tmp_path / "ds", 0, results[:7])
    assert open_store(tmp_path / "ds").pending_shards() == [0]


def test_create_refuses_existing_and_bad_input(tmp_path):
    make_store(tmp_path / "ds", n=4, write=False)
    with pytest.raises(StoreError, match="already exists"):
        make_store(tmp_path / "ds", n=4, write=False)
    from datasets_spec import create_store

    with pytest.raises(StoreError, match="not unique"):
        create_store(tmp_path / "x", ["a", "a"], [0, 0], label_space={0: "a"})
    assert not (tmp_path / "x").exists()


def test_unknown_schema_version_is_refused(tmp_path):
    import json

    make_store(tmp_path / "ds", n=4)
    doc_path = tmp_path / "ds" / "zarr.json"
    doc = json.loads(doc_path.read_text())
    doc["attributes"]["c2fmae"]["schema_version"] = 7
    doc_path.write_text(json.dumps(doc))
    with pytest.raises(StoreError, match=r"schema version 7 is not supported .*reads version 1"):
        open_store(tmp_path / "ds")


def test_foreign_and_missing_paths_are_refused(tmp_path):
    with pytest.raises(StoreError, match="no such dataset directory"):
        open_store(tmp_path / "nope")
    zarr.open_group(tmp_path / "plain", mode="w")
    with pytest.raises(StoreError, match="not a c2fmae dataset"):
        open_store(tmp_path / "plain")
    (tmp_path / "empty").mkdir()
    with pytest.raises(StoreError, match="not a Zarr v3 store"):
        open_store(tmp_path / "empty")
