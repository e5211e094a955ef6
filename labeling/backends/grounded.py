"""`grounded`: Grounding DINO boxes from text prompts → SAM masks (box prompts), the route a digest of the paper names.

Per batch of images:
1. Grounding DINO (transformers) reads each image with its prompts joined as "p1. p2. p3." (the
   image's prompts plus `extra_prompts`). As in Grounding DINO, a query's box is kept when its
   highest token probability (sigmoid of the logits) is above `box_threshold`, and its phrase is
   made of the tokens whose probability is above `text_threshold` (in text order; no such token →
   no phrase, prompt None). Only the prompts' own tokens count: [CLS], [SEP], the "." separators
   and padding belong to no phrase. Prompts that do not fit the detector's text length
   (`max_text_len` tokens, 256 for the released models) are split, in order, into groups that do,
   and the image is read once per group: no phrase is cut off (a broad vocabulary such as
   `label_broad`'s 80 COCO things takes two passes). The boxes of all groups are then pooled:
   boxes that repeat an object (IoU > `nms_iou`, any phrase) are removed by NMS; at most
   `max_boxes` remain, best first. Both removals are counted in `Instances.dropped` ("nms", "max_boxes").
   (Phrases are read from token offsets rather than by the processor's post-processing, whose
   argument names and text decoding changed across transformers versions.)
2. SAM encodes every image that has a box once — images are batched through the image encoder,
   whose attention runs through fused SDPA kernels — and decodes the boxes of all images of the
   batch in one mask-decoder call (labeling/backends/sam_boxes.py).
   `sam_variant: hq` (HQ-SAM through transformers, as the digest of the paper names) or `sam` (segment-anything).
Score of an instance = its box's highest token probability. bf16 autocast on CUDA.
"""

from __future__ import annotations

from collections import Counter
from functools import lru_cache
from typing import NamedTuple

import torch
from torchvision.ops import box_convert, nms

from plumbing.errors import one_line

from ..errors import LabelingError
from ..prompts import clean_phrases
from . import register_backend
from .base import InstanceBackend, Instances, model_reference
from .sam_boxes import box_segmenter
from .sam_loader import require_one_sam


