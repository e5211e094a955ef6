"""Every kind of damage `c2f-data validate` promises to catch, produced on purpose."""

import json
import shutil

import numpy as np
import pytest
import zarr

from dataset_tools.cli import main
from datasets_spec import _array_io, open_store, schema, storage
from datasets_spec.records import write_records
from datasets_spec.shard_writer import file_inventory, pixels_crc32
from datasets_spec.validate import validate

from .store_fixtures import make_store


@pytest.fixture
def store(tmp_path):
    path = tmp_path / "ds"
    make_store(path, n=24, canvas=32, shard_size=8)
    assert validate(path) == []
    return path


def _marker_path(path, shard):
    return path / storage.marker_path(shard)


def _edit_marker(path, shard, **changes):
    marker = json.loads(_marker_path(path, shard).read_text())
    marker.update(changes)
    _marker_path(path, shard).write_text(json.dumps(marker))


def _rewrite_records(path, shard, edit):
    """A foreign writer that keeps checksums consistent but the content wrong."""
    rel = storage.records_path(shard)
    records = edit(open_store(path).records(shard))
    sha, count = write_records(path, rel, records)
    _edit_marker(path, shard, records={"path": rel, "sha256": sha, "count": count})


def _rewrite_pixels(path, shard, name, edit):
    """Change a shard's pixels and re-sign the marker, as a buggy foreign writer would."""
    start, stop = schema.Layout(24, 8, 32).shard_range(shard)
    arrays = {n: _array_io.open_array(path / n, write=True) for n in schema.PIXEL_ARRAYS}
    slab = _array_io.read_range(arrays[name], start, stop)
    _array_io.write_slabs([(arrays[name], start, edit(slab))])
    sem, inst = (_array_io.read_range(arrays[n], start, stop) for n in (schema.SEMANTIC, schema.INSTANCE))
    _edit_marker(path, shard, pixels_crc32=pixels_crc32(sem, inst), files=file_inventory(path, shard))


def _first_done_with_instances(path, shard):
    recs = open_store(path).records(shard)
    return recs[0]["index"], recs


def test_missing_array(store):
    shutil.rmtree(store / "instance")
    assert validate(store) == ["instance: array missing"]


def test_mistyped_array(store):
    zarr.open_group(store, mode="a").create_array("label", shape=(24,), dtype="float32", overwrite=True)
    assert validate(store) == ["label: data type 'float32', expected 'int32'"]


def test_wrong_shape_and_sharding(store):
    zarr.open_group(store, mode="a").create_array(
        "semantic", shape=(24, 32, 32), chunks=(8, 32, 32), dtype="uint16", overwrite=True
    )
    assert validate(store) == [
        "semantic: shards (8, 32, 32) with inner chunks (), expected (8, 32, 32) with (1, 32, 32)"
    ]


def test_unknown_schema_version(store):
    doc = json.loads((store / "zarr.json").read_text())
    doc["attributes"]["c2fmae"]["schema_version"] = 2
    (store / "zarr.json").write_text(json.dumps(doc))
    [problem] = validate(store)
    assert "schema version 2 is not supported" in problem


def test_done_shard_with_missing_data(store):
    (store / "semantic" / "c" / "1" / "0" / "0").unlink()
    assert validate(store) == ["shard 1: semantic/c/1/0/0 missing"]


def test_done_shard_with_unreadable_data(store):
    shard_file = store / "instance" / "c" / "2" / "0" / "0"
    shard_file.write_bytes(b"\x00garbage" * 10)
    assert validate(store) == ["shard 2: instance/c/2/0/0 changed since it was written (size or checksum)"]
    marker = store / storage.marker_path(2)
    doc = json.loads(marker.read_text())
    del doc["files"]  # a marker from before markers listed their files: the pixel checks tell
    marker.write_text(json.dumps(doc))
    [problem] = validate(store)
    assert problem.startswith("shard 2: mask data unreadable")


