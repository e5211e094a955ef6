"""Tiny runs for the engine, CLI, export and DDP tests (import explicitly): a model small enough
that a CPU step takes milliseconds (ViT 32 px, patch 8: 16 patches, width 32) and the c2f-train
command line. Their store is conftest's `tiny_store`.
"""

from __future__ import annotations

import json
from pathlib import Path

from training.config import load_config

TINY = [
    "model.img_size=32",
    "model.patch_size=8",
    "model.embed_dim=32",
    "model.depth=2",
    "model.num_heads=2",
    "model.decoder_dim=32",
    "model.decoder_depth=1",
    "model.decoder_heads=2",
    "model.stage_depth=1",
    "model.semantic_embed_dim=8",
    "data.img_size=32",
    "data.num_workers=0",
    "optim.batch_size=4",
    "optim.epochs=4",
    "optim.warmup_epochs=1",
    "optim.blr=0.05",
    "engine.log_every=1",
    "engine.image_every=0",
    "engine.checkpoint_every=100",
    "engine.keep_every=0",
    "engine.device=cpu",
    "engine.tensorboard=false",
    "engine.progress=false",
]


def tiny_config(*overrides: str):
    """The tiny TrainConfig with `key=value` overrides applied last."""
    return load_config(None, [*TINY, *overrides])


def train_argv(config, store, images, out, *extra) -> list[str]:
    """`c2f-train` arguments: train with CONFIG on STORE (images under IMAGES) into OUT, then `extra`."""
    return [str(a) for a in ("--config", config, "--data", store, "--images", images, "--out", out, *extra)]


def read_log(path: Path) -> list[dict]:
    """All records of a run's log.jsonl, as a machine reading the log sees them."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def write_tiny_yaml(path: Path, *overrides: str) -> Path:
    """The tiny settings as a YAML config file (for CLI tests)."""
    from training.config import save_config

    save_config(tiny_config(*overrides), path)
    return path