@register_backend("instance", "grounded")
class GroundedSAM(InstanceBackend):
    """detector: Grounding DINO dir or hub id (e.g. "IDEA-Research/grounding-dino-tiny");
    sam_variant: "hq" (HQ-SAM) or "sam" (plain SAM);
    sam_checkpoint: hq → a transformers SamHQ model dir or hub id (e.g. "syscv-community/sam-hq-vit-huge"),
    sam → a segment-anything .pth (or sam_model: a built segment-anything Sam, for tests);
    revision / sam_revision: hub revisions of the detector / of HQ-SAM;
    sam_compile: torch.compile SAM's image encoder (speed only: the first batch compiles)."""

    uses_prompts = True

    def __init__(
        self,
        detector: str,
        sam_checkpoint: str | None = None,
        sam_model: torch.nn.Module | None = None,
        sam_variant: str = "hq",
        hq_token_only: bool = False,
        box_threshold: float = 0.35,
        text_threshold: float = 0.25,
        nms_iou: float = 0.7,
        max_boxes: int = 20,
        extra_prompts: tuple[str, ...] = (),
        batch_size: int = 8,
        device: str = "cpu",
        revision: str | None = None,
        sam_revision: str | None = None,
        sam_compile: bool = False,
    ):
        require_one_sam(self.name, sam_checkpoint, sam_model)
        self.device = torch.device(device)
        self.detector_name, self.revision = str(detector), revision
        self.params = dict(
            box_threshold=box_threshold,
            text_threshold=text_threshold,
            nms_iou=nms_iou,
            max_boxes=max_boxes,
            extra_prompts=[str(p) for p in extra_prompts],
            batch_size=batch_size,
            revision=revision,
            sam_revision=sam_revision,
        )
        self.detector, self.processor = _load_detector(self.detector_name, revision, self.device)
        self.segmenter = box_segmenter(
            sam_variant, sam_checkpoint, sam_model, self.device, sam_revision, hq_token_only, compile=bool(sam_compile)
        )

    def identity(self) -> dict:
        detector = {"detector_" + k: v for k, v in model_reference(self.detector_name, self.detector.config).items()}
        return {"name": self.name, **detector, **self.segmenter.identity(), "params": self.params}

    @torch.inference_mode()
    def predict(self, images, prompts):
        """images: [H, W, 3] uint8 each; prompts: per image → Instances with masks [M, H, W]."""
        out = []
        size = self.params["batch_size"]
        for start in range(0, len(images), size):
            out += self._predict_batch(images[start : start + size], prompts[start : start + size])
        return out

    def _predict_batch(self, images, prompts) -> list[Instances]:
        phrases = [clean_phrases([*p, *self.params["extra_prompts"]]) for p in prompts]
        asked = [i for i, p in enumerate(phrases) if p]
        found = dict(zip(asked, self._detect([images[i] for i in asked], [phrases[i] for i in asked]))) if asked else {}
        hits = [i for i in asked if len(found[i].boxes)]
        masks = {}
        if hits:
            masks = dict(zip(hits, self.segmenter.segment([images[i] for i in hits], [found[i].boxes for i in hits])))
        results = []
        for i, image in enumerate(images):
            dropped = found[i].dropped if i in found else {}
            if i in masks:
                results.append(Instances(masks[i], found[i].scores.numpy(), found[i].phrases, self.name, dropped))
            else:
                results.append(Instances.empty(image.shape[0], image.shape[1], self.name, dropped))
        return results

    def _detect(self, images, phrases) -> list[Selection]:
        """→ per image the kept boxes (xyxy, original pixels), their scores and phrases, on the CPU.
        One detector call reads every (image, prompt group) pair of the batch."""
        limit = self.detector.config.max_text_len
        pairs = [(i, group) for i, ps in enumerate(phrases) for group in prompt_groups(ps, self._tokens, limit)]
        texts, spans = zip(*(prompt_text(group) for _, group in pairs))
        pixels = self.processor.image_processor(  # channels_last stated: 3-row images too; on the model's device
            images=[images[i] for i, _ in pairs],
            return_tensors="pt",
            input_data_format="channels_last",
            device=self.device,
        )
        tokens = self.processor.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.detector.config.max_text_len,
            return_offsets_mapping=True,
            return_tensors="pt",
        )
        offsets = tokens.pop("offset_mapping")
        inputs = {k: v.to(self.device) for k, v in {**pixels, **tokens}.items()}
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
            outputs = self.detector(**inputs)
        thresholds = {k: self.params[k] for k in ("box_threshold", "text_threshold")}
        probs = outputs.logits.float().sigmoid().cpu()  # [B, Q, T_max]
        pred_boxes = outputs.pred_boxes.float().cpu()  # [B, Q, 4] cx, cy, w, h in [0, 1]
        pooled = [[] for _ in images]
        for b, (i, _) in enumerate(pairs):
            hw = images[i].shape[:2]
            pooled[i].append(candidates(probs[b], pred_boxes[b], texts[b], offsets[b], spans[b], hw, **thresholds))
        limits = self.params["nms_iou"], self.params["max_boxes"]
        return [best_boxes(*pool_candidates(found), *limits) for found in pooled]

    @lru_cache(maxsize=65536)  # noqa: B019 — one backend per worker, phrases repeat across images
    def _tokens(self, phrase: str) -> int:
        """Tokens the phrase takes in a prompt text, its "." separator included."""
        return len(self.processor.tokenizer(phrase.lower() + ".", add_special_tokens=False)["input_ids"])


class Selection(NamedTuple):
    """Boxes kept for one image, best first; dropped: boxes over the box threshold removed, by reason."""

    boxes: torch.Tensor  # xyxy [K, 4] in original pixels
    scores: torch.Tensor  # [K]
    phrases: list[str | None]  # K phrases (None: no token above text_threshold)
    dropped: dict[str, int]


