"""Tiny stores with matching RGB files, for the training data tests (import explicitly).

The RGB image of every stored image paints each semantic class in its own colour (PALETTE), so a test
can check that image and masks were cropped and flipped together: decode the colour, compare ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from datasets_spec import ImageResult, create_store, write_shard
from datasets_spec.geometry import labels_to_canvas
from datasets_spec.records import encode_rle
from datasets_spec.schema import INSTANCE_NONE, SEMANTIC_IGNORE

NUM_CLASSES = 6
PALETTE = np.array(
    [[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48], [145, 30, 180]], np.uint8
)  # RGB per semantic class
IGNORE_RGB = np.array([128, 128, 128], np.uint8)  # pixels whose class is SEMANTIC_IGNORE
SIZES = [(48, 80), (80, 48), (64, 64), (40, 100), (100, 60), (56, 72), (90, 90)]  # (H, W) originals


@dataclass
class TinyStore:
    path: Path
    images: Path
    done: list[int]  # store indices with status done, ascending
    keys: list[str]


def label_maps(rng: np.random.Generator, height: int, width: int, cells: int = 4):
    """Blocky maps at original size: semantic [H, W] uint16 (some SEMANTIC_IGNORE), instance [H, W]."""
    cell_sem = rng.integers(0, NUM_CLASSES, (cells, cells)).astype(np.uint16)
    cell_sem[0, -1] = SEMANTIC_IGNORE
    cell_inst = np.zeros((cells, cells), np.uint16)
    cell_inst[1:3, 1:3] = 1
    cell_inst[3, :2] = 2
    rows = np.arange(height) * cells // height
    cols = np.arange(width) * cells // width
    return cell_sem[rows[:, None], cols[None, :]], cell_inst[rows[:, None], cols[None, :]]


def paint(semantic: np.ndarray) -> np.ndarray:
    """semantic [H, W] uint16 → RGB [H, W, 3] uint8 in PALETTE colours."""
    rgb = np.broadcast_to(IGNORE_RGB, semantic.shape + (3,)).copy()
    labeled = semantic != SEMANTIC_IGNORE
    rgb[labeled] = PALETTE[semantic[labeled]]
    return rgb


def _result(semantic: np.ndarray, instance: np.ndarray, canvas: int) -> ImageResult:
    records = [
        {
            "id": int(i),
            "score": 0.9,
            "box": [0, 0, 1, 1],
            "area": int((instance == i).sum()),
            "semantic": None,
            "source": "test",
            "prompt": None,
            "rle": encode_rle(instance == i),
        }
        for i in np.unique(instance)
        if i != INSTANCE_NONE
    ]
    return ImageResult(
        labels_to_canvas(semantic, canvas, SEMANTIC_IGNORE),
        labels_to_canvas(instance, canvas, INSTANCE_NONE),
        semantic.shape,
        records,
    )


def make_tiny_store(
    root: Path,
    *,
    num_images: int = 14,
    shard_size: int = 5,
    canvas: int = 64,
    seed: int = 0,
    pending_shards=(1,),
    failed=(2,),
    sizes=SIZES,
) -> TinyStore:
    """A store under root/store and PNGs under root/images/<class>/img_<i>.png.

    Image i is sizes[i % len(sizes)] (H, W). Shards in `pending_shards` are left unwritten; images
    in `failed` are written as failed.
    """
    rng = np.random.default_rng(seed)
    images = root / "images"
    keys = [f"c{i % 3}/img_{i:03d}.png" for i in range(num_images)]
    store = root / "store"
    layout = create_store(
        store,
        keys,
        [i % 3 for i in range(num_images)],
        canvas=canvas,
        shard_size=shard_size,
        label_space={c: f"class{c}" for c in range(NUM_CLASSES)},
    )
    done = []
    for shard in range(layout.num_shards):
        start, stop = layout.shard_range(shard)
        results = []
        for index in range(start, stop):
            height, width = sizes[index % len(sizes)]
            semantic, instance = label_maps(rng, height, width)
            (images / keys[index]).parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(images / keys[index]), cv2.cvtColor(paint(semantic), cv2.COLOR_RGB2BGR))
            if index in failed:
                results.append(ImageResult.failed("test failure"))
                continue
            results.append(_result(semantic, instance, canvas))
            if shard not in pending_shards:
                done.append(index)
        if shard not in pending_shards:
            write_shard(store, shard, results)
    return TinyStore(store, images, done, keys)


def decode_colours(image: np.ndarray) -> np.ndarray:
    """RGB [H, W, 3] uint8 → nearest PALETTE class per pixel [H, W] int64 (-1 for IGNORE_RGB)."""
    colours = np.concatenate([PALETTE, IGNORE_RGB[None]]).astype(np.int64)
    dist = ((image[:, :, None, :].astype(np.int64) - colours[None, None]) ** 2).sum(-1)
    ids = dist.argmin(-1)
    return np.where(ids == NUM_CLASSES, -1, ids)


def make_photo_store(root: Path, photos: list[np.ndarray], canvas: int = 64) -> TinyStore:
    """A one-shard store of `photos` ([H, W, 3] uint8, saved as PNGs) with all-class-0 label maps."""
    keys = [f"photo_{i}.png" for i in range(len(photos))]
    store, images = root / "store", root / "images"
    images.mkdir(parents=True)
    create_store(
        store,
        keys,
        [-1] * len(keys),
        canvas=canvas,
        shard_size=len(keys),
        label_space={c: f"class{c}" for c in range(NUM_CLASSES)},
    )
    results = []
    for key, rgb in zip(keys, photos):
        cv2.imwrite(str(images / key), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        zeros = np.zeros(rgb.shape[:2], np.uint16)
        results.append(_result(zeros, zeros, canvas))
    write_shard(store, 0, results)
    return TinyStore(store, images, list(range(len(keys))), keys)
