"""Tiny inputs for the `c2f-train eval` tests: an exported tiny encoder and labeled image folders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from training.export import write_encoder
from training.models.factory import create_model

COLOURS = {"blue": (30, 60, 220), "green": (40, 200, 60), "red": (220, 40, 30)}


def eval_argv(encoder, protocol: str, train, val) -> list:
    """`c2f-train eval` arguments: ENCODER measured with PROTOCOL on TRAIN and VAL (options follow)."""
    return ["eval", "--encoder", encoder, "--protocol", protocol, "--train", train, "--val", val]


def export_tiny_encoder(path: Path, seed: int = 0) -> Path:
    """A 32 px, patch-8, 32-wide, 2-block ViT from the model registry, written as `c2f-train
    export` does: directory `path` in timm's Hugging Face layout."""
    write_encoder(tiny_encoder_model(seed), path, 32, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    return path


def export_format1_encoder(path: Path, seed: int = 0) -> Path:
    """The same encoder as `c2f-train export` wrote it before timm's layout (format 1): a state
    dict at `path` (.pth) and its record (timm name or null, kwargs, mean/std) beside it (.json)."""
    model = tiny_encoder_model(seed)
    torch.save(model.encoder_state_dict(), path)
    spec = model.timm_spec()
    record = {
        "format_version": 1,
        "timm_model": spec["model"],
        "timm_kwargs": {**spec["kwargs"], "num_classes": 0},
        "input_size": [3, 32, 32],
        "mean": [0.485, 0.456, 0.406],
        "std": [0.229, 0.224, 0.225],
    }
    path.with_suffix(".json").write_text(json.dumps(record))
    return path


def tiny_encoder_model(seed: int):
    torch.manual_seed(seed)
    return create_model("c2fmae_vit_tiny_cpu", num_classes=3, img_size=32, embed_dim=32, depth=2, num_heads=2)


def labeled_folders(root: Path, per_class: int = 6, size: int = 40) -> tuple[Path, Path]:
    """root/train and root/val, each with class folders of noisy solid-colour images."""
    rng = np.random.default_rng(0)
    for split, count in (("train", per_class), ("val", max(2, per_class // 2))):
        for name, colour in COLOURS.items():
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                pixels = np.clip(np.asarray(colour) + rng.normal(0, 12, (size, size, 3)), 0, 255)
                Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{i:03d}.png")
    return root / "train", root / "val"
