"""Patch masking strategies and the curriculum that mixes them."""

from training.masking.curriculum import Curriculum, CurriculumConfig
from training.masking.patch_masks import (
    INSTANCE,
    RANDOM,
    SEMANTIC,
    STRATEGY_NAMES,
    Masks,
    generate_masks,
    num_keep,
    patch_mode,
)

__all__ = [
    "Curriculum",
    "CurriculumConfig",
    "INSTANCE",
    "RANDOM",
    "SEMANTIC",
    "STRATEGY_NAMES",
    "Masks",
    "generate_masks",
    "num_keep",
    "patch_mode",
]
