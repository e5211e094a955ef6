"""Create an empty store: preallocate N images, write keys and labels, mark every image pending."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import zarr
from zarr.codecs import ZstdCodec

from . import schema as S
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
) -> S.Layout:
    """Create the store at `path` (which must not exist). Returns its layout.

    The store is built in a temporary sibling directory and renamed into place, so a killed
    create leaves nothing behind.
    """
    path = Path(path)
    layout = _check_args(path, keys, labels, label_space, canvas, shard_size)
    tmp = path.with_name(f".{path.name}.creating-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _write_skeleton(tmp, layout, keys, labels, label_space, provenance or {})
        os.replace(tmp, path)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise StoreError(f"{path}: cannot create store ({exc})") from None
    return layout


def _check_args(path, keys, labels, label_space, canvas, shard_size) -> S.Layout:
    if path.exists():
        raise StoreError(f"{path}: already exists")
    if not path.parent.is_dir():
        raise StoreError(f"{path}: parent directory does not exist")
    if len(keys) == 0:
        raise StoreError(f"{path}: no images to store")
    if len(labels) != len(keys):
        raise StoreError(f"{path}: {len(keys)} keys but {len(labels)} labels")
    if len(set(keys)) != len(keys):
        raise StoreError(f"{path}: image keys are not unique")
    if not 8 <= canvas <= 4096 or not 1 <= shard_size <= 4096:
        raise StoreError(f"{path}: canvas must be in [8, 4096] and shard size in [1, 4096]")
    if any(not 0 <= int(k) < S.SEMANTIC_IGNORE for k in label_space):
        raise StoreError(f"{path}: label space ids must be in [0, {S.SEMANTIC_IGNORE})")
    return S.Layout(len(keys), shard_size, canvas)


def _write_skeleton(root_path, layout, keys, labels, label_space, provenance) -> None:
    n, k, s = layout.num_images, layout.shard_size, layout.canvas
    group = zarr.open_group(root_path, mode="w-", zarr_format=3)
    group.attrs[S.ATTRS_KEY] = build_attrs(layout, label_space, provenance)
    zstd = ZstdCodec(level=3)
    for name, fill in ((S.SEMANTIC, S.SEMANTIC_IGNORE), (S.INSTANCE, S.INSTANCE_NONE)):
        group.create_array(
            name, shape=(n, s, s), chunks=(1, s, s), shards=(k, s, s), dtype=S.PIXEL_ARRAYS[name],
            fill_value=fill, compressors=zstd, dimension_names=("image", "y", "x"),
        )
    group.create_array(S.STATUS, shape=(n,), chunks=(k,), dtype="uint8", fill_value=S.PENDING,
                       compressors=zstd, dimension_names=("image",))
    for name in (S.ORIG_HW, S.VALID_HW):
        group.create_array(name, shape=(n, 2), chunks=(k, 2), dtype="int32", fill_value=0,
                           compressors=zstd, dimension_names=("image", "hw"))
    key_arr = group.create_array(S.KEY, shape=(n,), chunks=(k,), dtype=str, fill_value="",
                                 compressors=zstd, dimension_names=("image",))
    key_arr[:] = np.asarray(list(keys), dtype=object).astype(str)
    label_arr = group.create_array(S.LABEL, shape=(n,), chunks=(k,), dtype="int32", fill_value=-1,
                                   compressors=zstd, dimension_names=("image",))
    label_arr[:] = np.asarray(labels, dtype=np.int32)
    # Sidecar folders are empty Zarr groups, so zarr tools list them without complaint.
    for sub, holds in S.SIDECARS.items():
        group.create_group(sub, attributes={S.ATTRS_KEY: {"holds": holds}})
