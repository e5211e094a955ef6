"""Write one whole shard: pixel arrays, per-image arrays, records, then the completion marker."""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from . import _array_io, schema, storage
from .errors import StoreError
from .geometry import fit
from .meta import read_meta
from .records import INSTANCE_FIELDS, write_records


@dataclass
class ImageResult:
    """What a labeler produced for one image, or why it failed.

    semantic: [S, S] uint16 class ids on the canvas (padding = SEMANTIC_IGNORE); required
    instance: [S, S] uint16 instance ids on the canvas (0 = none); required; every id > 0 has one record
    orig_hw:  (H, W) of the original image after EXIF orientation; required
    records:  one dict per instance with the fields of records.INSTANCE_FIELDS
    dropped:  candidate instances the labeler removed, by reason (e.g. {"nms": 2}); summed per shard
    error:    set for a failed image (then nothing else is needed; see ImageResult.failed)
    """

    semantic: np.ndarray | None = None
    instance: np.ndarray | None = None
    orig_hw: tuple[int, int] | None = None
    records: list[dict] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)
    error: str | None = None

    @classmethod
    def failed(cls, reason: str) -> ImageResult:
        return cls(error=reason)


def write_shard(path, shard: int, results: Sequence[ImageResult]) -> dict:
    """Write shard `shard` whole from one result per image; return the completion marker.

    `path`: the store root, a local path or an object-storage URL (see `storage`).
    Order: drop any old marker, write pixel and per-image arrays, the records object, the status
    chunk, and last the marker (one atomic write: a rename locally, one PUT on object storage).
    A writer killed at any point leaves the shard without a marker, i.e. pending, and every other
    shard untouched. Safe from any process, as long as no two processes write the same shard at once.
    """
    root = storage.normalize(path)
    meta = read_meta(root)
    start, stop = meta.layout.shard_range(shard)
    if len(results) != stop - start:
        raise StoreError(f"{root}: shard {shard} holds {stop - start} images, got {len(results)} results")
    keys = _array_io.read_strings(root, schema.KEY, start, stop)
    slabs, records, failures = _assemble(meta, shard, start, keys, results)
    forget_shard(root, shard)
    arrays = {name: _array_io.open_array(storage.join(root, name), write=True) for name in slabs}
    _array_io.write_slabs(
        [(arrays[n], start, slabs[n]) for n in (schema.SEMANTIC, schema.INSTANCE, schema.ORIG_HW, schema.VALID_HW)]
    )
    records_rel = storage.records_path(shard)
    records_sha, count = write_records(root, records_rel, records)
    _array_io.write_slabs([(arrays[schema.STATUS], start, slabs[schema.STATUS])])
    marker = {
        "schema_version": schema.SCHEMA_VERSION,
        "shard": shard,
        "start": start,
        "stop": stop,
        "done": int((slabs[schema.STATUS] == schema.DONE).sum()),
        "failed": len(failures),
        "failures": failures,
        "records": {"path": records_rel, "sha256": records_sha, "count": count},
        "pixels_crc32": pixels_crc32(slabs[schema.SEMANTIC], slabs[schema.INSTANCE]),
        "files": file_inventory(root, shard),
        "dropped": dropped_total(results),
    }
    _write_json_atomic(root, storage.marker_path(shard), marker)
    return marker


def file_inventory(path, shard: int) -> dict[str, dict]:
    """{store-relative path: {"size", "sha256"}} of the shard's data objects that exist (read back
    right after writing, so a later rerun can tell a deleted or truncated object cheaply)."""
    inventory = {}
    for rel in storage.shard_data_files(shard):
        try:
            data = storage.read_bytes(path, rel)
        except FileNotFoundError:
            continue
        inventory[rel] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    return inventory


def forget_shard(path, shard: int) -> None:
    """Make shard `shard` pending again (its marker goes; its data is replaced when it is written
    again). For a labeling job that found the shard damaged."""
    storage.delete(path, storage.marker_path(shard))


