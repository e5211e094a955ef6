"""`c2f-train`: bad inputs are one line on stderr with exit code 2; a rerun resumes."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from datasets_spec import create_store
from tests.system import small_tmpfs
from training.cli import main

from .engine_fixtures import read_log, train_argv, write_tiny_yaml
from .worker_processes import workers_left_by

C2F_TRAIN = Path(sys.executable).with_name("c2f-train")


@pytest.fixture
def config(tmp_path) -> Path:
    return write_tiny_yaml(tmp_path / "tiny.yaml")


def _run(capsys, *argv) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    return code, err


def _assert_one_error(code: int, err: str, *needles: str) -> None:
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith("c2f-train: error: ") and "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_missing_store(capsys, config, tiny_store, tmp_path):
    code, err = _run(capsys, *train_argv(config, tmp_path / "nope", tiny_store.images, tmp_path / "run"))
    _assert_one_error(code, err, "nope")


def test_foreign_store_and_schema_mismatch(capsys, config, tiny_store, tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "zarr.json").write_text(json.dumps({"zarr_format": 3, "node_type": "group", "attributes": {}}))
    _assert_one_error(
        *_run(capsys, *train_argv(config, foreign, tiny_store.images, tmp_path / "r1")), "not a c2fmae dataset"
    )
    future = tmp_path / "future"
    shutil.copytree(tiny_store.path, future)
    doc = json.loads((future / "zarr.json").read_text())
    doc["attributes"]["c2fmae"]["schema_version"] = 99
    (future / "zarr.json").write_text(json.dumps(doc))
    _assert_one_error(
        *_run(capsys, *train_argv(config, future, tiny_store.images, tmp_path / "r2")), "schema version 99"
    )


def test_store_without_done_images(capsys, config, tiny_store, tmp_path):
    create_store(
        tmp_path / "empty", ["a.png", "b.png"], [0, 0], canvas=64, shard_size=2, label_space={0: "x"}, provenance={}
    )
    code, err = _run(capsys, *train_argv(config, tmp_path / "empty", tiny_store.images, tmp_path / "run"))
    _assert_one_error(code, err, "no done images")


def test_images_root_without_the_stores_keys(capsys, config, tiny_store, tmp_path):
    (tmp_path / "other").mkdir()
    code, err = _run(capsys, *train_argv(config, tiny_store.path, tmp_path / "other", tmp_path / "run"))
    _assert_one_error(code, err, "c0/img_000.png")


def test_config_typo_and_missing_config(capsys, config, tiny_store, tmp_path):
    code, err = _run(
        capsys, *train_argv(config, tiny_store.path, tiny_store.images, tmp_path / "run", "--set", "optim.blr_=1")
    )
    _assert_one_error(code, err, "'optim.blr_'", "did you mean 'optim.blr'?")
    code, err = _run(capsys, *train_argv(tmp_path / "none.yaml", tiny_store.path, tiny_store.images, tmp_path / "run"))
    _assert_one_error(code, err, "none.yaml")
    _assert_one_error(*_run(capsys, "--config", config), "required")


def test_corrupt_checkpoint_and_changed_model_shape(capsys, config, tiny_store, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "latest.pt").write_bytes(b"\x00" * 64)
    code, err = _run(capsys, *train_argv(config, tiny_store.path, tiny_store.images, run))
    _assert_one_error(code, err, "no readable checkpoint", "latest.pt")
    (run / "latest.pt").unlink()
    assert _run(capsys, *train_argv(config, tiny_store.path, tiny_store.images, run, "--max-steps", 1))[0] == 0
    code, err = _run(
        capsys, *train_argv(config, tiny_store.path, tiny_store.images, run, "--set", "model.embed_dim=48")
    )
    _assert_one_error(code, err, "different model shape", "model.embed_dim: 32 -> 48")


def test_rerun_resumes_and_falls_back_from_a_corrupt_latest(capsys, config, tiny_store, tmp_path):
    run = tmp_path / "run"
    args = train_argv(config, tiny_store.path, tiny_store.images, run, "--set", "engine.checkpoint_every=1")
    assert _run(capsys, *args, "--max-steps", 3)[0] == 0
    (run / "latest.pt").write_bytes(b"torn write")
    code, err = _run(capsys, *args, "--max-steps", 4)
    assert code == 0 and "warning" in err and "previous.pt" in err
    assert [r["step"] for r in read_log(run / "log.jsonl")] == [1, 2, 3, 4]  # resumed at 2


@pytest.mark.slow
def test_console_script_exit_code_and_single_line(config, tmp_path):
    proc = subprocess.run(
        [str(C2F_TRAIN), *train_argv(config, tmp_path / "x", tmp_path, tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("c2f-train: error: ")


@pytest.mark.parametrize("workers", [0, 1])
def test_image_broken_after_the_start_is_one_line(capsys, tiny_store, tmp_path, workers):
    config = write_tiny_yaml(tmp_path / "tiny.yaml", f"data.num_workers={workers}")
    images = tmp_path / "images"
    shutil.copytree(tiny_store.images, images)
    victims = sorted(p for p in images.rglob("*") if p.is_file())
    for victim in victims:  # every image: the first batch must meet one
        victim.write_bytes(victim.read_bytes()[:40])
    args = train_argv(config, tiny_store.path, images, tmp_path / "run", "--max-steps", "2")
    if workers:
        (code, err), left = workers_left_by(lambda: _run(capsys, *args))
        assert left == []  # stopped with the run, not at a later garbage collection (5 s wait)
    else:
        code, err = _run(capsys, *args)
    _assert_one_error(code, err, "reading the data for step 1 failed", "cannot read image")


@pytest.fixture
def small_disk(tmp_path):
    """A 256 KiB tmpfs at tmp_path/disk, unmounted afterwards."""
    with small_tmpfs(tmp_path / "disk", "256k") as mount:
        yield mount


@pytest.mark.parametrize(
    "free_kib, what",
    [
        (0, "cannot write the run"),  # not even config.yaml fits
        (88, "cannot write a checkpoint"),
    ],
)  # the config, the curriculum plot (under 64 KiB) and the log fit
def test_a_full_disk_is_one_line_naming_the_run_dir(capsys, config, tiny_store, small_disk, free_kib, what):
    with open(small_disk / "filler", "wb", buffering=0) as f, pytest.raises(OSError):
        while True:
            f.write(b"\0" * 4096)
    os.truncate(small_disk / "filler", (small_disk / "filler").stat().st_size - free_kib * 1024)
    run = small_disk / "run"
    code, err = _run(capsys, *train_argv(config, tiny_store.path, tiny_store.images, run, "--max-steps", 1))
    _assert_one_error(code, err, f"{run}: {what} (No space left on device)")
    assert not run.exists() or not list(run.glob("*.pt")) and not list(run.glob(".*tmp*"))


def test_latest_checkpoint_that_is_a_directory_is_one_line(capsys, config, tiny_store, tmp_path):
    run = tmp_path / "run"
    (run / "latest.pt").mkdir(parents=True)
    code, err = _run(capsys, *train_argv(config, tiny_store.path, tiny_store.images, run, "--max-steps", 1))
    _assert_one_error(code, err, "latest.pt", "Is a directory")


def test_ctrl_c_is_exit_130_with_the_command_that_resumes(capsys, config, tiny_store, tmp_path, monkeypatch):
    import training.engine

    def interrupted(*_, **__):
        raise KeyboardInterrupt

    monkeypatch.setattr(training.engine, "train", interrupted)
    args = [str(a) for a in train_argv(config, tiny_store.path, tiny_store.images, tmp_path / "my run", "--seed", 3)]
    code, err = _run(capsys, *args)
    assert code == 130, err
    assert err == f"c2f-train: interrupted; to resume, run: c2f-train {shlex.join(args)}\n"
    assert shlex.split(err.split("run: ", 1)[1])[1:] == args
