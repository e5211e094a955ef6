"""Decode an image file to RGB uint8 the way the labeler saw it (EXIF orientation applied)."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps

_HIGH_DEPTH = {"I;16": 65535.0, "I;16B": 65535.0, "I;16L": 65535.0, "I;16N": 65535.0}


def load_rgb(path) -> np.ndarray:
    """The image at `path` as [H, W, 3] uint8 RGB, after EXIF orientation.

    Grayscale, palette, CMYK and alpha images are converted to RGB (alpha dropped); 16-bit and
    32-bit integer or float grayscale are scaled to 8 bits by their type's range (32-bit integer
    and float images by their own maximum).
    """
    try:
        with Image.open(path) as img:
            img = ImageOps.exif_transpose(img)
            if img.mode in _HIGH_DEPTH or img.mode in ("I", "F"):
                return _gray_to_rgb8(np.asarray(img), _HIGH_DEPTH.get(img.mode))
            return np.asarray(img.convert("RGB"))
    except (OSError, SyntaxError) as exc:  # PIL raises these for missing, truncated or foreign files
        raise ValueError(f"cannot read image {path}: {exc}") from exc


def _gray_to_rgb8(gray: np.ndarray, full_scale: float | None) -> np.ndarray:
    """[H, W] 16/32-bit or float grayscale → [H, W, 3] uint8."""
    values = gray.astype(np.float64)
    top = full_scale or max(float(values.max()), 1.0)
    scaled = np.clip(np.round(values * (255.0 / top)), 0, 255).astype(np.uint8)
    return np.repeat(scaled[:, :, None], 3, axis=2)
