"""Finding PNG and JPEG files cut short in the ways PIL decodes silently (it pads the missing pixels).

PIL raises on a file cut short, but not when the cut file still ends properly: a PNG whose zlib
stream holds too few rows (PIL leaves the missing rows black) or a JPEG cut mid-scan with its end
marker appended (libjpeg fills the rest with grey and only warns, and PIL drops the warning; "there
isn't any current Pillow functionality to broadly verify an image", Pillow #9106). So:
- PNG: inflate the IDAT stream and count its bytes against what the header's size, bit depth,
  colour type and interlacing need;
- JPEG: decode it again with libjpeg-turbo through simplejpeg in strict mode at 1/8 scale (the
  entropy decoder still reads every coefficient; the inverse DCT is cheap), where libjpeg's
  "premature end of data" warning becomes an error. Other libjpeg warnings (extraneous bytes, ...)
  leave the image accepted, as PIL accepts it.
"""

from __future__ import annotations

import math
import struct
import zlib

import simplejpeg

_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # colour type → samples per pixel
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
_INFLATE_STEP = 1 << 22  # bytes inflated at a time: memory stays bounded whatever the ratio


def truncated(data: bytes, fmt: str | None) -> bool:
    """True when the PNG or JPEG file `data` holds less pixel data than its header promises."""
    if fmt == "PNG":
        return _png_short(data)
    if fmt == "JPEG":
        return _jpeg_short(data)
    return False


def _png_short(data: bytes) -> bool:
    header, idat = _png_chunks(data)
    if header is None:
        return False  # PIL read it; nothing to compare with
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header[:13])
    bits = depth * _PNG_CHANNELS.get(colour, 1)
    passes = _ADAM7 if interlace else ((0, 0, 1, 1),)
    need = 0
    for x0, y0, dx, dy in passes:
        cols, rows = math.ceil(max(0, width - x0) / dx), math.ceil(max(0, height - y0) / dy)
        if cols and rows:
            need += rows * (1 + math.ceil(cols * bits / 8))  # a filter byte per row
    return _inflated_size(idat, need) < need


def _png_chunks(data: bytes) -> tuple[bytes | None, list[bytes]]:
    """(IHDR data, the IDAT chunks' data in order) of a PNG file."""
    header, idat, pos = None, [], 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat.append(body)
        elif idat:  # IDAT chunks are consecutive
            break
        pos += 12 + length
    return header, idat


def _inflated_size(chunks: list[bytes], enough: int) -> int:
    """Bytes the zlib stream split over `chunks` inflates to, counting no further than `enough`."""
    stream, total = zlib.decompressobj(), 0
    try:
        for chunk in chunks:
            pending = chunk
            while pending and total < enough:
                total += len(stream.decompress(pending, _INFLATE_STEP))
                pending = stream.unconsumed_tail
    except zlib.error:
        return total  # corrupt data: PIL would have raised; count what came out
    return total


def _jpeg_short(data: bytes) -> bool:
    try:
        colorspace = "CMYK" if simplejpeg.decode_jpeg_header(data)[2] in ("CMYK", "YCCK") else "GRAY"
        simplejpeg.decode_jpeg(data, colorspace=colorspace, min_height=1, min_width=1, min_factor=8, strict=True)
    except ValueError as err:
        return "premature end" in str(err).lower()
    return False
