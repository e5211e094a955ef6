"""Load an encoder to evaluate, as a timm VisionTransformer (any classifier head is dropped):

- a directory in timm's Hugging Face layout (`c2f-train export` output, or a timm model saved with
  `save_for_hf`): DIR or `local-dir:DIR`, config.json + model.safetensors (training/models/timm_layout.py);
- format 1 of `c2f-train export`: encoder.pth with encoder.json beside it;
- any timm ViT state dict (.pth): it has no record of its architecture, so `encoder.timm_model`
  (and `encoder.timm_kwargs` for non-standard sizes) names it.

Nothing is downloaded: weights come only from the files, through safetensors or
`torch.load(weights_only=True)`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from timm.data import create_transform
from torch import nn

from training.errors import TrainingError
from training.eval.config import EncoderConfig
from training.models import timm_layout
from training.models.encoder_io import build_timm_vit

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HEAD_PREFIXES = ("head.", "fc_norm.", "head_drop.")  # classifier parts: never part of the encoder


@dataclass(frozen=True)
class EncoderSpec:
    """What builds the encoder and its input: timm name and kwargs, image size, normalisation."""

    path: Path  # an export directory, or a state dict file
    timm_model: str | None  # None: timm's VisionTransformer(**timm_kwargs)
    timm_kwargs: dict
    img_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


def eval_transform(spec: EncoderSpec, crop_pct: float):
    """timm's evaluation transform for the encoder's input: bicubic resize to img_size / crop_pct,
    centre crop, the encoder's mean/std. PIL image → tensor [3, img_size, img_size]."""
    return create_transform(
        spec.img_size,
        is_training=False,
        interpolation="bicubic",
        crop_pct=crop_pct,
        mean=spec.mean,
        std=spec.std,
    )


def read_spec(path: str | Path, cfg: EncoderConfig) -> EncoderSpec:
    """The spec of the encoder at `path` (a directory's config.json, or the encoder.json beside a
    file), overridden by `cfg`."""
    path = timm_layout.local_dir(path)
    if path.is_dir():
        meta = _dir_meta(path)
    elif path.is_file():
        meta = _read_meta(path.with_suffix(".json"))
    else:
        raise TrainingError(f"{path}: encoder weights not found")
    name = cfg.timm_model or meta.get("timm_model")
    if not name and not meta.get("timm_kwargs"):
        raise TrainingError(
            f"{path}: no {path.with_suffix('.json').name} beside it; name the "
            "architecture with --set encoder.timm_model=NAME (e.g. vit_base_patch16_224)"
        )
    kwargs = {k: v for k, v in {**meta.get("timm_kwargs", {}), **cfg.timm_kwargs}.items() if k != "num_classes"}
    probe = _create(name, kwargs)
    img_size = int(probe.patch_embed.img_size[0])
    mean = tuple(cfg.mean or meta.get("mean") or IMAGENET_MEAN)
    std = tuple(cfg.std or meta.get("std") or IMAGENET_STD)
    return EncoderSpec(path, name, kwargs, img_size, mean, std)


def load_encoder(spec: EncoderSpec, **create_kwargs) -> nn.Module:
    """The timm ViT of `spec` with the file's weights (strict, head excluded).

    `create_kwargs` go to timm.create_model (num_classes, drop_path_rate, global_pool); a new
    classifier head keeps its fresh initialisation, and with global_pool="avg" timm replaces the
    final norm by fc_norm (the file's `norm.*` is then unused, as in MAE's fine-tuning)."""
    model = _create(spec.timm_model, {**spec.timm_kwargs, "num_classes": 0, **create_kwargs})
    weights = _encoder_weights(spec.path)
    own = model.state_dict()
    if isinstance(model.norm, nn.Identity):
        weights = {k: v for k, v in weights.items() if not k.startswith("norm.")}
    missing = sorted(k for k in own if k not in weights and not k.startswith(HEAD_PREFIXES))
    unexpected = sorted(set(weights) - set(own))
    if missing or unexpected:
        what = f"lacks {missing[0]!r}" if missing else f"has unknown parameter {unexpected[0]!r}"
        raise TrainingError(f"{spec.path}: does not fit {spec.timm_model} {spec.timm_kwargs}: it {what}")
    for key, value in weights.items():
        if value.shape != own[key].shape:
            raise TrainingError(
                f"{spec.path}: {key} has shape {tuple(value.shape)}, {spec.timm_model} expects {tuple(own[key].shape)}"
            )
    model.load_state_dict(weights, strict=False)
    return model


def _encoder_weights(path: Path) -> dict[str, torch.Tensor]:
    if path.is_dir():
        return {k: v for k, v in timm_layout.read_weights(path).items() if not k.startswith(HEAD_PREFIXES)}
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for damaged or foreign files
        raise TrainingError(f"{path}: not a loadable state dict ({type(exc).__name__})") from None
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]  # MAE-style checkpoints keep the weights under "model"
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise TrainingError(f"{path}: expected a dict of tensors (a state dict)")
    return {k: v for k, v in state.items() if not k.startswith(HEAD_PREFIXES)}


def _dir_meta(directory: Path) -> dict:
    """A timm Hugging Face directory's config.json as a format-1 record (name, kwargs, mean/std)."""
    config = timm_layout.read_config(directory)
    if not (directory / timm_layout.WEIGHTS_FILE).is_file():
        raise TrainingError(f"{directory}: no {timm_layout.WEIGHTS_FILE} (not a timm / c2f-train export directory)")
    pretrained = config["pretrained_cfg"]
    return {
        "timm_model": config["architecture"],
        "timm_kwargs": config.get("model_args", {}),
        **{key: pretrained[key] for key in ("mean", "std") if key in pretrained},
    }


def _read_meta(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        meta = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise TrainingError(f"{path}: unreadable encoder record ({exc})") from None
    if not isinstance(meta, dict):
        raise TrainingError(f"{path}: encoder record must be a JSON object")
    return meta


def _create(name: str | None, kwargs: dict) -> nn.Module:
    try:
        model = build_timm_vit(name, kwargs)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise TrainingError(f"cannot build timm model {name or 'VisionTransformer'!r} with {kwargs}: {exc}") from None
    if not hasattr(model, "patch_embed") or not hasattr(model, "blocks"):
        raise TrainingError(f"timm model {name!r} is not a ViT (c2f-train eval needs patch tokens)")
    return model
