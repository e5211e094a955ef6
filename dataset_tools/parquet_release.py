"""The Parquet release of a store: Hugging Face-style shards data/train-00000-of-000NN.parquet, one
row per done image (columns: dataset_tools._hf_features), and the file-count plan of a release.

Written store shard by store shard (one Parquet row group each), so memory holds one store shard
whatever the store's size; a file is closed once it reaches the size target, and the files are
named `-of-NN` when the last is written. Failed and pending images have no row.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from datasets_spec import schema
from datasets_spec.errors import StoreError
from datasets_spec.reader import Store

from ._hf_features import arrow_schema

TARGET_BYTES = 256 << 20  # a few hundred MB per file, as the Hub's own Parquet conversion writes
SPLIT = "train"
PATTERN = f"{SPLIT}-*.parquet"
COMPRESSION = "zstd"  # the PNGs are compressed already; this is for the RLE strings
INSTANCE_KEYS = ("id", "score", "box", "area", "semantic", "source", "prompt", "rle")
# Hub guidance: under 100k files in a repository and under 10k in one folder.
HUB_MAX_FILES, HUB_MAX_PER_FOLDER = 100_000, 10_000
RELEASE_EXTRAS = ("README.md", "croissant.json", "stats.json", "stats.png", "SHA256SUMS")


def file_name(i: int, total: int) -> str:
    return f"{SPLIT}-{i:05d}-of-{total:05d}.parquet"


def encode_png(mask: np.ndarray) -> bytes:
    """[S, S] uint16 → 16-bit greyscale PNG bytes (PIL reads them back as mode I;16, the same values)."""
    ok, buffer = cv2.imencode(".png", np.ascontiguousarray(mask, dtype=np.uint16))
    if not ok:
        raise StoreError(f"cannot encode a {mask.shape} mask as PNG")
    return buffer.tobytes()


def shard_table(store: Store, shard: int, done: np.ndarray, labels: np.ndarray, schema_: pa.Schema) -> pa.Table:
    """Rows of the done images `done` (store indices, ascending) of store shard `shard`.
    labels: int32 [N] of the whole store."""
    start = store.layout.shard_range(shard)[0]
    arrays = store.read_shard(shard)
    keys = store.shard_keys(shard)
    by_image: dict[int, list[dict]] = {int(i): [] for i in done}
    for rec in store.records(shard):
        if rec["index"] in by_image:
            by_image[rec["index"]].append({k: rec.get(k) for k in INSTANCE_KEYS})
    local = done - start

    def image(masks: np.ndarray) -> list[dict]:
        return [{"bytes": encode_png(masks[j]), "path": None} for j in local]

    columns = {
        "key": [keys[j] for j in local],
        "index": done.astype(np.int64),
        "label": labels[done].astype(np.int64),
        "height": arrays[schema.ORIG_HW][local, 0],
        "width": arrays[schema.ORIG_HW][local, 1],
        "valid_hw": [list(map(int, hw)) for hw in arrays[schema.VALID_HW][local]],
        "semantic": image(arrays[schema.SEMANTIC]),
        "instance": image(arrays[schema.INSTANCE]),
        "instances": [by_image[int(i)] for i in done],
    }
    return pa.Table.from_pydict(columns, schema=schema_)


class _Parts:
    """Numbered part files in `folder`, each closed once it holds `target` bytes."""

    def __init__(self, folder: Path, schema_: pa.Schema, target: int):
        self.folder, self.schema, self.target = folder, schema_, target
        self.paths: list[Path] = []
        self.sink = self.writer = None

    def write(self, table: pa.Table) -> None:
        if self.writer is None:
            self.paths.append(self.folder / f".part-{len(self.paths):05d}.parquet")
            self.sink = pa.OSFile(str(self.paths[-1]), "wb")
            self.writer = pq.ParquetWriter(self.sink, self.schema, compression=COMPRESSION)
        self.writer.write_table(table, row_group_size=max(1, len(table)))
        if self.sink.tell() >= self.target:
            self.close()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.sink.close()
            self.sink = self.writer = None


def write_parquet(store: Store, folder: Path, features: list, *, target_bytes: int = TARGET_BYTES, progress=None):
    """Write the rows of every done image of `store` to `folder` (created); return
    {"files": [names], "rows": int, "num_bytes": Arrow bytes of the rows, "file_bytes": int}.
    progress(1) after each store shard."""
    if target_bytes < 1:
        raise StoreError(f"the Parquet file size target must be positive, got {target_bytes}")
    folder.mkdir(parents=True)
    schema_ = arrow_schema(features)
    labels, status = store.labels(), store.status()
    parts, rows, num_bytes = _Parts(folder, schema_, target_bytes), 0, 0
    try:
        for shard, start, stop in store.iter_shards():
            done = start + np.flatnonzero(status[start:stop] == schema.DONE)
            if len(done):
                table = shard_table(store, shard, done, labels, schema_)
                parts.write(table)
                rows, num_bytes = rows + len(done), num_bytes + table.nbytes
            if progress:
                progress(1)
        if not parts.paths:  # no done image: one empty file keeps the release loadable
            parts.write(schema_.empty_table())
    finally:
        parts.close()
    names = [file_name(i, len(parts.paths)) for i in range(len(parts.paths))]
    for path, name in zip(parts.paths, names):
        os.replace(path, folder / name)
    file_bytes = sum((folder / name).stat().st_size for name in names)
    return {"files": names, "rows": rows, "num_bytes": num_bytes, "file_bytes": file_bytes}


def mask_bytes_bound(canvas: int) -> int:
    """Most bytes the two mask PNGs of one image can take: 16-bit pixels stored uncompressed,
    a filter byte per row, zlib's stored-block headers and the PNG chunks."""
    raw = canvas * (2 * canvas + 1)
    return 2 * (raw + 5 * (raw // 65535 + 1) + 1024)


def parquet_plan(num_images: int, *, target_bytes: int = TARGET_BYTES, bytes_per_image: int) -> dict:
    """File counts of a Parquet release of `num_images` rows of at most `bytes_per_image` each:
    each data file but the last holds at least `target_bytes`, so there are at most
    total // target + 1 of them, all in data/."""
    data_files = num_images * bytes_per_image // target_bytes + 1
    return {
        "files": data_files + len(RELEASE_EXTRAS),
        "max_per_folder": max(data_files, len(RELEASE_EXTRAS) + 1),
        "data_files": data_files,
    }


def zarr_plan(layout: schema.Layout, reports: int = 1) -> dict:
    """File counts of a Zarr release (`--format zarr`, not rechunked): per store shard a chunk of
    semantic, instance, status, orig_hw and valid_hw, a records file and a marker; key and label in
    chunks of `layout.table_chunk`; the Zarr documents; `reports` job reports. The largest folders
    (markers/, records/, and each array's c/) hold one entry per shard."""
    shards = layout.num_shards
    tables = 2 * -(-layout.num_images // layout.table_chunk)
    docs = 1 + len(schema.ALL_ARRAYS) + len(schema.SIDECARS)
    data = 7 * shards + tables + docs + reports
    return {"files": data + len(RELEASE_EXTRAS), "max_per_folder": shards + 1, "data_files": data}


def within_hub_limits(plan: dict) -> bool:
    return plan["files"] < HUB_MAX_FILES and plan["max_per_folder"] < HUB_MAX_PER_FOLDER
