"""Per-instance records: one gzipped JSON Lines file per shard, beside the arrays.

Each line is one instance of one image:
  {"index": int, "key": str, "id": int, "score": float, "box": [x, y, w, h], "area": int,
   "semantic": int | null, "source": str, "prompt": str | null,
   "rle": {"size": [H, W], "counts": str}}
Boxes, areas and RLE are at the image's original resolution (COCO conventions: boxes in pixels,
x/y of the top-left corner; RLE is pycocotools' compressed RLE with `counts` decoded to ASCII).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
from collections.abc import Iterable

import numpy as np
from pycocotools import mask as mask_utils

from . import storage

INSTANCE_FIELDS = ("id", "score", "box", "area", "semantic", "source", "prompt", "rle")


def encode_rle(mask: np.ndarray) -> dict:
    """Binary mask [H, W] (bool or 0/1) → COCO compressed RLE with `counts` as str."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


def rles_from_counts(counts: list[np.ndarray], height: int, width: int) -> list[dict]:
    """Run lengths of N binary masks [H, W] (column-major, zeros first, as COCO RLE counts them) →
    N RLE dicts with `counts` as str, the same as encode_rle on the masks (one pycocotools call)."""
    if not counts:
        return []
    coco = mask_utils.frPyObjects([{"size": [height, width], "counts": c} for c in counts], height, width)
    return [{"size": [int(height), int(width)], "counts": r["counts"].decode("ascii")} for r in coco]


def decode_rle(rle: dict) -> np.ndarray:
    """COCO RLE dict (counts as str or bytes) → bool mask [H, W]."""
    counts = rle["counts"]
    coco = {"size": list(rle["size"]), "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    return mask_utils.decode(coco).astype(bool)


def write_records(root, relpath: str, records: Iterable[dict]) -> tuple[str, int]:
    """Write records to the store object `root/relpath` at once (storage.write_bytes).
    Returns (sha256 of the object, record count)."""
    lines = [json.dumps(rec, separators=(",", ":"), sort_keys=True) + "\n" for rec in records]
    buffer = io.BytesIO()
    # mtime=0 keeps the gzip bytes a pure function of the records, so reruns are byte-identical.
    with gzip.GzipFile(filename="", fileobj=buffer, mode="wb", mtime=0) as gz:
        gz.write("".join(lines).encode())
    data = buffer.getvalue()
    storage.write_bytes(root, relpath, data)
    return hashlib.sha256(data).hexdigest(), len(lines)


def parse_records(data: bytes) -> list[dict]:
    """Records from the gzipped JSON Lines bytes of one records object.

    The lines are parsed as one JSON array (half the time of a `json.loads` per line, which counts
    at ImageNet size: ~2.5M records); line by line again, to name what is wrong, if that fails or
    does not give one object per line."""
    lines = [line for line in gzip.decompress(data).decode("utf-8").splitlines() if line.strip()]
    try:
        records = json.loads("[" + ",".join(lines) + "]")
    except ValueError:
        records = None
    if records is None or len(records) != len(lines) or not all(type(rec) is dict for rec in records):
        records = [json.loads(line) for line in lines]
    return records
