"""A store's summary: counts, geometry, label space, provenance (c2f-data info)."""

from __future__ import annotations

from collections import Counter

from datasets_spec import schema
from datasets_spec.reader import Store
from datasets_spec.schema import reason_kind
from plumbing.cli_boundary import format_counts


def info(store: Store) -> dict:
    """JSON-ready summary of the store."""
    status = store.status()
    layout = store.layout
    done_shards = store.done_shards()
    reasons, dropped = Counter(), Counter()
    for shard in done_shards:
        marker = store.marker(shard)
        reasons.update(reason_kind(f["reason"]) for f in marker.get("failures", []))
        dropped.update(marker.get("dropped", {}))  # markers written before drop counts have none
    return {
        "path": str(store.path),
        "schema_version": store.attrs["schema_version"],
        "package_version": store.attrs.get("package_version"),
        "images": layout.num_images,
        "done": int((status == schema.DONE).sum()),
        "failed": int((status == schema.FAILED).sum()),
        "pending": int((status == schema.PENDING).sum()),
        # "complete" is the old name of "done", kept for the scripts that read it
        "shards": {
            "total": layout.num_shards,
            "done": len(done_shards),
            "complete": len(done_shards),
            "size": layout.shard_size,
        },
        "canvas": store.attrs["canvas"],
        "label_space_size": len(store.label_space),
        "labels_known": int((store.labels() >= 0).sum()),
        "failure_reasons": dict(reasons.most_common(10)),
        "dropped": dict(sorted(dropped.items())),
        "provenance": store.provenance,
    }


def format_info(summary: dict) -> str:
    """Human-readable form of `info()`."""
    canvas = summary["canvas"]
    n = max(summary["images"], 1)
    lines = [
        f"store      {summary['path']} (schema v{summary['schema_version']}, "
        f"written by c2fmae {summary['package_version']})",
        f"images     {summary['images']}: {summary['done']} done ({100 * summary['done'] / n:.1f}%), "
        f"{summary['failed']} failed, {summary['pending']} pending",
        f"shards     {summary['shards']['done']}/{summary['shards']['total']} done, "
        f"{summary['shards']['size']} images each",
        f"canvas     {canvas['size']}×{canvas['size']}, {canvas['anchor']}, "
        f"semantic ignore {canvas['semantic_ignore']}, instance none {canvas['instance_none']}",
        f"labels     {summary['label_space_size']} semantic classes; "
        f"{summary['labels_known']} images with a class label",
    ]
    if summary["failure_reasons"]:
        lines.append("failures   " + format_counts(summary["failure_reasons"]))
    if summary["dropped"]:
        lines.append("dropped    " + format_counts(summary["dropped"]))
    for key, value in sorted(summary["provenance"].items()):
        lines.append(f"provenance {key}: {_short(value)}")
    return "\n".join(lines)


def _short(value, limit: int = 160) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
