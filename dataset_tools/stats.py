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


def compute_stats(store: Store, *, scheduler: str | None = None, progress: bool = True) -> dict:
    """JSON-ready statistics of the store (see docs/publishing.md for every field)."""
    num_classes = max(store.label_space, default=-1) + 1
    status = store.status()
    _, valid_hw = store.geometry()
    tasks = []
    for shard, sem, inst in shard_blocks(store, store.done_shards()):  # a pending shard costs nothing
        start, stop = store.layout.shard_range(shard)
        tasks.append(
            shard_task(
                shard_stats, shard, store, shard, sem, inst, status[start:stop], valid_hw[start:stop], num_classes
            )
        )
    totals = run_tasks(tasks, merge_partials, None, scheduler=scheduler, desc="stats", progress=progress)
    return _summary(store, status, totals or _empty(num_classes))


def shard_stats(
    store: Store,
    shard: int,
    semantic: np.ndarray,
    instance: np.ndarray,
    status: np.ndarray,
    valid_hw: np.ndarray,
    num_classes: int,
) -> dict:
    """Partial sums of one shard. semantic, instance: [K, S, S] uint16; status [K]; valid_hw [K, 2]."""
    part = _empty(num_classes)
    if (status == schema.PENDING).all():  # store.status() makes every image of an unmarked shard pending
        return part
    start = store.layout.shard_range(shard)[0]
    records = store.records(shard)
    by_image: dict[int, list[dict]] = {}
    for rec in records:
        by_image.setdefault(rec["index"], []).append(rec)
    for j in np.flatnonzero(status == schema.DONE):
        h, w = valid_hw[j]
        _add_image(part, semantic[j, :h, :w], instance[j, :h, :w], by_image.get(start + int(j), []), num_classes)
    part["failures"] = Counter(reason_kind(f["reason"]) for f in store.marker(shard).get("failures", []))
    return part


def _add_image(part: dict, sem: np.ndarray, inst: np.ndarray, records: list[dict], num_classes: int) -> None:
    """Add one done image (valid region only: sem, inst [h, w]) and its records to `part`."""
    labelled = sem != schema.SEMANTIC_IGNORE
    counts = np.bincount(sem[labelled].ravel(), minlength=num_classes)[:num_classes]
    part["class_pixels"] += counts
    part["class_images"] += counts > 0
    part["valid_pixels"] += sem.size
    part["semantic_pixels"] += int(labelled.sum())
    part["instance_pixels"] += int((inst != schema.INSTANCE_NONE).sum())
    part["instances_per_image"][min(len(records), MAX_INSTANCES_BIN)] += 1
    # Per-pixel class each instance claims (its record's class); -1 where none.
    claimed = np.full(int(inst.max()) + 1, -1, np.int64)
    for rec in records:
        _add_record(part, rec, num_classes)
        if rec.get("semantic") is not None and rec["id"] < len(claimed):
            claimed[rec["id"]] = rec["semantic"]
    pixel_claim = claimed[inst]
    has_claim = pixel_claim >= 0
    part["claimed_pixels"] += int(has_claim.sum())
    part["agreeing_pixels"] += int((has_claim & (pixel_claim == sem)).sum())


def _add_record(part: dict, rec: dict, num_classes: int) -> None:
    height, width = rec["rle"]["size"]
    area = int(rec["area"])
    rel = max(area / max(height * width, 1), 10 ** AREA_LOG10_EDGES[0])
    part["area_hist"][
        min(np.searchsorted(AREA_LOG10_EDGES, np.log10(rel), side="right") - 1, len(AREA_LOG10_EDGES) - 2)
    ] += 1
    part["coco_sizes"][0 if area < COCO_SMALL else 1 if area < COCO_MEDIUM else 2] += 1
    cls = rec.get("semantic")
    if cls is not None and 0 <= cls < num_classes:
        part["class_instances"][cls] += 1
    else:
        part["unclassed_instances"] += 1


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
