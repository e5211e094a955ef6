"""Check a store against schema version 1; every problem becomes one precise line."""

from __future__ import annotations

import hashlib
import json

import numpy as np

from plumbing.errors import from_outage

from . import _array_io, schema, storage
from .errors import StorageUnavailable, StoreError
from .geometry import fit, fit_many
from .meta import read_meta
from .reader import RELEASE_CHUNKS, Store, array_metadata, pixel_chunking
from .records import parse_records
from .shard_writer import pixels_crc32

_SHAPES = {
    schema.SEMANTIC: 3,
    schema.INSTANCE: 3,
    schema.STATUS: 1,
    schema.ORIG_HW: 2,
    schema.VALID_HW: 2,
    schema.KEY: 1,
    schema.LABEL: 1,
}
_NODES = (*schema.ALL_ARRAYS, *schema.SIDECARS)  # the store's arrays and subgroups


def validate(path, *, pixels: bool = True, progress=None) -> list[str]:
    """All problems found in the store at `path`, a local path or a URL (empty list = valid).

    pixels=False skips reading mask data (structure, markers and records only).
    progress: optional callable(shards_done: int) for a progress display.
    """
    path = storage.normalize(path)
    try:
        meta = read_meta(path)
    except StoreError as exc:
        if from_outage(exc):
            raise  # object storage unavailable: no finding about the store
        return [str(exc)]
    problems = _check_arrays(path, meta.layout, meta.raw.get("release", {}).get("rechunk"))
    if problems:
        return problems
    problems += _check_consolidated(path)
    store = Store(path)
    problems += _check_keys(store)
    status = store.stored_status()
    bad = np.flatnonzero(~np.isin(status, list(schema.STATUS_NAMES)))
    problems += [f"status: image {i} has unknown status code {status[i]}" for i in bad[:20]]
    markers = storage.marker_shards(storage.list_names(store.path, schema.MARKERS_DIR))  # strays included
    problems += [
        f"markers: marker for shard {s} beyond the last shard" for s in sorted(markers) if s >= store.layout.num_shards
    ]
    for shard in sorted(s for s in markers if s < store.layout.num_shards):  # the done shards
        problems += _check_shard(store, shard, status, meta.label_space, pixels)
        if progress:
            progress(1)
    return problems


def _check_arrays(path, layout: schema.Layout, rechunk: str | None = None) -> list[str]:
    problems = []
    n, s = layout.num_images, layout.canvas
    expected_shape = {1: (n,), 2: (n, 2), 3: (n, s, s)}
    for name, dtype in schema.ALL_ARRAYS.items():
        doc = _node_doc(path, name, "array missing", problems)
        if doc is None:
            continue
        if doc.get("node_type") != "array":
            problems.append(f"{name}: not an array")
            continue
        if doc.get("data_type") != dtype:
            problems.append(f"{name}: data type {doc.get('data_type')!r}, expected {dtype!r}")
        shape = tuple(doc.get("shape", ()))
        if shape != expected_shape[_SHAPES[name]]:
            problems.append(f"{name}: shape {shape}, expected {expected_shape[_SHAPES[name]]}")
        if name in schema.PIXEL_ARRAYS and shape == (n, s, s):
            problems += _check_sharding(name, doc, layout, rechunk)
    return problems


def _check_sharding(name: str, doc: dict, layout: schema.Layout, rechunk: str | None) -> list[str]:
    outer, inner = _array_io.chunking(doc)
    expected, expected_inner = pixel_chunking(layout, rechunk)
    if (outer, inner) == (expected, expected_inner):
        return []
    if rechunk in RELEASE_CHUNKS:  # a release rewritten by c2f-data publish --rechunk: plain chunks, no shards
        return [f"{name}: chunks {outer} with inner chunks {inner}, expected {expected} unsharded (rechunked release)"]
    return [f"{name}: shards {outer} with inner chunks {inner}, expected {expected} with {expected_inner}"]


def _node_doc(path, name: str, missing: str, problems: list[str]) -> dict | None:
    """Node `name`'s metadata document (its zarr.json), or None with the problem added to `problems`
    when it is missing (`missing` says how) or unreadable; a storage outage raises."""
    try:
        return array_metadata(path, name)
    except FileNotFoundError:
        problems.append(f"{name}: {missing}")
    except StorageUnavailable:
        raise
    except (OSError, ValueError) as exc:
        problems.append(f"{name}: metadata unreadable ({exc})")
    return None


