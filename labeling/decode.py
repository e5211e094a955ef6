"""Decode an image file for labeling: the shared decoder (datasets_spec.decode), failures as LabelingError.

An image under a local root is read from its path; under an s3:// or gs:// root it is read through
the store's storage layer (datasets_spec.storage: same endpoint, credentials and retries) and
decoded from its bytes by the same rules.

The decoding rules are part of the store's contract (docs/dataset-format.md, "Decoding"): the
trainer decodes through the same function, so the masks refer to the pixels it trains on.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from datasets_spec import storage
from datasets_spec.decode import DEFAULT_MAX_PIXELS, MAX_PIXELS, READ_ERROR, ImageDecodeError
from datasets_spec.decode import decode_image as _decode
from datasets_spec.decode import decode_reduced as _decode_reduced
from datasets_spec.decode import decode_reduced_bytes as _decode_reduced_bytes
from plumbing.errors import one_line

from .errors import LabelingError

__all__ = ["DEFAULT_MAX_PIXELS", "MAX_PIXELS", "decode_image", "decode_for_labels", "decode_item"]


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


def decode_item(root: str, key: str, max_pixels: int, canvas: int) -> tuple[np.ndarray, tuple[int, int]]:
    """`decode_for_labels` of the image `key` under `root`, a local folder or an s3:// / gs:// URL
    (or of the URL `key` itself, a list file's entry).
    A missing object fails as "file not found", one the server refuses as "cannot read file (...)"
    (retried by a rerun); object storage down through its retries raises StorageUnavailable."""
    if storage.is_url(key):  # a list file's URL entry: the key is where the object is
        root, _, key = key.rpartition("/")
    if not storage.is_url(root):
        return decode_for_labels(Path(root) / key, max_pixels, canvas)
    try:
        data = storage.read_bytes(root, key)
    except FileNotFoundError:
        raise LabelingError("file not found") from None
    except OSError as exc:  # e.g. access denied; the message starts with the object's URL
        raise LabelingError(f"{READ_ERROR} ({one_line(exc, limit=120)})") from None
    try:
        return _decode_reduced_bytes(data, max_pixels, canvas, storage.join(root, key))
    except ImageDecodeError as err:
        raise LabelingError(err.reason) from None
