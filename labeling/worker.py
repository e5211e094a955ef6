"""Label one whole shard: decode (threads) → models (batched) → fuse (threads) → write the shard.

`ShardLabeler` is plain Python: the Ray pipeline wraps it in an actor (models load once per
worker) and the benchmarks call it directly. While the models run on one batch, worker threads
decode the next images and fuse the previous batch (OpenCV, numpy and pycocotools release the GIL).
Nothing but a small summary leaves it: the worker writes its shard to the store itself.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, deque
from concurrent.futures import Future, ThreadPoolExecutor

from datasets_spec import ImageResult, retries, write_shard
from datasets_spec.errors import StorageUnavailable
from datasets_spec.geometry import fit
from plumbing.errors import Unavailable, from_outage, one_line

from .backends import backend_class, create_backend
from .config import LabelConfig
from .decode import decode_item
from .errors import LabelingError
from .fusion import fuse
from .sources import ImageItem

log = logging.getLogger(__name__)


class ShardLabeler:
    """Holds the backends; `label_shard` labels and writes one shard."""

    def __init__(self, cfg: LabelConfig, device: str | None = None):
        self.cfg = cfg
        self.semantic = create_backend("semantic", cfg.semantic.name, **_params("semantic", cfg.semantic, device))
        self.instance = (
            None
            if cfg.instance is None
            else create_backend("instance", cfg.instance.name, **_params("instance", cfg.instance, device))
        )

    def identities(self) -> dict:
        return {
            "semantic": self.semantic.identity(),
            "instance": None if self.instance is None else self.instance.identity(),
        }

    def label_space(self) -> dict[int, str]:
        return self.semantic.label_space()

    def label_shard(self, store: str, shard: int, root: str, items: list[ImageItem]) -> dict:
        """Label `items` (the whole shard, in order) and write them as shard `shard` of `store`.

        Returns {"shard", "done", "failed", "failures": [[key, reason], ...], "dropped": {reason: n},
        "instances": {"count": done images with that many instances}, "seconds",
        "storage_retries": {kind: n}} (this process's storage retries meanwhile).
        """
        t0, before = time.perf_counter(), retries.counts()
        return shard_summary(store, shard, items, self.label_images(root, items), t0, before)

    def write_results(self, store: str, shard: int, items: list[ImageItem], results: list[ImageResult]) -> dict:
        """Write `results` labeled earlier (`label_images`, one per item) as shard `shard`; the
        summary `label_shard` returns."""
        return shard_summary(store, shard, items, results, time.perf_counter())

    def label_images(self, root: str, items: list[ImageItem]) -> list[ImageResult]:
        """Label `items` without writing them: one ImageResult per item, in order."""
        with ThreadPoolExecutor(self.cfg.decode_threads) as pool:
            return [_resolve(r) for r in self._label_all(pool, str(root), items)]

    def _label_all(self, pool: ThreadPoolExecutor, root: str, items) -> list:
        """One entry per item, in order: an ImageResult, or a Future of one (fusion in flight).

        Decoding runs at most two batches ahead, so a shard of huge images never sits in memory whole.
        """
        ahead = 2 * self.cfg.batch_size
        limits = self.cfg.max_pixels, self.cfg.canvas
        decodes = deque(pool.submit(_decode, root, item.key, *limits) for item in items[:ahead])
        out: list = [None] * len(items)
        batch: list[tuple[int, ImageItem, object]] = []
        for j, item in enumerate(items):
            decoded = decodes.popleft().result()
            if j + ahead < len(items):
                decodes.append(pool.submit(_decode, root, items[j + ahead].key, *limits))
            if isinstance(decoded, str):
                out[j] = ImageResult.failed(decoded)
                continue
            batch.append((j, item, decoded))
            if len(batch) == self.cfg.batch_size:
                self._run_batch(batch, pool, out)
                batch = []
        self._run_batch(batch, pool, out)
        return out

    def _run_batch(self, batch, pool: ThreadPoolExecutor, out: list) -> None:
        """Models on the whole batch, then fusion handed to the pool. If the models raise on the
        batch, its images are retried one by one, so one bad image fails alone."""
        if not batch:
            return
        try:
            predictions = self._predict([item for _, item, _ in batch], [decoded for _, _, decoded in batch])
        except Exception as exc:  # noqa: BLE001 — any model fault becomes a per-image failure
            if len(batch) == 1:
                out[batch[0][0]] = ImageResult.failed(f"labeling failed: {one_line(exc, named=True)}")
                return
            log.warning("batch failed (%s); retrying its images one by one", exc)
            for one in batch:
                self._run_batch([one], pool, out)
            return
        for (j, _, (image, orig_hw)), (semantic, instances) in zip(batch, predictions):
            out[j] = pool.submit(
                fuse, semantic, instances, orig_hw, self.cfg.canvas, self.cfg.min_area, image_hw=image.shape[:2]
            )

    def _predict(self, items, decoded) -> list[tuple]:
        """decoded: (image [h, w, 3] uint8, (H, W) true size) per item → (semantic [h, w] int32 at
        fit(H, W, canvas), Instances | None at the image's [h, w]) per image."""
        sizes = [fit(height, width, self.cfg.canvas) for _, (height, width) in decoded]
        images = [image for image, _ in decoded]
        semantic = self.semantic.predict(images, sizes)
        if self.instance is None:
            return [(sem, None) for sem in semantic]
        prompts = [[*([item.class_prompt] if item.class_prompt else []), *item.prompts] for item in items]
        return list(zip(semantic, self.instance.predict(images, prompts)))


def shard_summary(
    store: str, shard: int, items: list[ImageItem], results: list[ImageResult], t0: float, before=None
) -> dict:
    """Write `results` (one per item of the whole shard) as shard `shard` of `store`; the summary
    `label_shard` returns (storage retries counted since `before`, else since this call)."""
    before = retries.counts() if before is None else before
    try:
        marker = write_shard(store, shard, results)
    except Exception as exc:
        if from_outage(exc) and not isinstance(exc, Unavailable):
            # Ray hands the driver the error's type, not what it was raised while handling
            raise StorageUnavailable(str(exc)) from None
        raise
    failures = [[item.key, r.error] for item, r in zip(items, results) if r.error is not None]
    instances = Counter(len(r.records) for r in results if r.error is None)
    return {
        "shard": shard,
        "done": len(items) - len(failures),
        "failed": len(failures),
        "failures": failures,
        "dropped": marker["dropped"],
        "instances": {str(k): v for k, v in sorted(instances.items())},
        "seconds": time.perf_counter() - t0,
        "storage_retries": retries.since(before),
    }


def _resolve(result) -> ImageResult:
    """A finished fusion's result, or the image's failure if fusion raised."""
    if not isinstance(result, Future):
        return result
    try:
        return result.result()
    except Exception as exc:  # noqa: BLE001 — a fusion fault fails that image only
        return ImageResult.failed(f"fusion failed: {one_line(exc, named=True)}")


def _decode(root: str, key: str, max_pixels: int, canvas: int):
    """(decoded image, its true (H, W)) (a JPEG above max_pixels comes reduced), or the failure
    reason as a string. Object storage down (StorageUnavailable) fails the shard, not its images."""
    try:
        return decode_item(root, key, max_pixels, canvas)
    except LabelingError as exc:
        return str(exc)
    except Unavailable:
        raise
    except Exception as exc:  # noqa: BLE001 — a decoder bug must not take the shard down
        return f"decode failed: {one_line(exc, named=True)}"


def _params(kind: str, backend, device: str | None) -> dict:
    """The backend's parameters, plus the worker's device unless set, for a backend that takes
    one (`takes_device`; classic does not: it runs OpenCV on the CPU)."""
    params = dict(backend.params)
    if device is not None and backend_class(kind, backend.name).takes_device:
        params.setdefault("device", device)
    return params