def _check_consolidated(path) -> list[str]:
    """zarr-python's consolidated metadata in the group's zarr.json, where there is some (stores
    created before it have none, and are valid), must copy every node's own document: zarr-python
    and xarray read the arrays' metadata from it, not from the arrays."""
    listed = (json.loads(storage.read_bytes(path, "zarr.json")).get("consolidated_metadata") or {}).get("metadata")
    if listed is None:
        return []
    problems = [f"{name}: missing from the consolidated metadata" for name in _NODES if name not in listed]
    for name, copy in sorted(listed.items()):
        doc = _node_doc(path, name, "in the consolidated metadata but not in the store", problems)
        if doc is None:
            continue
        if _without_consolidated(copy) != _without_consolidated(doc):
            problems.append(f"{name}: its zarr.json differs from its copy in the consolidated metadata (stale)")
    return problems


def _without_consolidated(doc: dict) -> dict:
    """A node's document but a subgroup's own consolidated metadata (the copy of an empty subgroup
    says it is empty)."""
    return {key: value for key, value in doc.items() if key != "consolidated_metadata"}


def _check_keys(store: Store) -> list[str]:
    keys = store.keys()
    problems = [f"key: image {i} has an empty key" for i in np.flatnonzero(keys == "")[:20]]
    uniq, counts = np.unique(keys, return_counts=True)
    problems += [f"key: {k!r} appears {c} times" for k, c in zip(uniq[counts > 1][:20], counts[counts > 1][:20])]
    labels = store.labels()
    problems += [f"label: image {i} has label {labels[i]} (must be >= -1)" for i in np.flatnonzero(labels < -1)[:20]]
    return problems


def _check_shard(store: Store, shard: int, status: np.ndarray, label_space: dict, pixels: bool) -> list[str]:
    where = f"shard {shard}"
    try:
        marker = store.marker(shard)
    except StoreError as exc:
        return [f"{where}: {exc}"]
    start, stop = store.layout.shard_range(shard)
    st = status[start:stop]
    problems = []
    if (marker.get("start"), marker.get("stop")) != (start, stop):
        problems.append(f"{where}: marker covers {marker.get('start')}..{marker.get('stop')}, expected {start}..{stop}")
    if (st == schema.PENDING).any():
        problems.append(f"{where}: marked complete but {(st == schema.PENDING).sum()} image(s) have status pending")
    if int((st == schema.DONE).sum()) != marker.get("done") or int((st == schema.FAILED).sum()) != marker.get("failed"):
        problems.append(
            f"{where}: status says {(st == schema.DONE).sum()} done / {(st == schema.FAILED).sum()} failed, "
            f"marker says {marker.get('done')} / {marker.get('failed')}"
        )
    failed_idx = {f.get("index") for f in marker.get("failures", [])}
    problems += [
        f"{where}: image {start + j} failed without a recorded reason"
        for j in np.flatnonzero(st == schema.FAILED)
        if start + j not in failed_idx
    ]
    records, rec_problems = _load_shard_records(store, shard, marker)
    problems += rec_problems
    # a release rewritten by publish --rechunk has other files than its markers list (SHA256SUMS covers them)
    damaged = _check_files(store, shard, marker) if pixels and not store.rechunked_release else []
    problems += damaged
    if pixels and records is not None and not damaged:
        problems += _check_pixels(store, shard, marker, st, records, label_space)
    return problems


def _load_shard_records(store: Store, shard: int, marker: dict):
    where = f"shard {shard}"
    rel = marker.get("records", {}).get("path", "")
    try:
        data = storage.read_bytes(store.path, rel) if rel else None
    except FileNotFoundError:
        data = None
    if data is None:
        return None, [f"{where}: records file {rel or '(none named)'} missing"]
    if hashlib.sha256(data).hexdigest() != marker["records"].get("sha256"):
        return None, [f"{where}: records file {rel} does not match the marker's checksum"]
    try:
        return parse_records(data), []
    except (OSError, ValueError, EOFError) as exc:
        return None, [f"{where}: records file {rel} unreadable ({exc})"]


