"""Loading SAM for the box-prompted and automatic backends, in its two variants, and naming it.

- `sam`: plain Segment Anything, from a segment-anything `.pth` checkpoint. vit_h / vit_l / vit_b is
  read from the width of the image encoder's patch embedding in the state dict (1280 / 1024 / 768)
  or, failing that, from the file name (the official names contain it).
- `hq`: HQ-SAM (Ke et al., 2023), the SAM a digest of the paper names for its labels, through transformers'
  `SamHQModel` + `SamHQProcessor` from a local model folder or a hub id (the transformers team keeps
  the converted SysCV weights as `syscv-community/sam-hq-vit-{base,large,huge}`).

An HQ checkpoint in SysCV's own `.pth` layout is recognised (its mask decoder has an `hf_token`)
and refused with the way to load it instead of a state-dict mismatch.
"""

from __future__ import annotations

import os
import re

import torch

from plumbing.errors import one_line

from ..errors import LabelingError
from .base import model_reference

VARIANTS = ("hq", "sam")
_ENCODER_WIDTH = {1280: "vit_h", 1024: "vit_l", 768: "vit_b"}
_PATCH_EMBED = "image_encoder.patch_embed.proj.weight"
_HQ_TOKEN = "mask_decoder.hf_token.weight"  # the HQ output token: only in SysCV's HQ-SAM .pth files
HQ_HUB_IDS = "syscv-community/sam-hq-vit-huge (or -large, -base)"


def require_one_sam(backend: str, checkpoint, model) -> None:
    """LabelingError unless exactly one of a SAM checkpoint and a built SAM model was given."""
    if (checkpoint is None) == (model is None):
        raise LabelingError(f"{backend} needs exactly one of sam_checkpoint and sam_model")


def check_variant(variant: str) -> str:
    if variant not in VARIANTS:
        raise LabelingError(f"sam_variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
    return variant


def sam_kind(checkpoint: str | os.PathLike, state_dict: dict | None = None) -> str:
    """ "vit_h" | "vit_l" | "vit_b": from the state dict's encoder width when given, else the file name."""
    if state_dict is not None and _PATCH_EMBED in state_dict:
        width = int(state_dict[_PATCH_EMBED].shape[0])
        if width in _ENCODER_WIDTH:
            return _ENCODER_WIDTH[width]
    match = re.search(r"vit_([hlb])", os.path.basename(os.fspath(checkpoint)).lower())
    if match:
        return f"vit_{match.group(1)}"
    raise LabelingError(f"cannot tell the SAM variant (vit_h/vit_l/vit_b) of {os.fspath(checkpoint)!r}")


def load_sam(checkpoint: str | os.PathLike, device: torch.device) -> torch.nn.Module:
    """A segment-anything `Sam` in eval mode on `device`, weights from a checkpoint file."""
    from segment_anything import sam_model_registry

    path = os.fspath(checkpoint)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError) as err:
        hint = "; for HQ-SAM set sam_variant: hq" if not os.path.isfile(path) else ""
        raise LabelingError(f"cannot read SAM checkpoint {path!r}: {one_line(err)}{hint}") from None
    if _HQ_TOKEN in state:
        raise LabelingError(
            f"{path} is an HQ-SAM checkpoint in SysCV's layout: set sam_variant: hq and "
            f"sam_checkpoint to a transformers SamHQ model, e.g. {HQ_HUB_IDS}"
        )
    sam = sam_model_registry[sam_kind(checkpoint, state)](checkpoint=None)
    try:
        sam.load_state_dict(state)
    except RuntimeError as err:
        raise LabelingError(f"SAM checkpoint does not fit: {one_line(err)}") from None
    return sam.to(device).eval()


def load_sam_hq(name: str | os.PathLike, revision: str | None, device: torch.device):
    """(transformers SamHQModel in eval mode on device, its SamHQProcessor) from a folder or hub id.
    Attention through torch's SDPA (transformers 5's default for SamHQ, stated here so it stays)."""
    from transformers import SamHQModel, SamHQProcessor

    name = os.fspath(name)
    if os.path.isfile(name):
        raise LabelingError(
            f"sam_checkpoint {name!r} is a file; HQ-SAM loads a transformers SamHQ model folder "
            f"or hub id, e.g. {HQ_HUB_IDS}; for a segment-anything .pth set sam_variant: sam"
        )
    try:
        model = SamHQModel.from_pretrained(name, revision=revision, attn_implementation="sdpa")
        processor = SamHQProcessor.from_pretrained(name, revision=revision)
    except (OSError, ValueError, KeyError) as err:
        raise LabelingError(f"cannot load HQ-SAM {name!r}: {one_line(err)}") from None
    return model.to(device).eval(), processor


def sam_identity(
    variant: str, checkpoint: str | os.PathLike | None, encoder_width: int, img_size: int, config=None
) -> dict:
    """The SAM variant, its size (vit_h/l/b by encoder width; "custom" for others) and where its
    weights came from: path + sha256, hub id + commit, or "injected" for a model handed over (tests)."""
    kind = {"sam_variant": variant, "sam_kind": _ENCODER_WIDTH.get(encoder_width, "custom"), "sam_img_size": img_size}
    if checkpoint is None:
        return kind | {"sam_weights": "injected"}
    return kind | {"sam_" + k: v for k, v in model_reference(checkpoint, config).items()}
