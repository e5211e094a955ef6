"""Fusion: one semantic map and one set of instance masks → the store's ImageResult.

Rules, in order:
1. Overlaps: pixels claimed by several instances go to the highest score; equal scores go to the
   smaller mask, then to the earlier one. Pixels lost to an overlap are not given back.
2. Specks: 8-connected pieces of an instance smaller than `min_area` canvas pixels (scaled to the
   original resolution by (H·W)/(h·w)) are removed; their pixels become "no instance".
3. Ids: surviving instances are numbered 1..M by score (desc), then area (asc), then input order.
   An instance with no pixel left on the canvas (shrunk away) is dropped, and ids are renumbered
   so that every id in the canvas map has exactly one record.
4. Class: each instance takes the semantic class most frequent under it on the canvas (ties → the
   smaller id; -1 pixels do not vote); None when there is no semantic map or no vote.
Records hold box, area and COCO RLE of the final mask at the original resolution.

What is lost is counted in ImageResult.dropped, added to the backend's own counts (Instances.dropped):
every input mask is either kept or dropped for exactly one of "empty_mask" (no pixel to begin with),
"overlap" (every pixel taken by higher-ranked masks, rule 1), "min_area" (every piece left was a
speck, rule 2) or "canvas" (no pixel on the canvas, rule 3); "speck_pieces" counts the pieces that
rule 2 removed, from kept instances too.

How (the rules above are the contract; benchmarks/fusion_reference.py keeps the first, plainer
implementation, which tests/labeling/test_fusion_reference.py checks this one against bit for bit):
one pass over the masks in rank order claims pixels and cuts specks inside each mask's box; ids
come from one lookup table applied to the canvas-sampled owner map; every record (box, area, RLE)
comes from the runs of the owner map in column-major order, the RLEs compressed by one pycocotools
call; majority classes from one vote table on the canvas. ShardLabeler fuses images on threads.
"""

from __future__ import annotations

from collections import Counter

import cv2
import numpy as np

from datasets_spec import schema
from datasets_spec.geometry import fit, labels_to_canvas
from datasets_spec.records import rles_from_counts
from datasets_spec.shard_writer import ImageResult

from .backends.base import Instances
from .errors import LabelingError
from .reduced_records import upsampled_fields


