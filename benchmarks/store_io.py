"""Store I/O: our store through our API vs plain zarr-python vs one PNG per mask (MultiMAE's layout).

On the same generated masks (semantic + instance, piecewise constant like real pseudo-labels):
write throughput with 1 and 2 writer processes, random single-image reads one at a time and
batched, and bytes per image. All numbers come from one run, side by side; read the ratios.

    .venv/bin/python benchmarks/store_io.py [--images 1024] [--canvas 256] [--shard-size 128]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import zarr
from zarr.codecs import ZstdCodec

from dataset_tools.synthetic import LABEL_SPACE, image_result, synth_image
from datasets_spec import create_store, open_store, write_shard

POOL = 128  # distinct mask pairs, reused cyclically
_POOL: list = []  # this process's masks, made before any timing starts


def make_pool(canvas: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    _POOL.clear()
    for _ in range(POOL):
        h, w = int(rng.integers(canvas * 3 // 4, canvas * 2)), int(rng.integers(canvas * 3 // 4, canvas * 2))
        _, sem, inst = synth_image(rng, h, w)
        _POOL.append(image_result(sem, inst, canvas))


# ---- writers: each function writes a list of shards of one layout --------------------------------
def write_ours(path, shards, n, canvas, shard_size):
    pool = _POOL
    for s in shards:
        start, stop = s * shard_size, min((s + 1) * shard_size, n)
        write_shard(path, s, [pool[i % POOL] for i in range(start, stop)])


def write_zarr(path, shards, n, canvas, shard_size):
    pool = _POOL
    group = zarr.open_group(path, mode="r+")
    for s in shards:
        start, stop = s * shard_size, min((s + 1) * shard_size, n)
        group["semantic"][start:stop] = np.stack([pool[i % POOL].semantic for i in range(start, stop)])
        group["instance"][start:stop] = np.stack([pool[i % POOL].instance for i in range(start, stop)])


def write_png(path, shards, n, canvas, shard_size):
    pool = _POOL
    for s in shards:
        for i in range(s * shard_size, min((s + 1) * shard_size, n)):
            r = pool[i % POOL]
            # MultiMAE-style: one 8-bit PNG for semantic classes, 16-bit PNG for instance ids.
            cv2.imwrite(str(Path(path) / "semantic" / f"{i:07d}.png"), r.semantic.astype(np.uint8))
            cv2.imwrite(str(Path(path) / "instance" / f"{i:07d}.png"), r.instance)


def prepare(kind, path, n, canvas, shard_size):
    keys = [f"img/{i:07d}.JPEG" for i in range(n)]
    if kind == "ours":
        create_store(path, keys, [-1] * n, label_space=LABEL_SPACE, canvas=canvas, shard_size=shard_size)
    elif kind == "zarr":
        group = zarr.open_group(path, mode="w")
        for name, fill in (("semantic", 65535), ("instance", 0)):
            group.create_array(
                name,
                shape=(n, canvas, canvas),
                chunks=(1, canvas, canvas),
                shards=(shard_size, canvas, canvas),
                dtype="uint16",
                fill_value=fill,
                compressors=ZstdCodec(level=3),
            )
    else:
        for sub in ("semantic", "instance"):
            (Path(path) / sub).mkdir(parents=True)


WRITERS = {"ours": write_ours, "zarr": write_zarr, "png": write_png}


def timed_write(kind, path, n, canvas, shard_size, procs):
    prepare(kind, path, n, canvas, shard_size)
    num_shards = -(-n // shard_size)
    parts = [list(range(w, num_shards, procs)) for w in range(procs)]
    ctx = mp.get_context("spawn")
    with ctx.Pool(procs, initializer=make_pool, initargs=(canvas,)) as pool:
        pool.map(abs, range(procs))  # every worker has imported and made its masks
        t0 = time.perf_counter()
        pool.starmap(WRITERS[kind], [(str(path), part, n, canvas, shard_size) for part in parts])
        return n / (time.perf_counter() - t0)


# ---- readers ---------------------------------------------------------------------------------------
def reader(kind, path):
    """(one(i) -> masks, batch(indices) -> masks) for a layout."""
    if kind == "ours":
        store = open_store(path)
        return (lambda i: store.read(i)), store.read_masks
    if kind == "zarr":
        group = zarr.open_group(path, mode="r")
        sem, inst = group["semantic"], group["instance"]
        return (lambda i: (sem[i], inst[i])), (lambda idx: (sem.oindex[idx], inst.oindex[idx]))
    pool = ThreadPoolExecutor(8)

    def one(i):
        return (
            cv2.imread(str(Path(path) / "semantic" / f"{i:07d}.png"), cv2.IMREAD_UNCHANGED),
            cv2.imread(str(Path(path) / "instance" / f"{i:07d}.png"), cv2.IMREAD_UNCHANGED),
        )

    return one, (lambda idx: list(pool.map(one, idx)))


def timed_reads(kind, path, n, count, batch):
    one, many = reader(kind, path)
    # Distinct images in random order: no read is served from a cache filled by an earlier one.
    idx = np.random.default_rng(1).permutation(n)[:count].tolist()
    one(idx[0])
    t0 = time.perf_counter()
    for i in idx:
        one(i)
    single = count / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for b in range(0, count, batch):
        many(idx[b : b + batch])
    return single, count / (time.perf_counter() - t0)


def disk_bytes(path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--canvas", type=int, default=256)
    parser.add_argument("--shard-size", type=int, default=128)
    parser.add_argument("--reads", type=int, default=2048, help="random reads (at most --images)")
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    n, s, k = args.images, args.canvas, args.shard_size
    root = Path(tempfile.mkdtemp(prefix="store_io-"))
    rows = {}
    try:
        for kind in ("ours", "zarr", "png"):
            w1 = timed_write(kind, root / f"{kind}-1", n, s, k, 1)
            w2 = timed_write(kind, root / f"{kind}-2", n, s, k, 2)
            r1, rb = timed_reads(kind, root / f"{kind}-1", n, args.reads, args.batch)
            rows[kind] = (w1, w2, r1, rb, disk_bytes(root / f"{kind}-1") / n)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    names = {"ours": "c2fmae store (our API)", "zarr": "same layout, zarr-python", "png": "PNG per mask (MultiMAE)"}
    print(
        f"{n} images, {s}x{s} semantic + instance masks, shards of {k}, "
        f"{args.reads} random reads, batches of {args.batch}"
    )
    print(
        f"{'layout':28s}{'write 1p/s':>12s}{'write 2p/s':>12s}"
        f"{'read 1-by-1/s':>15s}{'read batched/s':>16s}{'bytes/img':>11s}"
    )
    for kind, (w1, w2, r1, rb, b) in rows.items():
        print(f"{names[kind]:28s}{w1:12.0f}{w2:12.0f}{r1:15.0f}{rb:16.0f}{b:11.0f}")
    ours, z, png = rows["ours"], rows["zarr"], rows["png"]
    print("ratios (ours / other):")
    for label, other in (("zarr-python", z), ("PNG per mask", png)):
        print(
            f"  vs {label:13s} write 1p {ours[0] / other[0]:5.1f}x  write 2p {ours[1] / other[1]:5.1f}x  "
            f"read 1-by-1 {ours[2] / other[2]:5.1f}x  read batched {ours[3] / other[3]:5.1f}x  "
            f"bytes {ours[4] / other[4]:4.2f}x"
        )
    print(
        f"  2 writers vs 1: ours {ours[1] / ours[0]:.2f}x, zarr-python {z[1] / z[0]:.2f}x, PNG {png[1] / png[0]:.2f}x"
    )


if __name__ == "__main__":
    main()
