"""Labeling throughput with the classic backend: bare loop vs c2f-label on Ray with 1 and 2 workers.

(a) a bare in-process loop calling the same ShardLabeler (decode, backend, fusion, shard writer),
(b) the Ray job with 1 worker, (c) with 2 workers — on the same images, one after the other in one
run; Ray starts once, before timing. Prints images/s and the ratios (Ray overhead, scaling).

    .venv/bin/python benchmarks/label_throughput.py [--images 256] [--shard-size 32]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from make_samples import CLASSES, make_samples  # noqa: E402

from datasets_spec import create_store  # noqa: E402
from labeling import cluster  # noqa: E402
from labeling.config import load_config  # noqa: E402
from labeling.job import run_label_job  # noqa: E402
from labeling.sources import list_images  # noqa: E402
from labeling.worker import ShardLabeler  # noqa: E402


def bare_loop(images: Path, out: Path, cfg) -> float:
    """Seconds for the whole job in one process, no Ray."""
    t0 = time.perf_counter()
    image_list = list_images(images)
    labeler = ShardLabeler(cfg)
    items = list(image_list.items)
    layout = create_store(
        out,
        [i.key for i in items],
        [i.label for i in items],
        label_space=labeler.label_space(),
        canvas=cfg.canvas,
        shard_size=cfg.shard_size,
    )
    for shard in range(layout.num_shards):
        labeler.label_shard(str(out), shard, str(image_list.root), items[slice(*layout.shard_range(shard))])
    return time.perf_counter() - t0


def ray_job(images: Path, out: Path, cfg, workers: int) -> float:
    cfg.workers = workers
    t0 = time.perf_counter()
    run_label_job(images, out, cfg, show_progress=False)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--shard-size", type=int, default=32)
    parser.add_argument("--canvas", type=int, default=256)
    args = parser.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    tmp = Path(tempfile.mkdtemp(prefix="label_bench-"))
    try:
        make_samples(tmp / "images", per_class=-(-args.images // len(CLASSES)), with_bad=False)
        n = len(list_images(tmp / "images").items)
        cfg = load_config(flags={"shard_size": args.shard_size, "canvas": args.canvas})
        t0 = time.perf_counter()
        connection = cluster.connect(None)
        startup = time.perf_counter() - t0
        times = {
            "bare loop (no Ray)": bare_loop(tmp / "images", tmp / "bare", cfg),
            "c2f-label, 1 worker": ray_job(tmp / "images", tmp / "ray1", cfg, 1),
            "c2f-label, 2 workers": ray_job(tmp / "images", tmp / "ray2", cfg, 2),
        }
        cluster.shutdown(connection)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"{n} images (classic backend, canvas {args.canvas}, shards of {args.shard_size}), {os.cpu_count()} CPUs; "
        f"Ray start-up {startup:.1f} s (not counted below)"
    )
    print(f"{'mode':24s}{'seconds':>10s}{'images/s':>10s}")
    for mode, seconds in times.items():
        print(f"{mode:24s}{seconds:10.1f}{n / seconds:10.1f}")
    bare, one, two = times.values()
    print(
        f"ratios: Ray 1 worker / bare loop = {bare / one:.2f}x throughput (overhead {100 * (one / bare - 1):.0f}%), "
        f"2 workers / 1 worker = {one / two:.2f}x"
    )


if __name__ == "__main__":
    main()
