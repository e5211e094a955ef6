"""`sam-amg`: SAM's automatic mask generator ("everything" mode) as the instance backend.

AMG prompts SAM with a `points_per_side`² grid, one image at a time, and filters masks by predicted
IoU and stability (its cost: docs/performance.md, benchmarks/gpu_label.py).
It is the slow, prompt-free reference; `grounded` is the fast route. Plain SAM only (segment-
anything's generator; loading in sam_loader.py). Runs in float32. Masks beyond `max_masks` are
counted in `Instances.dropped["max_masks"]`. The image encoder's attention runs through SDPA
(sam_sdpa.py); `sam_compile` also compiles the encoder.
"""

from __future__ import annotations

import numpy as np
import torch

from . import register_backend
from .base import InstanceBackend, Instances
from .sam_loader import load_sam, require_one_sam, sam_identity
from .sam_sdpa import fuse_attention


@register_backend("instance", "sam-amg")
class SamAMG(InstanceBackend):
    """sam_checkpoint: SAM .pth file (or sam_model: a built Sam, for tests); the rest are
    SamAutomaticMaskGenerator's parameters; max_masks keeps the best masks by predicted IoU;
    sam_compile: torch.compile the image encoder (speed only)."""

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
        sam_compile: bool = False,
    ):
        from segment_anything import SamAutomaticMaskGenerator

        require_one_sam(self.name, sam_checkpoint, sam_model)
        self.device = torch.device(device)
        self.sam_checkpoint = sam_checkpoint
        self.sam = load_sam(sam_checkpoint, self.device) if sam_model is None else sam_model.to(self.device).eval()
        fuse_attention(self.sam.image_encoder, compile=bool(sam_compile))
        self.params = dict(
            points_per_side=points_per_side,
            points_per_batch=points_per_batch,
            pred_iou_thresh=pred_iou_thresh,
            stability_score_thresh=stability_score_thresh,
            stability_score_offset=stability_score_offset,
            box_nms_thresh=box_nms_thresh,
            crop_n_layers=crop_n_layers,
            min_mask_region_area=min_mask_region_area,
        )
        self.max_masks = int(max_masks)
        self.generator = SamAutomaticMaskGenerator(self.sam, output_mode="binary_mask", **self.params)

    def identity(self) -> dict:
        params = self.params | {"max_masks": self.max_masks}
        encoder = self.sam.image_encoder
        width, size = int(encoder.patch_embed.proj.weight.shape[0]), int(encoder.img_size)
        return {"name": self.name, **sam_identity("sam", self.sam_checkpoint, width, size), "params": params}

    @torch.inference_mode()
    def predict(self, images, prompts):
        """images: [H, W, 3] uint8 each (prompts unused) → Instances, masks [M, H, W], score = predicted IoU."""
        return [self._generate(image) for image in images]

    def _generate(self, image: np.ndarray) -> Instances:
        found = self.generator.generate(np.ascontiguousarray(image))
        found.sort(key=lambda m: (-m["predicted_iou"], m["area"]))
        dropped = {"max_masks": len(found) - self.max_masks} if len(found) > self.max_masks else {}
        found = found[: self.max_masks]
        if not found:
            return Instances.empty(image.shape[0], image.shape[1], self.name, dropped)
        masks = np.stack([m["segmentation"] for m in found]).astype(bool)
        scores = np.array([m["predicted_iou"] for m in found], np.float32)
        return Instances(masks, scores, [None] * len(found), self.name, dropped)
