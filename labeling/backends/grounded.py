"""`grounded`: Grounding DINO boxes from text prompts → SAM masks (box prompts), the paper's route.

Per batch of images:
1. Grounding DINO (transformers) reads each image with its prompts joined as "p1. p2. p3." (the
   image's class prompt plus `extra_prompts`). A query's score for prompt p is the highest token
   probability (sigmoid of the logits) over p's tokens; a box is kept when its best prompt's score is
   above both `box_threshold` and `text_threshold`, and is labelled with that prompt. Boxes that
   repeat an object (IoU > `nms_iou`, any prompt) are removed by NMS; at most `max_boxes` remain.
   (Phrase assignment is done here from token offsets rather than by the processor's
   post-processing, whose argument names and text decoding changed across transformers versions.)
2. SAM (segment-anything) encodes every image that has a box once — images are batched through
   the image encoder — and decodes all of that image's boxes in one mask-decoder call.
Score of an instance = its box's prompt score. bf16 autocast on CUDA.
"""

from __future__ import annotations

import numpy as np
import torch
from torchvision.ops import box_convert, nms

from ..errors import LabelingError
from . import register_backend
from .base import InstanceBackend, Instances, model_reference
from .sam_amg import load_sam, sam_identity

_MASK_CHUNK = 8  # masks brought to full resolution at a time (bounds memory on huge images)


@register_backend("instance", "grounded")
class GroundedSAM(InstanceBackend):
    """detector: Grounding DINO dir or hub id (e.g. "IDEA-Research/grounding-dino-tiny");
    sam_checkpoint: SAM .pth (or sam_model: a built Sam, for tests)."""

    def __init__(
        self,
        detector: str,
        sam_checkpoint: str | None = None,
        sam_model: torch.nn.Module | None = None,
        box_threshold: float = 0.35,
        text_threshold: float = 0.25,
        nms_iou: float = 0.7,
        max_boxes: int = 20,
        extra_prompts: tuple[str, ...] = (),
        batch_size: int = 8,
        device: str = "cpu",
        revision: str | None = None,
    ):
        if (sam_checkpoint is None) == (sam_model is None):
            raise LabelingError("grounded needs exactly one of sam_checkpoint and sam_model")
        self.device = torch.device(device)
        self.detector_name, self.sam_checkpoint, self.revision = str(detector), sam_checkpoint, revision
        self.params = dict(
            box_threshold=box_threshold, text_threshold=text_threshold, nms_iou=nms_iou, max_boxes=max_boxes,
            extra_prompts=[str(p) for p in extra_prompts], batch_size=batch_size, revision=revision,
        )
        self.detector, self.processor = _load_detector(self.detector_name, revision, self.device)
        self.sam = load_sam(sam_checkpoint, self.device) if sam_model is None else sam_model.to(self.device).eval()

    def identity(self) -> dict:
        detector = {"detector_" + k: v for k, v in model_reference(self.detector_name, self.detector.config).items()}
        return {"name": self.name, **detector, **sam_identity(self.sam_checkpoint, self.sam), "params": self.params}

    @torch.inference_mode()
    def predict(self, images, prompts):
        """images: [H, W, 3] uint8 each; prompts: per image → Instances with masks [M, H, W]."""
        out = []
        size = self.params["batch_size"]
        for start in range(0, len(images), size):
            out += self._predict_batch(images[start : start + size], prompts[start : start + size])
        return out

    def _predict_batch(self, images, prompts) -> list[Instances]:
        phrases = [_unique([*p, *self.params["extra_prompts"]]) for p in prompts]
        asked = [i for i, p in enumerate(phrases) if p]
        found = dict(zip(asked, self._detect([images[i] for i in asked], [phrases[i] for i in asked]))) if asked else {}
        hits = [i for i in asked if len(found[i][0])]
        masks = dict(zip(hits, self._segment([images[i] for i in hits], [found[i][0] for i in hits]))) if hits else {}
        results = []
        for i, image in enumerate(images):
            if i in masks:
                _, scores, labels = found[i]
                results.append(Instances(masks[i], scores.numpy(), [phrases[i][k] for k in labels.tolist()], self.name))
            else:
                results.append(Instances.empty(image.shape[0], image.shape[1], self.name))
        return results

    def _detect(self, images, phrases) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """→ per image (boxes xyxy [K, 4] original pixels, scores [K], prompt index [K]), on the CPU."""
        texts, spans = zip(*(prompt_text(ps) for ps in phrases))
        pixels = self.processor.image_processor(  # channels_last stated: 3-row images too; on the model's device
            images=list(images), return_tensors="pt", input_data_format="channels_last", device=self.device
        )
        tokens = self.processor.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.detector.config.max_text_len,
            return_offsets_mapping=True, return_tensors="pt",
        )
        offsets = tokens.pop("offset_mapping")
        inputs = {k: v.to(self.device) for k, v in {**pixels, **tokens}.items()}
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
            outputs = self.detector(**inputs)
        limits = {k: self.params[k] for k in ("box_threshold", "text_threshold", "nms_iou", "max_boxes")}
        probs = outputs.logits.float().sigmoid().cpu()  # [B, Q, T_max]
        pred_boxes = outputs.pred_boxes.float().cpu()  # [B, Q, 4] cx, cy, w, h in [0, 1]
        return [
            select_boxes(probs[b], pred_boxes[b], phrase_tokens(spans[b], offsets[b]), image.shape[:2], **limits)
            for b, image in enumerate(images)
        ]

    def _segment(self, images, boxes) -> list[np.ndarray]:
        """SAM masks for each image's boxes: bool [K, H, W] per image, one encoder pass per image."""
        from segment_anything.utils.transforms import ResizeLongestSide

        transform = ResizeLongestSide(self.sam.image_encoder.img_size)
        resized = [self._resize(transform, im) for im in images]  # [3, h, w] float each
        batch = torch.stack([self.sam.preprocess(r) for r in resized])
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
            embeddings = self.sam.image_encoder(batch)  # [B, C, h', w']
        out = []
        for i, (image, small) in enumerate(zip(images, resized)):
            prompt_boxes = transform.apply_boxes_torch(boxes[i].to(self.device), image.shape[:2])
            out.append(self._decode(embeddings[i : i + 1], prompt_boxes, small.shape[-2:], image.shape[:2]))
        return out

    def _resize(self, transform, image: np.ndarray) -> torch.Tensor:
        """[H, W, 3] uint8 → [3, h, w] float on the device, longer side = SAM's input size.

        On CUDA the resize runs on the GPU (antialiased bilinear); on the CPU it is SAM's own PIL
        resize, so CPU masks equal SamPredictor's exactly.
        """
        if self.device.type == "cuda":
            # Not transform.apply_image_torch: it reads the target size from the batch and channel dims.
            size = transform.get_preprocess_shape(image.shape[0], image.shape[1], transform.target_length)
            pixels = torch.as_tensor(image, device=self.device).permute(2, 0, 1)[None].float()
            return torch.nn.functional.interpolate(pixels, size, mode="bilinear", antialias=True)[0]
        small = transform.apply_image(np.ascontiguousarray(image))
        return torch.as_tensor(small, device=self.device).permute(2, 0, 1).float()

    def _decode(self, embedding, boxes, input_hw, orig_hw) -> np.ndarray:
        """embedding [1, C, h', w'], boxes [K, 4] in model input pixels → bool masks [K, H, W]."""
        sparse, dense = self.sam.prompt_encoder(points=None, boxes=boxes, masks=None)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
            low_res, _ = self.sam.mask_decoder(
                image_embeddings=embedding,
                image_pe=self.sam.prompt_encoder.get_dense_pe(),
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=False,
            )
        chunks = []
        for k in range(0, len(low_res), _MASK_CHUNK):
            logits = self.sam.postprocess_masks(low_res[k : k + _MASK_CHUNK].float(), input_hw, orig_hw)
            chunks.append((logits > self.sam.mask_threshold)[:, 0].cpu().numpy())
        return np.concatenate(chunks)


