"""Semantic label PNGs at original size from a store (c2f-data export-semantic).

OUT/<key with its suffix replaced by .png>: one single-channel PNG per done image, H × W as the
original image (the canvas map brought back by `geometry.labels_from_canvas`, the mapping that
export-coco's RLE and `eval --gt-semantic` use). Pixel value = the store's class id, unshifted
(class 0 is 0; mmsegmentation's reduce_zero_label=False). Pixels without a class (the store's
65535) take the ignore value: 255 in 8-bit PNGs, written when every class id is below 255 (PASCAL
VOC's "void", mmsegmentation's ignore_index), else 65535 in 16-bit PNGs.
OUT/classes.json: {"classes": {id: name}, "ignore": ..., "bit_depth": ...} and the layout.

Done shards are read one at a time, their semantic maps only (pending shards and instance maps cost
nothing), so memory holds one shard's maps.
Everything is written into a hidden sibling folder, renamed to OUT at the end: OUT must not exist
or be empty, and a failed or interrupted run leaves nothing behind (a rerun starts over).
"""

from __future__ import annotations

import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath

import cv2
import numpy as np
from tqdm import tqdm

from datasets_spec import schema, storage
from datasets_spec.errors import StoreError
from datasets_spec.geometry import labels_from_canvas
from datasets_spec.reader import Store

from .semantic_truth import PNG_IGNORE  # what `eval --gt-semantic` ignores in 8-bit PNGs

CLASSES_FILE = "classes.json"
FORMAT = "c2fmae-semantic-png/1"
WORKERS = 4  # threads encoding PNGs (cv2 releases the GIL)


def png_format(label_space: dict[int, str]) -> tuple[np.dtype, int]:
    """(dtype, ignore value) of the PNGs: uint8 / 255 when every class id is below 255, else uint16 / 65535."""
    if max(label_space, default=-1) < PNG_IGNORE:
        return np.dtype(np.uint8), PNG_IGNORE
    return np.dtype(np.uint16), schema.SEMANTIC_IGNORE


def png_path(root: Path, key: str) -> Path:
    """root/<key with suffix .png>; StoreError for a key that would leave `root`."""
    rel = PurePosixPath(key)
    if rel.is_absolute() or ".." in rel.parts or not rel.name:
        raise StoreError(f"image key {key!r} is not a relative path below the output folder")
    return (root / rel).with_suffix(".png")


def export_semantic(store: Store, out, *, progress: bool = True) -> dict:
    """Write the PNGs and classes.json of `store`'s done images to the new folder `out`.

    Returns {images, failed, pending, bit_depth, ignore}: PNGs written, and the images left out.
    """
    if storage.is_url(out):
        raise StoreError(f"{out}: export-semantic writes to a local folder")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise StoreError(f"{out}: already exists and is not an empty folder; export-semantic writes a new one")
    dtype, ignore = png_format(store.label_space)
    tmp = out.with_name(f".{out.name}.exporting-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        images = _write_pngs(store, tmp, dtype, ignore, progress)
        classes = classes_doc(store, dtype, ignore, images)
        (tmp / CLASSES_FILE).write_text(json.dumps(classes, indent=1) + "\n")
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    status = store.status()
    return {
        "images": images,
        "failed": int((status == schema.FAILED).sum()),
        "pending": int((status == schema.PENDING).sum()),
        "bit_depth": dtype.itemsize * 8,
        "ignore": ignore,
    }


def classes_doc(store: Store, dtype: np.dtype, ignore: int, images: int) -> dict:
    """The content of classes.json."""
    return {
        "format": FORMAT,
        "source": storage.name(store.path),
        "layout": "<image key with its suffix replaced by .png>, one per done image, original size",
        "values": "the store's class ids, unshifted (reduce_zero_label: false)",
        "bit_depth": dtype.itemsize * 8,
        "ignore": ignore,
        "classes": {str(k): v for k, v in sorted(store.label_space.items())},
        "images": images,
    }


def _write_pngs(store: Store, root: Path, dtype: np.dtype, ignore: int, progress: bool) -> int:
    """Every done image's PNG under `root`, shard by shard; returns how many were written."""
    status = store.stored_status()
    largest = max(store.label_space, default=-1)
    written = 0
    shards = store.done_shards()
    with (
        tqdm(total=len(shards), desc="export", unit="shard", disable=not progress) as bar,
        ThreadPoolExecutor(WORKERS) as pool,
    ):
        for shard in shards:
            start, stop = store.layout.shard_range(shard)
            data = store.read_shard(shard, (schema.SEMANTIC, schema.ORIG_HW))  # no instance maps
            jobs = [
                (root, key, data[schema.SEMANTIC][j], tuple(data[schema.ORIG_HW][j]), dtype, ignore, largest)
                for j, key in enumerate(store.shard_keys(shard))
                if status[start + j] == schema.DONE
            ]
            written += sum(pool.map(lambda job: _write_one(*job), jobs))
            bar.update(1)
    return written


def _write_one(root: Path, key: str, canvas: np.ndarray, orig_hw, dtype, ignore: int, largest: int) -> int:
    """One image's PNG. canvas: [S, S] uint16 class ids (65535 none); written at orig_hw (H, W)."""
    labels = labels_from_canvas(canvas, *orig_hw)
    unknown = (labels > largest) & (labels != schema.SEMANTIC_IGNORE)
    if unknown.any():
        raise StoreError(
            f"{key}: semantic value {int(labels[unknown][0])} is no class of the store's label space "
            "(c2f-data validate lists the damage)"
        )
    pixels = np.where(labels == schema.SEMANTIC_IGNORE, ignore, labels).astype(dtype)
    path = png_path(root, key)
    ok, png = cv2.imencode(".png", pixels)
    if not ok:
        raise StoreError(f"{key}: PNG encoding failed for a map of {pixels.shape}")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(path, "xb") as f:  # two keys that differ only in their suffix would collide
            f.write(png.tobytes())
    except FileExistsError:
        rel = path.relative_to(root)
        raise StoreError(f"{key}: another image key also maps to {rel}; one PNG would overwrite the other") from None
    return 1
