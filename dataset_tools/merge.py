"""Join two complete stores over disjoint images into a new one (c2f-data merge A B -o C).

C holds A's images then B's, in A's shard size, re-sharded and written shard by shard through the
ordinary writer, so it equals a store labeled in one run over the same image list. Refused, with
one line: overlapping keys, pending images, different label spaces, canvases or provenance (the
backends, models and settings that made the labels; the input list and shard size may differ).
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime

from tqdm import tqdm

from datasets_spec import schema, storage
from datasets_spec.create import create_store
from datasets_spec.errors import StoreError
from datasets_spec.reader import Store
from datasets_spec.records import INSTANCE_FIELDS
from datasets_spec.shard_writer import ImageResult, write_shard

IGNORED_JOB_KEYS = ("input", "shard_size")  # may differ between the two runs


def check_mergeable(a: Store, b: Store) -> None:
    """StoreError (one line) naming the first reason the two stores cannot be merged."""
    overlap = set(a.keys().tolist()) & set(b.keys().tolist())
    if overlap:
        raise StoreError(f"{a.path} and {b.path} share {len(overlap)} image key(s), e.g. {sorted(overlap)[0]!r}")
    for store in (a, b):
        pending = int((store.status() == schema.PENDING).sum())
        if pending:
            raise StoreError(f"{store.path}: {pending} image(s) still pending; finish labeling before merging")
    if a.label_space != b.label_space:
        diff = next(
            k for k in sorted(set(a.label_space) | set(b.label_space)) if a.label_space.get(k) != b.label_space.get(k)
        )
        raise StoreError(
            f"{a.path} and {b.path} have different label spaces (class {diff}: "
            f"{a.label_space.get(diff)!r} vs {b.label_space.get(diff)!r})"
        )
    if a.layout.canvas != b.layout.canvas:
        raise StoreError(f"{a.path} and {b.path} have different canvases ({a.layout.canvas} vs {b.layout.canvas})")
    pa, pb = _labeling_identity(a.provenance), _labeling_identity(b.provenance)
    if pa != pb:
        key = next(k for k in sorted(set(pa) | set(pb)) if pa.get(k) != pb.get(k))
        raise StoreError(f"{a.path} and {b.path} were labeled differently ({key} differs); merging would mix labels")


def _labeling_identity(prov: dict) -> dict:
    """What made the labels: everything in the provenance except input list, time and shard size."""
    out = {k: v for k, v in prov.items() if k not in ("input", "created_at", "input_list_sha256")}
    if isinstance(out.get("job"), dict):
        out["job"] = {k: v for k, v in out["job"].items() if k not in IGNORED_JOB_KEYS}
    return out


def merge(a: Store, b: Store, out, *, progress: bool = True) -> dict:
    """Write C = A ∪ B at `out` (must not exist); return {images, shards}."""
    check_mergeable(a, b)
    ra, rb = _SourceReader(a), _SourceReader(b)
    sources = [(ra, i) for i in range(a.layout.num_images)] + [(rb, i) for i in range(b.layout.num_images)]
    keys = a.keys().tolist() + b.keys().tolist()
    labels = a.labels().tolist() + b.labels().tolist()
    layout = create_store(
        out,
        keys,
        labels,
        label_space=a.label_space,
        provenance=_provenance(a, b),
        canvas=a.layout.canvas,
        shard_size=a.layout.shard_size,
    )
    try:
        for shard in tqdm(range(layout.num_shards), desc="merge", unit="shard", disable=not progress):
            start, stop = layout.shard_range(shard)
            write_shard(out, shard, [reader.result(i) for reader, i in sources[start:stop]])
    except BaseException:
        _remove(out)  # a half-merged store is of no use to anyone
        raise
    return {"images": layout.num_images, "shards": layout.num_shards}


def _provenance(a: Store, b: Store) -> dict:
    merged = dict(a.provenance)
    merged.pop("input", None)
    merged["merged_from"] = [
        {"path": str(s.path), "input": s.provenance.get("input"), "created_at": s.provenance.get("created_at")}
        for s in (a, b)
    ]
    merged["created_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    return merged


class _SourceReader:
    """One source store's images as ImageResults, reading each shard's records and masks once."""

    def __init__(self, store: Store):
        self.store = store
        self.status = store.status()
        self.orig_hw, _ = store.geometry()
        self._shard = None

    def result(self, index: int) -> ImageResult:
        shard = self.store.layout.shard_of(index)
        if shard != self._shard:
            self._load(shard)
        j = index - self.store.layout.shard_range(shard)[0]
        if self.status[index] == schema.FAILED:
            return ImageResult.failed(self._failures[index])
        records = [{f: r[f] for f in INSTANCE_FIELDS} for r in self._records.get(index, [])]
        return ImageResult(self._semantic[j], self._instance[j], tuple(int(v) for v in self.orig_hw[index]), records)

    def _load(self, shard: int) -> None:
        start, stop = self.store.layout.shard_range(shard)
        self._semantic, self._instance = self.store.read_masks(range(start, stop))
        self._records = {}
        for rec in self.store.records(shard):
            self._records.setdefault(rec["index"], []).append(rec)
        self._failures = {f["index"]: f["reason"] for f in self.store.marker(shard).get("failures", [])}
        self._shard = shard


def _remove(out) -> None:
    if storage.is_url(out):
        storage.delete_all(out)
    else:
        shutil.rmtree(out, ignore_errors=True)
