"""c2f-label around its core: one job per store, leftovers of killed writers removed, workers the
cluster can place, errors no retry can fix stop the job at once, nothing left behind by Ray."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from datasets_spec import open_store, schema, storage
from datasets_spec.validate import validate
from labeling import cluster
from labeling.config import load_config
from labeling.errors import LabelingError
from labeling.job import run_label_job
from labeling.store_lock import lock_path, store_lock
from labeling.worker_pool import worker_count
from plumbing.errors import ConfigError
from training.data import DataConfig, build_dataset

from .photo_files import write_photos

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Four small real photos in a plain folder."""
    return write_photos(tmp_path_factory.mktemp("photos"), ("astronaut", "chelsea", "coffee", "rocket"), 0.15, ".png")


def _cfg(**overrides):
    return load_config(flags={"shard_size": 2, **overrides})


def test_a_second_job_on_the_same_store_is_refused_naming_the_holder(photos, tmp_path, ray_session):
    with store_lock(tmp_path / "ds"):
        with pytest.raises(LabelingError, match=rf"another c2f-label job .*PID {os.getpid()} on "):
            run_label_job(photos, tmp_path / "ds", _cfg(), show_progress=False)
    assert not (tmp_path / "ds").exists()
    assert run_label_job(photos, tmp_path / "ds", _cfg(), show_progress=False)["done"] == 4


def test_a_dead_holders_lock_is_taken_over(tmp_path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; "
            "from labeling.store_lock import store_lock\n"
            "with store_lock(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(600)",
            str(tmp_path / "ds"),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(LabelingError, match=f"PID {holder.pid} "):
            with store_lock(tmp_path / "ds"):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with store_lock(tmp_path / "ds"):
        assert f'"pid": {os.getpid()}' in lock_path(tmp_path / "ds").read_text()


def test_leftovers_of_killed_writers_are_removed(photos, tmp_path, ray_session):
    run_label_job(photos, tmp_path / "ds", _cfg(), show_progress=False)
    marker_tmp = tmp_path / "ds" / schema.MARKERS_DIR / ".shard-000000.json.999999.tmp"
    records_tmp = tmp_path / "ds" / schema.RECORDS_DIR / ".shard-000001.jsonl.gz.999999.tmp"
    creating = tmp_path / ".ds.creating-999999"  # a create killed midway (no such process)
    for path in (marker_tmp, records_tmp):
        path.write_text("half written")
    creating.mkdir()
    run_label_job(photos, tmp_path / "ds", _cfg(), show_progress=False)
    assert not marker_tmp.exists() and not records_tmp.exists() and not creating.exists()
    assert validate(tmp_path / "ds") == []


def test_an_output_inside_the_image_folder_is_refused_up_front(photos, tmp_path):
    folder = tmp_path / "photos"
    shutil.copytree(photos, folder)
    with pytest.raises(LabelingError, match="inside the image folder"):
        run_label_job(folder, folder / "ds", _cfg(), show_progress=False)
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in photos.iterdir())


def test_more_workers_than_the_cluster_can_place_are_capped_with_a_warning(ray_session, caplog):
    cpus = int(ray_session.cluster_resources()["CPU"])
    with caplog.at_level(logging.WARNING, logger="labeling.worker_pool"):
        assert worker_count(_cfg(workers=cpus + 1)) == cpus
    assert f"{cpus + 1} workers asked for, but the cluster can place {cpus}" in caplog.text
    assert worker_count(_cfg(workers=1)) == 1


def test_workers_are_counted_per_node(monkeypatch, caplog):
    """Two nodes of 3 CPUs hold one 2-CPU worker each: 2, not the 3 that the 6 CPUs in all suggest."""
    nodes = [{"Alive": True, "Resources": {"CPU": 3.0}}] * 2 + [{"Alive": False, "Resources": {"CPU": 8.0}}]
    monkeypatch.setattr(cluster.ray, "nodes", lambda: nodes)
    monkeypatch.setattr(cluster.ray, "cluster_resources", lambda: {"CPU": 6.0})
    with caplog.at_level(logging.WARNING, logger="labeling.worker_pool"):
        assert worker_count(_cfg(workers=3, cpus_per_worker=2)) == 2
    assert "3 workers asked for, but the cluster can place 2" in caplog.text
    with pytest.raises(LabelingError, match="needs 4 CPU on one node, and no node of the Ray cluster has that much"):
        worker_count(_cfg(cpus_per_worker=4))


def test_a_worker_needing_a_missing_resource_is_refused(ray_session):
    with pytest.raises(LabelingError, match="needs 1 GPU, but the Ray cluster has 0"):
        worker_count(_cfg(gpus_per_worker=1))


