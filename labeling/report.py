"""A label job's report: the JSON kept in the store's reports/ and the summary a person reads."""

from __future__ import annotations

import json
import logging
from collections import Counter
from datetime import UTC, datetime

from datasets_spec import retries, schema, storage
from datasets_spec.schema import reason_kind
from plumbing.cli_boundary import format_counts
from plumbing.errors import one_line

log = logging.getLogger(__name__)


def build_report(store, summaries, given_up, seconds, workers, skipped, driver_retries=None) -> dict:
    """The job's summary as JSON: the store's counts and this run's (summaries: the shards' own).
    storage_retries: transient storage faults retried, by kind (`datasets_spec.retries`), summed
    over the workers' shards and the driver's own (`driver_retries`)."""
    status = store.status()
    labeled = sum(s["done"] + s["failed"] for s in summaries)
    reasons = Counter(reason_kind(reason) for s in summaries for _, reason in s["failures"])
    dropped = sum((Counter(s["dropped"]) for s in summaries), Counter())
    return {
        "store": str(store.path),
        "images": store.layout.num_images,
        "done": int((status == schema.DONE).sum()),
        "failed": int((status == schema.FAILED).sum()),
        "pending": int((status == schema.PENDING).sum()),
        "this_run": {
            "images": labeled,
            "shards": len(summaries),
            "shards_skipped": skipped,
            "seconds": round(seconds, 3),
            "images_per_s": round(labeled / seconds, 3) if seconds else None,
            "workers": workers,
            "shards_by_node": dict(Counter(s["node"] for s in summaries if "node" in s)),
        },
        "failures_by_reason": dict(reasons.most_common()),
        "dropped": dict(sorted(dropped.items())),
        "instances_per_image": instances_per_image(summaries),
        "failures": [{"key": k, "reason": r} for s in summaries for k, r in s["failures"]],
        "shards_given_up": {str(k): v for k, v in sorted(given_up.items())},
        "storage_retries": retries.add(*(s.get("storage_retries", {}) for s in summaries), driver_retries or {}),
    }


def instances_per_image(summaries) -> dict:
    """This run's done images by instance count: {"mean": m, "images": {"count": images}} (counts ascending)."""
    images = sum((Counter({int(k): v for k, v in s.get("instances", {}).items()}) for s in summaries), Counter())
    total = sum(images.values())
    mean = sum(k * v for k, v in images.items()) / total if total else None
    return {"mean": None if mean is None else round(mean, 3), "images": {str(k): images[k] for k in sorted(images)}}


def save_report(output, report: dict, logs: dict[str, bytes] | None = None) -> str | None:
    """Write the report into the store's reports/, and `logs` ({file name: bytes}, a local Ray's
    worker logs) beside it in label-<time>-logs/, named in the report's `worker_logs`; on a
    read-only or full disk, say so and go on (the report is also printed, and the store itself is
    complete). Returns where the report went."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    rel = storage.report_path(f"label-{stamp}.json")
    try:
        if logs:
            folder = storage.report_path(f"label-{stamp}-logs")
            for name, data in logs.items():
                storage.write_bytes(output, f"{folder}/{name}", data)
            report = {**report, "worker_logs": folder}
        storage.write_bytes(output, rel, json.dumps(report, indent=1, ensure_ascii=False).encode())
    except (OSError, ValueError) as exc:  # ValueError: tensorstore's error for a refused request
        reason = (exc.strerror if isinstance(exc, OSError) else None) or one_line(exc)
        log.warning("could not save the job report to %s (%s)", storage.join(output, rel), reason)
        return None
    return storage.join(output, rel)


def format_report(report: dict) -> str:
    """The final summary a person reads."""
    run = report["this_run"]
    rate = f"{run['images_per_s']:.2f} images/s" if run["images_per_s"] else "n/a"
    lines = [
        f"labeled {run['images']} images in {run['seconds']:.1f} s ({rate}, {run['workers']} worker(s)); "
        f"{run['shards_skipped']} shard(s) already done",
        f"store {report['store']}: {report['images']} images, {report['done']} done, "
        f"{report['failed']} failed, {report['pending']} pending",
    ]
    if report["failures_by_reason"]:
        lines.append("failures: " + format_counts(report["failures_by_reason"]))
    per_image = report.get("instances_per_image", {})
    if per_image.get("mean") is not None:
        counts = {int(k): v for k, v in per_image["images"].items()}
        lines.append(
            f"instances per image: mean {per_image['mean']:.2f}, none in {counts.get(0, 0)} of "
            f"{sum(counts.values())} done image(s), at most {max(counts)}"
        )
    if report["dropped"]:
        lines.append("instances dropped: " + format_counts(report["dropped"]))
    if report.get("storage_retries"):
        lines.append("storage faults retried: " + format_counts(report["storage_retries"]))
    if report.get("retried"):
        lines.append(
            f"retried {len(report['retried'])} image(s) that had failed for reasons that can "
            "go away (the file system refused a read)"
        )
    for shard, reason in report.get("shards_repaired", {}).items():
        lines.append(f"shard {shard} was damaged ({reason}) and has been labeled again")
    for shard, reason in report["shards_given_up"].items():
        lines.append(f"shard {shard} left pending after repeated faults: {reason} (rerun to retry)")
    if report.get("stopped_by"):
        abandoned = report["shards_abandoned"]
        lines.append(
            f"stopped by {report['stopped_by']}: "
            + (
                f"{len(abandoned)} shard(s) begun were not finished within the grace period and stay pending"
                if abandoned
                else "the shards in flight were finished"
            )
        )
    return "\n".join(lines)
