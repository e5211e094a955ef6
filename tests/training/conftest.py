"""Fixtures for the model-side training tests: a tiny model config and a structured batch."""

import pytest
import torch

from training.models import ModelConfig

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