def test_a_local_ray_leaves_no_session_files_but_the_logs_asked_for_and_removes_those_of_killed_jobs():
    tmp_path = Path(tempfile.mkdtemp(dir="/tmp", prefix="c2f-t"))  # short: Ray's socket paths must fit
    killed = tmp_path / "c2f-ray-999999-x1y2"  # a job SIGKILLed earlier (no such process)
    running = tmp_path / f"c2f-ray-{os.getpid()}-x3y4"  # a job still running
    for path in (killed, running):
        (path / "session_old").mkdir(parents=True)
    script = (
        "import os, ray; from labeling import cluster\n"
        "c = cluster.connect(None)\n"
        "session = ray._private.worker._global_node.get_session_dir_path()\n"
        "logs = cluster.shutdown(c, keep_logs=True)\n"
        "print(session, os.path.exists(session), os.path.exists(c.temp_dir), 'raylet.out' in logs)"
    )
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    session, session_left, temp_left, raylet_log_kept = out.stdout.split()
    assert Path(session).is_relative_to(tmp_path)
    assert (session_left, temp_left) == ("False", "False")
    assert raylet_log_kept == "True"  # read before the directory went
    assert list(tmp_path.iterdir()) == [running]
    shutil.rmtree(tmp_path)


def test_a_rerun_labels_damaged_shards_again_and_says_so(photos, tmp_path, ray_session):
    run_label_job(photos, tmp_path / "ds", _cfg(), show_progress=False)
    clean = open_store(tmp_path / "ds")
    before = clean.read_masks(range(4)), [clean.records(s) for s in range(2)]
    (tmp_path / "ds" / "semantic/c/0/0/0").unlink()
    cut = tmp_path / "ds" / storage.records_path(1)
    cut.write_bytes(cut.read_bytes()[:-4])
    assert validate(tmp_path / "ds") != []
    report = run_label_job(photos, tmp_path / "ds", _cfg(), show_progress=False)
    cut_size = cut.stat().st_size  # rewritten whole by now
    assert report["shards_repaired"] == {
        "0": "semantic/c/0/0/0 is missing",
        "1": f"{storage.records_path(1)} has {cut_size - 4} bytes, {cut_size} when written",
    }
    assert report["this_run"]["shards"] == 2 and report["done"] == 4
    assert validate(tmp_path / "ds") == []
    after = open_store(tmp_path / "ds")
    masks = after.read_masks(range(4))
    assert all(np.array_equal(a, b) for a, b in zip(masks, before[0]))
    assert [after.records(s) for s in range(2)] == before[1]


@pytest.mark.parametrize(
    "setting",
    [
        {"limit": -1},
        {"workers": -5},
        {"min_area": -5},
        {"limit": 0},
        {"batch_size": 0},
        {"gpus_per_worker": -1},
        {"canvas": 5000},
    ],
)
def test_out_of_range_settings_are_one_line_errors(setting):
    key = next(iter(setting))
    flag = "--" + key.replace("_", "-")
    with pytest.raises(ConfigError, match=rf"^{flag}: {key}: Input should be (greater|less) than or equal to "):
        load_config(flags=setting)


def test_a_shard_too_large_for_this_machine_is_refused_before_anything_starts(photos, tmp_path):
    with pytest.raises(
        LabelingError,
        match=r"a shard of 4096 images on a 4096-px canvas needs about "
        r"1024\.0 GiB per worker",
    ):
        run_label_job(photos, tmp_path / "ds", _cfg(shard_size=4096, canvas=4096), show_progress=False)
    assert not (tmp_path / "ds").exists()


def test_an_image_the_file_system_refused_is_retried_by_the_next_run(photos, tmp_path, ray_session):
    folder = tmp_path / "photos"
    shutil.copytree(photos, folder)
    late = folder / "late.png"
    late.mkdir()  # not readable as a file: the OS refuses the read (EISDIR), as it would EACCES or EIO
    (folder / "list.txt").write_text("\n".join(sorted(p.name for p in folder.iterdir())))
    first = run_label_job(folder / "list.txt", tmp_path / "ds", _cfg(), show_progress=False)
    reason = {f["key"]: f["reason"] for f in first["failures"]}["late.png"]
    assert reason == "cannot read file (Is a directory)" and first["done"] == 4
    again = run_label_job(folder / "list.txt", tmp_path / "ds", _cfg(), show_progress=False)
    assert again["retried"] == {"late.png": reason} and again["failed"] == 1
    late.rmdir()
    shutil.copy(folder / "chelsea.png", late)  # the cause went away
    last = run_label_job(folder / "list.txt", tmp_path / "ds", _cfg(), show_progress=False)
    assert last["retried"] == {"late.png": reason}
    assert (last["done"], last["failed"], last["this_run"]["shards"]) == (5, 0, 1)
    assert validate(tmp_path / "ds") == []
    assert run_label_job(folder / "list.txt", tmp_path / "ds", _cfg(), show_progress=False)["retried"] == {}


def test_the_pixel_limit_is_a_setting_shared_with_the_trainer(photos, tmp_path, ray_session):
    sizes = {p.name: Image.open(p).size for p in photos.iterdir()}
    limit = sorted(w * h for w, h in sizes.values())[1]  # the smallest two fit
    report = run_label_job(photos, tmp_path / "ds", _cfg(max_pixels=limit), show_progress=False)
    too_large = {f["key"] for f in report["failures"] if f["reason"].startswith("image too large")}
    assert too_large == {n for n, (w, h) in sizes.items() if w * h > limit} and report["done"] == 2
    dataset = build_dataset(DataConfig(img_size=32, num_workers=0), tmp_path / "ds", photos, seed=0)
    assert dataset.max_pixels == limit
    with pytest.raises(LabelingError, match="different max_pixels"):
        run_label_job(photos, tmp_path / "ds", _cfg(), show_progress=False)
