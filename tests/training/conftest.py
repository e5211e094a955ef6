"""Fixtures for the training tests: a tiny model config, a structured batch, a tiny store."""

import pytest
import torch

from training.models import ModelConfig

from .data_fixtures import TinyStore, make_tiny_store

TINY_CLASSES = 5


@pytest.fixture
def tiny_model_cfg() -> ModelConfig:
    """32x32 images, 8x8 patches (L = 16), 32-wide encoder and decoder."""
    return ModelConfig.from_arch(
        "vit_tiny_cpu",
        img_size=32,
        patch_size=8,
        embed_dim=32,
        depth=2,
        num_heads=2,
        decoder_dim=32,
        decoder_heads=2,
        decoder_depth=1,
        stage_depth=1,
        semantic_embed_dim=8,
    )


@pytest.fixture
def tiny_train_batch() -> dict:
    """4 samples following docs/contracts.md: blocky semantic and instance maps with ignore."""
    g = torch.Generator().manual_seed(0)
    n, size = 4, 32
    semantic = torch.randint(0, TINY_CLASSES, (n, size // 8, size // 8), generator=g)
    semantic = semantic.repeat_interleave(8, 1).repeat_interleave(8, 2)
    semantic[:, :, -4:] = -1
    instance = torch.randint(0, 4, (n, size // 4, size // 4), generator=g)
    instance = instance.repeat_interleave(4, 1).repeat_interleave(4, 2)
    instance[:, :, -4:] = -1
    return {
        "image": torch.randn(n, 3, size, size, generator=g),
        "semantic": semantic,
        "instance": instance,
        "index": torch.arange(n),
    }


@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory) -> TinyStore:
    """16 done images (4 shards of 4) on a 64 px canvas, with matching PNGs (one per test module)."""
    return make_tiny_store(
        tmp_path_factory.mktemp("engine_store"), num_images=16, shard_size=4, pending_shards=(), failed=()
    )
