"""tensorstore access to the store's numeric arrays: the one place that knows tensorstore's specs.

Files stay plain Zarr v3 (zarr-python creates them); tensorstore only reads and writes chunk data,
because it is much faster than zarr-python on these paths (benchmarks/store_io.py; figures in
docs/performance.md).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorstore as ts

_CONTEXTS: dict[bool, ts.Context] = {}


def _context(write: bool) -> ts.Context:
    """One context per process and mode. Readers keep a small cache (shard indices, hot chunks);
    writers keep none, so written data is not held in memory nor served back from a cache."""
    if write not in _CONTEXTS:
        _CONTEXTS[write] = ts.Context({"cache_pool": {"total_bytes_limit": 0 if write else 64 << 20}})
    return _CONTEXTS[write]


def open_array(path: Path, *, write: bool = False) -> ts.TensorStore:
    """Open an existing Zarr v3 array directory for reading (or writing)."""
    spec = {
        "driver": "zarr3",
        "kvstore": {"driver": "file", "path": str(path)},
        # A writer must see what is on disk, never a cached copy; readers may trust their cache.
        "recheck_cached_data": True if write else "open",
        "recheck_cached_metadata": "open",
    }
    return ts.open(spec, open=True, read=True, write=write, context=_context(write)).result()


def write_slabs(writes: list[tuple[ts.TensorStore, int, np.ndarray]]) -> None:
    """Write array[start:start+len(data)] = data for each triple, concurrently; return when durable."""
    futures = [arr[start : start + len(data)].write(data) for arr, start, data in writes]
    for future in futures:
        future.result()


def read_items(arrays: list[ts.TensorStore], indices) -> list[np.ndarray]:
    """array[i] for each i (repeats allowed), for each array: one indexed read per array, all in
    flight at once (tensorstore fetches the chunks concurrently). Each [len(indices), *shape[1:]]."""
    where = np.asarray(indices, dtype=np.int64)
    futures = [arr[where].read() for arr in arrays]
    return [f.result() for f in futures]


def read_range(arr: ts.TensorStore, start: int, stop: int) -> np.ndarray:
    return arr[start:stop].read().result()