def _check_pixels(store, shard, marker, st, records, label_space) -> list[str]:
    where = f"shard {shard}"
    start, stop = store.layout.shard_range(shard)
    try:
        arrays = store.read_shard(shard)
    except StoreError as exc:
        if from_outage(exc):
            raise
        return [f"{where}: mask data unreadable ({exc})"]
    sem, inst, orig, valid = (arrays[n] for n in (schema.SEMANTIC, schema.INSTANCE, schema.ORIG_HW, schema.VALID_HW))
    if pixels_crc32(sem, inst) != marker.get("pixels_crc32"):
        # A shard whose masks all equal the fill value has no file; any other missing file loses data.
        missing = [n for n in schema.PIXEL_ARRAYS if not storage.exists(store.path, storage.pixel_chunk_path(n, shard))]
        if missing:
            return [f"{where}: {name} data missing (no shard file)" for name in missing]
        return [f"{where}: mask data does not match the marker's checksum (damaged or overwritten)"]
    by_image: dict[int, set[int]] = {}
    for rec in records:
        by_image.setdefault(rec.get("index"), set()).add(rec.get("id"))
    problems = []
    known = np.array(sorted(label_space) + [schema.SEMANTIC_IGNORE])
    done = np.flatnonzero(st == schema.DONE)
    rec_ids = [by_image.pop(start + j, set()) for j in done]
    suspects = _suspect_images(store.layout.canvas, sem[done], inst[done], orig[done], valid[done], rec_ids, known)
    for j, ids in zip(done[suspects], (rec_ids[k] for k in suspects)):
        problems += _check_image(store.layout.canvas, start + j, sem[j], inst[j], orig[j], valid[j], ids, known)
    problems += [f"{where}: records for image {i}, which is not done" for i in sorted(by_image)]
    return problems


def _suspect_images(canvas, sem, inst, orig, valid, rec_ids: list[set], known) -> np.ndarray:
    """Rows (ascending) of the D done images `_check_image` may find a problem in, judged at once
    for all: the others have none (a check per image would take minutes at ImageNet size).
    sem, inst: [D, S, S] uint16; orig, valid: [D, 2]; rec_ids: each image's record ids."""
    d, pixels = len(sem), sem[0].size if len(sem) else 0
    bad = (orig.min(axis=1, initial=1) < 1) | (fit_many(orig, canvas) != valid).any(axis=1)
    in_space = np.zeros(max(int(known.max()), np.iinfo(sem.dtype).max) + 1, bool)
    in_space[known] = True
    bad |= ~in_space[sem].reshape(d, pixels).all(axis=1)
    span = int(inst.max(initial=0)) + 1
    has_pixels = np.bincount((np.arange(d)[:, None] * span + inst.reshape(d, pixels)).ravel(), minlength=d * span)
    has_pixels = has_pixels.reshape(d, span) > 0
    has_pixels[:, schema.INSTANCE_NONE] = False
    has_record = np.zeros((d, span), bool)
    for row, ids in enumerate(rec_ids):
        if all(type(i) is int and 0 <= i < span for i in ids):
            has_record[row, list(ids)] = True
        else:
            bad[row] = True  # an id no pixel can carry (or no id at all)
    return np.flatnonzero(bad | (has_pixels != has_record).any(axis=1))


def _check_image(canvas, index, sem, inst, orig, valid, rec_ids, known) -> list[str]:
    where = f"image {index}"
    problems = []
    if orig.min() < 1:
        return [f"{where}: done but original size is {tuple(orig)}"]
    if tuple(valid) != fit(int(orig[0]), int(orig[1]), canvas):
        problems.append(f"{where}: valid region {tuple(valid)} does not match original size {tuple(orig)}")
    outside = np.setdiff1d(np.unique(sem), known)
    if outside.size:
        problems.append(f"semantic: {where} has class ids outside the label space: {outside[:10].tolist()}")
    ids = set(np.unique(inst).tolist()) - {schema.INSTANCE_NONE}
    if ids - rec_ids:
        problems.append(f"instance: {where} has ids without records: {sorted(ids - rec_ids)[:10]}")
    if rec_ids - ids:
        problems.append(f"instance: {where} has records without pixels: ids {sorted(rec_ids - ids)[:10]}")
    return problems


def _check_files(store: Store, shard: int, marker: dict) -> list[str]:
    """Each data file the marker lists (but the records, checked on their own) still has the size
    and checksum it had when written."""
    problems = []
    for rel, recorded in marker.get("files", {}).items():
        if rel == marker.get("records", {}).get("path"):
            continue
        try:
            size = storage.size(store.path, rel, recorded.get("size"))
        except FileNotFoundError:
            problems.append(f"shard {shard}: {rel} missing")
            continue
        if size != recorded.get("size") or storage.sha256(store.path, rel) != recorded.get("sha256"):
            problems.append(f"shard {shard}: {rel} changed since it was written (size or checksum)")
    return problems
