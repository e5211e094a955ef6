"""c2f-label end to end through Ray: every backend path, quirky inputs, resume, faults, determinism."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from dataset_tools.info import format_info, info
from datasets_spec import open_store, schema
from datasets_spec.geometry import fit
from datasets_spec.validate import validate
from labeling.cli import main
from labeling.config import load_config
from labeling.errors import LabelingError
from labeling.identity import check_resumable
from labeling.job import run_label_job
from labeling.report import format_report
from labeling.shard_retry import WORKER_DIED
from plumbing.cli_boundary import format_counts
from tests.datasets_spec.store_fixtures import open_as_documented
from tests.datasets_spec.store_fixtures import store_content as _store_content

from .label_cli import kill_and_resume
from .quirky import BAD, make_quirky_imagenet

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def quirky(tmp_path_factory):
    root = tmp_path_factory.mktemp("imagenet")
    return root, make_quirky_imagenet(root)


def test_classic_labels_quirky_imagenet_folder(quirky, tmp_path, ray_session):
    root, good = quirky
    cfg = load_config(flags={"shard_size": 4})
    report = run_label_job(root, tmp_path / "ds", cfg, show_progress=False)
    assert (report["done"], report["failed"], report["pending"]) == (len(good), len(BAD), 0)
    store = open_store(tmp_path / "ds")
    keys = store.keys().tolist()
    assert sorted(keys) == keys and set(keys) == set(good) | set(BAD)
    status, (orig, valid) = store.status(), store.geometry()
    for i, key in enumerate(keys):
        if key in good:
            assert status[i] == schema.DONE and tuple(orig[i]) == good[key], key
            assert tuple(valid[i]) == fit(*good[key], cfg.canvas), key
        else:
            assert status[i] == schema.FAILED
    reasons = {f["key"]: f["reason"] for f in report["failures"]}
    for key, start in BAD.items():
        assert reasons[key].startswith(start), (key, reasons[key])
    labels = dict(zip(keys, store.labels().tolist()))
    assert labels["train/n01440764/gray.JPEG"] == 0 and labels["train/n02012849/tiny.JPEG"] == 134
    assert store.provenance["backends"]["semantic"]["name"] == "classic"
    assert store.provenance["input"]["count"] == len(keys)
    assert validate(tmp_path / "ds") == []
    assert list((tmp_path / "ds" / schema.REPORTS_DIR).glob("label-*.json"))
    ds = open_as_documented(tmp_path / "ds")  # xarray and zarr-python without a warning after the run
    assert ds["status"].chunks[0][0] == 4 and np.array_equal(ds["status"].values, status)


def test_rerun_skips_done_shards_and_refuses_other_settings(photo_folder, tmp_path, ray_session):
    cfg = load_config(flags={"shard_size": 2})
    run_label_job(photo_folder, tmp_path / "ds", cfg, show_progress=False)
    before = _store_content(tmp_path / "ds")
    again = run_label_job(photo_folder, tmp_path / "ds", cfg, show_progress=False)
    assert again["this_run"]["images"] == 0 and again["this_run"]["shards_skipped"] == 3
    open_as_documented(tmp_path / "ds")
    assert _store_content(tmp_path / "ds") == before
    faster = load_config(flags={"shard_size": 2, "batch_size": 3})  # batch size: not in the labels
    assert run_label_job(photo_folder, tmp_path / "ds", faster, show_progress=False)["this_run"]["images"] == 0
    recorded = open_store(tmp_path / "ds").provenance["job"]
    assert (recorded["batch_size"], recorded["device"]) == (8, "cpu")  # provenance keeps the first run's
    check_resumable(tmp_path / "ds", {**recorded, "device": "cuda", "batch_size": 64})  # a GPU may finish it
    other = load_config(flags={"shard_size": 2, "min_area": 9})
    with pytest.raises(LabelingError, match="different min_area"):
        run_label_job(photo_folder, tmp_path / "ds", other, show_progress=False)
    with pytest.raises(LabelingError, match="different input"):
        run_label_job(
            photo_folder, tmp_path / "ds", load_config(flags={"shard_size": 2, "limit": 4}), show_progress=False
        )


def test_dead_worker_shard_is_retried_and_store_is_identical(photo_folder, tmp_path, ray_session, fault_backends):
    flag = f"c2f-crash-once-{os.getpid()}-{tmp_path.name}"
    cfg = load_config(flags={"shard_size": 2, "semantic": {"name": "crash-once", "flag": flag}})
    fault_backends.scratch(flag).touch()  # already taken: nobody dies
    try:
        run_label_job(photo_folder, tmp_path / "clean", cfg, show_progress=False)
        fault_backends.scratch(flag).unlink()
        report = run_label_job(photo_folder, tmp_path / "faulty", cfg, show_progress=False)
        assert fault_backends.scratch(flag).exists()  # a worker really died
    finally:
        fault_backends.scratch(flag).unlink(missing_ok=True)
    assert (report["done"], report["failed"], report["pending"], report["shards_given_up"]) == (6, 0, 0, {})
    assert _store_content(tmp_path / "faulty") == _store_content(tmp_path / "clean")


def test_an_image_that_kills_its_worker_is_recorded_failed_and_the_rest_labeled(
    photo_folder, tmp_path, ray_session, fault_backends
):
    import cv2

    images = tmp_path / "images"
    images.mkdir()
    for path in sorted(photo_folder.glob("*.jpg")):
        (images / path.name).write_bytes(path.read_bytes())
    poison = np.random.default_rng(0).integers(0, 255, (37, 53, 3), dtype=np.uint8)
    cv2.imwrite(str(images / "coffee_poison.png"), poison)  # the middle image of shard 1
    cfg = load_config(flags={"shard_size": 3, "semantic": {"name": "poison", "height": 37}})
    report = run_label_job(images, tmp_path / "ds", cfg, show_progress=False)
    assert (report["done"], report["failed"], report["pending"], report["shards_given_up"]) == (6, 1, 0, {})
    assert report["failures"] == [{"key": "coffee_poison.png", "reason": WORKER_DIED}]
    store = open_store(tmp_path / "ds")
    assert store.keys().tolist()[3:6] == ["coffee.jpg", "coffee_poison.png", "coins.jpg"]
    assert store.status().tolist() == [schema.DONE] * 4 + [schema.FAILED] + [schema.DONE] * 2
    assert validate(tmp_path / "ds") == []


@pytest.mark.slow
def test_job_killed_with_sigkill_resumes_to_the_same_store(
    photo_folder, tmp_path, ray_session, fault_backends, hold_events
):
    kill_and_resume(photo_folder, tmp_path / "killed", tmp_path / "clean", hold_events, 80, before=3)  # coffee.jpg


def test_hf_semantic_and_grounded_hq_sam_instances_and_drop_counts_through_ray(
    quirky, segformer_dir, grounding_dino_dir, sam_hq_dir, tmp_path, ray_session
):
    root, good = quirky
    cfg = load_config(
        flags={
            "shard_size": 3,
            "canvas": 64,
            "limit": 6,
            "semantic": {"name": "hf", "model": str(segformer_dir)},
            "instance": {
                "name": "grounded",
                "detector": str(grounding_dino_dir),
                "sam_checkpoint": str(sam_hq_dir),
                "box_threshold": 0.0,
                "text_threshold": 0.0,
                "max_boxes": 3,
            },
        }
    )
    report = run_label_job(root, tmp_path / "ds", cfg, show_progress=False)
    assert report["pending"] == 0 and report["done"] + report["failed"] == 6
    store = open_store(tmp_path / "ds")
    assert store.label_space == {i: f"seg{i}" for i in range(5)}  # the semantic model's classes
    assert len(store.provenance["job"]["semantic"]["params"]["model"]["sha256"]) == 64
    view = store.read(int(store.done_indices()[0]))
    h, w = view.valid_hw
    assert set(np.unique(view.semantic[:h, :w])) <= set(range(5))
    assert store.provenance["backends"]["instance"]["sam_variant"] == "hq"
    assert len(store.provenance["job"]["instance"]["params"]["sam_checkpoint"]["sha256"]) == 64
    records = [r for s in store.done_shards() for r in store.records(s)]
    assert records, "thresholds at 0 must yield boxes and masks"
    prompts = {r["prompt"] for r in records}
    assert prompts <= {"tench"} and all(r["source"] == "grounded" for r in records)
    # Every detector query of every done image is over a zero threshold, so each one is either a
    # record or dropped for exactly one reason (speck_pieces counts pieces, not instances).
    markers = [store.marker(s)["dropped"] for s in store.done_shards()]
    total = sum((Counter(m) for m in markers), Counter())
    instances = sum(total.values()) - total["speck_pieces"]
    assert instances + len(records) == 30 * report["done"] and total["max_boxes"] > 0
    assert report["dropped"] == info(store)["dropped"] == dict(sorted(total.items()))
    assert "instances dropped: " + format_counts(report["dropped"]) in format_report(report)
    done = store.done_indices()
    counts = Counter(int(store.read(int(i)).instance.max()) for i in done)  # ids are 1..M
    assert report["instances_per_image"] == {
        "mean": round(len(records) / len(done), 3),
        "images": {str(k): counts[k] for k in sorted(counts)},
    }
    assert f"instances per image: mean {len(records) / len(done):.2f}, none in {counts[0]} of {len(done)}" in (
        format_report(report)
    )
    assert "dropped    max_boxes ×" in format_info(info(store))
    assert validate(tmp_path / "ds") == []


def test_grounded_prompts_from_a_list_column_and_a_prompt_file(
    photo_folder, grounding_dino_dir, sam, tmp_path, ray_session
):
    (tmp_path / "list.txt").write_text(
        "".join(
            f"{photo_folder / n}.jpg\t{p}\n"
            for n, p in [("astronaut", "person; flag"), ("chelsea", ""), ("coffee", "")]
        )
    )
    (tmp_path / "prompts.json").write_text(json.dumps({str(photo_folder / "chelsea.jpg"): "tabby cat", "*": "cup"}))
    cfg = load_config(
        flags={
            "shard_size": 3,
            "canvas": 64,
            "prompts": str(tmp_path / "prompts.json"),
            "instance": {
                "name": "grounded",
                "detector": str(grounding_dino_dir),
                "sam_model": sam,
                "sam_variant": "sam",
                "box_threshold": 0.0,
                "text_threshold": 0.0,
                "max_boxes": 4,
            },
        }
    )
    run_label_job(tmp_path / "list.txt", tmp_path / "ds", cfg, show_progress=False)
    store = open_store(tmp_path / "ds")
    found = {}
    for record in store.records(0):
        found.setdefault(Path(record["key"]).stem, set()).update(record["prompt"].split())
    assert found["astronaut"] <= {"person", "flag", "cup"}  # its column, and the file's "*"
    assert found["chelsea"] <= {"tabby", "cat"} and found["coffee"] == {"cup"}  # the exact key beats "*"
    (tmp_path / "prompts.json").write_text(json.dumps({"*": "cup"}))  # other prompts: not the same job
    with pytest.raises(LabelingError, match="different input"):
        run_label_job(tmp_path / "list.txt", tmp_path / "ds", cfg, show_progress=False)


def test_a_grounded_job_with_images_without_prompts_is_refused_in_one_line(photo_folder, tmp_path, capsys, ray_session):
    args = [
        str(photo_folder),
        "-o",
        str(tmp_path / "ds"),
        "--instance",
        "grounded",
        "--set",
        "instance.detector=unused",
        "--set",
        "instance.sam_checkpoint=unused",
    ]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "6 of 6 images have no text prompt for the grounded backend" in err
    assert not (tmp_path / "ds").exists()
    (tmp_path / "p.json").write_text(json.dumps({"*": ["object"]}))
    assert main([*args, "--prompts", str(tmp_path / "p.json"), "--set", "semantic.clusters=99"]) == 2
    err = capsys.readouterr().err  # past the prompt check, the worker refuses a parameter, in one line
    assert err == "c2f-label: error: a label worker could not start: classic: clusters must be in 1..16, got 99\n"


def test_sam_amg_instances_through_ray(photo_folder, sam, tmp_path, ray_session):
    cfg = load_config(
        flags={
            "shard_size": 3,
            "canvas": 64,
            "limit": 3,
            "instance": {
                "name": "sam-amg",
                "sam_model": sam,
                "points_per_side": 4,
                "pred_iou_thresh": 0.0,
                "stability_score_thresh": 0.0,
                "max_masks": 5,
            },
        }
    )
    report = run_label_job(photo_folder, tmp_path / "ds", cfg, show_progress=False)
    assert report["done"] == 3
    store = open_store(tmp_path / "ds")
    assert any(store.records(s) for s in store.done_shards())
    assert validate(tmp_path / "ds") == []


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main([str(tmp_path / "missing"), "-o", str(tmp_path / "ds")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("c2f-label: error: ") and err.count("\n") == 1
    (tmp_path / "cfg.yaml").write_text("shard_sise: 4\n")
    assert main([str(tmp_path), "-o", str(tmp_path / "ds"), "--config", str(tmp_path / "cfg.yaml")]) == 2
    assert "unknown key 'shard_sise'; did you mean 'shard_size'?" in capsys.readouterr().err
    assert main([str(tmp_path), "-o", str(tmp_path / "ds")]) == 2
    assert "no images found" in capsys.readouterr().err
    assert main([str(tmp_path), "-o", str(tmp_path / "ds"), "--backend", "clasic"]) == 2
    assert "unknown semantic backend 'clasic'; valid names: classic, hf" in capsys.readouterr().err


@pytest.mark.slow
def test_address_joins_an_existing_cluster(photo_folder, tmp_path, ray_session):
    address = ray_session.get_runtime_context().gcs_address  # this session's local cluster
    assert address.startswith("127.0.0.1:")
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    cmd = [sys.executable, "-m", "labeling.cli", photo_folder, "-o", tmp_path / "ds", "--address", address]
    cmd += ["--shard-size", "2", "--quiet"]
    job = subprocess.Popen(list(map(str, cmd)), cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = job.communicate(timeout=300)
    assert job.returncode == 0, err[-2000:]
    assert b"6 done, 0 failed, 0 pending" in out
    drivers = [j["DriverPid"] for j in ray_session._private.state.jobs()]  # the cluster's job table
    assert job.pid in drivers  # it ran on this cluster
    assert ray_session.cluster_resources()["CPU"] == 2  # and left it running
    assert validate(tmp_path / "ds") == []
