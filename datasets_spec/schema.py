"""Schema version 1 of the c2fmae dataset store: names, dtypes, fill values, status codes.

Everything that docs/dataset-format.md promises is stated here once, as constants.
"""

from __future__ import annotations

from dataclasses import dataclass

SCHEMA_VERSION = 1
ATTRS_KEY = "c2fmae"  # group attribute holding the store's metadata

# Per-pixel arrays: [N, S, S] on the canvas, one inner chunk per image, one shard per K images.
SEMANTIC = "semantic"
INSTANCE = "instance"
SEMANTIC_DTYPE = "uint16"
INSTANCE_DTYPE = "uint16"
SEMANTIC_IGNORE = 65535  # padding outside the valid region, or "no class"
INSTANCE_NONE = 0  # no instance (background, padding)

# Per-image arrays: chunk = one shard (K images). These three are written by shard writers.
STATUS = "status"  # uint8 [N]
ORIG_HW = "orig_hw"  # int32 [N, 2]: original (height, width) after EXIF orientation
VALID_HW = "valid_hw"  # int32 [N, 2]: (height, width) of the image on the canvas, top-left anchored

# These two are written once, when the store is created, in Zarr shards of TABLE_CHUNK_SHARDS shards
# whose inner chunks are one shard, as every per-image array's: Dask and xarray then take chunks of
# a shard without splitting any stored chunk. Stores created before have plain chunks of one shard
# or of TABLE_CHUNK_SHARDS shards: readers take the chunk shape from the array.
KEY = "key"  # string [N]: path relative to the image root
LABEL = "label"  # int32 [N]: ImageNet class index, -1 unknown
TABLE_CHUNK_SHARDS = 64  # 1.28M images in shards of 128: 157 objects per array, not 10,010

PENDING, DONE, FAILED = 0, 1, 2
STATUS_NAMES = {PENDING: "pending", DONE: "done", FAILED: "failed"}

PIXEL_ARRAYS = {SEMANTIC: SEMANTIC_DTYPE, INSTANCE: INSTANCE_DTYPE}
SHARD_ARRAYS = {STATUS: "uint8", ORIG_HW: "int32", VALID_HW: "int32"}
CREATE_ARRAYS = {KEY: "string", LABEL: "int32"}
ALL_ARRAYS = {**PIXEL_ARRAYS, **SHARD_ARRAYS, **CREATE_ARRAYS}

# Object names inside these folders: datasets_spec.storage (the store's layout, in one place).
RECORDS_DIR = "records"  # records/shard-000123.jsonl.gz: per-instance records of one shard
MARKERS_DIR = "markers"  # markers/shard-000123.json: completion marker, written last
REPORTS_DIR = "reports"  # free-form job reports (JSON), never needed to read the store
SIDECARS = {
    RECORDS_DIR: "per-shard per-instance records: shard-NNNNNN.jsonl.gz (gzipped JSON Lines)",
    MARKERS_DIR: "per-shard completion markers: shard-NNNNNN.json, written after the shard's data",
    REPORTS_DIR: "job reports (JSON)",
}


@dataclass(frozen=True)
class Layout:
    """How N images are split into shards of K on a canvas of S × S pixels."""

    num_images: int
    shard_size: int
    canvas: int

    @property
    def num_shards(self) -> int:
        return -(-self.num_images // self.shard_size)

    def shard_range(self, shard: int) -> tuple[int, int]:
        """[start, stop) image indices of one shard (the last one may be short)."""
        if not 0 <= shard < self.num_shards:
            raise IndexError(f"shard {shard} out of range (store has {self.num_shards} shards)")
        start = shard * self.shard_size
        return start, min(start + self.shard_size, self.num_images)

    def shard_of(self, index: int) -> int:
        return index // self.shard_size

    @property
    def table_chunk(self) -> int:
        """Images per Zarr shard of `key` and `label`: TABLE_CHUNK_SHARDS shards, fewer when the
        store has fewer (a whole number of shards: the inner chunks of one shard must tile it)."""
        return min(TABLE_CHUNK_SHARDS, self.num_shards) * self.shard_size


def reason_kind(reason: str) -> str:
    """A failure reason is "KIND: detail" (status=failed, recorded in the shard's marker); its KIND,
    so counts group similar failures."""
    return reason.split(":", 1)[0].strip()
