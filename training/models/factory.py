"""Named models, timm-style: ``create_model("c2fmae_vit_base_patch16", num_classes=150)``, and
``build_model``, which composes a ``C2FMAE`` from the parts ``cfg.mode`` names: the one place the
mode is read.

Names are ``{prefix}_{arch}`` with prefix ``c2fmae`` (mode c2f), ``parallel`` or ``mae`` and arch
one of ``ARCH_PRESETS``; ``register_model`` adds others.
"""

from collections.abc import Callable

import torch.nn as nn

from training.layers.adapters import InstanceAdapter, SemanticAdapter
from training.layers.patch_embed import RGBAdapter
from training.models.c2fmae import C2FMAE
from training.models.config import ARCH_PRESETS, ModelConfig
from training.models.decoders import TARGETS, CascadeDecoder, MAEDecoder, ParallelDecoder
from training.patches import LABEL_STRIDE

_REGISTRY: dict[str, Callable[..., ModelConfig]] = {}
_PREFIX_MODES = {"c2fmae": "c2f", "parallel": "parallel", "mae": "mae"}


def build_model(cfg: ModelConfig, num_classes: int) -> C2FMAE:
    """The model described by ``cfg`` for a semantic label space of ``num_classes`` classes."""
    if num_classes < 1:
        raise ValueError(f"num_classes must be positive, got {num_classes}")
    targets, decoder = _MODES[cfg.mode]
    return C2FMAE(cfg, input_adapters(cfg, num_classes, targets), decoder(cfg), heads(cfg, num_classes, targets))


def input_adapters(cfg: ModelConfig, num_classes: int, inputs: tuple[str, ...]) -> dict[str, nn.Module]:
    """One adapter per input, RGB first (the model registers them, and sums their tokens with
    ``sum`` fusion, in this order)."""
    p, d = cfg.patch_size, cfg.embed_dim
    make = {
        "rgb": lambda: RGBAdapter(cfg.img_size, p, d),
        "semantic": lambda: SemanticAdapter(num_classes, p, d, cfg.semantic_embed_dim),
        "instance": lambda: InstanceAdapter(p, d),
    }
    return {t: build() for t, build in make.items() if t in inputs}


def heads(cfg: ModelConfig, num_classes: int, targets: tuple[str, ...]) -> nn.ModuleDict:
    """One linear head per target on the decoder features: rgb p*p*3 pixels, semantic
    (p/4)^2 * num_classes logits, instance (p/4)^2 * instance_embed_dim embedding values."""
    p, cells = cfg.patch_size, (cfg.patch_size // LABEL_STRIDE) ** 2
    out = {"semantic": cells * num_classes, "instance": cells * cfg.instance_embed_dim, "rgb": p * p * 3}
    return nn.ModuleDict({t: nn.Linear(cfg.decoder_dim, out[t]) for t in targets})


def stage_decoder_args(cfg: ModelConfig) -> dict:
    """Arguments of ``CascadeDecoder`` and ``ParallelDecoder``. The encoder's token groups are one
    per target with ``tokens`` fusion, one fused group kept by the shared mask with ``sum``."""
    return dict(
        embed_dim=cfg.embed_dim,
        dim=cfg.decoder_dim,
        grid=cfg.grid,
        depth=cfg.stage_depth,
        num_heads=cfg.decoder_heads,
        mlp_ratio=cfg.mlp_ratio,
        sources=("rgb",) if cfg.input_fusion == "sum" else TARGETS,
        context_embed=cfg.decoder_context_embed,
    )


def mae_decoder(cfg: ModelConfig) -> MAEDecoder:
    """MAE's decoder, ``decoder_depth`` blocks; ``decoder_context_embed`` does not apply."""
    return MAEDecoder(cfg.embed_dim, cfg.decoder_dim, cfg.grid, cfg.decoder_depth, cfg.decoder_heads, cfg.mlp_ratio)


# mode -> (its targets, which are also its inputs; its decoder)
_MODES: dict[str, tuple[tuple[str, ...], Callable[[ModelConfig], nn.Module]]] = {
    "c2f": (TARGETS, lambda cfg: CascadeDecoder(**stage_decoder_args(cfg))),
    "parallel": (TARGETS, lambda cfg: ParallelDecoder(**stage_decoder_args(cfg))),
    "mae": (("rgb",), mae_decoder),
}


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
