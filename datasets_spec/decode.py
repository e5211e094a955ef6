"""The one image decoder: an image file → the RGB pixels the store's masks refer to.

Labeler and trainer both decode through here, so the masks and the training RGB describe the same
pixels (docs/dataset-format.md, "Decoding"). The rules, applied to every image in this order:
- content decides the format, not the name (ImageNet has PNG and CMYK files named .JPEG);
- images above `max_pixels` (from the header) are refused before any pixel is decoded, except
  JPEGs where `decode_reduced` (the labeler) and `decode_crop` (the trainer) may decode them at
  1/2, 1/4 or 1/8 size in the DCT domain, the least reduction that fits max_pixels;
- truncated data is an error (PIL's `ImageFile.LOAD_TRUNCATED_IMAGES` must stay False: it would pad
  the image with grey and hide the fault), also when the cut file still ends properly (checked by
  `decode_image`; `decode_crop`, the trainer's path, skips that check: it reads only images the
  labeler decoded whole, and the check costs ~half a JPEG decode);
- 16-bit grey (PIL modes I;16*, I) becomes 8 bits by round(v / 257) (16-bit RGB PNGs arrive from
  PIL already reduced to their high byte); transparency (RGBA, LA, PA, P with a transparent colour)
  is composited on white; everything else is converted by PIL (CMYK, YCbCr, 1-bit, palette, ...);
  animated files give frame 0;
- the EXIF orientation (or XMP's, as PIL reads it) is applied; unreadable EXIF leaves the image as
  stored.

`decode_crop` gives a box of the oriented image resized with PIL's antialiased bicubic filter (what
torchvision's RandomResizedCrop does to PIL images), decoding JPEGs at 1/2, 1/4 or 1/8 size in the
DCT domain (PIL `draft`) when the box stays at least the output size there. It maps the box into
the file's stored orientation and orients only the pixels it cuts out.
Importing this module raises PIL's decompression-bomb limit (a process-wide setting) to MAX_PIXELS
so that PIL's own check never fires first on an image we accept.
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import ExifTags, Image, ImageFile, UnidentifiedImageError

from plumbing.errors import one_line

from ._truncation import truncated
from .errors import StoreError
from .geometry import fit

MAX_PIXELS = 200_000_000  # the ceiling of any limit: ~200 MP, 14142²
DEFAULT_MAX_PIXELS = 100_000_000  # 10× ImageNet's largest (~10 MP); ~0.4 GB while decoding
Image.MAX_IMAGE_PIXELS = max(Image.MAX_IMAGE_PIXELS or 0, MAX_PIXELS)

_TRANSPARENT_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# EXIF orientation → (swap, flip_x, flip_y): oriented = swap_axes(flip(stored)), flips on stored axes.
_AXES = {
    1: (False, False, False),
    2: (False, True, False),
    3: (False, True, True),
    4: (False, False, True),
    5: (True, False, False),
    6: (True, False, True),
    7: (True, True, True),
    8: (True, True, False),
}
_DRAFT_FACTORS = (8, 4, 2)  # the JPEG DCT-domain reductions PIL offers


class ImageDecodeError(StoreError):
    """An image file cannot be decoded. `.reason` is short and stable (the labeler records it):
    "file not found", "empty file", "cannot read file (...)", "not an image (cannot identify format)",
    "truncated image file", "image too large (...)", "corrupt image data (...)",
    "image is H×W, not ...". The message adds the path."""

    def __init__(self, reason: str, path=None):
        super().__init__(reason if path is None else f"cannot read image {path}: {reason}")
        self.reason, self.path = reason, path


def decode_image(path, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """The whole image at `path` → [H, W, 3] uint8 RGB (a writable array), H × W after orientation.

    Also refuses, as "truncated image file", a PNG or JPEG whose data stops early yet ends properly
    (datasets_spec._truncation: PIL would pad it silently).
    """
    return decode_image_bytes(_read(path), max_pixels, path)


def decode_image_bytes(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, name=None) -> np.ndarray:
    """`decode_image` of an image file's bytes `data` (e.g. an object read from a bucket); `name`
    (its path or URL) is named in error messages."""
    with _opened(data, max_pixels, name=name) as (image, _):
        try:
            return _whole(image, data, name)
        except (OSError, SyntaxError, ValueError, EOFError) as err:
            raise ImageDecodeError(_reason(err), name) from None


def decode_reduced(path, max_pixels: int, canvas: int) -> tuple[np.ndarray, tuple[int, int]]:
    """The whole image → ([h, w, 3] uint8 RGB, (H, W) its true size after orientation).

    As `decode_image`, except that a JPEG above `max_pixels` decodes at the least DCT reduction
    (1/2, 1/4, 1/8) whose pixels fit max_pixels, then (h, w) < (H, W); refused ("image too large")
    when none fits or the reduced image is smaller on an axis than its place on an S = `canvas`
    canvas (fit(H, W, S)), so labels made from it keep the canvas resolution.
    """
    return decode_reduced_bytes(_read(path), max_pixels, canvas, path)


def decode_reduced_bytes(data: bytes, max_pixels: int, canvas: int, name=None) -> tuple[np.ndarray, tuple[int, int]]:
    """`decode_reduced` of an image file's bytes `data`; `name` (its path or URL) is named in errors."""
    with _opened(data, max_pixels, reducible=True, name=name) as (image, stored_wh, least):
        try:
            _reduce(image, least)
            _check_reduced(image, stored_wh, max_pixels, name)
            swap = _AXES[_orientation(image)][0]
            (height, width), reduced = (stored_wh, image.size) if swap else (stored_wh[::-1], image.size[::-1])
            valid = fit(height, width, canvas)
            if reduced != (height, width) and (reduced[0] < valid[0] or reduced[1] < valid[1]):
                raise ImageDecodeError(_too_large(stored_wh, max_pixels), name)
            return _whole(image, data, name), (height, width)
        except (OSError, SyntaxError, ValueError, EOFError) as err:
            raise ImageDecodeError(_reason(err), name) from None


