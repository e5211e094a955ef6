"""Open a store read-only: cheap random access to one image, batched mask reads, shard listing."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import zarr

from . import schema as S
from . import tsio
from .errors import StoreError
from .geometry import fit_many
from .meta import read_meta
from .records import read_records


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
    """A dataset store opened read-only. Picklable: worker processes reopen the arrays lazily."""

    def __init__(self, path):
        self.path = Path(path)
        meta = read_meta(self.path)
        self.layout, self.label_space, self.provenance, self.attrs = (
            meta.layout, meta.label_space, meta.provenance, meta.raw)
        missing = [name for name in S.ALL_ARRAYS if not (self.path / name / "zarr.json").is_file()]
        if missing:
            raise StoreError(f"{self.path}: missing arrays: {', '.join(missing)}")
        self._check_shapes()
        self._arrays: dict = {}
        self._shard_keys = functools.lru_cache(maxsize=64)(self._read_shard_keys)

    def __getstate__(self):
        return {"path": self.path}

    def __setstate__(self, state):
        self.__init__(state["path"])

    def _check_shapes(self) -> None:
        """The arrays' shapes must be what the attributes say (N images, S x S canvas): a store
        whose attributes were edited or damaged would be read misaligned."""
        n, s = self.layout.num_images, self.layout.canvas
        for name, want in ((S.SEMANTIC, [n, s, s]), (S.INSTANCE, [n, s, s]), (S.STATUS, [n]),
                           (S.ORIG_HW, [n, 2]), (S.VALID_HW, [n, 2])):
            try:
                shape = json.loads((self.path / name / "zarr.json").read_text()).get("shape")
            except (OSError, ValueError) as exc:
                raise StoreError(f"{self.path}/{name}: unreadable array metadata ({exc})") from None
            if shape != want:
                raise StoreError(f"{self.path}: {name} has shape {tuple(shape or ())} but the store's "
                                 f"attributes say {tuple(want)} ({n} images, canvas {s}): its "
                                 "attributes or arrays were changed; c2f-data validate lists the damage")

    def array_url(self, name: str) -> str:
        """Where the Zarr v3 array `name` lives (e.g. for `dask.array.from_zarr`)."""
        if name not in S.ALL_ARRAYS:
            raise StoreError(f"{self.path}: no array named {name!r} (arrays: {', '.join(S.ALL_ARRAYS)})")
        return str(self.path / name)

    def _array(self, name: str):
        if name not in self._arrays:
            try:
                self._arrays[name] = tsio.open_array(self.path / name)
            except ValueError as exc:
                raise StoreError(f"{self.path}/{name}: cannot open ({exc})") from None
        return self._arrays[name]

    # --- shards -------------------------------------------------------------------------
    def marked_shards(self) -> set[int]:
        """Shards with a completion marker (done or failed images only; written whole)."""
        names = (p.stem for p in (self.path / S.MARKERS_DIR).glob("shard-*.json"))
        return {int(n.split("-")[1]) for n in names if n.split("-")[1].isdigit()}

    def done_shards(self) -> list[int]:
        return sorted(s for s in self.marked_shards() if s < self.layout.num_shards)

    def pending_shards(self) -> list[int]:
        marked = self.marked_shards()
        return [s for s in range(self.layout.num_shards) if s not in marked]

    def _marker_path(self, shard: int) -> Path:
        return self.path / S.marker_path(shard)

    def marker(self, shard: int) -> dict:
        path = self._marker_path(shard)
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise StoreError(f"{path}: unreadable completion marker ({exc})") from None

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
                size = (self.path / rel).stat().st_size
            except FileNotFoundError:
                return f"{rel} is missing"
            if "size" in recorded and size != recorded["size"]:
                return f"{rel} has {size} bytes, {recorded['size']} when written"
        return None

    def damaged_shards(self) -> dict[int, str]:
        """{shard: reason} for the done shards that `shard_damage` finds damaged."""
        found = {shard: self.shard_damage(shard) for shard in self.done_shards()}
        return {shard: reason for shard, reason in found.items() if reason}

    def iter_shards(self):
        """Yield (shard, start, stop) for every shard, in order."""
        for shard in range(self.layout.num_shards):
            yield (shard, *self.layout.shard_range(shard))

    # --- per-image arrays ---------------------------------------------------------------
    def status(self) -> np.ndarray:
        """uint8 [N]: PENDING / DONE / FAILED; images of shards without a marker count as pending."""
        status = self._status_raw.copy()
        for shard in self.pending_shards():
            start, stop = self.layout.shard_range(shard)
            status[start:stop] = S.PENDING
        return status

    def done_indices(self) -> np.ndarray:
        """int64 [M]: indices of images labeled successfully, ascending."""
        return np.flatnonzero(self.status() == S.DONE)

    @cached_property
    def _status_raw(self) -> np.ndarray:
        return tsio.read_range(self._array(S.STATUS), 0, self.layout.num_images)

    def keys(self) -> np.ndarray:
        """str [N]: image paths relative to the image root."""
        return self._all_keys

    @cached_property
    def _all_keys(self) -> np.ndarray:
        return np.array(self._key_array[:].tolist(), dtype=str)

    def shard_keys(self, shard: int) -> list[str]:
        """Keys of one shard's images, without reading every key of the store."""
        return [str(k) for k in self._shard_keys(shard)]

    def _read_shard_keys(self, shard: int) -> np.ndarray:
        return self._key_array[slice(*self.layout.shard_range(shard))].tolist()

    @cached_property
    def _key_array(self) -> zarr.Array:
        # tensorstore has no string dtype; keys are few and small, zarr-python reads them well.
        return zarr.open_array(self.path / S.KEY, mode="r")

    def labels(self) -> np.ndarray:
        """int32 [N]: ImageNet class index, -1 unknown."""
        return tsio.read_range(self._array(S.LABEL), 0, self.layout.num_images)

    def geometry(self) -> tuple[np.ndarray, np.ndarray]:
        """(orig_hw [N, 2], valid_hw [N, 2]) int32."""
        n = self.layout.num_images
        return tsio.read_range(self._array(S.ORIG_HW), 0, n), tsio.read_range(self._array(S.VALID_HW), 0, n)

    # --- random access ------------------------------------------------------------------
    def read(self, index: int, records: bool = False) -> ImageView:
        """One image: reads its two inner mask chunks and the small per-image entries."""
        index = self._check_index(index)
        futures = {n: self._array(n)[index].read() for n in (S.SEMANTIC, S.INSTANCE, S.ORIG_HW, S.VALID_HW, S.STATUS, S.LABEL)}
        shard = self.layout.shard_of(index)
        key = self._shard_keys(shard)[index - shard * self.layout.shard_size]
        got = {n: f.result() for n, f in futures.items()}
        status = int(got[S.STATUS]) if self._marker_path(shard).is_file() else S.PENDING
        view = ImageView(
            index, str(key), int(got[S.LABEL]), status, got[S.SEMANTIC], got[S.INSTANCE],
            tuple(int(v) for v in got[S.ORIG_HW]), tuple(int(v) for v in got[S.VALID_HW]),
        )
        if records:
            view.records = [r for r in self.records(shard) if r["index"] == index]
        return view

    def read_masks(self, indices) -> tuple[np.ndarray, np.ndarray]:
        """Masks of many images with all reads in flight: (semantic, instance), each [B, S, S] uint16."""
        indices = [self._check_index(i) for i in indices]
        try:
            semantic, instance = tsio.read_items([self._array(S.SEMANTIC), self._array(S.INSTANCE)], indices)
        except ValueError:  # tensorstore's error for unreadable or corrupt chunk data
            raise self._read_error(indices) from None
        return semantic, instance

    def _read_error(self, indices: list[int]) -> StoreError:
        """The error of a failed batched read, naming the shards that fail on their own."""
        failing, first = [], ""
        for shard in sorted({self.layout.shard_of(i) for i in indices}):
            mine = [i for i in indices if self.layout.shard_of(i) == shard]
            try:
                tsio.read_items([self._array(S.SEMANTIC), self._array(S.INSTANCE)], mine)
            except ValueError as exc:
                failing.append(shard)
                first = first or str(exc).splitlines()[0][:200]
        return StoreError(f"{self.path}: reading the masks of shard(s) {', '.join(map(str, failing))} "
                          f"failed ({first}); c2f-data validate names the damage, and rerunning "
                          "c2f-label labels damaged shards again")

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
            raise StoreError(f"{self.path}: image {i} ({self._all_keys[i]}) is {tuple(orig[i])} with valid "
                             f"region {tuple(valid[i])} on the {self.layout.canvas}-px canvas, expected "
                             f"{tuple(expect[bad[0]])} ({len(bad)} such images): the store is damaged")
        return orig[indices], valid[indices]

    def records(self, shard: int) -> list[dict]:
        """Per-instance records of one shard (empty for a shard without a marker)."""
        if not self._marker_path(shard).is_file():
            return []
        path = self.path / S.records_path(shard)
        try:
            return read_records(path)
        except (OSError, ValueError, EOFError) as exc:
            raise StoreError(f"{path}: unreadable records ({exc})") from None

    def _check_index(self, index) -> int:
        index = int(index)
        if not 0 <= index < self.layout.num_images:
            raise StoreError(f"{self.path}: image index {index} out of range [0, {self.layout.num_images})")
        return index


def open_store(path) -> Store:
    """Open the store at `path` read-only; StoreError says clearly why it cannot be."""
    return Store(path)
