"""`sam-amg`: SAM's automatic mask generator ("everything" mode) as the instance backend.

Also home of the SAM loading shared with `grounded`: a checkpoint path picks vit_h / vit_l / vit_b
from the width of the image encoder's patch embedding in its state dict (1280 / 1024 / 768) or,
failing that, from its file name (the official names contain it).

AMG prompts SAM with a `points_per_side`² grid, one image at a time, and filters masks by predicted
IoU and stability: ~1.4–2.1 s per image for vit_h on a 3090-class GPU at the default 32×32 grid.
It is the slow, prompt-free reference; `grounded` is the fast route. Runs in float32.
"""

from __future__ import annotations

import os
import re

import numpy as np
import torch

from ..errors import LabelingError
from . import register_backend
from .base import InstanceBackend, Instances, model_reference

_ENCODER_WIDTH = {1280: "vit_h", 1024: "vit_l", 768: "vit_b"}
_PATCH_EMBED = "image_encoder.patch_embed.proj.weight"


def sam_kind(checkpoint: str | os.PathLike, state_dict: dict | None = None) -> str:
    """"vit_h" | "vit_l" | "vit_b": from the state dict's encoder width when given, else the file name."""
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

    try:
        state = torch.load(os.fspath(checkpoint), map_location="cpu", weights_only=True)
    except (OSError, RuntimeError) as err:
        raise LabelingError(f"cannot read SAM checkpoint {os.fspath(checkpoint)!r}: {err}") from None
    sam = sam_model_registry[sam_kind(checkpoint, state)](checkpoint=None)
    try:
        sam.load_state_dict(state)
    except RuntimeError as err:
        raise LabelingError(f"SAM checkpoint does not fit: {str(err).splitlines()[0]}") from None
    return sam.to(device).eval()


def sam_identity(checkpoint: str | os.PathLike | None, sam: torch.nn.Module) -> dict:
    """The SAM variant (by encoder width; "custom" for others) and where its weights came from:
    checkpoint path + sha256, or "injected" for a model object handed over (tests)."""
    width = int(sam.image_encoder.patch_embed.proj.weight.shape[0])
    kind = {"sam_kind": _ENCODER_WIDTH.get(width, "custom"), "sam_img_size": int(sam.image_encoder.img_size)}
    if checkpoint is None:
        return kind | {"sam_weights": "injected"}
    return kind | {"sam_" + k: v for k, v in model_reference(checkpoint).items()}


@register_backend("instance", "sam-amg")
class SamAMG(InstanceBackend):
    """sam_checkpoint: SAM .pth file (or sam_model: a built Sam, for tests); the rest are
    SamAutomaticMaskGenerator's parameters; max_masks keeps the best masks by predicted IoU."""

    def __init__(
        self,
        sam_checkpoint: str | None = None,
        sam_model: torch.nn.Module | None = None,
        device: str = "cpu",
        points_per_side: int = 32,
        points_per_batch: int = 64,
        pred_iou_thresh: float = 0.88,
        stability_score_thresh: float = 0.95,
        stability_score_offset: float = 1.0,
        box_nms_thresh: float = 0.7,
        crop_n_layers: int = 0,
        min_mask_region_area: int = 0,
        max_masks: int = 200,
    ):
        from segment_anything import SamAutomaticMaskGenerator

        if (sam_checkpoint is None) == (sam_model is None):
            raise LabelingError("sam-amg needs exactly one of sam_checkpoint and sam_model")
        self.device = torch.device(device)
        self.sam_checkpoint = sam_checkpoint
        self.sam = load_sam(sam_checkpoint, self.device) if sam_model is None else sam_model.to(self.device).eval()
        self.params = dict(
            points_per_side=points_per_side, points_per_batch=points_per_batch, pred_iou_thresh=pred_iou_thresh,
            stability_score_thresh=stability_score_thresh, stability_score_offset=stability_score_offset,
            box_nms_thresh=box_nms_thresh, crop_n_layers=crop_n_layers, min_mask_region_area=min_mask_region_area,
        )
        self.max_masks = int(max_masks)
        self.generator = SamAutomaticMaskGenerator(self.sam, output_mode="binary_mask", **self.params)

    def identity(self) -> dict:
        params = self.params | {"max_masks": self.max_masks}
        return {"name": self.name, **sam_identity(self.sam_checkpoint, self.sam), "params": params}

    @torch.inference_mode()
    def predict(self, images, prompts):
        """images: [H, W, 3] uint8 each (prompts unused) → Instances, masks [M, H, W], score = predicted IoU."""
        return [self._generate(image) for image in images]

    def _generate(self, image: np.ndarray) -> Instances:
        found = self.generator.generate(np.ascontiguousarray(image))
        found.sort(key=lambda m: (-m["predicted_iou"], m["area"]))
        found = found[: self.max_masks]
        if not found:
            return Instances.empty(image.shape[0], image.shape[1], self.name)
        masks = np.stack([m["segmentation"] for m in found]).astype(bool)
        scores = np.array([m["predicted_iou"] for m in found], np.float32)
        return Instances(masks, scores, [None] * len(found), self.name)
