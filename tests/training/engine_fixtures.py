"""Tiny runs for the engine, CLI, export and DDP tests (import explicitly).

A 16-image store with matching PNGs (data_fixtures.make_tiny_store) and a model small enough that a
CPU step takes milliseconds: ViT 32 px, patch 8 (16 patches), width 32.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training.config import load_config

from .data_fixtures import TinyStore, make_tiny_store

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


@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory) -> TinyStore:
    """16 done images (4 shards of 4) on a 64 px canvas."""
    return make_tiny_store(
        tmp_path_factory.mktemp("engine_store"), num_images=16, shard_size=4, pending_shards=(), failed=()
    )