def dropped_total(results: Sequence[ImageResult]) -> dict[str, int]:
    """Sum of the images' `dropped` counts, by reason (sorted; zeros left out)."""
    total: dict[str, int] = {}
    for result in results:
        for reason, count in result.dropped.items():
            total[reason] = total.get(reason, 0) + int(count)
    return {k: v for k, v in sorted(total.items()) if v}


def pixels_crc32(semantic: np.ndarray, instance: np.ndarray) -> int:
    """CRC-32 of a shard's pixel data as stored (C order, little endian): semantic, then instance.

    A fast integrity check for validate; sha256 is several times slower and dominated writes
    (benchmarks/integrity_hash.py, figures in docs/performance.md).
    """
    crc = 0
    for slab in (semantic, instance):
        crc = zlib.crc32(
            memoryview(np.ascontiguousarray(slab.astype(slab.dtype.newbyteorder("<"), copy=False))).cast("B"), crc
        )
    return crc


def _assemble(meta, shard, start, keys, results):
    """Check the results and stack them into the shard's slabs; nothing is written here."""
    n, s = len(results), meta.layout.canvas
    slabs = {
        schema.SEMANTIC: np.full((n, s, s), schema.SEMANTIC_IGNORE, np.uint16),
        schema.INSTANCE: np.zeros((n, s, s), np.uint16),
        schema.STATUS: np.full(n, schema.FAILED, np.uint8),
        schema.ORIG_HW: np.zeros((n, 2), np.int32),
        schema.VALID_HW: np.zeros((n, 2), np.int32),
    }
    records, failures = [], []
    for j, (key, result) in enumerate(zip(keys, results)):
        index = start + j
        if result.error is not None:
            failures.append({"index": index, "key": str(key), "reason": str(result.error)})
            continue
        where = f"shard {shard}, image {index} ({key})"
        _check_result(result, meta, where)
        slabs[schema.SEMANTIC][j] = result.semantic
        slabs[schema.INSTANCE][j] = result.instance
        slabs[schema.STATUS][j] = schema.DONE
        slabs[schema.ORIG_HW][j] = result.orig_hw
        slabs[schema.VALID_HW][j] = fit(*result.orig_hw, s)
        for rec in sorted(result.records, key=lambda r: r["id"]):
            records.append({"index": index, "key": str(key), **{f: rec.get(f) for f in INSTANCE_FIELDS}})
    return slabs, records, failures


def _check_result(result: ImageResult, meta, where: str) -> None:
    s = meta.layout.canvas
    if result.orig_hw is None or min(result.orig_hw) < 1:
        raise StoreError(f"{where}: original size missing or not positive")
    for name, arr in ((schema.SEMANTIC, result.semantic), (schema.INSTANCE, result.instance)):
        if arr is None or arr.shape != (s, s):
            raise StoreError(f"{where}: {name} map must be {s}×{s}, got {None if arr is None else arr.shape}")
        if (
            arr.dtype.kind not in "iu"
            or (arr.dtype.itemsize > 2 or arr.dtype.kind == "i")
            and (arr.min() < 0 or arr.max() > np.iinfo(np.uint16).max)
        ):
            raise StoreError(f"{where}: {name} map must hold integer ids in uint16 range")
    if not all(isinstance(k, str) and isinstance(v, (int, np.integer)) and v >= 0 for k, v in result.dropped.items()):
        raise StoreError(f"{where}: dropped counts must map reasons to non-negative integers")
    ids = set(np.flatnonzero(np.bincount(result.instance.ravel())).tolist()) - {schema.INSTANCE_NONE}
    rec_ids = [int(r["id"]) for r in result.records]
    if len(rec_ids) != len(set(rec_ids)) or ids != set(rec_ids):
        raise StoreError(f"{where}: instance ids on the canvas {sorted(ids)} != record ids {sorted(rec_ids)}")


def _write_json_atomic(root, relpath: str, obj: dict) -> None:
    storage.write_bytes(root, relpath, json.dumps(obj, indent=1, sort_keys=True).encode())
