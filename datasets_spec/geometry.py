"""The canvas mapping: original image (H, W) ↔ fixed S × S canvas, aspect kept, top-left anchored.

An image of H × W pixels (after EXIF orientation) is scaled by one factor so that its longer side
becomes S, giving (h, w) = fit(H, W, S), and placed at rows [0, h), columns [0, w) of the canvas.
The rest of the canvas is padding (semantic = SEMANTIC_IGNORE, instance = INSTANCE_NONE).

Coordinates map exactly per axis: x_orig = x_canvas · W / w and y_orig = y_canvas · H / h (and back),
with (h, w) stored per image. Label maps are resampled by nearest pixel centre:
canvas pixel (i, j) takes original pixel (⌊(i + ½)·H/h⌋, ⌊(j + ½)·W/w⌋), and the inverse likewise.
"""

from __future__ import annotations

import cv2
import numpy as np


def fit(height: int, width: int, canvas: int) -> tuple[int, int]:
    """(h, w) of an H × W image scaled to longer side `canvas`, rounded half up, each ≥ 1."""
    if height < 1 or width < 1:
        raise ValueError(f"image size must be positive, got {height}×{width}")
    scale = canvas / max(height, width)
    h = min(canvas, max(1, int(np.floor(height * scale + 0.5))))
    w = min(canvas, max(1, int(np.floor(width * scale + 0.5))))
    return h, w


def fit_many(hw: np.ndarray, canvas: int) -> np.ndarray:
    """`fit` over rows of hw [N, 2] (H, W) int -> [N, 2] int32, the same arithmetic vectorised."""
    hw = np.asarray(hw, dtype=np.int64)
    scale = canvas / np.maximum(hw.max(axis=1, initial=1, keepdims=True), 1)
    return np.clip(np.floor(hw * scale + 0.5), 1, canvas).astype(np.int32)


def _nearest_index(src: int, dst: int) -> np.ndarray:
    """For each of `dst` output pixels, the source pixel whose span holds its centre. [dst] int64."""
    return np.minimum(((np.arange(dst) + 0.5) * src / dst).astype(np.int64), src - 1)


def resize_labels(labels: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-centre resampling of a label map [H0, W0] (any integer dtype) to [height, width]."""
    rows = _nearest_index(labels.shape[0], height)
    cols = _nearest_index(labels.shape[1], width)
    return labels[rows[:, None], cols[None, :]]


def labels_to_canvas(labels: np.ndarray, canvas: int, pad_value: int, orig_hw=None) -> np.ndarray:
    """Label map at original resolution [H, W] → canvas [S, S], padded with `pad_value`.

    orig_hw: (H, W) when `labels` [h', w'] were made on a reduced decode of an H × W image: the
    canvas then shows the map brought to H × W by nearest pixel centre (`canvas_index`'s rule
    from H to h').
    """
    height, width = labels.shape if orig_hw is None else orig_hw
    h, w = fit(height, width, canvas)
    rows = canvas_index(_nearest_index(height, h), height, labels.shape[0])  # = the original rows
    cols = canvas_index(_nearest_index(width, w), width, labels.shape[1])  # when not reduced
    out = np.full((canvas, canvas), pad_value, dtype=labels.dtype)
    out[:h, :w] = labels[rows[:, None], cols[None, :]]
    return out


def labels_from_canvas(canvas_labels: np.ndarray, height: int, width: int) -> np.ndarray:
    """Canvas label map [S, S] → original resolution [H, W] (the inverse mapping; padding dropped)."""
    h, w = fit(height, width, canvas_labels.shape[0])
    return resize_labels(canvas_labels[:h, :w], height, width)


def canvas_index(index: np.ndarray, orig: int, valid: int) -> np.ndarray:
    """Canvas rows (or columns) holding original rows (columns) `index` of an axis of `orig` pixels
    shown as `valid` canvas pixels: ⌊(r + ½)·valid/orig⌋, as `labels_from_canvas` reads them."""
    return np.minimum(((np.asarray(index) + 0.5) * valid / orig).astype(np.int64), valid - 1)


def image_to_canvas(image: np.ndarray, canvas: int, pad_value: int = 0) -> np.ndarray:
    """RGB image [H, W, 3] uint8 → canvas [S, S, 3] uint8 (area filter when shrinking)."""
    h, w = fit(image.shape[0], image.shape[1], canvas)
    shrink = h < image.shape[0]
    resized = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    out = np.full((canvas, canvas) + image.shape[2:], pad_value, dtype=image.dtype)
    out[:h, :w] = resized.reshape((h, w) + image.shape[2:])
    return out