def fuse(
    semantic: np.ndarray | None,
    instances: Instances | None,
    orig_hw: tuple[int, int],
    canvas: int,
    min_area: int = 4,
    image_hw: tuple[int, int] | None = None,
) -> ImageResult:
    """semantic: int32 [h, w] at fit(H, W, canvas), -1 = no class (or None);
    instances: masks at (H, W) = orig_hw (or None), or at `image_hw` when the image was decoded
    reduced (records still at H × W: labeling.reduced_records); min_area in canvas pixels.

    Returns ImageResult(semantic [S, S] uint16, instance [S, S] uint16, orig_hw, records); a missing
    semantic map gives all SEMANTIC_IGNORE, missing instances an all-INSTANCE_NONE map.
    """
    height, width = orig_hw
    image_hw = (height, width) if image_hw is None else tuple(image_hw)
    valid = fit(height, width, canvas)
    if semantic is None:
        sem_canvas = np.full((canvas, canvas), schema.SEMANTIC_IGNORE, np.uint16)
    else:
        sem_canvas = semantic_to_canvas(semantic, valid, canvas)
    if instances is None or len(instances) == 0:
        empty = np.full((canvas, canvas), schema.INSTANCE_NONE, np.uint16)
        dropped = {} if instances is None else dict(instances.dropped)
        return ImageResult(semantic=sem_canvas, instance=empty, orig_hw=(height, width), dropped=dropped)
    if instances.masks.shape[1:] != image_hw:
        raise LabelingError(f"instance masks are {instances.masks.shape[1:]}, image is {image_hw}")
    scale = image_hw[0] * image_hw[1] / (valid[0] * valid[1])
    owner, areas, won, left, pieces = claim_pixels(
        instances.masks, instances.scores, max(1, int(np.ceil(min_area * scale)))
    )
    lut, inst_canvas, source = _number(owner, left, instances.scores, canvas, (height, width))
    records = _records(owner, lut, inst_canvas, source, instances, semantic, valid, (height, width))
    nonempty = areas > 0
    dropped = Counter(instances.dropped)
    dropped.update(
        {
            "empty_mask": int((~nonempty).sum()),
            "overlap": int(((won == 0) & nonempty).sum()),
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
    if semantic.size and (semantic.min() < -1 or semantic.max() >= schema.SEMANTIC_IGNORE):
        raise LabelingError(f"semantic ids must be in [-1, {schema.SEMANTIC_IGNORE})")
    out = np.full((canvas, canvas), schema.SEMANTIC_IGNORE, np.uint16)
    out[: valid[0], : valid[1]] = np.where(semantic < 0, schema.SEMANTIC_IGNORE, semantic)
    return out


def box_of(mask: np.ndarray) -> tuple[slice, slice]:
    """bool [h, w] with at least one pixel → (rows, columns) slices around its pixels."""
    rows, cols = mask.any(axis=1), mask.any(axis=0)
    return (
        slice(int(rows.argmax()), len(rows) - int(rows[::-1].argmax())),
        slice(int(cols.argmax()), len(cols) - int(cols[::-1].argmax())),
    )


def claim_pixels(masks: np.ndarray, scores: np.ndarray, min_pixels: int):
    """Rules 1 and 2: masks bool [M, H, W], scores [M] → (owner int32 [H, W]: input index of the
    final owner, -1 none; per input int64 [M]: its pixels, the pixels it won, the pixels left to it
    after specks; how many speck pieces were removed).

    Masks claim their free pixels in rank order; a mask's pieces are final once it has claimed, so
    its specks (8-connected pieces under min_pixels) are cut right then, marked -2 so that no later
    mask claims them (pixels lost to an overlap are not given back), and -2 becomes -1 at the end.
    All work is bounded by each mask's bounding box.
    """
    count = len(masks)
    owner = np.full(masks.shape[1:], -1, np.int32)
    areas, won, left = np.zeros(count, np.int64), np.zeros(count, np.int64), np.zeros(count, np.int64)
    rows = masks.any(axis=2)  # [M, H]
    crops = {}
    for k in np.flatnonzero(rows.any(axis=1)):
        y0, y1 = int(rows[k].argmax()), len(rows[k]) - int(rows[k, ::-1].argmax())
        cols = masks[k, y0:y1].any(axis=0)
        crops[k] = (slice(y0, y1), slice(int(cols.argmax()), len(cols) - int(cols[::-1].argmax())))
        areas[k] = np.count_nonzero(masks[k][crops[k]])
    pieces = 0
    for k in np.lexsort((np.arange(count), areas, -scores)):
        if k not in crops:
            continue
        region = owner[crops[k]]
        free = masks[k][crops[k]] & (region == -1)
        won[k] = np.count_nonzero(free)
        if not won[k]:
            continue
        np.copyto(region, k, where=free)
        tight = box_of(free)
        cut, lost, removed = specks(free[tight], int(won[k]), min_pixels)
        left[k] = won[k] - lost
        if removed:
            region[tight][cut] = -2
            pieces += removed
    owner[owner == -2] = -1
    return owner, areas, won, left, pieces


def specks(mine: np.ndarray, area: int, min_pixels: int) -> tuple[np.ndarray | None, int, int]:
    """mine bool [h, w]: one instance's `area` pixels → (bool [h, w]: its 8-connected pieces under
    min_pixels, None if none; how many pixels they hold; how many pieces). A single piece's size
    is the area, so only instances in several pieces count pixels per piece."""
    count, labels = cv2.connectedComponents(mine.view(np.uint8), connectivity=8, ltype=cv2.CV_16U)
    sizes = np.array([area]) if count == 2 else np.bincount(labels.reshape(-1), minlength=count)[1:]
    small = sizes < min_pixels
    if not small.any():
        return None, 0, 0
    return np.concatenate([[False], small])[labels], int(sizes[small].sum()), int(small.sum())


def _number(
    owner: np.ndarray, areas: np.ndarray, scores: np.ndarray, canvas: int, orig_hw
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """owner [h, w], areas [M] (pixels left to each input) → (lut uint16 [M + 1]: owner + 1 → final
    id, 0 = none; canvas map uint16 [S, S]; source [M' + 1]). orig_hw: the true (H, W), larger
    than (h, w) after a reduced decode.

    Ids follow score desc, area asc, input order, counting only instances with canvas pixels;
    source[i] is the input index of final id i (entry 0 unused).
    """
    count = len(scores)
    present = np.flatnonzero(areas > 0)
    if len(present) > np.iinfo(np.uint16).max:
        raise LabelingError(f"too many instances ({len(present)}) for uint16 ids")
    order = present[np.lexsort((present, areas[present], -scores[present]))]
    sampled = labels_to_canvas(owner + 1, canvas, 0, orig_hw)  # owner + 1 on the canvas, 0 = none or padding
    on_canvas = np.bincount(sampled.reshape(-1), minlength=count + 1)[order + 1] > 0  # [M'] in id order
    lut = np.zeros(count + 1, np.uint16)  # owner + 1 → final id
    lut[order[on_canvas] + 1] = np.arange(1, on_canvas.sum() + 1)
    source = np.concatenate([[0], order[on_canvas]]).astype(np.int64)
    return lut, lut[sampled], source


def _records(owner, lut, inst_canvas, source, instances: Instances, semantic, valid, orig_hw) -> list[dict]:
    """One record per id of the canvas map, fields of datasets_spec.records.INSTANCE_FIELDS, at the
    true resolution orig_hw also when `owner` is at a reduced decode's."""
    count = len(source) - 1
    classes = majority_class(inst_canvas[: valid[0], : valid[1]], semantic, count)
    if owner.shape == tuple(orig_hw):
        boxes, areas, rles = id_runs(owner, lut, count)
    else:
        boxes, areas, rles = _upsampled_runs(lut[owner + 1], count, orig_hw)
    return [
        {
            "id": i,
            "score": float(instances.scores[source[i]]),
            "box": [float(v) for v in boxes[i - 1]],
            "area": int(areas[i - 1]),
            "semantic": classes[i],
            "source": instances.source,
            "prompt": instances.prompts[source[i]],
            "rle": rles[i - 1],
        }
        for i in range(1, count + 1)
    ]


def _upsampled_runs(ids: np.ndarray, count: int, orig_hw) -> tuple[list, list, list]:
    """ids uint16 [h, w] of a reduced decode → id_runs' three fields at orig_hw, id by id."""
    fields = [upsampled_fields(ids == i, orig_hw) for i in range(1, count + 1)]
    return [f["box"] for f in fields], [f["area"] for f in fields], [f["rle"] for f in fields]


def id_runs(owner: np.ndarray, lut: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """owner int32 [H, W] (-1 = none), lut [M + 1] (owner + 1 → final id, every id 1..count used) →
    (boxes int64 [count, 4] as [x, y, w, h], areas int64 [count], COCO RLEs with str counts), all
    from the runs of the owner map in column-major order (the order of COCO RLE): id i's mask
    alternates the gaps between its runs and their lengths. Neighbouring runs of two owners with
    the same id can only be id 0 (lut is one-to-one elsewhere), which no record reads."""
    height, width = owner.shape
    if not count:
        return np.zeros((0, 4), np.int64), np.zeros(0, np.int64), []
    flat = owner.ravel(order="F")
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    starts, ends = np.concatenate([[0], change]), np.concatenate([change, [flat.size]])
    values = lut[flat[starts] + 1]
    keep = np.flatnonzero(values)
    by_id = keep[np.argsort(values[keep], kind="stable")]  # runs grouped by id, in pixel order
    starts, ends, values = starts[by_id], ends[by_id], values[by_id]
    first = np.flatnonzero(np.concatenate([[True], values[1:] != values[:-1]]))  # [count]: each id's first run
    previous = np.concatenate([[0], ends[:-1]])
    previous[first] = 0
    counts = np.empty(2 * len(starts), np.int64)
    counts[0::2], counts[1::2] = starts - previous, ends - starts  # zeros then ones, run by run
    col0, col1 = starts // height, (ends - 1) // height
    wraps = col0 != col1  # a run over a column break covers the last row and the first
    row0, row1 = np.where(wraps, 0, starts % height), np.where(wraps, height - 1, (ends - 1) % height)
    x0, x1 = np.minimum.reduceat(col0, first), np.maximum.reduceat(col1, first)
    y0, y1 = np.minimum.reduceat(row0, first), np.maximum.reduceat(row1, first)
    boxes = np.stack([x0, y0, x1 - x0 + 1, y1 - y0 + 1], axis=1)
    areas = np.add.reduceat(ends - starts, first)
    last = np.concatenate([first[1:], [len(starts)]])
    per_id = []
    for a, b in zip(first, last):
        tail = flat.size - ends[b - 1]  # zeros after the last run, if any
        per_id.append(np.append(counts[2 * a : 2 * b], tail) if tail else counts[2 * a : 2 * b])
    if len(per_id) != count:
        raise LabelingError(f"id map holds {len(per_id)} ids, expected {count}")
    return boxes, areas, rles_from_counts(per_id, height, width)


def majority_class(inst: np.ndarray, semantic: np.ndarray | None, count: int) -> list[int | None]:
    """inst uint16 [h, w], semantic int [h, w] (-1 = none) → class per id [count + 1] (entry 0 None).

    Most votes wins; ties go to the smaller class id (argmax takes the first maximum)."""
    classes: list[int | None] = [None] * (count + 1)
    if semantic is None:
        return classes
    voting = (inst > 0) & (semantic >= 0)
    voters, votes = inst[voting].astype(np.int64), semantic[voting].astype(np.int64)
    if not len(votes):
        return classes
    names = np.arange(int(votes.max()) + 1)
    if (count + 1) * len(names) > 1 << 22:  # sparse large ids: only those present (sorted: same tie rule)
        names, votes = np.unique(votes, return_inverse=True)
    table = np.bincount(voters * len(names) + votes, minlength=(count + 1) * len(names)).reshape(count + 1, -1)
    winners = table.argmax(1)
    for i in np.flatnonzero(table.max(1)):
        classes[int(i)] = int(names[winners[i]])
    return classes
