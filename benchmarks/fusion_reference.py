"""Frozen copy of labeling/fusion.py as it was before issue 11 (commit 05df394): the reference that
benchmarks/fusion_speed.py times next to today's fusion and tests/labeling/test_fusion_reference.py
compares with bit for bit. Not used by the labeler; do not change it.

Self-contained: the helpers it used from datasets_spec and labeling are copied at the end as they
behaved when it was frozen, so a later change to them cannot move the reference along with today's
fusion. It imports only numpy, OpenCV and pycocotools.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import cv2
import numpy as np
from pycocotools import mask as mask_utils

SEMANTIC_IGNORE = 65535  # datasets_spec.schema: padding outside the valid region, or "no class"
INSTANCE_NONE = 0  # datasets_spec.schema: no instance (background, padding)


class LabelingError(Exception):
    """Stands in for labeling.errors.LabelingError."""


@dataclass
class ImageResult:
    """datasets_spec.shard_writer.ImageResult's fields that fusion fills."""

    semantic: np.ndarray | None = None
    instance: np.ndarray | None = None
    orig_hw: tuple[int, int] | None = None
    records: list[dict] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)


def fuse(
    semantic: np.ndarray | None,
    instances,
    orig_hw: tuple[int, int],
    canvas: int,
    min_area: int = 4,
) -> ImageResult:
    """semantic: int32 [h, w] at fit(H, W, canvas), -1 = no class (or None);
    instances: a labeling.backends.Instances, masks at (H, W) = orig_hw (or None); min_area in
    canvas pixels.

    Returns ImageResult(semantic [S, S] uint16, instance [S, S] uint16, orig_hw, records); a missing
    semantic map gives all SEMANTIC_IGNORE, missing instances an all-INSTANCE_NONE map.
    """
    height, width = orig_hw
    valid = fit(height, width, canvas)
    if semantic is None:
        sem_canvas = np.full((canvas, canvas), SEMANTIC_IGNORE, np.uint16)
    else:
        sem_canvas = semantic_to_canvas(semantic, valid, canvas)
    if instances is None or len(instances) == 0:
        empty = np.full((canvas, canvas), INSTANCE_NONE, np.uint16)
        dropped = {} if instances is None else dict(instances.dropped)
        return ImageResult(semantic=sem_canvas, instance=empty, orig_hw=(height, width), dropped=dropped)
    if instances.masks.shape[1:] != (height, width):
        raise LabelingError(f"instance masks are {instances.masks.shape[1:]}, image is {(height, width)}")
    scale = height * width / (valid[0] * valid[1])
    owner, crops = resolve_overlaps(instances.masks, instances.scores)
    won = owned_areas(owner, len(instances))
    pieces = remove_specks(owner, crops, max(1, int(np.ceil(min_area * scale))))
    left = owned_areas(owner, len(instances))
    ids, inst_canvas, source = _number(owner, left, instances.scores, canvas)
    records = _records(ids, inst_canvas, source, crops, instances, semantic, valid)
    dropped = Counter(instances.dropped)
    dropped.update(
        {
            "empty_mask": sum(crop is None for crop in crops),
            "overlap": int(((won == 0) & np.array([c is not None for c in crops], bool)).sum()),
            "min_area": int(((won > 0) & (left == 0)).sum()),
            "canvas": int((left > 0).sum()) - len(records),
            "speck_pieces": pieces,
        }
    )
    return ImageResult(
        semantic=sem_canvas,
        instance=inst_canvas,
        orig_hw=(height, width),
        records=records,
        dropped={k: v for k, v in sorted(dropped.items()) if v},
    )


def semantic_to_canvas(semantic: np.ndarray, valid: tuple[int, int], canvas: int) -> np.ndarray:
    """int [h, w] (-1 = no class) → uint16 [S, S], -1 and padding = SEMANTIC_IGNORE."""
    if semantic.shape != valid:
        raise LabelingError(f"semantic map is {semantic.shape}, expected {valid} on a {canvas} canvas")
    if semantic.size and (semantic.min() < -1 or semantic.max() >= SEMANTIC_IGNORE):
        raise LabelingError(f"semantic ids must be in [-1, {SEMANTIC_IGNORE})")
    out = np.full((canvas, canvas), SEMANTIC_IGNORE, np.uint16)
    out[: valid[0], : valid[1]] = np.where(semantic < 0, SEMANTIC_IGNORE, semantic)
    return out


def resolve_overlaps(masks: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, list]:
    """masks bool [M, H, W], scores [M] → (owner int32 [H, W]: input index of the winner, -1 none;
    per input mask its bounding box as a pair of slices, None when empty)."""
    owner = np.full(masks.shape[1:], -1, np.int32)
    crops = [_crop(bounding_box(mask)) for mask in masks]
    areas = masks.sum(axis=(1, 2))
    for k in np.lexsort((np.arange(len(masks)), areas, -scores)):
        if crops[k] is not None:
            free = masks[k][crops[k]] & (owner[crops[k]] < 0)
            owner[crops[k]][free] = k
    return owner, crops


def owned_areas(owner: np.ndarray, count: int) -> np.ndarray:
    """owner int32 [H, W] (-1 = none) → pixels owned by each of the `count` inputs, int64 [count]."""
    return np.bincount(owner.reshape(-1) + 1, minlength=count + 1)[1:]