def select_boxes(probs, pred_boxes, membership, hw, box_threshold, text_threshold, nms_iou, max_boxes):
    """probs [Q, T], boxes [Q, 4] normalised cxcywh, membership bool [P, T], hw = (H, W) →
    (boxes xyxy [K, 4] in original pixels, scores [K], prompt index [K]), best score first."""
    tokens = probs[:, : membership.shape[1]]
    per_phrase = torch.where(membership[None], tokens[:, None, :], 0.0).amax(-1)  # [Q, P]
    scores, labels = per_phrase.max(-1)
    keep = (scores > box_threshold) & (scores > text_threshold)
    scale = torch.tensor([hw[1], hw[0], hw[1], hw[0]], dtype=pred_boxes.dtype)
    boxes = (box_convert(pred_boxes[keep], "cxcywh", "xyxy") * scale).clamp(min=0).minimum(scale)
    order = nms(boxes, scores[keep], nms_iou)[:max_boxes]
    return boxes[order], scores[keep][order], labels[keep][order]


def prompt_text(phrases: list[str]) -> tuple[str, list[tuple[int, int]]]:
    """["Crane bird", "sky"] → ("crane bird. sky.", [(0, 10), (12, 15)]): the text and each phrase's span."""
    text, spans = "", []
    for phrase in phrases:
        lowered = phrase.lower()
        spans.append((len(text), len(text) + len(lowered)))
        text += lowered + ". "
    return text.rstrip(), spans


def phrase_tokens(spans: list[tuple[int, int]], offsets: torch.Tensor) -> torch.Tensor:
    """Which tokens belong to which phrase: bool [P, T] from the tokenizer's character offsets
    [T, 2] (special tokens, padding and the "." separators belong to none)."""
    starts, ends = offsets[:, 0], offsets[:, 1]
    real = ends > starts
    return torch.stack([real & (starts >= s) & (ends <= e) for s, e in spans])


def _unique(prompts: list[str]) -> list[str]:
    """Prompts without repeats (case-insensitive), in first-seen order; "." would split a phrase."""
    seen, out = set(), []
    for prompt in prompts:
        clean = " ".join(str(prompt).replace(".", " ").split())
        if clean and clean.lower() not in seen:
            seen.add(clean.lower())
            out.append(clean)
    return out


def _load_detector(name: str, revision: str | None, device: torch.device):
    """(Grounding DINO in eval mode on device, its processor) from a local dir or hub id."""
    from transformers import AutoModelForZeroShotObjectDetection, AutoProcessor

    try:
        model = AutoModelForZeroShotObjectDetection.from_pretrained(name, revision=revision)
        processor = AutoProcessor.from_pretrained(name, revision=revision)
    except (OSError, ValueError, KeyError) as err:
        raise LabelingError(f"cannot load detector {name!r}: {str(err).splitlines()[0]}") from None
    return model.to(device).eval(), processor
