"""c2f-label -o s3://...: the same store as a local run, the same resume after SIGKILL, one job at a time."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from datasets_spec import open_store, storage
from datasets_spec.validate import validate
from labeling import probe
from labeling.cli import main
from labeling.config import load_config
from labeling.errors import LabelingError
from labeling.job import run_label_job
from labeling.sources import list_images
from labeling.store_lock import store_lock
from labeling.worker import ShardLabeler
from tests.datasets_spec.store_fixtures import store_content

from .label_cli import kill_and_resume
from .photo_files import upload, write_photos

ROOT = Path(__file__).resolve().parents[2]


def test_a_job_labels_into_s3_and_the_store_equals_a_local_run(photo_folder, s3_bucket, tmp_path, ray_session):
    url = f"{s3_bucket}/runs/ds"
    cfg = load_config(flags={"shard_size": 2})
    report = run_label_job(photo_folder, url, cfg, show_progress=False)
    run_label_job(photo_folder, tmp_path / "ds", cfg, show_progress=False)
    assert (report["done"], report["pending"], report["store"]) == (6, 0, url)
    assert validate(url) == []
    remote, local = open_store(url), open_store(tmp_path / "ds")
    assert remote.keys().tolist() == local.keys().tolist() and remote.done_shards() == [0, 1, 2]
    assert store_content(url) == store_content(tmp_path / "ds")
    assert [n for n in storage.list_names(url, "reports") if n.startswith("label-")]
    assert not storage.exists(f"{s3_bucket}/runs", ".ds.c2f-label.lock")  # released
    again = run_label_job(photo_folder, url, cfg, show_progress=False)
    assert again["this_run"]["shards_skipped"] == 3 and store_content(url) == store_content(tmp_path / "ds")


def imagenet_photos(root: Path) -> Path:
    """Four small photos in two classes (ImageNet layout) and one object that is no image."""
    for wnid, names in (("n01440764", ("astronaut", "chelsea")), ("n01443537", ("coffee", "rocket"))):
        (root / "train" / wnid).mkdir(parents=True)
        write_photos(root / "train" / wnid, names, 0.2, ".JPEG")
    (root / "train/n01443537/broken.JPEG").write_bytes(b"not an image")
    return root


def test_a_job_labels_images_in_a_bucket_as_from_their_local_copy(s3_bucket, tmp_path, ray_session):
    local, images = imagenet_photos(tmp_path / "imagenet"), f"{s3_bucket}/imagenet"
    upload(local, images)
    cfg = load_config(flags={"shard_size": 2})
    report = run_label_job(images, tmp_path / "from-bucket", cfg, show_progress=False)
    run_label_job(local, tmp_path / "from-copy", cfg, show_progress=False)
    assert (report["done"], report["failed"], report["pending"]) == (4, 1, 0)
    from_bucket, from_copy = (open_store(tmp_path / d) for d in ("from-bucket", "from-copy"))
    assert from_bucket.keys().tolist() == from_copy.keys().tolist()
    assert from_bucket.keys().tolist()[:2] == ["train/n01440764/astronaut.JPEG", "train/n01440764/chelsea.JPEG"]
    contents = [store_content(tmp_path / d) for d in ("from-bucket", "from-copy")]
    inputs = [c["zarr.json"]["attributes"]["c2fmae"]["provenance"]["input"] for c in contents]
    assert [i.pop("root") for i in inputs] == [images, str(local)]  # only where the images were differs
    assert contents[0] == contents[1]
    again = run_label_job(images, tmp_path / "from-copy", cfg, show_progress=False)  # the identity names no root
    assert again["this_run"]["shards_skipped"] == 3
    with pytest.raises(LabelingError, match="lies inside the image folder"):
        run_label_job(images, f"{images}/labels", cfg, show_progress=False)


def test_an_image_object_deleted_after_listing_fails_as_a_missing_file(s3_bucket, tmp_path):
    local, images = imagenet_photos(tmp_path / "imagenet"), f"{s3_bucket}/imagenet"
    upload(local, images)
    items = list_images(images).items
    gone = items[0].key
    storage.delete(images, gone)
    (local / gone).unlink()
    labeler = ShardLabeler(load_config())
    remote, copy = (labeler.label_images(root, items) for root in (images, str(local)))
    assert [r.error for r in remote] == [r.error for r in copy]
    assert remote[0].error == "file not found" and remote[1].error is None
    broken = [i.key for i in items].index("train/n01443537/broken.JPEG")
    assert remote[broken].error == "not an image (cannot identify format)"


def test_a_list_file_of_urls_labels_those_objects_as_their_prefix_does(s3_bucket, tmp_path):
    local, images = imagenet_photos(tmp_path / "imagenet"), f"{s3_bucket}/imagenet"
    upload(local, images)
    by_prefix = list_images(images).items
    gone = f"{images}/train/n01440764/gone.JPEG"
    urls = [f"{images}/{item.key}" for item in by_prefix]
    (tmp_path / "urls.txt").write_text("\n".join(["# a list of objects", gone, *urls]) + "\n")
    listed = list_images(tmp_path / "urls.txt")
    assert listed.kind == "list" and [item.key for item in listed.items] == sorted([gone, *urls])
    assert listed.location(gone) == gone and listed.location("a/b.png") == f"{tmp_path}/a/b.png"
    labeler = ShardLabeler(load_config())
    results = dict(zip(listed.items.keys.tolist(), labeler.label_images(str(listed.root), listed.items)))
    assert results.pop(gone).error == "file not found"
    for item, expected in zip(by_prefix, labeler.label_images(images, by_prefix), strict=True):
        got = results[f"{images}/{item.key}"]
        assert got.error == expected.error and got.orig_hw == expected.orig_hw
        assert expected.error or (got.semantic == expected.semantic).all() and (got.instance == expected.instance).all()


def test_the_probe_reads_an_image_object(s3_bucket, tmp_path):
    images = f"{s3_bucket}/imagenet"
    upload(imagenet_photos(tmp_path / "imagenet"), images)
    storage.write_bytes(f"{s3_bucket}/ds", ".c2f-probe-0", b"token")
    key = "train/n01440764/astronaut.JPEG"
    assert probe.probe_node(f"{s3_bucket}/ds", ".c2f-probe-0", b"token", f"{images}/{key}") is None
    storage.delete(images, key)
    problem = probe.probe_node(f"{s3_bucket}/ds", ".c2f-probe-0", b"token", f"{images}/{key}")
    assert problem == f"the input image {images}/{key}: no such object"


def test_the_object_lock_refuses_a_second_job_and_is_taken_from_a_dead_one(s3_bucket):
    url = f"{s3_bucket}/ds"
    with store_lock(url):
        held = json.loads(storage.read_bytes(s3_bucket, ".ds.c2f-label.lock"))
        assert held["pid"] == os.getpid()
        with pytest.raises(LabelingError, match=f"PID {os.getpid()} on .*delete {s3_bucket}/.ds.c2f-label.lock"):
            with store_lock(url):
                pass
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = {"host": socket.gethostname(), "pid": int(dead.stdout), "since": "then"}
    storage.write_bytes(s3_bucket, ".ds.c2f-label.lock", json.dumps(stale).encode())
    with store_lock(url):  # its holder is gone from this host: taken over
        assert json.loads(storage.read_bytes(s3_bucket, ".ds.c2f-label.lock"))["pid"] == os.getpid()
    storage.write_bytes(s3_bucket, ".ds.c2f-label.lock", json.dumps({**stale, "host": "elsewhere"}).encode())
    with pytest.raises(LabelingError, match="on elsewhere since then"):
        with store_lock(url):
            pass


def test_c2f_label_refuses_a_url_without_a_prefix_or_a_bucket_in_one_line(photo_folder, s3_bucket, capsys):
    assert main([str(photo_folder), "-o", s3_bucket, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "needs a prefix inside its bucket" in err
    assert main([str(photo_folder), "-o", f"{s3_bucket}-missing/ds", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the write was refused (does the bucket exist" in err


@pytest.mark.slow
def test_job_on_s3_killed_with_sigkill_resumes_to_the_same_store(
    photo_folder, s3_bucket, tmp_path, ray_session, fault_backends, hold_events
):
    kill_and_resume(photo_folder, f"{s3_bucket}/killed", tmp_path / "clean", hold_events, 80, before=3)  # coffee.jpg
