"""`c2f-train eval --protocol finetune`: MAE's recipe from timm's parts, checkpoints, exact resume."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from training.checkpoint import load_checkpoint
from training.cli import main

from .eval_fixtures import eval_argv, export_tiny_encoder, labeled_folders

# 18 images, batch 6: 3 steps per epoch, 2 epochs; mixup, cutmix, RandAugment, erasing all on
TINY = [
    "--set",
    "run.num_workers=0",
    "--set",
    "run.progress=false",
    "--set",
    "finetune.epochs=2",
    "--set",
    "finetune.warmup_epochs=1",
    "--set",
    "finetune.batch_size=6",
    "--set",
    "finetune.checkpoint_every=1",
    "--set",
    "finetune.blr=0.05",
]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("finetune")
    return export_tiny_encoder(root / "encoder"), *labeled_folders(root / "data")


def _finetune(inputs, out, *extra) -> int:
    encoder, train, val = inputs
    return main(
        [
            *eval_argv(encoder, "finetune", train, val),
            "--out",
            str(out),
            *TINY,
            *extra,
        ]
    )


def test_a_stopped_and_resumed_run_ends_bit_identical(inputs, tmp_path):
    assert _finetune(inputs, tmp_path / "whole") == 0
    assert _finetune(inputs, tmp_path / "split", "--set", "finetune.max_steps=4") == 0
    assert load_checkpoint(tmp_path / "split" / "finetune")[0]["step"] == 4
    assert _finetune(inputs, tmp_path / "split") == 0
    whole, _ = load_checkpoint(tmp_path / "whole" / "finetune")
    split, _ = load_checkpoint(tmp_path / "split" / "finetune")
    assert whole["step"] == split["step"] == 6
    for key, value in whole["model"].items():
        assert torch.equal(value, split["model"][key]), key
    moved = load_file(inputs[0] / "model.safetensors")["blocks.0.attn.qkv.weight"]
    assert not torch.equal(moved, whole["model"]["blocks.0.attn.qkv.weight"])  # it did train
    result = json.loads((tmp_path / "split" / "finetune.json").read_text())
    assert result["metrics"]["step"] == 6 and result["metrics"]["steps_per_epoch"] == 3
    assert result["metrics"]["lr"] == 0.05 * 6 / 256
    log = [json.loads(line) for line in (tmp_path / "whole" / "finetune" / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2]


def test_layer_decay_gives_deeper_blocks_larger_learning_rates(inputs):
    from training.eval.config import EncoderConfig, FinetuneConfig
    from training.eval.encoder import load_encoder, read_spec
    from training.eval.finetune import _optimizer

    spec = read_spec(inputs[0], EncoderConfig())
    model = load_encoder(spec, num_classes=3, global_pool="avg")
    groups = _optimizer(model, FinetuneConfig(layer_decay=0.5), batch=256).param_groups
    scales = sorted({g["lr_scale"] for g in groups})
    assert scales == [0.125, 0.25, 0.5, 1.0]  # embeddings, block 0, block 1, head (depth 2)
    assert all(g["weight_decay"] == 0.0 for g in groups if any(p.ndim == 1 for p in g["params"]))


def test_resuming_with_another_recipe_is_one_line(inputs, tmp_path, capsys):
    assert _finetune(inputs, tmp_path, "--set", "finetune.max_steps=1") == 0
    assert _finetune(inputs, tmp_path, "--set", "finetune.layer_decay=0.9") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "other eval settings" in err


def test_crop_flip_augmentation_keeps_small_images_whole(inputs):
    # augment: crop_flip never zooms: without padding a sample is the image or its mirror
    from PIL import Image

    from training.eval.config import EncoderConfig, FinetuneConfig
    from training.eval.encoder import read_spec
    from training.eval.finetune import _train_transform

    spec = read_spec(inputs[0], EncoderConfig())
    size = spec.img_size
    ramp = Image.fromarray((torch.arange(size * size * 3) % 251).reshape(size, size, 3).to(torch.uint8).numpy())
    torch.manual_seed(0)
    whole = _train_transform(spec, FinetuneConfig(augment="crop_flip", crop_padding=0))
    plain = whole.transforms[-1](whole.transforms[-2](ramp))
    samples = [whole(ramp) for _ in range(12)]
    flips = [torch.allclose(s, plain.flip(2), atol=1e-5) for s in samples]
    assert all(f or torch.allclose(s, plain, atol=1e-5) for s, f in zip(samples, flips)) and 0 < sum(flips) < 12
    padded = _train_transform(spec, FinetuneConfig(augment="crop_flip", crop_padding=3))
    assert all(padded(ramp).shape == (3, size, size) for _ in range(4))
