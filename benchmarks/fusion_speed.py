"""Fusion per image on the CPU: today's `labeling.fusion.fuse` next to the frozen pre-issue-11 one
(benchmarks/fusion_reference.py), on the same SAM-like inputs, in one run, one thread.

    .venv/bin/python benchmarks/fusion_speed.py [--images 24] [--masks 20] [--rounds 5] [--canvas 256]

Inputs per image: ImageNet's common sizes (500×375 and 375×500, alternating), `--masks` blobs
(thresholded smooth fields like SAM's upsampled logits, a few specks, overlapping, scores on a
coarse grid so ties happen, one empty mask in ten) and a blocky semantic map on the canvas (the
paper config's 256). Each round times both fusions over all images, alternating which goes first;
the table gives the medians over rounds and their ratio. The outputs are checked to be identical before timing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from benchmarks import fusion_reference  # noqa: E402
from datasets_spec.geometry import fit  # noqa: E402
from labeling import fusion  # noqa: E402
from labeling.backends.base import Instances  # noqa: E402

SIZES = ((375, 500), (500, 375))


def blob(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """bool [H, W] shaped like a SAM mask: a thresholded smooth field (an ellipse plus low-resolution
    noise, upsampled bilinearly as SAM upsamples its logits), so edges wander and islands occur;
    sometimes a few specks, one in ten empty."""
    mask = np.zeros((height, width), bool)
    if rng.random() < 0.1:
        return mask
    cy, cx = rng.uniform(0, height), rng.uniform(0, width)
    ry, rx = rng.uniform(3, height / 2.5), rng.uniform(3, width / 2.5)
    y0, y1 = int(max(0, cy - 1.3 * ry)), int(min(height, cy + 1.3 * ry + 1))
    x0, x1 = int(max(0, cx - 1.3 * rx)), int(min(width, cx + 1.3 * rx + 1))
    yy, xx = np.mgrid[y0:y1, x0:x1]
    radius = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2
    noise = cv2.resize(
        rng.standard_normal((8, 8)).astype(np.float32), (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR
    )
    mask[y0:y1, x0:x1] = radius < 1 + 0.4 * noise
    for _ in range(rng.integers(0, 4)):
        y, x = rng.integers(0, height - 2), rng.integers(0, width - 2)
        mask[y : y + rng.integers(1, 3), x : x + rng.integers(1, 3)] = True
    return mask


def make_case(rng: np.random.Generator, hw: tuple[int, int], masks: int, canvas: int, classes: int = 150):
    """(semantic int32 [h, w] on the canvas, Instances with `masks` masks at hw) for one image."""
    height, width = hw
    stack = np.stack([blob(rng, height, width) for _ in range(masks)]) if masks else np.zeros((0, height, width), bool)
    scores = rng.integers(0, 20, masks) / 20  # coarse: equal scores are common
    valid = fit(height, width, canvas)
    cells = rng.integers(-1, classes, (valid[0] // 16 + 1, valid[1] // 16 + 1))
    semantic = np.repeat(np.repeat(cells, 16, 0), 16, 1)[: valid[0], : valid[1]].astype(np.int32)
    prompts = [f"thing {i}" for i in range(masks)]
    return semantic, Instances(stack, scores.astype(np.float32), prompts, "bench", {"nms": 1})


def same(a, b) -> bool:
    """Two ImageResults hold identical maps, records and drop counts."""
    return (
        np.array_equal(a.semantic, b.semantic)
        and np.array_equal(a.instance, b.instance)
        and a.records == b.records
        and a.dropped == b.dropped
        and a.orig_hw == b.orig_hw
    )


def time_all(fuse, cases, canvas: int, min_area: int) -> float:
    """Seconds per image of `fuse` over every case."""
    start = time.perf_counter()
    for semantic, instances in cases:
        fuse(semantic, instances, instances.masks.shape[1:], canvas, min_area)
    return (time.perf_counter() - start) / len(cases)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--masks", type=int, default=20, help="masks per image (the grounded backend's max_boxes)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--canvas", type=int, default=256)
    parser.add_argument("--min-area", type=int, default=4)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    cases = [make_case(rng, SIZES[i % 2], args.masks, args.canvas) for i in range(args.images)]
    for semantic, instances in cases:
        hw = instances.masks.shape[1:]
        old = fusion_reference.fuse(semantic, instances, hw, args.canvas, args.min_area)
        if not same(old, fusion.fuse(semantic, instances, hw, args.canvas, args.min_area)):
            raise SystemExit("today's fusion differs from the reference: fix that before timing")
    times = {"reference": [], "today": []}
    for r in range(args.rounds):
        pair = [("reference", fusion_reference.fuse), ("today", fusion.fuse)]
        for name, fuse in pair if r % 2 == 0 else pair[::-1]:
            times[name].append(time_all(fuse, cases, args.canvas, args.min_area))
    old, new = statistics.median(times["reference"]), statistics.median(times["today"])
    print(
        f"fusion, {args.images} images of 500×375 / 375×500, {args.masks} masks each, canvas {args.canvas}, "
        f"1 thread, median of {args.rounds} rounds"
    )
    print(f"  {'fusion':<28} {'ms/image':>9} {'images/s':>9}")
    print(f"  {'reference (before issue 11)':<28} {old * 1e3:9.2f} {1 / old:9.1f}")
    print(f"  {'today (labeling.fusion)':<28} {new * 1e3:9.2f} {1 / new:9.1f}")
    print(f"ratio today / reference: {old / new:.2f}x faster")
    return {"reference_s": old, "today_s": new, "speedup": old / new}


if __name__ == "__main__":
    main()
