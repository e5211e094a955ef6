"""Procedural shape scenes a tiny ViT can learn from in minutes, with exact ground truth.

A scene (32 px by default): a background cut from a scikit-image photo, blurred and reduced to low
contrast, and one or two flat-coloured upright shapes of CLASSES (turned by up to `rotation`
radians; 0 by default: a tiny ViT given ~1000 steps does not learn rotated shapes above chance,
see docs/results.md). The main shape (radius RADIUS of the side) is drawn last, so it is always
whole; with probability `second` a smaller shape (45-65 % of its radius) of another class lies
under it, partly hidden or not.
Mild pixel noise over everything. Ground truth per scene:
  semantic [S, S]: 0 background, 1 + c for shape class c;  instance [S, S]: 1..k visible shapes;
  class: the class of the main shape, which is also the largest visible instance — so the image
  class and the semantic classes speak of the same things.
Classes are balanced (scene n's main shape is class n mod C before shuffling). Written as
`images/<split>/<class>/<n>.png` plus a ground-truth store per split, like benchmarks/scenes.py.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from benchmarks.scenes import Scene, _crop, _renumber, save_split

CLASSES = ("disk", "square", "triangle", "plus", "ring", "star")
LABEL_SPACE = {0: "background", **{1 + c: name for c, name in enumerate(CLASSES)}}
RADIUS = (0.28, 0.42)  # of the side: the main shape spans 18-27 px of 32


def _outline(name: str) -> np.ndarray:
    """Unit-radius polygon [P, 2] of shape `name` (the disk and ring are drawn as circles)."""
    if name == "square":
        angles = np.pi / 4 + np.arange(4) * np.pi / 2
        return np.stack([np.cos(angles), np.sin(angles)], 1)
    if name == "triangle":
        angles = -np.pi / 2 + np.arange(3) * 2 * np.pi / 3
        return np.stack([np.cos(angles), np.sin(angles)], 1)
    if name == "star":
        angles = -np.pi / 2 + np.arange(10) * np.pi / 5
        radii = np.where(np.arange(10) % 2 == 0, 1.0, 0.45)
        return np.stack([radii * np.cos(angles), radii * np.sin(angles)], 1)
    w = 0.36  # plus: arm half-width; one quarter of the outline, turned four times
    quarter = np.array([(w, 1), (w, w), (1, w)])
    turns = [quarter @ np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]]) for t in np.arange(4) * np.pi / 2]
    return np.concatenate(turns)


def shape_mask(name: str, size: int, centre: tuple[float, float], radius: float, angle: float) -> np.ndarray:
    """Boolean [size, size] mask of shape `name` (a CLASSES entry)."""
    mask = np.zeros((size, size), np.uint8)
    cx, cy = centre
    if name in ("disk", "ring"):
        cv2.circle(mask, (round(cx), round(cy)), max(1, round(radius)), 1, -1)
        if name == "ring":
            cv2.circle(mask, (round(cx), round(cy)), max(1, round(0.55 * radius)), 0, -1)
        return mask.astype(bool)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    points = _outline(name) @ rot.T * radius + np.array([cx, cy])
    cv2.fillPoly(mask, [np.round(points).astype(np.int32)], 1)
    return mask.astype(bool)


def make_shape_scene(
    rng: np.random.Generator, photos: list[np.ndarray], size: int, main: int, second: float, rotation: float = 0.0
) -> Scene:
    """One scene of side `size` whose main shape is CLASSES[main] (see the module docstring)."""
    image = _background(rng, photos, size)
    semantic = np.zeros((size, size), np.uint16)
    instance = np.zeros((size, size), np.uint16)
    radius = rng.uniform(*RADIUS) * size
    layers = [(main, radius)]
    if rng.random() < second:
        other = int(rng.choice([c for c in range(len(CLASSES)) if c != main]))
        layers.insert(0, (other, radius * rng.uniform(0.45, 0.65)))
    for k, (cls, r) in enumerate(layers, start=1):
        centre = tuple(rng.uniform(r, size - r, 2))
        mask = shape_mask(CLASSES[cls], size, centre, r, rng.uniform(0, rotation))
        image[mask] = _colour(rng)
        semantic[mask] = 1 + cls
        instance[mask] = k
    noisy = image.astype(np.float32) + rng.normal(0, 3.0, image.shape)
    instance, _ = _renumber(instance)
    return Scene(np.clip(noisy, 0, 255).astype(np.uint8), semantic, instance, main)


def write_shape_split(root: Path, split: str, count: int, size: int, seed: int, photos, second: float = 0.3):
    """`count` balanced scenes as root/images/<split>/<class>/*.png and the ground-truth store
    root/stores/gt_<split>; returns (image folder, store path)."""
    rng = np.random.default_rng([seed, 0 if split == "train" else 1])
    folder = root / "images" / split
    for c in range(len(CLASSES)):
        (folder / str(c)).mkdir(parents=True, exist_ok=True)
    mains = rng.permutation(np.arange(count) % len(CLASSES))
    scenes = [make_shape_scene(rng, photos, size, int(m), second) for m in mains]
    provenance = {"source": "benchmarks/shapes.py exact ground truth", "seed": seed, "second": second}
    return folder, save_split(root, split, scenes, LABEL_SPACE, provenance)


def _background(rng: np.random.Generator, photos: list[np.ndarray], size: int) -> np.ndarray:
    """A photo crop, blurred and pulled to 30 % of its contrast around a random grey: [S, S, 3] uint8."""
    crop = cv2.GaussianBlur(_crop(rng, photos, size).astype(np.float32), (0, 0), 1.2)
    grey = rng.uniform(70, 180)
    return np.clip(grey + 0.3 * (crop - crop.mean()), 0, 255).astype(np.uint8)


def _colour(rng: np.random.Generator) -> np.ndarray:
    """A flat RGB colour [3] uint8: random hue, saturation 0.4-1, value 0.35-1."""
    hsv = np.array([[[rng.uniform(0, 180), rng.uniform(0.4, 1) * 255, rng.uniform(0.35, 1) * 255]]], np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0]