def _whole(image: Image.Image, data: bytes, path) -> np.ndarray:
    """The opened image (of the file's bytes `data`) decoded whole (at its draft size, if any),
    refused if truncated, made RGB and oriented → [H, W, 3] uint8 (writable)."""
    image.load()
    if truncated(data, image.format):
        raise ImageDecodeError("truncated image file", path)
    return np.array(_orient(_to_rgb(image), _orientation(image)))


def decode_crop(path, box, out_hw, orig_hw, *, draft: bool = True, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """A box of the oriented image, resized (bicubic, antialiased) → [oh, ow, 3] uint8 RGB.

    box: (top, left, height, width) in pixels of the oriented image, which must be `orig_hw`
    (H, W) (the size the box was sampled on; another size is an ImageDecodeError).
    out_hw: (oh, ow). draft: allow JPEG DCT-domain reduction when the box allows it. A JPEG above
    `max_pixels` decodes at least as reduced as `decode_reduced` decoded it for the labeler.
    """
    _check_box(box, orig_hw)
    with _opened(path, max_pixels, reducible=True) as (image, stored_wh, least):
        try:
            scale = _reduce(image, max(least, _draft_factor(image, box, out_hw) if draft else 1))
            _check_reduced(image, stored_wh, max_pixels, path)
            image.load()
            orientation = _orientation(image)
            _check_size(stored_wh, orientation, orig_hw, path)
            stored_box = _to_stored(box, stored_wh, orientation)
            return np.asarray(_crop_resize(_to_rgb(image), stored_box, out_hw, scale, orientation))
        except (OSError, SyntaxError, ValueError, EOFError) as err:
            raise ImageDecodeError(_reason(err), path) from None


class JpegCrop(NamedTuple):
    """A crop for a decoder of whole JPEG files (torchvision's, on the GPU) to cut itself: the
    file's bytes, the box in its stored pixels, and the orientation to apply to the cut pixels
    (oriented = swap_axes(flip(stored)), the flips on the stored axes)."""

    data: bytes
    box: tuple[int, int, int, int]  # (top, left, height, width) in the file's stored pixels
    swap: bool
    flip_x: bool
    flip_y: bool


def jpeg_crop(path, box, orig_hw, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> JpegCrop | None:
    """What a batch JPEG decoder needs to give `decode_crop(path, box, out_hw, orig_hw)`'s pixels
    (up to its own resampling), from the header only; None when the file is not a JPEG in RGB or
    grey (CMYK, PNG, ...) or is above max_pixels (those need `decode_crop`). Errors as decode_crop."""
    _check_box(box, orig_hw)
    with _opened(path, max_pixels, reducible=True) as (image, stored_wh, least):
        if image.format != "JPEG" or image.mode not in ("RGB", "L") or least > 1:
            return None
        orientation = _orientation(image)
        _check_size(stored_wh, orientation, orig_hw, path)
        try:
            data = Path(path).read_bytes()
        except OSError as err:
            raise ImageDecodeError(_reason(err), path) from None
    return JpegCrop(data, _to_stored(box, stored_wh, orientation), *_AXES[orientation])


class _opened:
    """Context manager: the file (a path, or a file's bytes named `name`) checked, opened by PIL and
    its header checked → (image, (W, H)), or with `reducible` → (image, (W, H), the least JPEG
    reduction factor that fits max_pixels)."""

    def __init__(self, source, max_pixels: int, reducible: bool = False, name=None):
        self.source, self.max_pixels, self.reducible = source, max_pixels, reducible
        self.path = name if isinstance(source, bytes) else source

    def __enter__(self):
        if ImageFile.LOAD_TRUNCATED_IMAGES:
            raise ImageDecodeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is set: truncated files would pass")
        if isinstance(self.source, bytes):
            if not self.source:
                raise ImageDecodeError("empty file", self.path)
            opened = io.BytesIO(self.source)
        else:
            _check_file(self.path)
            opened = self.path
        try:
            self.image = Image.open(opened)
        except UnidentifiedImageError:
            raise ImageDecodeError("not an image (cannot identify format)", self.path) from None
        except Image.DecompressionBombError:
            raise ImageDecodeError(f"image too large (over {self.max_pixels // 1_000_000} MP)", self.path) from None
        except (OSError, SyntaxError, ValueError, EOFError) as err:
            raise ImageDecodeError(_reason(err), self.path) from None
        size = self.image.size
        least = _least_factor(size, self.max_pixels) if self.reducible and self.image.format == "JPEG" else 1
        if least is None or (least == 1 and size[0] * size[1] > self.max_pixels):
            self.image.close()
            raise ImageDecodeError(_too_large(size, self.max_pixels), self.path)
        return (self.image, size, least) if self.reducible else (self.image, size)

    def __exit__(self, *exc) -> None:
        self.image.close()


def _too_large(size, max_pixels: int) -> str:
    width, height = size
    return f"image too large ({width}×{height} = {width * height / 1e6:.0f} MP > {max_pixels / 1e6:g} MP)"


def _check_size(stored_wh, orientation: int, orig_hw, path) -> None:
    """Refuse a file whose oriented (H, W) is not `orig_hw`, the size its crop boxes were drawn on."""
    actual = stored_wh if _AXES[orientation][0] else stored_wh[::-1]
    if tuple(actual) != tuple(orig_hw):
        raise ImageDecodeError(
            f"image is {actual[0]}×{actual[1]}, not the {orig_hw[0]}×{orig_hw[1]} it was labeled at", path
        )


def _check_reduced(image: Image.Image, stored_wh, max_pixels: int, path) -> None:
    """Refuse an image whose decoding size (after any reduction) is still above max_pixels."""
    if image.size[0] * image.size[1] > max_pixels:
        raise ImageDecodeError(_too_large(stored_wh, max_pixels), path)


def _least_factor(size, max_pixels: int) -> int | None:
    """The least JPEG reduction (1, 2, 4, 8) whose decoded (W, H) = ceil(size / f) fits max_pixels;
    None when even 1/8 does not."""
    fits = (f for f in (1, *_DRAFT_FACTORS[::-1]) if math.ceil(size[0] / f) * math.ceil(size[1] / f) <= max_pixels)
    return next(fits, None)


def _read(path) -> bytes:
    """The bytes of the image file at `path`; the reasons of `_check_file` for a file that cannot be read."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise ImageDecodeError("file not found", path) from None
    except OSError as err:
        raise ImageDecodeError(_reason(err), path) from None


def _check_file(path) -> None:
    try:
        size = os.path.getsize(path)
    except FileNotFoundError:
        raise ImageDecodeError("file not found", path) from None
    except OSError as err:
        raise ImageDecodeError(_reason(err), path) from None
    if size == 0:
        raise ImageDecodeError("empty file", path)


def _check_box(box, orig_hw) -> None:
    top, left, height, width = box
    if not (
        0 <= top
        and 0 <= left
        and height > 0
        and width > 0
        and top + height <= orig_hw[0]
        and left + width <= orig_hw[1]
    ):
        raise ValueError(f"crop box {tuple(box)} does not lie in a {orig_hw[0]}×{orig_hw[1]} image")


READ_ERROR = "cannot read file"  # the file system refused (permissions, I/O): may go away


def retryable(reason: str) -> bool:
    """Whether a recorded failure reason can go away without the file changing (a rerun retries)."""
    return reason.startswith(READ_ERROR)


def _reason(err: Exception) -> str:
    """A short, stable reason for a decoding error: the operating system's own words for a read
    the file system refused (PermissionError, EIO, ...), else what the decoder found."""
    if isinstance(err, OSError) and err.errno is not None:
        return f"{READ_ERROR} ({err.strerror or os.strerror(err.errno)})"
    text = str(err)
    if "truncated" in text or isinstance(err, EOFError):
        return "truncated image file"
    return f"corrupt image data ({one_line(err, limit=80)})"


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation 1..8; 1 when absent, out of range or unreadable."""
    try:
        value = image.getexif().get(ExifTags.Base.Orientation, 1)
        return value if value in _AXES else 1
    except Exception:  # noqa: BLE001 — malformed EXIF must not fail a decodable image
        return 1


def _orient(image: Image.Image, orientation: int) -> Image.Image:
    method = _TRANSPOSE.get(orientation)
    return image if method is None else image.transpose(method)


def _to_stored(box, stored_wh, orientation: int) -> tuple:
    """An oriented box (top, left, h, w) → the same box in the file's stored pixels."""
    swap, flip_x, flip_y = _AXES[orientation]
    top, left, height, width = box
    if swap:
        top, left, height, width = left, top, width, height
    if flip_x:
        left = stored_wh[0] - left - width
    if flip_y:
        top = stored_wh[1] - top - height
    return top, left, height, width


def _draft_factor(image: Image.Image, box, out_hw) -> int:
    """The JPEG reduction (8, 4, 2; 1 = none) the box allows while it stays at least `out_hw`."""
    if image.format != "JPEG":
        return 1
    height, width = box[2], box[3]
    return next((f for f in _DRAFT_FACTORS if height >= f * out_hw[0] and width >= f * out_hw[1]), 1)


def _reduce(image: Image.Image, factor: int) -> float:
    """Ask PIL to decode a JPEG at 1/`factor` size (DCT domain). Returns the scale it gave (1.0: none)."""
    if factor == 1:
        return 1.0
    stored_w, stored_h = image.size
    drafted = image.draft(image.mode, (max(1, stored_w // factor), max(1, stored_h // factor)))
    return 1.0 if drafted is None else stored_w / drafted[1][2]


def _crop_resize(image: Image.Image, box, out_hw, scale: float, orientation: int) -> Image.Image:
    """Stored box (top, left, h, w) in full-size pixels of an image decoded at 1/scale → the oriented
    [oh, ow] image.

    The whole pixels enclosing the box are cut out and oriented, then resized: the filter never
    reads pixels outside the box, and with scale 1 this is exactly PIL crop + resize of the oriented
    image, as torchvision does."""
    top, left, height, width = (v / scale for v in box)
    x0, y0 = math.floor(left), math.floor(top)
    x1, y1 = min(math.ceil(left + width), image.width), min(math.ceil(top + height), image.height)
    region = _orient(image.crop((x0, y0, x1, y1)), orientation)
    u0, v0, u1, v1 = left - x0, top - y0, left + width - x0, top + height - y0  # the box in the cut
    swap, flip_x, flip_y = _AXES[orientation]
    if flip_x:
        u0, u1 = (x1 - x0) - u1, (x1 - x0) - u0
    if flip_y:
        v0, v1 = (y1 - y0) - v1, (y1 - y0) - v0
    if swap:
        u0, v0, u1, v1 = v0, u0, v1, u1
    return region.resize((out_hw[1], out_hw[0]), Image.Resampling.BICUBIC, box=(u0, v0, u1, v1))


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode → an RGB image (see the module docstring for the rules). May return `image`."""
    if image.mode.startswith("I"):
        return Image.fromarray(_grey16_to_rgb(np.asarray(image)))
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in _TRANSPARENT_MODES:
        return Image.fromarray(_composite_on_white(np.asarray(image.convert("RGBA"))))
    return image if image.mode == "RGB" else image.convert("RGB")


def _grey16_to_rgb(grey: np.ndarray) -> np.ndarray:
    """16-bit grey [H, W] (any int dtype, values 0..65535) → [H, W, 3] uint8, v ↦ round(v / 257)."""
    scaled = np.clip((grey.astype(np.float32) / 257.0).round(), 0, 255).astype(np.uint8)
    return np.repeat(scaled[:, :, None], 3, axis=2)


def _composite_on_white(rgba: np.ndarray) -> np.ndarray:
    """[H, W, 4] uint8 → [H, W, 3] uint8: rgb · a + 255 · (1 − a)."""
    alpha = rgba[:, :, 3:4].astype(np.float32) / 255.0
    rgb = rgba[:, :, :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
    return np.clip(rgb.round(), 0, 255).astype(np.uint8)
