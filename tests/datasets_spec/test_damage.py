"""Damage a reader must not trust: files gone or cut short, attributes that disagree with the
arrays, geometry that disagrees with the canvas, chunks that cannot be read."""

from __future__ import annotations

import json

import numpy as np
import pytest

from datasets_spec import StoreError, _array_io, open_store, schema, storage

from .store_fixtures import damage_by_shard, make_store


@pytest.fixture
def store(tmp_path):
    path = tmp_path / "ds"
    make_store(path, n=24, canvas=32, shard_size=8)
    return path


def test_an_intact_store_has_no_damaged_shards(store):
    assert damage_by_shard(store) == {0: None, 1: None, 2: None}


def test_deleted_and_truncated_files_are_found_by_size_alone(store):
    (store / "semantic/c/1/0/0").unlink()
    cut = store / storage.records_path(2)
    cut.write_bytes(cut.read_bytes()[:-3])
    orig_hw = store / "orig_hw/c/0/0"
    orig_hw.write_bytes(orig_hw.read_bytes()[:-1])
    assert damage_by_shard(store) == {
        0: f"orig_hw/c/0/0 has {orig_hw.stat().st_size} bytes, {orig_hw.stat().st_size + 1} when written",
        1: "semantic/c/1/0/0 is missing",
        2: f"{storage.records_path(2)} has {cut.stat().st_size} bytes, {cut.stat().st_size + 3} when written",
    }


def test_a_marker_from_before_file_lists_still_checks_its_records(store):
    marker = store / storage.marker_path(1)
    doc = json.loads(marker.read_text())
    del doc["files"]
    marker.write_text(json.dumps(doc))
    assert damage_by_shard(store) == {0: None, 1: None, 2: None}
    (store / storage.records_path(1)).unlink()
    assert damage_by_shard(store) == {0: None, 1: f"{storage.records_path(1)} is missing", 2: None}


def test_an_unreadable_marker_is_named(store):
    (store / storage.marker_path(2)).write_text("{not json")
    reader = open_store(store)
    with pytest.raises(StoreError):
        reader.marker(2)
    assert reader.shard_damage(2).startswith("its marker is unreadable (")  # the job passes no marker then


def test_attributes_that_disagree_with_the_arrays_are_refused_at_open(store):
    root = store / "zarr.json"
    doc = json.loads(root.read_text())
    doc["attributes"]["c2fmae"]["canvas"]["size"] = 64
    root.write_text(json.dumps(doc))
    with pytest.raises(
        StoreError,
        match=r"semantic has shape \(24, 32, 32\) but the store's attributes "
        r"say \(24, 64, 64\)",
    ):
        open_store(store)


def test_geometry_that_disagrees_with_the_canvas_is_named(store):
    reader = open_store(store)
    done = reader.done_indices()
    orig, valid = reader.checked_geometry(done)
    assert np.array_equal(orig, reader.geometry()[0][done]) and np.array_equal(valid, reader.geometry()[1][done])
    arr = _array_io.open_array(store / schema.VALID_HW, write=True)
    valid = _array_io.read_range(arr, 8, 16)
    valid[2] = valid[2] // 2  # image 10 (done)
    _array_io.write_slabs([(arr, 8, valid)])
    with pytest.raises(StoreError, match=r"image 10 \(train/n00000001/img_0010.JPEG\) is .* expected"):
        open_store(store).checked_geometry(done)


def test_an_unreadable_chunk_names_its_shard(store):
    (store / "instance/c/2/0/0").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(StoreError, match=r"reading the masks of shard\(s\) 2 failed"):
        open_store(store).read_masks(np.array([3, 17]))
