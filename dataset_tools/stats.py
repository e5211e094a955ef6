"""Dataset statistics with Dask, one task per shard, in bounded memory (c2f-data stats).

Pixel statistics are over the valid region of done images on the canvas; instance statistics
(counts, areas) come from the records, at original resolution.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from datasets_spec import schema
from datasets_spec.reader import Store
from datasets_spec.schema import reason_kind
from plumbing.cli_boundary import format_counts

from .dask_shards import run_tasks, shard_blocks, shard_task

MAX_INSTANCES_BIN = 50  # the histogram's last bin counts images with at least this many instances
AREA_LOG10_EDGES = np.linspace(-6.0, 0.0, 25)  # instance area as a fraction of its image, log10
COCO_SMALL, COCO_MEDIUM = 32**2, 96**2  # COCO's size buckets (original pixels)
PIXEL_BLOCK = 32  # done images counted at once (at a 256 canvas: ~2M pixels, tens of MB of temporaries)


def compute_stats(store: Store, *, scheduler: str | None = None, progress: bool = True) -> dict:
    """JSON-ready statistics of the store (see docs/publishing.md for every field)."""
    num_classes = max(store.label_space, default=-1) + 1
    status = store.status()
    _, valid_hw = store.geometry()
    # done shards only, their tasks made batch by batch as run_tasks asks for them
    tasks = (_task(store, shard, sem, inst, status, valid_hw, num_classes) for shard, sem, inst in shard_blocks(store))
    total = len(store.done_shards())
    totals = run_tasks(tasks, merge_partials, None, scheduler=scheduler, desc="stats", progress=progress, total=total)
    return _summary(store, status, totals or _empty(num_classes))


def _task(store: Store, shard: int, sem, inst, status: np.ndarray, valid_hw: np.ndarray, num_classes: int):
    """The delayed shard_stats of one shard (sem, inst: its Delayed blocks; status, valid_hw: the store's)."""
    start, stop = store.layout.shard_range(shard)
    return shard_task(
        shard_stats, shard, store, shard, sem, inst, status[start:stop], valid_hw[start:stop], num_classes
    )


def shard_stats(
    store: Store,
    shard: int,
    semantic: np.ndarray,
    instance: np.ndarray,
    status: np.ndarray,
    valid_hw: np.ndarray,
    num_classes: int,
) -> dict:
    """Partial sums of one done shard. semantic, instance: [K, S, S] uint16; status [K]; valid_hw [K, 2].

    Vectorised over the shard's done images, PIXEL_BLOCK at a time (a Python loop per image costs
    minutes at ImageNet size); records of images that are not done are left out."""
    part = _empty(num_classes)
    if (status == schema.PENDING).all():  # a marker over unwritten status: nothing to count
        return part
    start = store.layout.shard_range(shard)[0]
    done = np.flatnonzero(status == schema.DONE)
    row_of = np.full(len(status), -1)
    row_of[done] = np.arange(len(done))  # image j of the shard → its row among the done images
    records = store.records(shard)
    rows = row_of[np.array([rec["index"] - start for rec in records], np.int64).reshape(-1)]
    records = [rec for rec, row in zip(records, rows) if row >= 0]
    rows = rows[rows >= 0]
    claims = _claims(records, rows)
    for lo in range(0, len(done), PIXEL_BLOCK):
        block = done[lo : lo + PIXEL_BLOCK]
        mine = (claims[0] >= lo) & (claims[0] < lo + len(block))
        claim = (claims[0][mine] - lo, claims[1][mine], claims[2][mine])
        _add_pixels(part, semantic[block], instance[block], valid_hw[block], claim, num_classes)
    _add_records(part, records, num_classes)
    per_image = np.minimum(np.bincount(rows, minlength=len(done)), MAX_INSTANCES_BIN)
    part["instances_per_image"] += np.bincount(per_image, minlength=MAX_INSTANCES_BIN + 1)
    part["failures"] = Counter(reason_kind(f["reason"]) for f in store.marker(shard).get("failures", []))
    return part


def _claims(records: list[dict], rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row [R], instance id [R], class [R]) of the records that carry a class."""
    classed = [(row, rec["id"], rec["semantic"]) for rec, row in zip(records, rows) if rec.get("semantic") is not None]
    return (
        tuple(np.array(col, np.int64).reshape(-1) for col in zip(*classed)) if classed else (np.zeros(0, np.int64),) * 3
    )


def _add_pixels(part: dict, sem, inst, valid_hw, claims, num_classes: int) -> None:
    """Pixel counts of D done images (valid regions only). sem, inst: [D, S, S] uint16;
    valid_hw [D, 2]; claims: (row, instance id, class), each [R], of the images' records."""
    d, s = sem.shape[:2]
    grid = np.arange(s)
    valid = (grid[None, :, None] < valid_hw[:, 0, None, None]) & (grid[None, None, :] < valid_hw[:, 1, None, None])
    image = np.broadcast_to(np.arange(d, dtype=np.int64)[:, None, None], sem.shape)
    labelled = valid & (sem != schema.SEMANTIC_IGNORE)
    classed = labelled & (sem < num_classes)
    per_image = np.bincount(image[classed] * num_classes + sem[classed], minlength=d * num_classes)
    per_image = per_image.reshape(d, num_classes)
    part["class_pixels"] += per_image.sum(0)
    part["class_images"] += (per_image > 0).sum(0)
    part["valid_pixels"] += int(valid.sum())
    part["semantic_pixels"] += int(labelled.sum())
    ids = inst[valid]
    part["instance_pixels"] += int((ids != schema.INSTANCE_NONE).sum())
    # Per-pixel class each instance claims (its record's class); -1 where none.
    claimed = np.full((d, int(ids.max(initial=0)) + 1), -1, np.int64)
    row, inst_id, cls = claims
    fits = inst_id < claimed.shape[1]
    claimed[row[fits], inst_id[fits]] = cls[fits]
    pixel_claim = claimed[image[valid], ids]
    has_claim = pixel_claim >= 0
    part["claimed_pixels"] += int(has_claim.sum())
    part["agreeing_pixels"] += int((has_claim & (pixel_claim == sem[valid])).sum())


def _add_records(part: dict, records: list[dict], num_classes: int) -> None:
    """Area histograms and class counts of the records (instances at original resolution)."""
    if not records:
        return
    area = np.array([int(rec["area"]) for rec in records], np.int64)
    pixels = np.array([max(rec["rle"]["size"][0] * rec["rle"]["size"][1], 1) for rec in records], np.int64)
    rel = np.maximum(area / pixels, 10 ** AREA_LOG10_EDGES[0])
    bins = np.minimum(np.searchsorted(AREA_LOG10_EDGES, np.log10(rel), side="right") - 1, len(AREA_LOG10_EDGES) - 2)
    part["area_hist"] += np.bincount(bins, minlength=len(AREA_LOG10_EDGES) - 1)
    part["coco_sizes"] += np.bincount(np.searchsorted([COCO_SMALL, COCO_MEDIUM], area, side="right"), minlength=3)
    cls = np.array([-1 if rec.get("semantic") is None else rec["semantic"] for rec in records], np.int64)
    classed = (cls >= 0) & (cls < num_classes)
    part["class_instances"] += np.bincount(cls[classed], minlength=num_classes)
    part["unclassed_instances"] += int((~classed).sum())


def _empty(num_classes: int) -> dict:
    zeros = lambda n: np.zeros(n, np.int64)  # noqa: E731
    return {
        "class_pixels": zeros(num_classes),
        "class_images": zeros(num_classes),
        "class_instances": zeros(num_classes),
        "valid_pixels": 0,
        "semantic_pixels": 0,
        "instance_pixels": 0,
        "claimed_pixels": 0,
        "agreeing_pixels": 0,
        "instances_per_image": zeros(MAX_INSTANCES_BIN + 1),
        "area_hist": zeros(len(AREA_LOG10_EDGES) - 1),
        "coco_sizes": zeros(3),
        "unclassed_instances": 0,
        "failures": Counter(),
    }


def merge_partials(acc: dict | None, part: dict) -> dict:
    """Sum two partials (acc None = nothing yet)."""
    if acc is None or part is None:
        return part if acc is None else acc
    return {k: acc[k] + part[k] for k in acc}


def _summary(store: Store, status: np.ndarray, t: dict) -> dict:
    done = int((status == schema.DONE).sum())
    per_image = t["instances_per_image"]
    instances = int(t["area_hist"].sum())
    return {
        "path": str(store.path),
        "images": {
            "total": int(status.size),
            "done": done,
            "failed": int((status == schema.FAILED).sum()),
            "pending": int((status == schema.PENDING).sum()),
        },
        "label_space": {str(k): v for k, v in sorted(store.label_space.items())},
        "class_pixel_counts": t["class_pixels"].tolist(),
        "class_image_counts": t["class_images"].tolist(),
        "class_instance_counts": t["class_instances"].tolist(),
        "unclassed_instances": int(t["unclassed_instances"]),
        "coverage": {
            "semantic": _ratio(t["semantic_pixels"], t["valid_pixels"]),
            "instance": _ratio(t["instance_pixels"], t["valid_pixels"]),
        },
        "instance_semantic_agreement": _ratio(t["agreeing_pixels"], t["claimed_pixels"]),
        "instances": instances,
        "instances_per_image": {
            "histogram": per_image.tolist(),
            "last_bin_means_at_least": MAX_INSTANCES_BIN,
            "mean": _ratio(instances, done),
        },
        "instance_area": {
            "relative_log10_edges": AREA_LOG10_EDGES.round(3).tolist(),
            "relative_histogram": t["area_hist"].tolist(),
            "coco_sizes": dict(zip(("small", "medium", "large"), t["coco_sizes"].tolist())),
        },
        "failures": dict(t["failures"].most_common()),
    }


def _ratio(num, den) -> float | None:
    return round(float(num) / float(den), 6) if den else None


def format_stats(st: dict, top: int = 10) -> str:
    """Human-readable form of `compute_stats()`."""
    img = st["images"]
    names = st["label_space"]
    pixels = np.asarray(st["class_pixel_counts"], np.float64)
    share = pixels / max(pixels.sum(), 1)
    order = [int(i) for i in np.argsort(-pixels)[:top] if pixels[i] > 0]
    cov = st["coverage"]
    lines = [
        f"images     {img['total']}: {img['done']} done, {img['failed']} failed, {img['pending']} pending",
        f"coverage   semantic {_pct(cov['semantic'])} of valid pixels, instance {_pct(cov['instance'])}",
        f"agreement  {_pct(st['instance_semantic_agreement'])} of instance pixels carry their record's class",
        f"instances  {st['instances']} ({st['instances_per_image']['mean'] or 0:.2f} per done image); "
        + ", ".join(f"{k} {v}" for k, v in st["instance_area"]["coco_sizes"].items()),
        "per image  " + _per_image(st["instances_per_image"]),
        "classes    "
        + "; ".join(
            f"{names.get(str(i), i)} {100 * share[i]:.1f}% px, {st['class_image_counts'][i]} img" for i in order
        ),
    ]
    never = [names[str(i)] for i in range(len(pixels)) if str(i) in names and pixels[i] == 0]
    if never:
        more = " …" if len(never) > 8 else ""
        lines.append(f"unseen     {len(never)} classes never predicted: {', '.join(never[:8])}{more}")
    if st["failures"]:
        lines.append("failures   " + format_counts(st["failures"]))
    return "\n".join(lines)


def _per_image(per_image: dict) -> str:
    """The histogram line: "mean 1.05; images with k instances: 0 ×3, 1 ×40, ≥50 ×1" (empty bins left out)."""
    hist, last = per_image["histogram"], per_image["last_bin_means_at_least"]
    bins = [(f"≥{k}" if k == last else str(k), count) for k, count in enumerate(hist) if count]
    counts = ", ".join(f"{k} ×{count}" for k, count in bins) or "no done image"
    return f"mean {per_image['mean'] or 0:.2f}; images with k instances: {counts}"


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"
