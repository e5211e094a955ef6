"""Stores on object storage (s3:// on a loopback S3 server): the same contract as local stores."""

from __future__ import annotations

import json
import os
import signal

import numpy as np
import pytest
import zarr

from dataset_tools.cli import main as c2f_data
from datasets_spec import StoreError, create_store, open_store, schema, storage
from datasets_spec.validate import validate

from .store_fixtures import LABEL_SPACE, damage_by_shard, make_store, store_content
from .writer_process import start_writer


def test_objects_are_written_read_listed_and_deleted(s3_bucket):
    root = f"{s3_bucket}/a/ds"
    assert storage.is_url(root) and not storage.is_url("/a/ds") and storage.name(root) == "ds"
    with pytest.raises(FileNotFoundError):
        storage.read_bytes(root, "markers/shard-000000.json")
    storage.write_bytes(root, "markers/shard-000003.json", b"{}")
    storage.write_bytes(root, "markers/sub/x.json", b"nested")
    assert storage.exists(root, "markers/shard-000003.json") and not storage.exists(root, "zarr.json")
    assert storage.list_names(root, "markers") == ["shard-000003.json"]
    assert storage.size(root, "markers/sub/x.json") == 6 and storage.size(root, "markers/sub/x.json", 6) == 6
    assert storage.size(root, "markers/sub/x.json", 4) == 6 and storage.size(root, "markers/sub/x.json", 9) == 6
    storage.delete(root, "markers/shard-000003.json")
    assert not storage.exists(root, "markers/shard-000003.json")
    assert storage.list_all(f"{s3_bucket}/a") == ["ds/markers/sub/x.json"]


def test_conditional_create_writes_only_once(s3_bucket):
    assert storage.create_exclusive(s3_bucket, "lock", b"first")
    assert not storage.create_exclusive(s3_bucket, "lock", b"second")
    assert not storage.create_exclusive(s3_bucket, "lock", b"third", replacing=b"other")
    assert storage.create_exclusive(s3_bucket, "lock", b"fourth", replacing=b"first")
    assert storage.read_bytes(s3_bucket, "lock") == b"fourth"


def test_a_store_on_s3_reads_validates_and_equals_the_local_one(s3_bucket, tmp_path):
    url = f"{s3_bucket}/stores/ds"
    layout, keys, _ = make_store(url)
    make_store(tmp_path / "ds")
    remote, local = open_store(url), open_store(tmp_path / "ds")
    assert remote.path == url and remote.done_shards() == list(range(layout.num_shards))
    assert validate(url) == []
    assert remote.keys().tolist() == keys and remote.shard_keys(1) == keys[8:16]
    assert np.array_equal(remote.status(), local.status())
    for i in (0, 13, 39):
        a, b = remote.read(i, records=True), local.read(i, records=True)
        assert np.array_equal(a.semantic, b.semantic) and np.array_equal(a.instance, b.instance)
        assert (a.key, a.status, a.orig_hw, a.records) == (b.key, b.status, b.orig_hw, b.records)
    assert store_content(url) == store_content(tmp_path / "ds")


def test_damage_on_s3_is_found_by_validate_and_the_cheap_check(s3_bucket):
    url = f"{s3_bucket}/ds"
    make_store(url)
    rel = storage.records_path(2)
    data = storage.read_bytes(url, rel)
    storage.write_bytes(url, rel, data[:-3])
    storage.delete(url, storage.pixel_chunk_path(schema.INSTANCE, 1))
    assert damage_by_shard(url) == {
        0: None,
        1: "instance/c/1/0/0 is missing",
        2: f"{rel} has {len(data) - 3} bytes, {len(data)} when written",
        3: None,
        4: None,
    }
    problems = validate(url)
    assert "shard 2: records file records/shard-000002.jsonl.gz does not match the marker's checksum" in problems
    assert "shard 1: instance/c/1/0/0 missing" in problems


def test_an_interrupted_create_on_s3_is_not_a_store_and_is_redone(s3_bucket, monkeypatch):
    url = f"{s3_bucket}/ds"

    def fail_after_five(root, objects):  # the skeleton's PUTs go out together; five land
        real_write_all(root, dict(list(objects.items())[:5]))
        raise OSError("connection reset")

    real_write_all = storage.write_all
    monkeypatch.setattr(storage, "write_all", fail_after_five)
    with pytest.raises(StoreError, match="connection reset"):
        create_store(url, ["a.jpg", "b.jpg"], [0, 1], label_space=LABEL_SPACE, canvas=16, shard_size=1)
    monkeypatch.setattr(storage, "write_all", real_write_all)
    assert storage.list_all(url) and not storage.root_exists(url)  # objects, but no group document
    storage.write_bytes(url, storage.marker_path(0), b"{}")  # and one that a new create does not write
    create_store(url, ["a.jpg"], [0], label_space=LABEL_SPACE, canvas=16, shard_size=1)
    assert open_store(url).layout.num_images == 1 and validate(url) == []
    assert not storage.exists(url, storage.marker_path(0))
    with pytest.raises(StoreError, match="already exists"):
        create_store(url, ["a.jpg"], [0], label_space=LABEL_SPACE, canvas=16, shard_size=1)
    storage.write_bytes(f"{s3_bucket}/other", "notes.txt", b"mine")
    with pytest.raises(StoreError, match="not a dataset store .holds notes.txt"):
        create_store(f"{s3_bucket}/other", ["a.jpg"], [0], label_space=LABEL_SPACE, canvas=16, shard_size=1)
    assert storage.read_bytes(f"{s3_bucket}/other", "notes.txt") == b"mine"


