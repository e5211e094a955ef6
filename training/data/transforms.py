"""Joint augmentation: one crop box on the original image, one flip, applied to the RGB and the masks.

Conventions, stated once here:
- box:      (top, left, height, width) in pixels of the original image (after EXIF orientation),
            sampled on its (H, W) = the store's `orig_hw`, so it never holds letterbox padding
- semantic: [S, S] uint16 class ids on the store's canvas, SEMANTIC_IGNORE = no class / padding
- instance: [S, S] uint16 instance ids on the canvas, 0 = none
The RGB is cut from the decoded original and resized with bicubic, antialiased resampling
(`datasets_spec.decode.decode_crop`, as torchvision's RandomResizedCrop on PIL images, MAE's
pipeline). The masks come from the canvas through the same box, by nearest pixel centre: each output
pixel's centre falls in one original pixel, which the store's geometry maps to one canvas pixel
(`datasets_spec.geometry.canvas_index`). So the masks equal cropping, with nearest resampling, the
label maps mapped back to the original resolution (`labels_from_canvas`).
Targets leave as int64 with -1 = ignore (semantic SEMANTIC_IGNORE); instance 0 stays 0.
"""

from __future__ import annotations

import math

import numpy as np

from datasets_spec.geometry import canvas_index
from datasets_spec.schema import SEMANTIC_IGNORE
from training.ignore import IGNORE

from .config import DataConfig


def draw(rng: np.random.Generator, orig_hw, cfg: DataConfig) -> tuple[tuple[int, int, int, int], bool]:
    """(box, flip) of one sample: the crop on the original (H, W), then the flip, from `rng`."""
    box = sample_crop(rng, int(orig_hw[0]), int(orig_hw[1]), cfg.scale, cfg.ratio)
    return box, bool(rng.random() < cfg.hflip)


def sample_crop(
    rng: np.random.Generator, height: int, width: int, scale, ratio, tries: int = 10
) -> tuple[int, int, int, int]:
    """A RandomResizedCrop box inside a height × width image (MAE's parameter sampling).

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
    """The largest centred box of the image whose aspect w/h lies within `ratio`."""
    aspect = width / height
    if aspect < ratio[0]:
        w, h = width, max(1, int(round(width / ratio[0])))
    elif aspect > ratio[1]:
        w, h = max(1, int(round(height * ratio[1]))), height
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def _box_index(start: int, length: int, size: int) -> np.ndarray:
    """Original pixel holding the centre of each of `size` output pixels spanning [start, start+length)."""
    return start + np.minimum(((np.arange(size) + 0.5) * length / size).astype(np.int64), length - 1)


def crop_masks(semantic: np.ndarray, instance: np.ndarray, orig_hw, valid_hw, box, size: int):
    """Canvas masks [S, S] uint16 → the box's (semantic, instance) [size, size] int64, -1 = ignore."""
    top, left, h, w = box
    rows = canvas_index(_box_index(top, h, size), int(orig_hw[0]), int(valid_hw[0]))
    cols = canvas_index(_box_index(left, w, size), int(orig_hw[1]), int(valid_hw[1]))
    sem = semantic[rows[:, None], cols[None, :]].astype(np.int64)
    sem[sem == SEMANTIC_IGNORE] = IGNORE
    return sem, instance[rows[:, None], cols[None, :]].astype(np.int64)


def normalize(image: np.ndarray, mean, std) -> np.ndarray:
    """image [H, W, 3] uint8 → [3, H, W] float32, (x / 255 - mean) / std per channel."""
    chw = np.ascontiguousarray(image.transpose(2, 0, 1)).astype(np.float32)
    gain = (1.0 / (255.0 * np.asarray(std, np.float32)))[:, None, None]
    shift = (np.asarray(mean, np.float32) / np.asarray(std, np.float32))[:, None, None]
    chw *= gain
    chw -= shift
    return chw
