"""Dask over the store: which block layout reduces the masks fastest (c2f-data stats, eval).

The same reduction (a per-class pixel count of `semantic` plus the instance pixel count), on the
same store, with the local threaded scheduler, four ways:
  images      dask.array.from_zarr as is: one block per inner chunk, i.e. one image per task
  rechunked   the same array, .rechunk() to one shard per block before reducing
  shards      from_zarr(chunks=(K, S, S)): one block per shard, read by zarr-python
  store       dataset_tools.dask_shards.mask_arrays: one block per shard read through Store.read_masks
              (tensorstore); what c2f-data stats and eval use
All numbers come from one run, side by side; read the ratios.

    .venv/bin/python benchmarks/dask_chunking.py [--images 2048] [--canvas 256] [--shard-size 128]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import dask
import dask.array as da
import numpy as np

from dataset_tools.dask_shards import mask_arrays
from dataset_tools.synthetic import LABEL_SPACE, image_result, synth_image
from datasets_spec import create_store, open_store, write_shard

CLASSES = len(LABEL_SPACE)


def build(path: Path, n: int, canvas: int, shard_size: int) -> None:
    rng = np.random.default_rng(0)
    pool = []
    for _ in range(64):
        h, w = int(rng.integers(canvas * 3 // 4, canvas * 2)), int(rng.integers(canvas * 3 // 4, canvas * 2))
        _, sem, inst = synth_image(rng, h, w)
        pool.append(image_result(sem, inst, canvas))
    create_store(
        path, [f"k{i}" for i in range(n)], [0] * n, label_space=LABEL_SPACE, canvas=canvas, shard_size=shard_size
    )
    for shard in range(-(-n // shard_size)):
        count = min(shard_size, n - shard * shard_size)
        write_shard(path, shard, [pool[(shard * shard_size + j) % len(pool)] for j in range(count)])


def _block_counts(sem: np.ndarray, inst: np.ndarray) -> np.ndarray:
    """[CLASSES + 1] int64: pixels per class, then instance pixels, of one block."""
    counts = np.bincount(sem[sem < CLASSES].ravel(), minlength=CLASSES)
    return np.append(counts, np.count_nonzero(inst))


def reduce_blocks(sem: da.Array, inst: da.Array) -> np.ndarray:
    parts = [dask.delayed(_block_counts)(s, i) for s, i in zip(sem.to_delayed().ravel(), inst.to_delayed().ravel())]
    return np.sum(dask.compute(*parts, scheduler="threads"), axis=0)


def run(way: str, path: Path, shard_size: int, canvas: int) -> np.ndarray:
    url = lambda name: str(path / name)  # noqa: E731
    if way == "images":
        return reduce_blocks(da.from_zarr(url("semantic")), da.from_zarr(url("instance")))
    if way == "rechunked":
        target = (shard_size, canvas, canvas)
        return reduce_blocks(
            da.from_zarr(url("semantic")).rechunk(target), da.from_zarr(url("instance")).rechunk(target)
        )
    if way == "shards":
        target = (shard_size, canvas, canvas)
        return reduce_blocks(da.from_zarr(url("semantic"), chunks=target), da.from_zarr(url("instance"), chunks=target))
    return reduce_blocks(*mask_arrays(open_store(path)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--canvas", type=int, default=256)
    parser.add_argument("--shard-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    try:
        build(tmp / "ds", args.images, args.canvas, args.shard_size)
        ways = ("images", "rechunked", "shards", "store")
        expected = run("shards", tmp / "ds", args.shard_size, args.canvas)
        best = {}
        for way in ways:
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                result = run(way, tmp / "ds", args.shard_size, args.canvas)
                times.append(time.perf_counter() - t0)
            assert np.array_equal(result, expected), way
            best[way] = min(times)
        print(f"{args.images} images of {args.canvas}², shards of {args.shard_size}; best of {args.repeats}")
        for way in ways:
            print(f"  {way:<12} {args.images / best[way]:9.0f} images/s   {best['images'] / best[way]:5.2f}× 'images'")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
