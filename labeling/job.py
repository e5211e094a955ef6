"""The labeling job: list images, create or resume the store, label pending shards on Ray workers.

A shard is the unit of work. The driver hands whole shards to worker actors, retries a shard whose
worker died (on a fresh worker) up to `shard_attempts` times, and shows progress. Resuming is free:
shards with a completion marker are skipped, and a shard is written deterministically from its
inputs, so a job killed at any moment and run again produces the same store. SIGTERM or Ctrl-C
stops it gracefully (`stop_signals`): no more shards are handed out, those in flight get
`cfg.grace` seconds, and the report is written.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import time
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime

from tqdm import tqdm

from datasets_spec import StoreError, create_store, open_store, retries, storage
from datasets_spec.decode import retryable
from datasets_spec.errors import StorageUnavailable
from datasets_spec.meta import package_version
from datasets_spec.shard_writer import forget_shard
from datasets_spec.stale_files import remove_stale_files
from plumbing.cli_boundary import DISK_ERRNOS, Terminated
from plumbing.errors import Unavailable, one_line

from . import cluster, probe
from .backends import check_parameters, uses_prompts
from .config import LabelConfig
from .errors import LabelingError
from .identity import check_resumable, job_identity
from .prompts import apply_prompt_file, check_prompts
from .report import build_report, save_report
from .shard_retry import NO_NODE_LEFT, label_image_by_image
from .sources import ImageList, list_images
from .stop_signals import StopSignals
from .store_lock import store_lock
from .worker_pool import WorkerPool

log = logging.getLogger(__name__)

_CHECK_THREADS = 16  # done shards checked at once on a resume
_BYTES_PER_SHARD_PIXEL = 16  # a worker's label maps per canvas pixel: uint16 pair + working copies
# Errors of the disk the store lives on: every other shard would meet them too.


def run_label_job(images, output, cfg: LabelConfig, *, show_progress: bool = True, keep_logs: bool = False) -> dict:
    """Label every image of `images` into the store at `output` (a local path or an s3:// or
    gs:// URL). Returns the job report.

    One job per store: the job holds the store's lock (`store_lock`) from before it creates or
    resumes the store until its report is written, and first removes what killed writers left.
    SIGTERM or SIGINT while shards are labeled end the job early with its report, whose
    `stopped_by` names the signal; before that (or a second one) they raise Terminated (SIGTERM)
    or KeyboardInterrupt. `keep_logs`: a local Ray's worker logs go beside the report.
    """
    before = retries.counts()  # this process's storage retries, for the report
    stops = StopSignals()
    with stops.installed():
        try:
            _check_backends(cfg)
            image_list = _limited(apply_prompt_file(list_images(images), cfg.prompts), cfg.limit)
            _check_prompts(cfg, image_list)
            output = storage.normalize(output)
            _check_output_outside(output, image_list)
            _check_shard_memory(cfg)
            with store_lock(output):
                for path in [*remove_stale_files(output), *probe.remove_leftovers(output)]:
                    log.info("removed %s, left by a writer that was killed", path)
                return _label(image_list, output, cfg, show_progress, stops, keep_logs, before)
        except KeyboardInterrupt:
            if stops.received == signal.SIGTERM:
                raise Terminated from None
            raise


def _label(
    image_list: ImageList, output, cfg: LabelConfig, show_progress: bool, stops, keep_logs, retries_before: dict
) -> dict:
    identity = job_identity(cfg, image_list)
    try:
        exists = storage.root_exists(output)
    except OSError as exc:  # object storage that cannot be reached (the message names the URL)
        raise LabelingError(f"cannot read the output store: {exc}") from None
    if exists:
        check_resumable(output, identity)
    connection = cluster.connect(cfg.address, job_name=f"c2f-label {output}")
    pool = WorkerPool(cfg, stops)
    try:
        work = len(open_store(output).pending_shards()) if exists else math.ceil(len(image_list.items) / cfg.shard_size)
        worker = pool.first_worker(work) if work else None  # waits for a node with room: the probe sees it
        if connection.joined:  # a cluster: refuse a DATASET or images some worker node cannot reach
            probe.check_nodes(output, image_list.location(image_list.items[0].key), cfg)
        if not exists:
            _create(output, image_list, cfg, identity, worker)
        store = open_store(output)
        repaired, retried = _forget_damaged_and_retryable(output, store)
        pending = store.pending_shards()
        plan = {s: image_list.items[slice(*store.layout.shard_range(s))] for s in pending}
        t0 = time.perf_counter()
        log.info("labeling %d pending shard(s) of %d", len(pending), store.layout.num_shards)
        summaries, given_up, abandoned = _run(cfg, pool, output, image_list.root, plan, show_progress, stops)
        report = build_report(
            open_store(output),
            summaries,
            given_up,
            time.perf_counter() - t0,
            pool.peak,
            skipped=store.layout.num_shards - len(pending),
            driver_retries=retries.since(retries_before),
        )
        report["shards_repaired"] = {str(s): reason for s, reason in sorted(repaired.items())}
        report["retried"] = retried
        if stops.received is not None:
            report.update(stopped_by=stops.name, shards_abandoned=abandoned)
    finally:
        try:
            pool.close()
        finally:
            logs = cluster.shutdown(connection, keep_logs)
    save_report(output, report, logs)
    return report


def _check_backends(cfg: LabelConfig) -> None:
    """Fail before starting anything when a backend name or parameter is unknown (a worker would
    only find out after Ray started, and without a suggestion)."""
    for kind, backend in (("semantic", cfg.semantic), ("instance", cfg.instance)):
        if backend is not None:
            check_parameters(kind, backend.name, backend.params)


def _forget_damaged_and_retryable(output, store) -> tuple[dict[int, str], dict[str, str]]:
    """Done shards become pending again, so this run labels them, when their files are gone or
    changed in size (`Store.shard_damage`), or when some of their images failed for a reason that
    can go away (the file system refused a read). One read of each marker. Labeling is
    deterministic, so a shard's other images come out as before.
    Returns ({shard: what was damaged}, {key: the retried image's old reason})."""
    damaged, retried = {}, {}
    shards = store.done_shards()
    # A few round trips per shard: on object storage, 10,000 done shards one after another take many minutes.
    with ThreadPoolExecutor(_CHECK_THREADS) as pool:
        checks = pool.map(lambda shard: _check_done_shard(store, shard), shards)
        for shard, (damage, failures) in zip(shards, checks):
            if damage:
                log.warning("shard %d is damaged (%s): labeling it again", shard, damage)
                damaged[shard] = damage
            retried.update({f["key"]: f["reason"] for f in failures})
            if damage or failures:
                forget_shard(output, shard)
    if retried:
        log.warning(
            "retrying %d image(s) that failed for reasons that can go away (e.g. %s: %s)",
            len(retried),
            *next(iter(retried.items())),
        )
    return damaged, retried


def _check_done_shard(store, shard: int) -> tuple[str | None, list[dict]]:
    """(why the done shard is damaged or None, its failures worth a retry); one read of its marker."""
    try:
        marker = store.marker(shard)
    except StoreError:
        marker = None  # shard_damage reports it
    damage = store.shard_damage(shard, marker)
    return damage, [] if damage else [f for f in marker.get("failures", []) if retryable(f["reason"])]


def _check_shard_memory(cfg: LabelConfig) -> None:
    """Refuse a shard whose label maps alone would not fit in this machine's memory; warn when
    they take more than a quarter of it. A worker holds a whole shard's maps until it writes them:
    semantic and instance, uint16 on the canvas, plus int32/int64 working copies (~16 bytes/px)."""
    need = cfg.shard_size * cfg.canvas**2 * _BYTES_PER_SHARD_PIXEL
    have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    what = (
        f"a shard of {cfg.shard_size} images on a {cfg.canvas}-px canvas needs about "
        f"{need / 2**30:.1f} GiB per worker for its label maps; this machine has {have / 2**30:.1f} GiB"
    )
    if need > have:
        raise LabelingError(f"{what}: lower shard_size or canvas")
    if need > have / 4:
        log.warning("%s", what)


def _check_output_outside(output, image_list: ImageList) -> None:
    """A store inside the folder or bucket prefix being listed would be listed by the next run:
    refuse it. (A store on object storage is never inside a local image folder, nor the reverse.)"""
    if image_list.kind == "list" or storage.is_url(output) != storage.is_url(image_list.root):
        return
    if storage.is_url(output):
        inside = f"{output}/".startswith(f"{image_list.root}/")
    else:
        inside = output.resolve().is_relative_to(image_list.root.resolve())
    if inside:
        raise LabelingError(
            f"{output}: the output store lies inside the image folder {image_list.root}; write it somewhere else"
        )


def _check_prompts(cfg: LabelConfig, image_list: ImageList) -> None:
    """Fail before starting anything when a prompt-using instance backend would get images without one."""
    if cfg.instance is not None and uses_prompts("instance", cfg.instance.name):
        check_prompts(image_list, cfg.instance.name, cfg.instance.params.get("extra_prompts"))


def _limited(image_list: ImageList, limit: int | None) -> ImageList:
    if not image_list.items:
        raise LabelingError(f"{image_list.root}: no images found")
    return image_list if limit is None else replace(image_list, items=image_list.items[:limit])


def _create(output, image_list: ImageList, cfg: LabelConfig, identity: dict, worker) -> None:
    backends = cluster.get(cluster.submit(worker, "identities"))
    label_space = cluster.get(cluster.submit(worker, "label_space"))
    provenance = {
        "job": identity,
        "backends": backends,
        "input": {"kind": image_list.kind, "root": str(image_list.root), **identity["input"]},
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "labeler": f"c2fmae {package_version()}",
    }
    try:
        create_store(
            output,
            image_list.items.keys,
            image_list.items.labels,
            label_space=label_space,
            provenance=provenance,
            canvas=cfg.canvas,
            shard_size=cfg.shard_size,
        )
    except StoreError as exc:
        raise LabelingError(str(exc)) from None


def _run(cfg, pool: WorkerPool, output, root, plan, show_progress, stops: StopSignals):
    """Label the shards of `plan` on the workers of `pool`, which grows as nodes join. Returns
    (summaries, {shard: reason given up}, the shards begun and left unwritten after a stop signal,
    which stay pending).

    A shard whose worker process died is labeled again image by image at the end (`shard_retry`);
    one whose worker was lost with its node goes back in the queue for the remaining workers.
    After a stop signal no shard is handed out; see `_drain` for those in flight."""
    queue, attempts, in_flight = deque(sorted(plan)), Counter(), {}
    summaries, given_up, idle, suspects = [], {}, [], []
    total = sum(len(items) for items in plan.values())
    with tqdm(total=total, unit="img", desc="label", disable=not show_progress, smoothing=0.1) as bar:

        def done(summary):
            summaries.append(summary)
            log.debug("shard %d written: %d done, %d failed", summary["shard"], summary["done"], summary["failed"])
            bar.update(summary["done"] + summary["failed"])
            bar.set_postfix(done=sum(s["done"] for s in summaries), failed=sum(s["failed"] for s in summaries))

        with stops.deferred():
            while (queue or in_flight) and stops.received is None:
                work = len(queue) + len(in_flight)
                try:
                    idle.extend(pool.tend(work, live=len(idle) + len(in_flight)))
                    while queue and idle:
                        shard, worker = queue.popleft(), idle.pop()
                        ref = cluster.submit(worker, "label_shard", str(output), shard, str(root), plan[shard])
                        in_flight[ref] = (worker, shard)
                    waits = pool.check_in(work, live=len(idle) + len(in_flight))
                    ref = stops.interruptible(cluster.wait_one, [*in_flight, *pool.starting], waits)
                except KeyboardInterrupt:
                    if stops.received is None:
                        raise
                    break
                if ref is None or ref in pool.starting:
                    idle.extend([] if ref is None else pool.joined(ref))
                    continue
                worker, shard = in_flight.pop(ref)
                try:
                    summary = cluster.get(ref)
                except cluster.WORKER_ERRORS + cluster.TASK_ERRORS as exc:
                    _stop_if_unfixable(shard, exc)
                    idle.extend(_after_fault(cfg, worker, exc, live=len(idle) + len(in_flight) + len(pool.starting)))
                    _requeue(cfg, shard, exc, attempts, queue, suspects, given_up)
                    continue
                idle.append(worker)
                done(summary)
            if stops.received is not None:
                bar.set_description(f"stopping ({stops.name})")
                return summaries, given_up, sorted(_drain(cfg.grace, in_flight, done, stops.name) + suspects)
        try:
            _image_by_image(cfg, idle, output, root, plan, suspects, done, given_up)
        except KeyboardInterrupt:
            if stops.received is None:
                raise
            written = {s["shard"] for s in summaries}
            return summaries, given_up, [s for s in suspects if s not in written and s not in given_up]
    return summaries, given_up, []


def _requeue(cfg, shard: int, exc: Exception, attempts: Counter, queue: deque, suspects: list, given_up: dict) -> None:
    """Where shard `shard`, whose task failed with `exc`, goes next: to the suspects labeled image by
    image when its worker process died, back to the queue while it has attempts left, else given up
    (StorageUnavailable when storage stayed down through its retries: so would the other shards)."""
    reason = one_line(exc, last=True, named=True)
    if isinstance(exc, cluster.WORKER_ERRORS) and not cluster.node_died(exc):
        log.warning("shard %d: its worker died (%s); labeling it again image by image", shard, reason)
        suspects.append(shard)
        return
    attempts[shard] += 1
    log.warning("shard %d attempt %d failed: %s", shard, attempts[shard], reason)
    if attempts[shard] < cfg.shard_attempts:
        queue.appendleft(shard)
    elif isinstance(exc, Unavailable):
        cause = cluster.task_cause(exc)
        raise StorageUnavailable(f"shard {shard}: {cause}; the shards already done are kept") from None
    else:
        given_up[shard] = reason


def _drain(grace: float, in_flight: dict, done, why: str) -> list[int]:
    """After a stop signal (`why`, e.g. "SIGTERM"): wait up to `grace` seconds for the shards in
    flight ({ref: (worker, shard)}), then stop the workers of those still running. A second signal
    stops waiting at once. Returns the shards not written, which stay pending."""
    if in_flight:
        log.info("%s: waiting up to %g s for %d shard(s) in flight (again: stop now)", why, grace, len(in_flight))
    deadline, lost = time.monotonic() + grace, []
    try:
        while in_flight:
            ref = cluster.wait_one(list(in_flight), timeout=max(0.0, deadline - time.monotonic()))
            if ref is None:
                break
            _, shard = in_flight.pop(ref)
            try:
                done(cluster.get(ref))
            except cluster.WORKER_ERRORS + cluster.TASK_ERRORS as exc:
                log.warning("shard %d: %s", shard, one_line(exc, last=True, named=True))
                lost.append(shard)
    except KeyboardInterrupt:
        pass  # a second signal
    for worker, _ in in_flight.values():
        cluster.kill(worker)
    return sorted(lost + [shard for _, shard in in_flight.values()])


def _image_by_image(cfg, idle, output, root, plan, suspects, done, given_up) -> None:
    """Label each shard of `suspects` one image at a time on one worker (the others stop), so an
    image that kills its worker is recorded as failed and the rest of its shard is labeled. A shard
    whose task raises is given up (left pending), as in `_run`."""
    if not suspects:
        return
    if not idle:
        raise LabelingError(NO_NODE_LEFT)
    worker = idle.pop()
    for other in idle:
        cluster.kill(other)
    for shard in suspects:
        try:
            summary, worker = label_image_by_image(cfg, worker, str(output), str(root), shard, plan[shard])
        except cluster.TASK_ERRORS as exc:
            _stop_if_unfixable(shard, exc)
            given_up[shard] = one_line(exc, last=True, named=True)
            continue
        done(summary)


def _stop_if_unfixable(shard: int, exc: Exception) -> None:
    """LabelingError, in one line with the resume hint, when no retry of `shard` can help."""
    fatal = _unfixable(exc)
    if fatal:
        raise LabelingError(
            f"shard {shard}: {fatal}; the shards already done are kept: fix this, then rerun the same command to resume"
        ) from None


def _unfixable(exc: Exception) -> str | None:
    """Why retrying `exc`'s shard cannot help (a worker that cannot even start, a full or
    read-only disk), or None for faults worth a retry (a worker that died, a transient error)."""
    reason = cluster.init_failure(exc)
    if reason:
        return f"a label worker could not start: {reason}"
    text = str(exc)
    for code in DISK_ERRNOS:
        if os.strerror(code) in text:
            return f"the store's disk refused a write ({os.strerror(code)})"
    return None


def _after_fault(cfg, worker, exc, live: int) -> list:
    """The workers to use next in place of `worker`: itself if it lives; a fresh one if it died
    and the alive nodes have room beside the `live` others (not when its node is gone); else none."""
    if not isinstance(exc, cluster.WORKER_ERRORS):
        return [worker]
    cluster.kill(worker)
    if cluster.capacity(cfg) <= live:
        why = "a node was lost" if cluster.node_died(exc) else "no room for a fresh label worker"
        log.warning("%s: going on with %d label worker(s)", why, live)
        return []
    return [cluster.make_worker(cfg)]
