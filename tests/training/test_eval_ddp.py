"""`c2f-train eval` under torchrun: 2 gloo processes give the single-process result."""

from __future__ import annotations

import json

import pytest

from training.cli import main

from .eval_fixtures import export_tiny_encoder, labeled_folders
from .torchrun import torchrun_c2f_train


@pytest.mark.slow
def test_two_processes_gather_the_features_of_one(tmp_path):
    encoder = export_tiny_encoder(tmp_path / "encoder")
    train, val = labeled_folders(tmp_path / "data", per_class=5)  # 15 images: uneven split over 2 ranks
    common = [
        "eval",
        "--encoder",
        str(encoder),
        "--train",
        str(train),
        "--val",
        str(val),
        "--set",
        "run.num_workers=0",
        "--set",
        "run.progress=false",
    ]
    proc = torchrun_c2f_train(
        *common,
        *("--protocol", "linear", "finetune", "--out", tmp_path / "ddp"),
        *("--set", "linear.epochs=5", "--set", "finetune.epochs=1", "--set", "finetune.batch_size=4"),
    )
    printed = [json.loads(line)["protocol"] for line in proc.stdout.splitlines()]
    assert printed == ["linear", "finetune"]  # rank 0 prints a line per protocol, rank 1 stays quiet
    assert main([*common, "--protocol", "linear", "--out", str(tmp_path / "one"), "--set", "linear.epochs=5"]) == 0
    ddp = json.loads((tmp_path / "ddp" / "linear.json").read_text())
    one = json.loads((tmp_path / "one" / "linear.json").read_text())
    assert ddp["world_size"] == 2 and one["world_size"] == 1
    assert ddp["metrics"] == one["metrics"] and ddp["num_train"] == one["num_train"] == 15
    finetune = json.loads((tmp_path / "ddp" / "finetune.json").read_text())
    assert finetune["metrics"]["batch_size"] == 4 and finetune["metrics"]["step"] == 3
