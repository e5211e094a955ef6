"""Create an empty store: preallocate N images, write keys and labels, mark every image pending."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from plumbing.errors import one_line

from . import schema, storage
from ._array_io import write_skeleton
from .errors import StoreError
from .meta import build_attrs


def create_store(
    path,
    keys: Sequence[str],
    labels: Sequence[int],
    *,
    label_space: dict[int, str],
    provenance: dict | None = None,
    canvas: int = 256,
    shard_size: int = 128,
) -> schema.Layout:
    """Create the store at `path` (a local path or URL; must not exist). Returns its layout.

    Locally the store is built in a temporary sibling directory and renamed into place, so a
    killed create leaves nothing behind. On object storage, which has no rename, the skeleton is
    built in a local temporary directory and uploaded with the group document (zarr.json) last: a
    prefix without it is a create that was killed, and the next create removes and redoes it.
    """
    path = storage.normalize(path)
    keys = np.asarray(keys, dtype=np.dtypes.StringDType())  # 1.28M keys: ~70 MB, and no str objects
    if storage.is_url(path):
        return _create_remote(path, keys, labels, label_space, provenance, canvas, shard_size)
    layout = _check_args(path, keys, labels, label_space, canvas, shard_size)
    tmp = path.with_name(f".{path.name}.creating-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        write_skeleton(tmp, layout, keys, labels, build_attrs(layout, label_space, provenance or {}))
        os.replace(tmp, path)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise StoreError(f"{path}: cannot create store ({exc})") from None
    return layout


def _create_remote(url: str, keys, labels, label_space, provenance, canvas, shard_size) -> schema.Layout:
    layout = _check_values(url, keys, labels, label_space, canvas, shard_size)
    try:
        if storage.exists(url, "zarr.json"):
            raise StoreError(f"{url}: already exists")
        _clear_abandoned_create(url)
        with tempfile.TemporaryDirectory(prefix="c2f-create-") as tmp:
            local = Path(tmp) / "store"
            write_skeleton(local, layout, keys, labels, build_attrs(layout, label_space, provenance or {}))
            body = [rel for rel in storage.list_all(local) if rel != "zarr.json"]
            storage.write_all(url, {rel: (local / rel).read_bytes() for rel in body})
            storage.write_bytes(url, "zarr.json", (local / "zarr.json").read_bytes())  # the group document last
    except (OSError, ValueError) as exc:  # ValueError: tensorstore's error for a refused request
        raise StoreError(f"{url}: cannot create store ({one_line(exc)})") from None
    return layout


def _clear_abandoned_create(url: str) -> None:
    """Remove what a killed create left under `url` (no zarr.json yet); refuse a prefix holding
    anything that is not part of a store."""
    ours = set(schema.ALL_ARRAYS) | set(schema.SIDECARS)
    found = storage.list_all(url)
    foreign = [rel for rel in found if rel.split("/", 1)[0] not in ours]
    if foreign:
        raise StoreError(f"{url}: not empty and not a dataset store (holds {foreign[0]}); write to a new prefix")
    if found:
        storage.delete_all(url)


def _check_args(path, keys, labels, label_space, canvas, shard_size) -> schema.Layout:
    if path.exists():
        raise StoreError(f"{path}: already exists")
    if not path.parent.is_dir():
        raise StoreError(f"{path}: parent directory does not exist")
    return _check_values(path, keys, labels, label_space, canvas, shard_size)


def _check_values(path, keys, labels, label_space, canvas, shard_size) -> schema.Layout:
    if len(keys) == 0:
        raise StoreError(f"{path}: no images to store")
    if len(labels) != len(keys):
        raise StoreError(f"{path}: {len(keys)} keys but {len(labels)} labels")
    if not _all_different(keys):
        raise StoreError(f"{path}: image keys are not unique")
    if not 8 <= canvas <= 4096 or not 1 <= shard_size <= 4096:
        raise StoreError(f"{path}: canvas must be in [8, 4096] and shard size in [1, 4096]")
    if any(not 0 <= int(k) < schema.SEMANTIC_IGNORE for k in label_space):
        raise StoreError(f"{path}: label space ids must be in [0, {schema.SEMANTIC_IGNORE})")
    return schema.Layout(len(keys), shard_size, canvas)


def _all_different(keys: np.ndarray) -> bool:
    """Whether no key repeats; str [N]. A labeler's keys come sorted: then one comparison pass."""
    return bool((keys[1:] > keys[:-1]).all()) or len(set(keys.tolist())) == len(keys)
