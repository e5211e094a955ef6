"""`hf`: a transformers semantic or universal segmentation model as the semantic backend.

Families: per-pixel heads (SegFormer, UperNet, DPT, BEiT: `outputs.logits [B, C, h', w']`) and
mask-classification heads (Mask2Former, MaskFormer, OneFormer: `class_queries_logits [B, Q, C+1]`
and `masks_queries_logits [B, Q, h', w']`). The model comes from a local directory or a hub id; its
label space is `config.id2label`.

Scores reach the canvas without a detour through a fixed resolution (Mask2Former's own
post-processing resizes through 384×384): per-pixel class scores are computed at the head's
resolution — logits, or softmax(class)[..., :C] ⊗ sigmoid(masks) summed over queries — then only
the part covering the real image (the processor's `pixel_mask`, when it pads) is resampled
bilinearly to the canvas size (h, w), and argmax gives the class.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from plumbing.errors import one_line

from ..errors import LabelingError
from . import register_backend
from .base import SemanticBackend, model_reference

_TASK_MODELS = ("oneformer",)  # processors that need a task prompt ("semantic")


@register_backend("semantic", "hf")
class HFSemantic(SemanticBackend):
    """model: local dir or hub id; batch_size: images per forward; device: "cpu", "cuda", "cuda:1"."""

    def __init__(self, model: str, batch_size: int = 8, device: str = "cpu", revision: str | None = None):
        self.model_name, self.batch_size, self.device = str(model), int(batch_size), torch.device(device)
        self.revision = revision
        self.model, self.processor = _load(self.model_name, revision, self.device)
        self.model_type = self.model.config.model_type

    def label_space(self) -> dict[int, str]:
        return {int(i): str(name) for i, name in self.model.config.id2label.items()}

    def identity(self) -> dict:
        return {
            "name": self.name,
            "model_type": self.model_type,
            **model_reference(self.model_name, self.model.config),
            "params": {"batch_size": self.batch_size, "revision": self.revision},
        }

    @torch.inference_mode()
    def predict(self, images, sizes):
        """images: [H, W, 3] uint8 each; sizes: (h, w) each → int32 [h, w] class ids each."""
        out = []
        for start in range(0, len(images), self.batch_size):
            batch = slice(start, start + self.batch_size)
            out += self._predict_batch(images[batch], sizes[batch])
        return out

    def _predict_batch(self, images, sizes) -> list[np.ndarray]:
        inputs = self._inputs(images)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
            outputs = self.model(**inputs)
        scores = class_scores(outputs)  # [B, C, h', w'] float32
        valid = valid_fractions(inputs.get("pixel_mask"), len(images))
        return [
            resample_valid(scores[i], valid[i], size).argmax(0).to(torch.int32).cpu().numpy()
            for i, size in enumerate(sizes)
        ]

    def _inputs(self, images) -> dict:
        kwargs = {"task_inputs": ["semantic"] * len(images)} if self.model_type in _TASK_MODELS else {}
        # channels_last stated: a 3-row image would otherwise be taken for channels-first
        inputs = self.processor(
            images=list(images), return_tensors="pt", input_data_format="channels_last", device=self.device, **kwargs
        )  # resize and normalise on the model's device
        return {k: v.to(self.device) for k, v in inputs.items()}


def _load(name: str, revision: str | None, device: torch.device):
    """(model in eval mode on device, processor) from a local dir or hub id."""
    from transformers import (
        AutoConfig,
        AutoModelForSemanticSegmentation,
        AutoModelForUniversalSegmentation,
        AutoProcessor,
    )
    from transformers.models.auto.modeling_auto import MODEL_FOR_UNIVERSAL_SEGMENTATION_MAPPING_NAMES

    try:
        config = AutoConfig.from_pretrained(name, revision=revision)
        universal = config.model_type in MODEL_FOR_UNIVERSAL_SEGMENTATION_MAPPING_NAMES
        auto = AutoModelForUniversalSegmentation if universal else AutoModelForSemanticSegmentation
        model = auto.from_pretrained(name, revision=revision)
        processor = AutoProcessor.from_pretrained(name, revision=revision)
    except (OSError, ValueError, KeyError) as err:
        raise LabelingError(f"cannot load segmentation model {name!r}: {one_line(err)}") from None
    return model.to(device).eval(), processor


def class_scores(outputs) -> torch.Tensor:
    """Model outputs → per-pixel class scores [B, C, h', w'] float32 at the head's resolution."""
    if getattr(outputs, "class_queries_logits", None) is not None:
        classes = outputs.class_queries_logits.float().softmax(-1)[..., :-1]  # [B, Q, C], "no object" dropped
        masks = outputs.masks_queries_logits.float().sigmoid()  # [B, Q, h', w']
        return torch.einsum("bqc,bqhw->bchw", classes, masks)
    if getattr(outputs, "logits", None) is not None:
        return outputs.logits.float()
    raise LabelingError(f"unsupported model outputs: {type(outputs).__name__}")


def valid_fractions(pixel_mask: torch.Tensor | None, count: int) -> list[tuple[float, float]]:
    """Fraction (rows, cols) of each padded input that holds the image: pixel_mask [B, H', W'] or None."""
    if pixel_mask is None:
        return [(1.0, 1.0)] * count
    rows = pixel_mask.any(2).sum(1).float() / pixel_mask.shape[1]
    cols = pixel_mask.any(1).sum(1).float() / pixel_mask.shape[2]
    return list(zip(rows.tolist(), cols.tolist()))


def resample_valid(scores: torch.Tensor, valid: tuple[float, float], size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resampling of the image part of scores [C, h', w'] to [C, h, w].

    Output pixel (i, j) reads the point at fraction ((i + ½)/h · fy, (j + ½)/w · fx) of the input,
    where (fy, fx) = valid: the same pixel-centre convention as datasets_spec.geometry. Cells that
    are all padding are cut off first, so the image's edge is extended, never blended with padding.
    """
    (fy, fx), (h, w) = valid, size
    rows, cols = fy * scores.shape[1], fx * scores.shape[2]  # image extent, in cells
    crop = scores[:, : max(1, int(np.ceil(rows))), : max(1, int(np.ceil(cols)))]
    ys = (torch.arange(h, device=scores.device) + 0.5) / h * rows / crop.shape[1] * 2 - 1
    xs = (torch.arange(w, device=scores.device) + 0.5) / w * cols / crop.shape[2] * 2 - 1
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)  # [h, w, 2] as (x, y)
    return F.grid_sample(crop[None], grid[None], mode="bilinear", padding_mode="border", align_corners=False)[0]
