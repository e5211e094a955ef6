"""Joint augmentation of an image and its masks on the store's canvas: one crop, one flip, both alike.

Conventions, stated once here:
- image:    [S, S, 3] uint8 RGB on the canvas (valid region top-left, the rest padding)
- semantic: [S, S] uint16 class ids, SEMANTIC_IGNORE = no class / padding
- instance: [S, S] uint16 instance ids, 0 = none (and padding, told apart by the valid region)
- box:      (top, left, height, width) in canvas pixels
Targets leave as int64 with -1 = ignore: semantic SEMANTIC_IGNORE and everything outside the valid
region; instance outside the valid region (instance 0 inside it stays 0, "no instance").
Crop region: the box is sampled inside the valid (h, w) region by default. That region is the
original image scaled by one factor, so area fractions and aspect ratios follow MAE's recipe on
the original image exactly and padding never enters a crop; over the whole canvas, a 4:3 image's
crops would hold up to 25 % padding, hidden from every loss and wasted as tokens.
The image is resized bilinearly (area filter when the crop shrinks by > 1.5× on both axes; a
256 canvas cropped to 224 shrinks by at most 1.14×, where bilinear does not alias); masks by nearest
pixel centre (`datasets_spec.geometry.resize_labels`), so pixel centres line up between the two.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from datasets_spec.geometry import resize_labels
from datasets_spec.schema import SEMANTIC_IGNORE

from .config import DataConfig

IGNORE = -1
AREA_FILTER_SHRINK = 1.5  # shrinking a crop by more than this (both axes) uses the area filter


def sample_crop(rng: np.random.Generator, height: int, width: int, scale, ratio,
                tries: int = 10) -> tuple[int, int, int, int]:
    """A RandomResizedCrop box inside a height × width region (MAE's parameter sampling).

    Up to `tries` times: area fraction ~ U(scale), log aspect (w/h) ~ U(log ratio); accept the first
    box that fits. Otherwise the largest centred box whose aspect is clamped into `ratio`.
    """
    area = height * width
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(tries):
        target = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(log_lo, log_hi))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            return top, left, h, w
    return _centre_crop(height, width, ratio)


def _centre_crop(height: int, width: int, ratio) -> tuple[int, int, int, int]:
    """The largest centred box of the region whose aspect w/h lies within `ratio`."""
    aspect = width / height
    if aspect < ratio[0]:
        w, h = width, max(1, int(round(width / ratio[0])))
    elif aspect > ratio[1]:
        w, h = max(1, int(round(height * ratio[1]))), height
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def crop_resize_image(image: np.ndarray, box, size: int) -> np.ndarray:
    """image [S, S, 3] uint8 → the box resized to [size, size, 3] uint8."""
    top, left, h, w = box
    alias = min(h, w) > AREA_FILTER_SHRINK * size  # cv2's area filter costs ~5× bilinear
    return cv2.resize(image[top:top + h, left:left + w], (size, size),
                      interpolation=cv2.INTER_AREA if alias else cv2.INTER_LINEAR)


def crop_targets(semantic: np.ndarray, instance: np.ndarray, valid_hw, box, size: int):
    """Canvas masks [S, S] uint16 → (semantic, instance) [size, size] int64 with -1 = ignore."""
    top, left, h, w = box
    rows, cols = slice(top, top + h), slice(left, left + w)
    sem = semantic[rows, cols].astype(np.int64)
    sem[sem == SEMANTIC_IGNORE] = IGNORE
    inst = instance[rows, cols].astype(np.int64)
    inst[max(0, valid_hw[0] - top):] = IGNORE  # rows below the valid region
    inst[:, max(0, valid_hw[1] - left):] = IGNORE  # columns right of it
    sem[inst == IGNORE] = IGNORE
    return resize_labels(sem, size, size), resize_labels(inst, size, size)


def normalize(image: np.ndarray, mean, std) -> np.ndarray:
    """image [H, W, 3] uint8 → [3, H, W] float32, (x / 255 - mean) / std per channel."""
    chw = np.ascontiguousarray(image.transpose(2, 0, 1)).astype(np.float32)
    gain = (1.0 / (255.0 * np.asarray(std, np.float32)))[:, None, None]
    shift = (np.asarray(mean, np.float32) / np.asarray(std, np.float32))[:, None, None]
    chw *= gain
    chw -= shift
    return chw


def augment(image: np.ndarray, semantic: np.ndarray, instance: np.ndarray, valid_hw,
            cfg: DataConfig, rng: np.random.Generator):
    """One crop + flip of the canvas image and masks, drawn from `rng` (crop first, then flip).

    Returns image [3, s, s] float32 normalised, semantic and instance [s, s] int64 (s = img_size).
    """
    region = tuple(valid_hw) if cfg.crop_within_valid else semantic.shape
    box = sample_crop(rng, region[0], region[1], cfg.scale, cfg.ratio)
    rgb = crop_resize_image(image, box, cfg.img_size)
    sem, inst = crop_targets(semantic, instance, valid_hw, box, cfg.img_size)
    if rng.random() < cfg.hflip:
        rgb, sem, inst = rgb[:, ::-1], sem[:, ::-1], inst[:, ::-1]
    return normalize(rgb, cfg.mean, cfg.std), np.ascontiguousarray(sem), np.ascontiguousarray(inst)