def test_writers_on_s3_disjoint_shards_and_one_killed_mid_shard(s3_bucket):
    url = f"{s3_bucket}/ds"
    layout, _, _ = make_store(url, n=24, shard_size=4, write=False)
    procs = [start_writer(url, range(w, layout.num_shards, 2)) for w in range(2)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    before = store_content(url)
    storage.delete(url, storage.marker_path(3))
    assert start_writer(url, [3], "--die-before", "marker").wait(timeout=60) == -signal.SIGKILL
    assert open_store(url).pending_shards() == [3] and validate(url) == []
    assert start_writer(url, [3]).wait(timeout=60) == 0
    assert store_content(url) == before


def test_c2f_data_commands_take_a_url(s3_bucket, tmp_path, capsys):
    url = f"{s3_bucket}/ds"
    make_store(url)
    assert c2f_data(["validate", url, "--quiet"]) == 0
    assert c2f_data(["info", url, "--json"]) == 0
    assert c2f_data(["stats", url, "--json", "--quiet"]) == 0
    assert c2f_data(["export-coco", url, "-o", str(tmp_path / "coco.json"), "--quiet"]) == 0
    assert c2f_data(["export-semantic", url, "-o", str(tmp_path / "png"), "--quiet", "--json"]) == 0
    out = capsys.readouterr().out
    assert f"{url}: valid" in out and '"images": 40' in out and '"images": 32, "failed": 8' in out
    coco = json.loads((tmp_path / "coco.json").read_text())
    assert len(coco["images"]) == 32 and coco["info"]["description"].endswith("of ds")
    storage.write_bytes(url, "reports/label-1-logs/worker-1.err", b"kept by c2f-label -v\n")
    assert c2f_data(["publish", url, "-o", str(tmp_path / "release"), "--format", "zarr", "--quiet"]) == 0
    assert not (tmp_path / "release" / "data" / "reports" / "label-1-logs").exists()
    for rel in storage.list_all(tmp_path / "release"):  # the release, uploaded, verifies by URL
        storage.write_bytes(f"{s3_bucket}/release", rel, (tmp_path / "release" / rel).read_bytes())
    capsys.readouterr()
    assert c2f_data(["verify", f"{s3_bucket}/release"]) == 0
    storage.delete(f"{s3_bucket}/release", "data/" + storage.marker_path(0))
    assert c2f_data(["verify", f"{s3_bucket}/release"]) == 1
    assert "data/markers/shard-000000.json: missing" in capsys.readouterr().out
    assert c2f_data(["publish", url, "-o", str(tmp_path / "hub"), "--quiet"]) == 0  # Parquet, from the bucket
    for rel in storage.list_all(tmp_path / "hub"):
        storage.write_bytes(f"{s3_bucket}/hub", rel, (tmp_path / "hub" / rel).read_bytes())
    assert c2f_data(["verify", f"{s3_bucket}/hub"]) == 0
    for command in ("info", "validate", "verify"):  # nothing there: an input error, as for a local path
        assert c2f_data([command, f"{s3_bucket}/nothing"]) == 2
        assert "no such" in capsys.readouterr().err


def test_plain_zarr_with_s3fs_opens_the_store_by_url(s3_bucket):
    url = f"{s3_bucket}/ds"
    _, keys, results = make_store(url)
    options = {"endpoint_url": os.environ["AWS_ENDPOINT_URL"]}
    group = zarr.open_group(url, mode="r", storage_options=options)  # the snippet of docs/dataset-format.md
    assert group.attrs["c2fmae"]["num_images"] == 40
    assert np.array_equal(group["semantic"][1], results[1].semantic)
    assert group["key"][:].tolist() == keys


def test_the_s3_spec_comes_from_the_aws_environment(s3_bucket, monkeypatch):
    monkeypatch.setenv("C2F_S3_CONDITIONAL_WRITE", "1")
    spec = storage.kvstore_spec(f"{s3_bucket}/a/ds/", "markers/shard-000001.json")
    assert spec["driver"] == "s3" and spec["bucket"] == s3_bucket[len("s3://") :]
    assert spec["path"] == "a/ds/markers/shard-000001.json" and spec["use_conditional_write"] is True
    assert (spec["endpoint"], spec["aws_region"]) == (os.environ["AWS_ENDPOINT_URL"], "us-east-1")
    assert spec["aws_credentials"] == {"type": "environment"}
    assert storage.kvstore_spec("gs://b/x")["driver"] == "gcs" and storage.kvstore_spec("gs://b/x")["path"] == "x/"