def test_done_shard_with_silently_changed_data(store):
    arr = _array_io.open_array(store / schema.SEMANTIC, write=True)
    slab = _array_io.read_range(arr, 0, 8)
    slab[0, 0, 0] = 1 if slab[0, 0, 0] != 1 else 0
    _array_io.write_slabs([(arr, 0, slab)])
    assert validate(store) == ["shard 0: semantic/c/0/0/0 changed since it was written (size or checksum)"]
    marker = store / storage.marker_path(0)
    doc = json.loads(marker.read_text())
    del doc["files"]
    marker.write_text(json.dumps(doc))
    assert validate(store) == ["shard 0: mask data does not match the marker's checksum (damaged or overwritten)"]


def test_records_file_missing_or_damaged(store):
    rec = store / storage.records_path(1)
    rec.write_bytes(rec.read_bytes()[:-5])
    assert validate(store) == [
        f"shard 1: records file records/{storage.shard_name(1)}.jsonl.gz does not match the marker's checksum"
    ]
    rec.unlink()
    assert validate(store) == [f"shard 1: records file records/{storage.shard_name(1)}.jsonl.gz missing"]


def test_instance_ids_without_records(store):
    index, recs = _first_done_with_instances(store, 0)
    dropped = [r for r in recs if r["index"] == index][-1]["id"]
    _rewrite_records(store, 0, lambda rs: [r for r in rs if not (r["index"] == index and r["id"] == dropped)])
    assert validate(store) == [f"instance: image {index} has ids without records: [{dropped}]"]


def test_records_without_pixels(store):
    index, recs = _first_done_with_instances(store, 0)
    extra = dict(recs[0], id=99)
    _rewrite_records(store, 0, lambda rs: rs + [extra])
    assert validate(store) == [f"instance: image {index} has records without pixels: ids [99]"]


def test_semantic_ids_outside_label_space(store):
    def paint(slab):
        slab[2, 0, 0] = 42
        return slab

    _rewrite_pixels(store, 1, schema.SEMANTIC, paint)
    assert validate(store) == ["semantic: image 10 has class ids outside the label space: [42]"]


def test_pending_status_inside_a_done_shard(store):
    arr = _array_io.open_array(store / schema.STATUS, write=True)
    status = _array_io.read_range(arr, 8, 16)
    status[2] = schema.PENDING
    _array_io.write_slabs([(arr, 8, status)])
    problems = validate(store)
    assert problems[0] == "shard 1: marked complete but 1 image(s) have status pending"
    assert problems[1].startswith("shard 1: status says 5 done / 2 failed, marker says 6 / 2")


def test_failed_image_without_reason(store):
    _edit_marker(store, 0, failures=[])
    assert validate(store) == ["shard 0: image 4 failed without a recorded reason"]


def test_unknown_status_code(store):
    arr = _array_io.open_array(store / schema.STATUS, write=True)
    _array_io.write_slabs([(arr, 16, np.full(8, 7, np.uint8))])
    problems = validate(store)
    assert problems[0] == "status: image 16 has unknown status code 7"


def test_interrupted_shard_is_pending_not_a_problem(store):
    _marker_path(store, 2).unlink()
    assert validate(store) == []


def test_a_marker_beyond_the_last_shard_is_reported_and_no_done_shard(store):
    shutil.copy(_marker_path(store, 2), _marker_path(store, 3))
    assert validate(store) == ["markers: marker for shard 3 beyond the last shard"]
    reader = open_store(store)
    assert reader.done_shards() == [0, 1, 2] and reader.pending_shards() == []


def test_cli_exit_codes_and_lines(store, capsys):
    assert main(["validate", str(store), "--quiet"]) == 0
    assert capsys.readouterr().out.strip() == f"{store}: valid"
    (store / "semantic" / "c" / "1" / "0" / "0").unlink()
    assert main(["validate", str(store), "--quiet"]) == 1
    assert capsys.readouterr().out.strip() == f"{store}: shard 1: semantic/c/1/0/0 missing"
    assert main(["validate", str(store / "nope"), "--quiet"]) == 2  # an input error, as for c2f-data info
    assert "no such dataset directory" in capsys.readouterr().err
