"""A shard whose worker process died: label it again one image at a time, to find the image that kills.

A worker that dies while its node lives (killed by the OOM killer on a decompression bomb, a
segfault in a model on one odd image) takes the whole shard down, and a plain retry dies again on
the same image. Here a worker labels the shard's images one call per image; when it dies on an
image, that image is tried once more in a fresh worker (a death for some other reason gets its
second chance), and if that dies too, it is recorded as failed with `WORKER_DIED` and the rest of
the shard goes on in another fresh worker. The results are written as one whole shard at the end,
like any other. Labeling is deterministic per image, so images that pass come out as in a whole-shard run.
"""

from __future__ import annotations

import logging
import time

from datasets_spec import ImageResult

from . import cluster
from .errors import LabelingError

log = logging.getLogger(__name__)

WORKER_DIED = "worker died while labeling this image (e.g. killed for using too much memory)"
IMAGE_ATTEMPTS = 2  # workers an image may kill before it is recorded as failed
NO_NODE_LEFT = (
    "no node of the Ray cluster can run a label worker any more; the shards already done "
    "are kept: rerun the same command to resume"
)


def label_image_by_image(cfg, worker, output: str, root: str, shard: int, items: list):
    """Label shard `shard` (`items`, in order) image by image and write it. Returns (its summary,
    the live worker to use next). Worker deaths are handled here; other faults propagate as from
    a whole-shard call."""
    t0 = time.perf_counter()
    results = []
    for item in items:
        result, worker = _label_one(cfg, worker, root, item)
        results.append(result)
    summary = cluster.get(cluster.submit(worker, "write_results", output, shard, items, results))
    return {**summary, "seconds": time.perf_counter() - t0}, worker


def _label_one(cfg, worker, root: str, item) -> tuple[ImageResult, object]:
    """(item's result, the live worker to use next)."""
    for attempt in range(1, IMAGE_ATTEMPTS + 1):
        try:
            return cluster.get(cluster.submit(worker, "label_images", root, [item]))[0], worker
        except cluster.WORKER_ERRORS as exc:
            if cluster.init_failure(exc):
                raise
            log.warning("a worker died labeling %s (attempt %d of %d)", item.key, attempt, IMAGE_ATTEMPTS)
            worker = replace_worker(cfg, worker)
    log.warning("%s: recorded as failed: %s", item.key, WORKER_DIED)
    return ImageResult.failed(WORKER_DIED), worker


def replace_worker(cfg, dead):
    """A fresh, started worker in place of `dead`; LabelingError if no alive node can hold one."""
    cluster.kill(dead)
    if cluster.capacity(cfg) < 1:
        raise LabelingError(NO_NODE_LEFT)
    return cluster.started(cluster.make_worker(cfg))