def remove_specks(owner: np.ndarray, crops: list, min_pixels: int) -> int:
    """In place: pieces (8-connected) of each instance smaller than min_pixels → -1. Returns how many.

    crops[k]: slices that hold all of instance k's pixels (see resolve_overlaps), so the work is
    bounded by the boxes, not by M · H · W.
    """
    removed = 0
    for k, crop in enumerate(crops):
        if crop is None:
            continue
        mask = owner[crop] == k
        _, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
        small = np.flatnonzero(stats[1:, cv2.CC_STAT_AREA] < min_pixels) + 1
        if len(small):
            owner[crop][np.isin(labels, small)] = -1
            removed += len(small)
    return removed


def _crop(box: list[int] | None) -> tuple[slice, slice] | None:
    """[x, y, w, h] → (rows, cols) slices."""
    return None if box is None else (slice(box[1], box[1] + box[3]), slice(box[0], box[0] + box[2]))


def bounding_box(mask: np.ndarray) -> list[int] | None:
    """bool [H, W] → [x, y, w, h] of its pixels (integers), None when empty."""
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if not len(rows):
        return None
    return [int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)]


def _number(
    owner: np.ndarray, areas: np.ndarray, scores: np.ndarray, canvas: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """owner [H, W], areas [M] (owned_areas) → (ids uint16 [H, W] at original res, canvas map
    uint16 [S, S], source [M' + 1]).

    Ids follow score desc, area asc, input order, counting only instances with canvas pixels;
    source[i] is the input index of final id i (entry 0 unused).
    """
    count = len(scores)
    present = np.flatnonzero(areas > 0)
    if len(present) > np.iinfo(np.uint16).max:
        raise LabelingError(f"too many instances ({len(present)}) for uint16 ids")
    order = present[np.lexsort((present, areas[present], -scores[present]))]
    lut = np.zeros(count + 1, np.uint16)
    lut[order + 1] = np.arange(1, len(order) + 1)
    ids = lut[owner + 1]
    on_canvas = np.bincount(labels_to_canvas(ids, canvas, 0).reshape(-1), minlength=len(order) + 1) > 0
    on_canvas[0] = False
    compact = np.zeros(len(order) + 1, np.uint16)
    compact[on_canvas] = np.arange(1, on_canvas.sum() + 1)
    source = np.zeros(on_canvas.sum() + 1, np.int64)
    source[compact[on_canvas]] = order[on_canvas[1:]]
    ids = compact[ids]
    return ids, labels_to_canvas(ids, canvas, 0), source


def _records(ids, inst_canvas, source, crops, instances, semantic, valid) -> list[dict]:
    """One record per id of the canvas map, fields of datasets_spec.records.INSTANCE_FIELDS."""
    count = len(source) - 1
    classes = majority_class(inst_canvas[: valid[0], : valid[1]], semantic, count)
    records = []
    for i in range(1, count + 1):
        k = source[i]
        mask = np.zeros(ids.shape, bool, order="F")  # pycocotools wants Fortran order: no copy later
        mask[crops[k]] = ids[crops[k]] == i  # id i lies inside its input mask's box
        x, y, w, h = bounding_box(mask[crops[k]])
        records.append(
            {
                "id": i,
                "score": float(instances.scores[k]),
                "box": [float(x + crops[k][1].start), float(y + crops[k][0].start), float(w), float(h)],
                "area": int(mask[crops[k]].sum()),
                "semantic": classes[i],
                "source": instances.source,
                "prompt": instances.prompts[k],
                "rle": encode_rle(mask),
            }
        )
    return records


def majority_class(inst: np.ndarray, semantic: np.ndarray | None, count: int) -> list[int | None]:
    """inst uint16 [h, w], semantic int [h, w] (-1 = none) → class per id [count + 1] (entry 0 None)."""
    classes: list[int | None] = [None] * (count + 1)
    if semantic is None:
        return classes
    for i in range(1, count + 1):
        votes = semantic[(inst == i) & (semantic >= 0)]
        if len(votes):
            classes[i] = int(np.bincount(votes).argmax())
    return classes


# --- the helpers it used, copied from datasets_spec.geometry and datasets_spec.records ----------


def fit(height: int, width: int, canvas: int) -> tuple[int, int]:
    """(h, w) of an H × W image scaled to longer side `canvas`, rounded half up, each ≥ 1."""
    if height < 1 or width < 1:
        raise ValueError(f"image size must be positive, got {height}×{width}")
    scale = canvas / max(height, width)
    h = min(canvas, max(1, int(np.floor(height * scale + 0.5))))
    w = min(canvas, max(1, int(np.floor(width * scale + 0.5))))
    return h, w


def labels_to_canvas(labels: np.ndarray, canvas: int, pad_value: int) -> np.ndarray:
    """Label map at original resolution [H, W] → canvas [S, S], padded with `pad_value`; each canvas
    pixel takes the original pixel whose span holds its centre."""
    height, width = labels.shape
    h, w = fit(height, width, canvas)
    rows, cols = _nearest_index(height, h), _nearest_index(width, w)
    out = np.full((canvas, canvas), pad_value, dtype=labels.dtype)
    out[:h, :w] = labels[rows[:, None], cols[None, :]]
    return out


def _nearest_index(src: int, dst: int) -> np.ndarray:
    """For each of `dst` output pixels, the source pixel whose span holds its centre. [dst] int64."""
    return np.minimum(((np.arange(dst) + 0.5) * src / dst).astype(np.int64), src - 1)


def encode_rle(mask: np.ndarray) -> dict:
    """Binary mask [H, W] (bool or 0/1) → COCO compressed RLE with `counts` as str."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}
