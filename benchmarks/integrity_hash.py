"""Integrity checks of a shard's pixels: CRC-32 (what markers store) vs sha256, side by side.

On one shard's worth of generated masks (semantic + instance, piecewise constant like real
pseudo-labels), times `shard_writer.pixels_crc32` and sha256 over the same bytes (best of
`--repeats`), and prints GB/s and the ratio.

    .venv/bin/python benchmarks/integrity_hash.py [--images 128] [--canvas 256] [--repeats 5]
"""

from __future__ import annotations

import argparse
import hashlib
import time

import numpy as np

from dataset_tools.synthetic import image_result, synth_image
from datasets_spec.shard_writer import pixels_crc32


def shard_slabs(images: int, canvas: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """semantic, instance [images, canvas, canvas] uint16, as a shard holds them."""
    rng = np.random.default_rng(seed)
    results = [image_result(*synth_image(rng, canvas, canvas)[1:], canvas) for _ in range(images)]
    return np.stack([r.semantic for r in results]), np.stack([r.instance for r in results])


def best_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def sha256_of(semantic: np.ndarray, instance: np.ndarray) -> str:
    digest = hashlib.sha256()
    for slab in (semantic, instance):
        digest.update(memoryview(np.ascontiguousarray(slab)).cast("B"))
    return digest.hexdigest()


def main(argv: list[str] | None = None) -> dict:
    """Run, print the table, and return {"crc32_gb_s", "sha256_gb_s", "ratio"}."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--canvas", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    semantic, instance = shard_slabs(args.images, args.canvas)
    gigabytes = (semantic.nbytes + instance.nbytes) / 1e9
    crc = best_seconds(lambda: pixels_crc32(semantic, instance), args.repeats)
    sha = best_seconds(lambda: sha256_of(semantic, instance), args.repeats)
    print(f"{args.images} images of {args.canvas}², {gigabytes * 1e3:.1f} MB of pixels, best of {args.repeats}")
    print(
        f"| check | GB/s |\n|---|---|\n| CRC-32 (pixels_crc32) | {gigabytes / crc:.2f} |\n"
        f"| sha256 | {gigabytes / sha:.2f} |"
    )
    print(f"CRC-32 / sha256 speed: {sha / crc:.2f}×")
    return {"crc32_gb_s": gigabytes / crc, "sha256_gb_s": gigabytes / sha, "ratio": sha / crc}


if __name__ == "__main__":
    main()