def select_boxes(probs, pred_boxes, text, offsets, spans, hw, box_threshold, text_threshold, nms_iou, max_boxes):
    """probs [Q, T] token probabilities, pred_boxes [Q, 4] normalised cxcywh, the prompt text with its
    tokens' character offsets [T', 2] and the phrases' spans, hw = (H, W) → Selection (see module doc)."""
    found = candidates(probs, pred_boxes, text, offsets, spans, hw, box_threshold, text_threshold)
    return best_boxes(*found, nms_iou, max_boxes)


def candidates(probs, pred_boxes, text, offsets, spans, hw, box_threshold, text_threshold):
    """The boxes over `box_threshold` of one detector pass (arguments as select_boxes) →
    (boxes xyxy [K, 4] in original pixels, scores [K], K phrases)."""
    membership = phrase_tokens(spans, offsets)  # [P, T']
    real = membership.any(0)  # tokens inside some phrase
    tokens = torch.where(real, probs[:, : len(real)], 0.0)  # [Q, T']
    scores = tokens.amax(-1)
    keep = torch.nonzero(scores > box_threshold).flatten()
    scale = torch.tensor([hw[1], hw[0], hw[1], hw[0]], dtype=pred_boxes.dtype)
    boxes = (box_convert(pred_boxes[keep], "cxcywh", "xyxy") * scale).clamp(min=0).minimum(scale)
    phrases = [token_phrase(text, offsets, tokens[q] > text_threshold) for q in keep.tolist()]
    return boxes, scores[keep], phrases


def pool_candidates(found: list[tuple]) -> tuple:
    """The candidates of an image's detector passes, one after the other."""
    boxes, scores, phrases = zip(*found)
    return torch.cat(boxes), torch.cat(scores), [p for group in phrases for p in group]


def best_boxes(boxes, scores, phrases, nms_iou, max_boxes) -> Selection:
    """Candidates → NMS over every phrase, then the `max_boxes` best, counted in `dropped`."""
    survivors = nms(boxes, scores, nms_iou)
    order = survivors[:max_boxes]
    dropped = Counter(nms=len(scores) - len(survivors), max_boxes=len(survivors) - len(order))
    kept = [phrases[q] for q in order.tolist()]
    return Selection(boxes[order], scores[order], kept, {k: v for k, v in dropped.items() if v})


def prompt_groups(phrases: list[str], tokens, limit: int) -> list[list[str]]:
    """`phrases` cut, in order, into groups whose prompt text fits `limit` tokens with [CLS] and
    [SEP]; tokens(phrase) counts a phrase with its "." separator. A phrase too long on its own is a
    group of its own (the tokenizer then truncates it). No phrases → no group."""
    groups, used = [], limit
    for phrase in phrases:
        size = tokens(phrase)
        if used + size > limit - 2:
            groups.append([])
            used = 0
        groups[-1].append(phrase)
        used += size
    return groups


def token_phrase(text: str, offsets: torch.Tensor, selected: torch.Tensor) -> str | None:
    """The words of the selected tokens, in text order: tokens that touch (word pieces) are joined,
    others separated by a space, as a tokenizer's decode does. selected: bool [T']; None if none."""
    words, end = [], None
    for k in torch.nonzero(selected).flatten().tolist():
        start, stop = offsets[k].tolist()
        if words and start == end:
            words[-1] += text[start:stop]
        else:
            words.append(text[start:stop])
        end = stop
    return " ".join(words) or None


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


def _load_detector(name: str, revision: str | None, device: torch.device):
    """(Grounding DINO in eval mode on device, its processor) from a local dir or hub id."""
    from transformers import AutoModelForZeroShotObjectDetection, AutoProcessor

    try:
        model = AutoModelForZeroShotObjectDetection.from_pretrained(name, revision=revision)
        processor = AutoProcessor.from_pretrained(name, revision=revision)
    except (OSError, ValueError, KeyError) as err:
        raise LabelingError(f"cannot load detector {name!r}: {one_line(err)}") from None
    return model.to(device).eval(), processor
