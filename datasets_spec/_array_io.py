"""Open, read, write and create the store's Zarr arrays: tensorstore for numbers, zarr-python for the rest.

zarr-python reads the string array and creates the arrays (shapes, chunks, shards, codecs: the
store's array layout, written here once), so files stay plain Zarr v3; tensorstore only reads and
writes the numeric arrays' chunk data, because it is much faster than zarr-python on these paths
(benchmarks/store_io.py; figures in docs/performance.md). Both go through `storage`, so an array
may live in a local directory or on object storage, where tensorstore's array operations are
retried after a transient fault like the storage's own (`retries.retrying`; each is idempotent: an
opening, a read, a whole-shard write).
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import tensorstore as ts
import zarr
from zarr.codecs import ZstdCodec
from zarr.core.buffer import default_buffer_prototype
from zarr.errors import ZarrUserWarning
from zarr.storage import MemoryStore

from . import retries, schema, storage

_CONTEXTS: dict[bool, ts.Context] = {}


def _context(write: bool) -> ts.Context:
    """One context per process and mode. Readers keep a small cache (shard indices, hot chunks);
    writers keep none, so written data is not held in memory nor served back from a cache."""
    if write not in _CONTEXTS:
        _CONTEXTS[write] = ts.Context({"cache_pool": {"total_bytes_limit": 0 if write else 64 << 20}})
    return _CONTEXTS[write]


def open_array(location, *, write: bool = False) -> ts.TensorStore:
    """Open an existing Zarr v3 array for reading (or writing); `location` is its directory or URL
    (e.g. `root / "semantic"`, or `storage.join(root, "semantic")`)."""
    spec = {
        "driver": "zarr3",
        "kvstore": storage.kvstore_spec(location),
        # A writer must see what is on disk, never a cached copy; readers may trust their cache.
        "recheck_cached_data": True if write else "open",
        "recheck_cached_metadata": "open",
    }

    def opening() -> ts.TensorStore:
        return ts.open(spec, open=True, read=True, write=write, context=_context(write)).result()

    return retries.retrying("read", storage.join(location, ""), opening) if storage.is_url(location) else opening()


def write_slabs(writes: list[tuple[ts.TensorStore, int, np.ndarray]]) -> None:
    """Write array[start:start+len(data)] = data for each triple, concurrently; return when durable.
    Each slab is a whole shard (no other writer touches it), so a retry writes them all again."""

    def attempt() -> None:
        futures = [arr[start : start + len(data)].write(data) for arr, start, data in writes]
        for future in futures:
            future.result()

    arrays, (_, start, data) = [arr for arr, _, _ in writes], writes[0]
    _retried("write", arrays, lambda: f"{_names(arrays)}[{start}:{start + len(data)}]", attempt)


def read_items(arrays: list[ts.TensorStore], indices) -> list[np.ndarray]:
    """array[i] for each i (repeats allowed), for each array: one indexed read per array, all in
    flight at once (tensorstore fetches the chunks concurrently). Each [len(indices), *shape[1:]]."""
    where = np.asarray(indices, dtype=np.int64)

    def attempt() -> list[np.ndarray]:
        futures = [arr[where].read() for arr in arrays]
        return [f.result() for f in futures]

    return _retried("read", arrays, lambda: _names(arrays), attempt)


def read_range(arr: ts.TensorStore, start: int, stop: int) -> np.ndarray:
    return _retried("read", [arr], lambda: f"{_names([arr])}[{start}:{stop}]", lambda: arr[start:stop].read().result())


def _retried(kind: str, arrays: list[ts.TensorStore], what, attempt):
    """`attempt()`, retried after a transient fault when the arrays live on object storage (a local
    disk's errors, such as a full disk, are not cured by waiting)."""
    local = arrays[0].kvstore.spec().to_json()["driver"] == "file"
    return attempt() if local else retries.retrying(kind, what, attempt)


def _names(arrays: list[ts.TensorStore]) -> str:
    """Where the first of `arrays` lives (a URL or a path) and how many more, for messages."""
    spec = arrays[0].kvstore.spec().to_json()
    scheme = {driver: scheme for scheme, driver in storage.URL_SCHEMES.items()}.get(spec["driver"])
    path = spec.get("path", "").rstrip("/")
    more = f" (and {len(arrays) - 1} more)" if len(arrays) > 1 else ""
    return (f"{scheme}://{spec['bucket']}/{path}" if scheme else path) + more


def read_strings(root, name: str, start: int, stop: int) -> np.ndarray:
    """array[start:stop] of the string array `name` (tensorstore has no string type). Only the
    chunks covering [start, stop) are fetched, into memory, and decoded by zarr-python. str [n]"""
    doc = storage.read_bytes(root, f"{name}/zarr.json")
    chunk = int(json.loads(doc)["chunk_grid"]["configuration"]["chunk_shape"][0])
    wrap = default_buffer_prototype().buffer.from_bytes
    objects = {"zarr.json": wrap(doc)}
    for i in range(start // chunk, -(-stop // chunk)):
        try:
            objects[f"c/{i}"] = wrap(storage.read_bytes(root, f"{name}/c/{i}"))
        except FileNotFoundError:
            pass  # a chunk left at the fill value
    return np.asarray(zarr.open_array(MemoryStore(objects), mode="r")[start:stop])


def chunking(doc: dict) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(chunk shape, inner chunk shape or ()) of a Zarr v3 array document (its zarr.json): the
    outer chunk is a shard when the first codec is `sharding_indexed`."""
    outer = tuple(doc.get("chunk_grid", {}).get("configuration", {}).get("chunk_shape", ()))
    codecs = doc.get("codecs") or [{}]
    sharded = codecs[0].get("name") == "sharding_indexed"
    return outer, tuple(codecs[0].get("configuration", {}).get("chunk_shape", ())) if sharded else ()


def write_skeleton(directory, layout: schema.Layout, keys, labels, attrs: dict) -> None:
    """Create the store's group and arrays in the local `directory` (which must not exist): every
    array at its fill value but `key` and `label`, which are written; `attrs` under c2fmae; the
    metadata consolidated."""
    n, k, s = layout.num_images, layout.shard_size, layout.canvas
    group = zarr.open_group(directory, mode="w-", zarr_format=3)
    group.attrs[schema.ATTRS_KEY] = attrs
    zstd = ZstdCodec(level=3)
    for name, fill in ((schema.SEMANTIC, schema.SEMANTIC_IGNORE), (schema.INSTANCE, schema.INSTANCE_NONE)):
        group.create_array(
            name,
            shape=(n, s, s),
            chunks=(1, s, s),
            shards=(k, s, s),
            dtype=schema.PIXEL_ARRAYS[name],
            fill_value=fill,
            compressors=zstd,
            dimension_names=("image", "y", "x"),
        )
    group.create_array(
        schema.STATUS,
        shape=(n,),
        chunks=(k,),
        dtype="uint8",
        fill_value=schema.PENDING,
        compressors=zstd,
        dimension_names=("image",),
    )
    for name in (schema.ORIG_HW, schema.VALID_HW):
        group.create_array(
            name,
            shape=(n, 2),
            chunks=(k, 2),
            dtype="int32",
            fill_value=0,
            compressors=zstd,
            dimension_names=("image", "hw"),
        )
    # One Zarr shard of keys (labels) holds many store shards, each an inner chunk (schema.KEY).
    table = {"chunks": (k,), "shards": (layout.table_chunk,), "compressors": zstd, "dimension_names": ("image",)}
    key_arr = group.create_array(schema.KEY, shape=(n,), dtype=str, fill_value="", **table)
    step = layout.table_chunk
    for start in range(0, n, step):  # shard by shard: zarr makes a str object of each key it encodes
        key_arr[start : start + step] = keys[start : start + step]
    group.create_array(schema.LABEL, shape=(n,), dtype="int32", fill_value=-1, **table)
    # through tensorstore: zarr-python encodes inner chunks one by one (1.28M labels: 2.0 s CPU, here 0.1 s)
    write_slabs([(open_array(directory / schema.LABEL, write=True), 0, np.asarray(labels, dtype=np.int32))])
    # Sidecar folders are empty Zarr groups, so zarr tools list them without complaint.
    for sub, holds in schema.SIDECARS.items():
        group.create_group(sub, attributes={schema.ATTRS_KEY: {"holds": holds}})
    consolidate_metadata(directory)


def consolidate_metadata(directory) -> None:
    """Write zarr-python's consolidated metadata into the root zarr.json of the local store
    `directory` (every array's and subgroup's document, copied), so zarr-python and xarray open
    the store with one read and without a warning. Whoever changes an array's or a subgroup's
    document afterwards calls this again; the group's own attributes are not part of it."""
    with warnings.catch_warnings():
        # "not part of the Zarr format 3 specification": a reader without it ignores the field
        warnings.simplefilter("ignore", ZarrUserWarning)
        zarr.consolidate_metadata(directory)
