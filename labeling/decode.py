"""Decode any image file to RGB uint8, or fail with a short reason (LabelingError).

Content decides the format, not the name (ImageNet has PNG and CMYK files named .JPEG). Applied to
every image, in order: EXIF orientation; 16-bit grey (PIL modes I;16*, I) scaled to 8 bits by
round(v / 257) (16-bit RGB PNGs arrive from PIL already reduced to their high byte); transparency
(RGBA, LA, PA, P with a transparent colour) composited on white, the usual backdrop of product shots;
everything else converted by PIL (CMYK, YCbCr, 1-bit, palette, ...). Animated files give frame 0.

Truncated data is an error: PIL's `ImageFile.LOAD_TRUNCATED_IMAGES` must stay False (it would pad
the image with grey and hide the fault). Images above MAX_PIXELS are refused before decoding.
Importing this module raises PIL's decompression-bomb limit (a process-wide setting) to MAX_PIXELS
so that PIL's own check never fires first on an image we accept.
"""

from __future__ import annotations

import logging
import os

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from .errors import LabelingError

log = logging.getLogger(__name__)

MAX_PIXELS = 200_000_000  # ~200 MP: 14142², far above ImageNet's largest (~10 MP)
Image.MAX_IMAGE_PIXELS = max(Image.MAX_IMAGE_PIXELS or 0, MAX_PIXELS)

_TRANSPARENT_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


def decode_image(path: str | os.PathLike) -> np.ndarray:
    """Read one image file → [H, W, 3] uint8 RGB, H × W after EXIF orientation.

    Raises LabelingError with a short reason: "file not found", "empty file",
    "not an image (cannot identify format)", "truncated image file", "image too large (...)",
    "corrupt image data (...)".
    """
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        raise LabelingError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is set: truncated files would pass")
    _check_file(path)
    try:
        with Image.open(path) as image:
            _check_size(image.size)
            image.load()
            return _to_rgb(_orient(image))
    except LabelingError:
        raise
    except UnidentifiedImageError:
        raise LabelingError("not an image (cannot identify format)") from None
    except Image.DecompressionBombError:
        raise LabelingError(f"image too large (over {MAX_PIXELS // 1_000_000} MP)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        raise LabelingError(_reason(err)) from None


def _check_file(path) -> None:
    try:
        size = os.path.getsize(path)
    except FileNotFoundError:
        raise LabelingError("file not found") from None
    except OSError as err:
        raise LabelingError(f"cannot read file ({err.strerror})") from None
    if size == 0:
        raise LabelingError("empty file")


def _check_size(size: tuple[int, int]) -> None:
    width, height = size
    if width * height > MAX_PIXELS:
        raise LabelingError(
            f"image too large ({width}×{height} = {width * height / 1e6:.0f} MP > {MAX_PIXELS // 1_000_000} MP)"
        )


def _orient(image: Image.Image) -> Image.Image:
    """Apply the EXIF orientation; unreadable EXIF data leaves the image as stored."""
    try:
        return ImageOps.exif_transpose(image)
    except Exception as err:  # malformed EXIF must not fail a decodable image
        log.debug("ignoring unreadable EXIF orientation: %s", err)
        return image


def _reason(err: Exception) -> str:
    """A short, stable reason for a decoding error."""
    text = str(err)
    if "truncated" in text or isinstance(err, EOFError):
        return "truncated image file"
    first = text.splitlines()[0][:80] if text else type(err).__name__
    return f"corrupt image data ({first})"


def _to_rgb(image: Image.Image) -> np.ndarray:
    """Any PIL mode → [H, W, 3] uint8 RGB (see the module docstring for the rules)."""
    if image.mode.startswith("I"):
        return _grey16_to_rgb(np.asarray(image))
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in _TRANSPARENT_MODES:
        return _composite_on_white(np.asarray(image.convert("RGBA")))
    return np.array(image.convert("RGB"))  # a writable copy: model processors wrap it as a tensor


def _grey16_to_rgb(grey: np.ndarray) -> np.ndarray:
    """16-bit grey [H, W] (any int dtype, values 0..65535) → [H, W, 3] uint8, v ↦ round(v / 257)."""
    scaled = np.clip((grey.astype(np.float32) / 257.0).round(), 0, 255).astype(np.uint8)
    return np.repeat(scaled[:, :, None], 3, axis=2)


def _composite_on_white(rgba: np.ndarray) -> np.ndarray:
    """[H, W, 4] uint8 → [H, W, 3] uint8: rgb · a + 255 · (1 − a)."""
    alpha = rgba[:, :, 3:4].astype(np.float32) / 255.0
    rgb = rgba[:, :, :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
    return np.clip(rgb.round(), 0, 255).astype(np.uint8)
