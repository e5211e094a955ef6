"""Named models, timm-style: ``create_model("c2fmae_vit_base_patch16", num_classes=150)``.

Names are ``{prefix}_{arch}`` with prefix ``c2fmae`` (mode c2f), ``parallel`` or ``mae`` and arch
one of ``ARCH_PRESETS``; ``register_model`` adds others.
"""

from collections.abc import Callable

import torch.nn as nn

from training.models.c2fmae import C2FMAE
from training.models.config import ARCH_PRESETS, ModelConfig

_REGISTRY: dict[str, Callable[..., ModelConfig]] = {}
_PREFIX_MODES = {"c2fmae": "c2f", "parallel": "parallel", "mae": "mae"}


def build_model(cfg: ModelConfig, num_classes: int) -> nn.Module:
    """The model described by ``cfg`` for a semantic label space of ``num_classes`` classes."""
    if num_classes < 1:
        raise ValueError(f"num_classes must be positive, got {num_classes}")
    return C2FMAE(cfg, num_classes)


def register_model(name: str) -> Callable:
    """Decorator: register ``fn(**overrides) -> ModelConfig`` under ``name``."""

    def wrap(fn: Callable[..., ModelConfig]) -> Callable[..., ModelConfig]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[name] = fn
        return fn

    return wrap


def list_models() -> list[str]:
    """All registered model names, sorted."""
    return sorted(_REGISTRY)


def model_config(name: str, **overrides) -> ModelConfig:
    """The config of the registered model ``name`` with ``overrides`` applied."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(list_models())}")
    return _REGISTRY[name](**overrides)


def create_model(name: str, num_classes: int, **overrides) -> nn.Module:
    """``build_model(model_config(name, **overrides), num_classes)``."""
    return build_model(model_config(name, **overrides), num_classes)


def _preset(arch: str, mode: str) -> Callable[..., ModelConfig]:
    return lambda **overrides: ModelConfig.from_arch(arch, **{"mode": mode, **overrides})


for _prefix, _mode in _PREFIX_MODES.items():
    for _arch in ARCH_PRESETS:
        register_model(f"{_prefix}_{_arch}")(_preset(_arch, _mode))
