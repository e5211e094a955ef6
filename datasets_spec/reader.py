"""Open a store read-only: cheap random access to one image, batched mask reads, shard listing."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from plumbing.errors import one_line

from . import _array_io, schema, storage
from .errors import StorageUnavailable, StoreError
from .geometry import fit_many
from .meta import read_meta
from .records import parse_records

# Pixel-array chunks a rechunked release declares (attribute c2fmae.release.rechunk).
RELEASE_CHUNKS = {
    "shards": lambda layout: (layout.shard_size, layout.canvas, layout.canvas),
    "images": lambda layout: (1, layout.canvas, layout.canvas),
}
# The arrays Store.read_shard reads, by default all of them.
SHARD_DATA = (schema.SEMANTIC, schema.INSTANCE, schema.ORIG_HW, schema.VALID_HW)


@dataclass
class ImageView:
    """One image's entry. semantic, instance: [S, S] uint16 on the canvas; hw pairs are (H, W)."""

    index: int
    key: str
    label: int
    status: int
    semantic: np.ndarray
    instance: np.ndarray
    orig_hw: tuple[int, int]
    valid_hw: tuple[int, int]
    records: list[dict] | None = None


class Store:
    """A dataset store opened read-only. Picklable: worker processes reopen the arrays lazily.

    `path`: a local path (kept as a Path) or an object-storage URL (kept as a str); see `storage`.
    """

    def __init__(self, path):
        self.path = storage.normalize(path)
        meta = read_meta(self.path)
        self.layout, self.label_space, self.provenance, self.attrs = (
            meta.layout,
            meta.label_space,
            meta.provenance,
            meta.raw,
        )
        missing = [name for name in schema.ALL_ARRAYS if not storage.exists(self.path, storage.array_doc_path(name))]
        if missing:
            raise StoreError(f"{self.path}: missing arrays: {', '.join(missing)}")
        self._check_shapes()
        self._arrays: dict = {}
        self._shard_keys = functools.lru_cache(maxsize=64)(self._read_shard_keys)
        self._key_block = functools.lru_cache(maxsize=2)(self._read_key_block)

    def __getstate__(self):
        return {"path": self.path}

    def __setstate__(self, state):
        self.__init__(state["path"])

    def _check_shapes(self) -> None:
        """The arrays' shapes must be what the attributes say (N images, S x S canvas), and the
        masks' shards too (shard_size images): a store whose attributes were edited or damaged
        would be read misaligned, and written across shard boundaries. Metadata only."""
        n, s = self.layout.num_images, self.layout.canvas
        for name, want in (
            (schema.SEMANTIC, [n, s, s]),
            (schema.INSTANCE, [n, s, s]),
            (schema.STATUS, [n]),
            (schema.ORIG_HW, [n, 2]),
            (schema.VALID_HW, [n, 2]),
        ):
            try:
                doc = self.array_metadata(name)
            except (OSError, ValueError) as exc:
                raise StoreError(f"{storage.join(self.path, name)}: unreadable array metadata ({exc})") from None
            shape = doc.get("shape")
            if shape != want:
                raise StoreError(
                    f"{self.path}: {name} has shape {tuple(shape or ())} but the store's "
                    f"attributes say {tuple(want)} ({n} images, canvas {s}): its "
                    "attributes or arrays were changed; c2f-data validate lists the damage"
                )
            if name in schema.PIXEL_ARRAYS:
                self._check_chunking(name, doc)

    def _check_chunking(self, name: str, doc: dict) -> None:
        rechunk = self.attrs.get("release", {}).get("rechunk")
        found, want = _array_io.chunking(doc), pixel_chunking(self.layout, rechunk)
        if found != want:
            said = f"shard_size {self.layout.shard_size}" + (f", rechunked by {rechunk!r}" if rechunk else "")
            raise StoreError(
                f"{self.path}: {name} has {_chunks(*found)} but the store's attributes say {said} "
                f"({_chunks(*want)}): its attributes or arrays were changed; c2f-data validate lists the damage"
            )

    def array_metadata(self, name: str) -> dict:
        """The Zarr v3 document (zarr.json) of array `name`; OSError / ValueError if unreadable."""
        return array_metadata(self.path, name)

    def _array(self, name: str):
        if name not in self._arrays:
            try:
                self._arrays[name] = _array_io.open_array(storage.join(self.path, name))
            except ValueError as exc:
                raise StoreError(f"{storage.join(self.path, name)}: cannot open ({exc})") from None
        return self._arrays[name]

    # --- shards: done once the shard's completion marker exists, pending until then -----------
    def done_shards(self) -> list[int]:
        """The shards whose completion marker exists, in order; each of their images is done or failed."""
        listed = storage.marker_shards(storage.list_names(self.path, schema.MARKERS_DIR))
        return sorted(s for s in listed if s < self.layout.num_shards)  # a stray beyond the last is no shard

    def pending_shards(self) -> list[int]:
        """The other shards: their images read as pending, whatever their arrays hold."""
        done = set(self.done_shards())
        return [s for s in range(self.layout.num_shards) if s not in done]

    def _has_marker(self, shard: int) -> bool:
        return storage.exists(self.path, storage.marker_path(shard))

    def marker(self, shard: int) -> dict:
        rel = storage.marker_path(shard)
        try:
            return json.loads(storage.read_bytes(self.path, rel))
        except StorageUnavailable:
            raise  # an outage says nothing about the marker: neither damage nor a finding
        except (OSError, ValueError) as exc:
            raise StoreError(f"{storage.join(self.path, rel)}: unreadable completion marker ({exc})") from None

    @property
    def rechunked_release(self) -> bool:
        """A release rewritten by `c2f-data publish --rechunk`: other files than its markers list."""
        return bool(self.attrs.get("release", {}).get("rechunk"))

    def shard_damage(self, shard: int, marker: dict | None = None) -> str | None:
        """Why the done shard `shard` is damaged, judged cheaply: every data file its marker lists
        exists with the size it had when written (markers written before they listed files: the
        records file exists). None when it looks intact; `validate` also checks contents.
        `marker`: the shard's marker when the caller has read it already."""
        if self.rechunked_release:
            return None
        try:
            marker = marker if marker is not None else self.marker(shard)
            files = marker.get("files") or {marker["records"]["path"]: {}}
        except (StoreError, KeyError, TypeError) as exc:
            return f"its marker is unreadable ({exc})"
        for rel, recorded in files.items():
            try:
                size = storage.size(self.path, rel, recorded.get("size"))
            except FileNotFoundError:
                return f"{rel} is missing"
            if "size" in recorded and size != recorded["size"]:
                return f"{rel} has {size} bytes, {recorded['size']} when written"
        return None

    def iter_shards(self):
        """Yield (shard, start, stop) for every shard, in order."""
        for shard in range(self.layout.num_shards):
            yield (shard, *self.layout.shard_range(shard))

    # --- per-image arrays ---------------------------------------------------------------
    def status(self) -> np.ndarray:
        """uint8 [N]: PENDING / DONE / FAILED; images of shards without a marker count as pending."""
        status = self.stored_status().copy()
        for shard in self.pending_shards():
            start, stop = self.layout.shard_range(shard)
            status[start:stop] = schema.PENDING
        return status

    def done_indices(self) -> np.ndarray:
        """int64 [M]: indices of images labeled successfully, ascending."""
        return np.flatnonzero(self.status() == schema.DONE)

    def stored_status(self) -> np.ndarray:
        """uint8 [N]: the status array as written, markers not consulted (for validate). Read once."""
        return self._stored_status

    @cached_property
    def _stored_status(self) -> np.ndarray:
        return _array_io.read_range(self._array(schema.STATUS), 0, self.layout.num_images)

    def keys(self) -> np.ndarray:
        """str [N]: image paths relative to the image root."""
        return self._all_keys

    @cached_property
    def _all_keys(self) -> np.ndarray:
        return np.array(_array_io.read_strings(self.path, schema.KEY, 0, self.layout.num_images).tolist(), dtype=str)

    def shard_keys(self, shard: int) -> list[str]:
        """Keys of one shard's images, without reading every key of the store."""
        return [str(k) for k in self._shard_keys(shard)]

    def _read_shard_keys(self, shard: int) -> list[str]:
        start, stop = self.layout.shard_range(shard)
        first, last = start // self._key_chunk, (stop - 1) // self._key_chunk
        if first != last:  # a shard across two chunks of keys (shard size no divisor of the chunk)
            return _array_io.read_strings(self.path, schema.KEY, start, stop).tolist()
        offset = first * self._key_chunk
        return self._key_block(first)[start - offset : stop - offset]

    @cached_property
    def _key_chunk(self) -> int:
        """Keys per chunk of the `key` array (64 shards' worth; one shard in older stores)."""
        return _array_io.chunking(self.array_metadata(schema.KEY))[0][0]

    def _read_key_block(self, chunk: int) -> list[str]:
        """The keys of one chunk of `key`, decoded once for all the shards it holds."""
        start = chunk * self._key_chunk
        return _array_io.read_strings(
            self.path, schema.KEY, start, min(start + self._key_chunk, self.layout.num_images)
        ).tolist()

    def labels(self) -> np.ndarray:
        """int32 [N]: ImageNet class index, -1 unknown."""
        return _array_io.read_range(self._array(schema.LABEL), 0, self.layout.num_images)

    def geometry(self) -> tuple[np.ndarray, np.ndarray]:
        """(orig_hw [N, 2], valid_hw [N, 2]) int32."""
        n = self.layout.num_images
        return (
            _array_io.read_range(self._array(schema.ORIG_HW), 0, n),
            _array_io.read_range(self._array(schema.VALID_HW), 0, n),
        )

    # --- random access ------------------------------------------------------------------
    def read(self, index: int, records: bool = False) -> ImageView:
        """One image: reads its two inner mask chunks and the small per-image entries."""
        index = self._check_index(index)
        futures = {
            n: self._array(n)[index].read()
            for n in (schema.SEMANTIC, schema.INSTANCE, schema.ORIG_HW, schema.VALID_HW, schema.STATUS, schema.LABEL)
        }
        shard = self.layout.shard_of(index)
        key = self._shard_keys(shard)[index - shard * self.layout.shard_size]
        got = {n: f.result() for n, f in futures.items()}
        status = int(got[schema.STATUS]) if self._has_marker(shard) else schema.PENDING
        view = ImageView(
            index,
            str(key),
            int(got[schema.LABEL]),
            status,
            got[schema.SEMANTIC],
            got[schema.INSTANCE],
            tuple(int(v) for v in got[schema.ORIG_HW]),
            tuple(int(v) for v in got[schema.VALID_HW]),
        )
        if records:
            view.records = [r for r in self.records(shard) if r["index"] == index]
        return view

    def read_masks(self, indices) -> tuple[np.ndarray, np.ndarray]:
        """Masks of many images with all reads in flight: (semantic, instance), each [B, S, S] uint16."""
        indices = [self._check_index(i) for i in indices]
        try:
            semantic, instance = _array_io.read_items(
                [self._array(schema.SEMANTIC), self._array(schema.INSTANCE)], indices
            )
        except ValueError:  # tensorstore's error for unreadable or corrupt chunk data
            raise self._read_error(indices) from None
        return semantic, instance

    def _read_error(self, indices: list[int]) -> StoreError:
        """The error of a failed batched read, naming the shards that fail on their own."""
        failing, first = [], ""
        for shard in sorted({self.layout.shard_of(i) for i in indices}):
            mine = [i for i in indices if self.layout.shard_of(i) == shard]
            try:
                _array_io.read_items([self._array(schema.SEMANTIC), self._array(schema.INSTANCE)], mine)
            except ValueError as exc:
                failing.append(shard)
                first = first or one_line(exc, limit=200)
        return StoreError(
            f"{self.path}: reading the masks of shard(s) {', '.join(map(str, failing))} "
            f"failed ({first}); c2f-data validate names the damage, and rerunning "
            "c2f-label labels damaged shards again"
        )

    def checked_geometry(self, indices) -> tuple[np.ndarray, np.ndarray]:
        """(orig_hw [M, 2], valid_hw [M, 2]) of the images `indices`, after checking that each valid
        region is the original size fitted to the canvas; StoreError naming the first that is not
        (the mapping between RGB and masks would be wrong)."""
        orig, valid = self.geometry()
        indices = np.asarray(indices, dtype=np.int64)
        expect = fit_many(orig[indices], self.layout.canvas)
        bad = np.flatnonzero((expect != valid[indices]).any(axis=1))
        if len(bad):
            i = int(indices[bad[0]])
            raise StoreError(
                f"{self.path}: image {i} ({self._all_keys[i]}) is {tuple(orig[i])} with valid "
                f"region {tuple(valid[i])} on the {self.layout.canvas}-px canvas, expected "
                f"{tuple(expect[bad[0]])} ({len(bad)} such images): the store is damaged"
            )
        return orig[indices], valid[indices]

    def read_shard(self, shard: int, arrays=SHARD_DATA) -> dict[str, np.ndarray]:
        """The stored arrays of one shard, whatever its marker says: {semantic, instance: [K, S, S]
        uint16, orig_hw, valid_hw: [K, 2] int32}, or only those named in `arrays` (the others are
        not read: export-semantic reads no instance maps). StoreError if the data cannot be read."""
        unknown = [n for n in arrays if n not in SHARD_DATA]
        if unknown:
            raise ValueError(f"read_shard reads {', '.join(SHARD_DATA)}, not {', '.join(unknown)}")
        start, stop = self.layout.shard_range(shard)
        try:
            return {n: _array_io.read_range(self._array(n), start, stop) for n in arrays}
        except ValueError as exc:
            raise StoreError(f"{self.path}: shard {shard} unreadable ({one_line(exc, limit=200)})") from None

    def records(self, shard: int) -> list[dict]:
        """Per-instance records of one shard (empty for a shard without a marker)."""
        if not self._has_marker(shard):
            return []
        rel = storage.records_path(shard)
        try:
            return parse_records(storage.read_bytes(self.path, rel))
        except (OSError, ValueError, EOFError) as exc:
            raise StoreError(f"{storage.join(self.path, rel)}: unreadable records ({exc})") from None

    def _check_index(self, index) -> int:
        index = int(index)
        if not 0 <= index < self.layout.num_images:
            raise StoreError(f"{self.path}: image index {index} out of range [0, {self.layout.num_images})")
        return index


def pixel_chunking(layout: schema.Layout, rechunk: str | None = None) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(chunk shape, inner chunk shape or ()) that `semantic` and `instance` must have (as
    _array_io.chunking reads them): shards of shard_size images with one inner chunk per image, or
    the plain chunks of a release rewritten by `c2f-data publish --rechunk` (RELEASE_CHUNKS)."""
    if rechunk in RELEASE_CHUNKS:
        return RELEASE_CHUNKS[rechunk](layout), ()
    s = layout.canvas
    return (layout.shard_size, s, s), (1, s, s)


def _chunks(outer: tuple, inner: tuple) -> str:
    return f"shards {outer} with inner chunks {inner}" if inner else f"unsharded chunks {outer}"


def array_metadata(path, name: str) -> dict:
    """The Zarr v3 document of array `name` of the store at `path`; OSError / ValueError if unreadable."""
    return json.loads(storage.read_bytes(path, storage.array_doc_path(name)))


def open_store(path) -> Store:
    """Open the store at `path` read-only; StoreError says clearly why it cannot be."""
    return Store(path)
