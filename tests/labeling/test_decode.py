import io
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image, ImageFile

from labeling.decode import MAX_PIXELS, decode_image
from labeling.errors import LabelingError

from .photo_files import photo


def save(image: Image.Image, path, fmt, **kwargs):
    image.save(path, format=fmt, **kwargs)
    return path


@pytest.fixture(scope="module")
def chelsea():
    return photo("chelsea")


def test_rgb_jpeg_and_non_ascii_name(tmp_path, chelsea):
    path = save(Image.fromarray(chelsea), tmp_path / "chat noir – 猫.JPEG", "JPEG", quality=95)
    out = decode_image(path)
    assert out.dtype == np.uint8 and out.shape == chelsea.shape
    assert np.abs(out.astype(int) - chelsea).mean() < 4


def test_grayscale_becomes_three_equal_channels(tmp_path):
    grey = photo("camera")[:, :, 0]
    out = decode_image(save(Image.fromarray(grey), tmp_path / "g.png", "PNG"))
    assert out.shape == grey.shape + (3,)
    assert (out[:, :, 0] == grey).all() and (out[:, :, 1] == grey).all()


def test_cmyk_jpeg_decodes_to_rgb(tmp_path, chelsea):
    path = save(Image.fromarray(chelsea).convert("CMYK"), tmp_path / "cmyk.jpg", "JPEG", quality=95)
    assert Image.open(path).mode == "CMYK"
    out = decode_image(path)
    assert out.shape == chelsea.shape
    assert np.abs(out.astype(int) - chelsea).mean() < 8


def test_png_content_named_jpeg(tmp_path, chelsea):
    out = decode_image(save(Image.fromarray(chelsea), tmp_path / "n0_1.JPEG", "PNG"))
    assert (out == chelsea).all()


def test_16_bit_grey_png_is_scaled_not_clipped(tmp_path):
    ramp = (np.arange(64 * 32).reshape(32, 64) * 32).astype(np.uint16)  # 0..65504
    path = tmp_path / "g16.png"
    cv2.imwrite(str(path), ramp)
    out = decode_image(path)
    expected = np.round(ramp / 257.0).astype(np.uint8)
    assert (out[:, :, 0] == expected).all()
    assert out.max() == 255 and out.min() == 0


def test_16_bit_rgb_png_keeps_its_colours(tmp_path):
    rgb16 = np.zeros((8, 8, 3), np.uint16)
    rgb16[..., 0] = 65535  # pure red
    path = tmp_path / "rgb16.png"
    cv2.imwrite(str(path), rgb16[:, :, ::-1])
    out = decode_image(path)
    assert (out == [255, 0, 0]).all()


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
def test_transparency_is_composited_on_white(tmp_path, mode):
    rgba = np.zeros((10, 12, 4), np.uint8)
    rgba[:, :6] = [0, 0, 0, 255]  # left half opaque black
    rgba[:, 6:] = [255, 0, 0, 0]  # right half transparent red
    image = Image.fromarray(rgba, "RGBA")
    if mode == "LA":
        image = image.convert("LA")
    elif mode == "P":
        image = image.convert("RGB").convert("P")
        image.info["transparency"] = image.getpixel((11, 0))  # the red palette entry
    path = save(image, tmp_path / f"t_{mode}.png", "PNG")
    out = decode_image(path)
    assert (out[:, :6] == 0).all() and (out[:, 6:] == 255).all()


def test_half_transparent_pixels_blend_with_white(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 3] = 128
    out = decode_image(save(Image.fromarray(rgba, "RGBA"), tmp_path / "half.png", "PNG"))
    assert (out == 127).all()


@pytest.mark.parametrize("orientation, expected_shape", [(1, (20, 30)), (3, (20, 30)), (6, (30, 20)), (8, (30, 20))])
def test_exif_orientation_is_applied(tmp_path, orientation, expected_shape):
    pixels = np.zeros((20, 30, 3), np.uint8)
    pixels[:10, :15] = 255  # a white top-left quadrant marks the stored orientation
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = save(Image.fromarray(pixels), tmp_path / f"o{orientation}.jpg", "JPEG", exif=exif, quality=100)
    out = decode_image(path)
    assert out.shape[:2] == expected_shape
    corner = {1: (0, 0), 3: (-1, -1), 6: (0, -1), 8: (-1, 0)}[orientation]
    assert out[corner][0] > 200 and out[tuple(-1 - c for c in corner)][0] < 50


def test_tiny_image(tmp_path):
    tiny = np.random.default_rng(0).integers(0, 255, (5, 7, 3), dtype=np.uint8)
    out = decode_image(save(Image.fromarray(tiny), tmp_path / "tiny.png", "PNG"))
    assert (out == tiny).all()


def test_huge_image_within_the_limit(tmp_path):
    path = save(Image.new("RGB", (6000, 4000), (10, 200, 30)), tmp_path / "huge.jpg", "JPEG", quality=50)
    out = decode_image(path)
    assert out.shape == (4000, 6000, 3)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width × height pixels, with a token of image data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")
    )


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("side", [15_000, 30_000])  # 225 MP (above our limit), 900 MP (above PIL's)
def test_image_above_the_pixel_limit_is_refused_before_decoding(tmp_path, side):
    assert side * side > MAX_PIXELS
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header_only(side, side))
    with pytest.raises(LabelingError, match="image too large"):
        decode_image(path)


