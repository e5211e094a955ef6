"""Decode an image file for labeling: the shared decoder (datasets_spec.decode), failures as LabelingError.

The decoding rules are part of the store's contract (docs/dataset-format.md, "Decoding"): the
trainer decodes through the same function, so the masks refer to the pixels it trains on.
"""

from __future__ import annotations

import os

import numpy as np

from datasets_spec.decode import DEFAULT_MAX_PIXELS, MAX_PIXELS, ImageDecodeError
from datasets_spec.decode import decode_image as _decode
from datasets_spec.decode import decode_reduced as _decode_reduced

from .errors import LabelingError

__all__ = ["DEFAULT_MAX_PIXELS", "MAX_PIXELS", "decode_image", "decode_for_labels"]


def decode_image(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read one image file → [H, W, 3] uint8 RGB, H × W after EXIF orientation.

    Raises LabelingError with the decoder's short reason ("file not found", "empty file",
    "not an image (cannot identify format)", "truncated image file", "image too large (...)",
    "corrupt image data (...)", ...), which the worker records as the image's failure.
    """
    try:
        return _decode(path, max_pixels)
    except ImageDecodeError as err:
        raise LabelingError(err.reason) from None


def decode_for_labels(path: str | os.PathLike, max_pixels: int, canvas: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Read one image file for labeling → ([h, w, 3] uint8 RGB, (H, W) its true size after EXIF
    orientation); a JPEG above `max_pixels` comes reduced in the DCT domain, never below its place
    on the `canvas` (datasets_spec.decode.decode_reduced). Failures as in `decode_image`."""
    try:
        return _decode_reduced(path, max_pixels, canvas)
    except ImageDecodeError as err:
        raise LabelingError(err.reason) from None
