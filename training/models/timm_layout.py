"""timm's Hugging Face layout of an encoder: what `c2f-train export` writes and `c2f-train eval` reads.

    DIR/model.safetensors   the encoder's weights under timm's names (no classifier head)
    DIR/config.json         {"architecture", "num_classes": 0, "num_features", "global_pool",
                             "model_args", "pretrained_cfg", "c2fmae": provenance}
    DIR/README.md           the model card (c2f-train export only; training/model_card.py)

``timm.create_model("local-dir:DIR", pretrained=True)`` builds the encoder with these weights, and
its ``pretrained_cfg`` (so ``timm.data.resolve_data_config``) gives the mean/std it was trained with.
timm passes ``model_args`` to the architecture's entry point, where they override the entry point's
own sizes: every size is written, and an encoder no timm name has (the tiny preset) is written as
``GENERIC_ARCH`` with its sizes. Nothing written holds an absolute path.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from training.errors import TrainingError

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
CARD_FILE = "README.md"  # the model card (training/model_card.py); timm's loader ignores it
LOCAL_DIR = "local-dir:"  # timm's prefix for a local directory; eval takes it too
GENERIC_ARCH = "vit_base_patch16_224"  # a timm ViT entry point; model_args set every size
FORMAT_VERSION = 2  # 1: encoder.pth + encoder.json (still read by c2f-train eval)
EVAL_CROP_PCT = 0.875  # MAE's evaluation transform: resize to size / 0.875, centre crop


def hf_config(spec: dict, img_size: int, mean, std, provenance: dict) -> dict:
    """config.json for an encoder of ``spec`` (``timm_spec()``: timm name or None, and kwargs)
    trained at ``img_size`` with ``mean``/``std``; ``provenance`` (step, run name, ...) goes under
    "c2fmae" with the format version."""
    kwargs = spec["kwargs"]
    return {
        "architecture": spec["model"] or GENERIC_ARCH,
        "num_classes": 0,
        "num_features": kwargs["embed_dim"],
        "global_pool": "token",
        "model_args": dict(kwargs),
        "pretrained_cfg": {
            "input_size": [3, img_size, img_size],
            "fixed_input_size": True,
            "interpolation": "bicubic",
            "crop_pct": EVAL_CROP_PCT,
            "crop_mode": "center",
            "mean": [float(m) for m in mean],
            "std": [float(s) for s in std],
            "num_classes": 0,
            "first_conv": "patch_embed.proj",
            "classifier": "head",
        },
        "c2fmae": {"format_version": FORMAT_VERSION, **provenance},
    }


def local_dir(path: str | Path) -> Path:
    """``local-dir:DIR`` (timm's spelling) or ``DIR`` -> DIR."""
    text = str(path)
    return Path(text[len(LOCAL_DIR) :] if text.startswith(LOCAL_DIR) else text)


def read_config(directory: Path) -> dict:
    """DIR/config.json, checked for what building the encoder needs; one-line TrainingError otherwise."""
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise TrainingError(f"{directory}: no {CONFIG_FILE} (not a timm / c2f-train export directory)")
    try:
        config = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TrainingError(f"{path}: unreadable ({exc})") from None
    pretrained = config.get("pretrained_cfg") if isinstance(config, dict) else None
    if not isinstance(pretrained, dict) or not isinstance(config.get("architecture"), str):
        raise TrainingError(f"{path}: needs an 'architecture' name and a 'pretrained_cfg' object")
    if not isinstance(config.get("model_args", {}), dict):
        raise TrainingError(f"{path}: 'model_args' must be an object")
    for key in ("mean", "std"):
        if key in pretrained and not _three_numbers(pretrained[key]):
            raise TrainingError(f"{path}: pretrained_cfg.{key} must be 3 numbers, got {pretrained[key]!r}")
    return config


def read_weights(directory: Path) -> dict[str, torch.Tensor]:
    """DIR/model.safetensors as {name: tensor} on the CPU (safetensors' loader: no pickle)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(directory) / WEIGHTS_FILE
    if not path.is_file():
        raise TrainingError(f"{directory}: no {WEIGHTS_FILE} (not a timm / c2f-train export directory)")
    try:
        return load_file(path, device="cpu")
    except (SafetensorError, OSError) as exc:
        raise TrainingError(f"{path}: not a loadable safetensors file ({exc})") from None


def weights_bytes(state: dict[str, torch.Tensor]) -> bytes:
    """``state`` serialised as safetensors (metadata format "pt", as the Hub's PyTorch files)."""
    from safetensors.torch import save

    return save({k: v.contiguous() for k, v in state.items()}, metadata={"format": "pt"})


def _three_numbers(value) -> bool:
    return isinstance(value, list) and len(value) == 3 and all(isinstance(v, int | float) for v in value)
