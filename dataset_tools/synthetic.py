"""Synthetic images with exact masks: a store to try the tools on without any model or dataset.

Each image is a two-tone background (semantic classes "sky" over "ground") with a few filled
shapes (classes "disc", "box", "triangle"), each shape one instance. Deterministic given the seed.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import cv2
import numpy as np

from datasets_spec.create import create_store
from datasets_spec.errors import StoreError
from datasets_spec.geometry import labels_to_canvas
from datasets_spec.records import encode_rle
from datasets_spec.schema import INSTANCE_NONE, SEMANTIC_IGNORE
from datasets_spec.shard_writer import ImageResult, write_shard

LABEL_SPACE = {0: "sky", 1: "ground", 2: "disc", 3: "box", 4: "triangle"}


def synth_image(rng: np.random.Generator, height: int, width: int):
    """One image. Returns (rgb [H, W, 3] uint8, semantic [H, W] int32, instance [H, W] int32)."""
    horizon = int(rng.integers(height // 4, 3 * height // 4))
    semantic = np.ones((height, width), np.int32)
    semantic[:horizon] = 0
    rgb = np.empty((height, width, 3), np.uint8)
    rgb[:horizon] = rng.integers(120, 255, 3)
    rgb[horizon:] = rng.integers(0, 120, 3)
    instance = np.zeros((height, width), np.int32)
    for inst_id in range(1, int(rng.integers(1, 4)) + 1):
        shape = np.zeros((height, width), np.uint8)
        cls = int(rng.integers(2, 5))
        cy, cx = int(rng.integers(height // 5, 4 * height // 5)), int(rng.integers(width // 5, 4 * width // 5))
        r = int(rng.integers(max(2, min(height, width) // 10), max(3, min(height, width) // 4)))
        if cls == 2:
            cv2.circle(shape, (cx, cy), r, 1, -1)
        elif cls == 3:
            cv2.rectangle(shape, (cx - r, cy - r), (cx + r, cy + r), 1, -1)
        else:
            pts = np.array([[cx, cy - r], [cx - r, cy + r], [cx + r, cy + r]], np.int32)
            cv2.fillPoly(shape, [pts], 1)
        on = shape.astype(bool)
        semantic[on], instance[on] = cls, inst_id
        rgb[on] = rng.integers(0, 255, 3)
    noise = rng.normal(0, 6, rgb.shape)
    return np.clip(rgb + noise, 0, 255).astype(np.uint8), semantic, instance


def image_result(semantic: np.ndarray, instance: np.ndarray, canvas: int) -> ImageResult:
    """Masks at original resolution → what the store keeps (canvas maps + records)."""
    canvas_sem = labels_to_canvas(semantic.astype(np.uint16), canvas, SEMANTIC_IGNORE)
    canvas_inst = labels_to_canvas(instance.astype(np.uint16), canvas, INSTANCE_NONE)
    records = []
    for inst_id in sorted(set(np.unique(canvas_inst).tolist()) - {INSTANCE_NONE}):
        mask = instance == inst_id
        ys, xs = np.nonzero(mask)
        records.append(
            {
                "id": inst_id,
                "score": 1.0,
                "area": int(mask.sum()),
                "semantic": int(np.bincount(semantic[mask]).argmax()),
                "box": [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)],
                "source": "synthetic",
                "prompt": None,
                "rle": encode_rle(mask),
            }
        )
    return ImageResult(canvas_sem, canvas_inst, semantic.shape, records)


def make_synthetic_store(
    out,
    images,
    count: int = 48,
    canvas: int = 64,
    shard_size: int = 16,
    seed: int = 0,
    *,
    distinct: int | None = None,
    done_shards: int | None = None,
):
    """Write `count` PNG images under `images`/synth/ (None: no images) and a complete store at
    `out`. Returns its layout.

    distinct: draw only this many different images and repeat them in turn (image i is image
    i % distinct): their photos are written once and every other one is a hard link, so a store of
    ImageNet's 1,281,167 images takes a few minutes and well under 1 GB (benchmarks/data_at_scale.py).
    done_shards: write only the first this many shards; the others stay pending.
    """
    if distinct is not None and distinct < 1:
        raise StoreError(f"{out}: --distinct must be at least 1, got {distinct}")
    images = Path(images) if images is not None else None
    if images is not None:
        (images / "synth").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    width = max(6, len(str(count - 1)))
    keys = [f"synth/{i:0{width}d}.png" for i in range(count)]
    results = []
    for i in range(min(count, distinct or count)):
        height, width_px = int(rng.integers(canvas // 2, 2 * canvas)), int(rng.integers(canvas // 2, 2 * canvas))
        rgb, semantic, instance = synth_image(rng, height, width_px)
        if images is not None:
            cv2.imwrite(str(images / keys[i]), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        results.append(image_result(semantic, instance, canvas))
    for i in range(len(results), count if images is not None else 0):
        _link(images / keys[i % len(results)], images / keys[i])
    provenance = {"backends": {"semantic": "synthetic", "instance": "synthetic"}, "seed": seed}
    layout = create_store(
        out, keys, [-1] * count, label_space=LABEL_SPACE, provenance=provenance, canvas=canvas, shard_size=shard_size
    )
    for shard in range(layout.num_shards if done_shards is None else min(done_shards, layout.num_shards)):
        start, stop = layout.shard_range(shard)
        write_shard(out, shard, [results[i % len(results)] for i in range(start, stop)])
    return layout


def _link(source: Path, target: Path) -> None:
    """`target` as a hard link to `source` (a copy where the file system refuses one more link)."""
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)