def test_empty_file(tmp_path):
    (tmp_path / "empty.JPEG").write_bytes(b"")
    with pytest.raises(LabelingError, match="^empty file$"):
        decode_image(tmp_path / "empty.JPEG")


def test_missing_file(tmp_path):
    with pytest.raises(LabelingError, match="^file not found$"):
        decode_image(tmp_path / "nope.jpg")


@pytest.mark.parametrize("data", [b"hello, I am text", b"\x00" * 1000, b"GIF89a-but-not-really"])
def test_non_image_bytes(tmp_path, data):
    (tmp_path / "x.JPEG").write_bytes(data)
    with pytest.raises(LabelingError, match=r"^not an image \(cannot identify format\)$|^corrupt image data"):
        decode_image(tmp_path / "x.JPEG")


@pytest.mark.parametrize("fraction", [0.3, 0.6, 0.95])
def test_truncated_jpeg_is_an_error_not_grey_padding(tmp_path, chelsea, fraction):
    buffer = io.BytesIO()
    Image.fromarray(chelsea).save(buffer, format="JPEG", quality=90)
    data = buffer.getvalue()
    (tmp_path / "cut.JPEG").write_bytes(data[: int(len(data) * fraction)])
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    with pytest.raises(LabelingError, match="^truncated image file$"):
        decode_image(tmp_path / "cut.JPEG")


def test_truncated_png_is_an_error(tmp_path, chelsea):
    buffer = io.BytesIO()
    Image.fromarray(chelsea).save(buffer, format="PNG")
    (tmp_path / "cut.png").write_bytes(buffer.getvalue()[:5000])
    with pytest.raises(LabelingError, match="truncated|corrupt"):
        decode_image(tmp_path / "cut.png")


def test_text_file_named_jpeg_is_not_an_image(tmp_path):
    (tmp_path / "x.JPEG").write_text("not an image", encoding="utf-8")
    with pytest.raises(LabelingError, match="cannot identify format"):
        decode_image(tmp_path / "x.JPEG")


def png_of_rows(height: int, width: int, rows: bytes, interlace: int = 0) -> bytes:
    """An 8-bit RGB PNG whose zlib stream holds `rows` (filter bytes included), ending properly."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, interlace)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def adam7_rows(pixels: np.ndarray) -> bytes:
    """The seven interlaced passes of pixels [H, W, 3] uint8 as PNG rows with filter 0 (an empty pass
    has no rows)."""
    passes = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
    subs = [pixels[y0::dy, x0::dx] for x0, y0, dx, dy in passes]
    return b"".join(b"\0" + row.tobytes() for sub in subs if sub.size for row in sub)


def test_png_whose_data_stops_early_but_ends_properly_is_truncated(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 255, (20, 13, 3), dtype=np.uint8)
    rows = [b"\0" + row.tobytes() for row in pixels]
    (tmp_path / "whole.png").write_bytes(png_of_rows(20, 13, b"".join(rows)))
    assert (decode_image(tmp_path / "whole.png") == pixels).all()
    (tmp_path / "short.png").write_bytes(png_of_rows(20, 13, b"".join(rows[:-1])))
    assert Image.open(tmp_path / "short.png").convert("RGB").size == (13, 20)  # PIL pads it silently
    with pytest.raises(LabelingError, match="^truncated image file$"):
        decode_image(tmp_path / "short.png")


def test_interlaced_png_is_whole_only_with_all_seven_passes(tmp_path):
    """A tall, narrow image: its passes hold 32 more filter bytes than its plain rows would."""
    pixels = np.random.default_rng(1).integers(0, 255, (64, 2, 3), dtype=np.uint8)
    rows = adam7_rows(pixels)
    (tmp_path / "adam7.png").write_bytes(png_of_rows(64, 2, rows, interlace=1))
    assert (decode_image(tmp_path / "adam7.png") == pixels).all()  # our passes are right: PIL agrees
    (tmp_path / "adam7_short.png").write_bytes(png_of_rows(64, 2, rows[:-7], interlace=1))  # a row short
    Image.open(tmp_path / "adam7_short.png").load()  # PIL pads it silently
    with pytest.raises(LabelingError, match="^truncated image file$"):
        decode_image(tmp_path / "adam7_short.png")


@pytest.mark.parametrize("mode", ["1", "L", "P", "RGBA", "I;16"])
def test_whole_pngs_of_other_depths_are_not_called_truncated(tmp_path, chelsea, mode):
    image = Image.fromarray(chelsea[:37, :45])
    image = image.convert("L").convert("I;16") if mode == "I;16" else image.convert(mode)
    path = save(image, tmp_path / f"{mode.replace(';', '')}.png", "PNG")
    assert decode_image(path).shape == (37, 45, 3)


@pytest.mark.parametrize("progressive", [False, True])
@pytest.mark.parametrize("fraction", [0.3, 0.7, 0.97])
def test_jpeg_cut_short_with_its_end_marker_appended_is_truncated(tmp_path, chelsea, progressive, fraction):
    buffer = io.BytesIO()
    Image.fromarray(chelsea).save(buffer, format="JPEG", quality=90, progressive=progressive)
    data = buffer.getvalue()
    (tmp_path / "cut.JPEG").write_bytes(data[: int(len(data) * fraction)] + b"\xff\xd9")
    Image.open(tmp_path / "cut.JPEG").load()  # PIL pads it silently
    with pytest.raises(LabelingError, match="^truncated image file$"):
        decode_image(tmp_path / "cut.JPEG")
