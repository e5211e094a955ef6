"""The one image decoder (labeler and trainer): orientation, crops, JPEG draft, errors.

The decoding rules per image mode are tested through the labeler in tests/labeling/test_decode.py.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageOps
from skimage import data

from datasets_spec import StoreError
from datasets_spec.decode import ImageDecodeError, decode_crop, decode_image

STORED_HW = (1533, 2051)  # odd sizes: JPEG reductions leave partial blocks on both axes


@pytest.fixture(scope="module")
def oriented_jpegs(tmp_path_factory) -> dict:
    """{orientation: path} of one detailed photo stored 1533 × 2051, EXIF orientation 1..8."""
    root = tmp_path_factory.mktemp("oriented")
    photo = Image.fromarray(data.astronaut()).resize(STORED_HW[::-1], Image.BICUBIC)
    paths = {}
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = orientation
        paths[orientation] = root / f"o{orientation}.jpg"
        photo.save(paths[orientation], "JPEG", quality=92, exif=exif.tobytes())
    return paths


def oriented_hw(orientation: int) -> tuple[int, int]:
    return STORED_HW if orientation < 5 else STORED_HW[::-1]


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_is_applied_as_pil_exif_transpose_does(oriented_jpegs, orientation):
    path = oriented_jpegs[orientation]
    reference = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
    whole = decode_image(path)
    assert reference.shape[:2] == oriented_hw(orientation)
    assert np.array_equal(whole, reference)
    height, width = oriented_hw(orientation)
    assert np.array_equal(decode_crop(path, (0, 0, height, width), (height, width), (height, width)), whole)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_crop_is_pil_crop_and_bicubic_resize_of_the_oriented_image(oriented_jpegs, orientation):
    """Exactly what torchvision's RandomResizedCrop(bicubic) does to the oriented PIL image."""
    path = oriented_jpegs[orientation]
    oriented = Image.fromarray(decode_image(path))
    top, left, height, width = 101, 333, 900, 700
    direct = np.asarray(oriented.crop((left, top, left + width, top + height)).resize((96, 80), Image.BICUBIC))
    crop = decode_crop(path, (top, left, height, width), (80, 96), oriented_hw(orientation), draft=False)
    assert crop.shape == (80, 96, 3)
    assert np.array_equal(crop, direct)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_jpeg_draft_stays_close_to_the_full_decode(oriented_jpegs, orientation):
    """Boxes at the corners and the middle, reductions 8, 4 and 2: same picture to within a small
    mean difference (a shift of half a reduced pixel gives a mean of ~6.5 here)."""
    path = oriented_jpegs[orientation]
    height, width = oriented_hw(orientation)
    boxes = [
        (3, 5, 1500, 1400),
        (401, 333, 900, 1000),
        (height - 1100, width - 1200, 1100, 1200),
        (height - 300, 0, 300, 300),
    ]
    for box in boxes:
        full = decode_crop(path, box, (128, 128), (height, width), draft=False).astype(int)
        drafted = decode_crop(path, box, (128, 128), (height, width), draft=True).astype(int)
        diff = np.abs(full - drafted)
        assert diff.mean() < 2.5 and np.percentile(diff, 99) < 20, box
        assert diff.max() > 0  # the reduction did happen


def test_no_draft_when_the_reduced_box_would_be_smaller_than_the_output(oriented_jpegs):
    path = oriented_jpegs[1]
    box = (10, 10, 255, 300)  # 255 < 2 × 128 rows
    assert np.array_equal(
        decode_crop(path, box, (128, 128), STORED_HW, draft=True),
        decode_crop(path, box, (128, 128), STORED_HW, draft=False),
    )


def test_a_file_of_another_size_than_expected_is_refused(oriented_jpegs):
    with pytest.raises(ImageDecodeError, match=r"o6.jpg: image is 2051×1533, not the 1533×2051 it was labeled at"):
        decode_crop(oriented_jpegs[6], (0, 0, 10, 10), (5, 5), STORED_HW)


def test_a_box_outside_the_image_is_a_value_error(oriented_jpegs):
    with pytest.raises(ValueError, match="does not lie in"):
        decode_crop(oriented_jpegs[1], (1500, 0, 100, 100), (10, 10), STORED_HW)


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
def test_unreadable_exif_leaves_the_image_as_stored(tmp_path):
    pixels = np.zeros((20, 30, 3), np.uint8)
    pixels[:, :10] = 255
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=95)
    jpeg = buffer.getvalue()
    garbage = b"Exif\x00\x00MM\x00\x2a\x00\x00\x00\x08\xff\xff" + b"\x01" * 20  # IFD of 65535 entries
    segment = b"\xff\xe1" + (len(garbage) + 2).to_bytes(2, "big") + garbage
    (tmp_path / "bad_exif.jpg").write_bytes(jpeg[:2] + segment + jpeg[2:])
    out = decode_image(tmp_path / "bad_exif.jpg")
    assert out.shape == (20, 30, 3) and out[:, :8].min() > 200 and out[:, 12:].max() < 50
    assert np.array_equal(decode_crop(tmp_path / "bad_exif.jpg", (0, 0, 20, 30), (20, 30), (20, 30)), out)


def test_errors_carry_a_short_reason_and_name_the_file(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(ImageDecodeError) as caught:
        decode_image(tmp_path / "empty.jpg")
    assert caught.value.reason == "empty file" and isinstance(caught.value, StoreError)
    assert str(caught.value) == f"cannot read image {tmp_path / 'empty.jpg'}: empty file"
    buffer = io.BytesIO()
    Image.fromarray(data.astronaut()).save(buffer, "JPEG")
    (tmp_path / "cut.jpg").write_bytes(buffer.getvalue()[:5000])
    for decode in (decode_image, lambda p: decode_crop(p, (0, 0, 512, 512), (64, 64), (512, 512))):
        with pytest.raises(ImageDecodeError) as caught:
            decode(tmp_path / "cut.jpg")
        assert caught.value.reason == "truncated image file" and "cut.jpg" in str(caught.value)


@pytest.mark.parametrize("error", [PermissionError(13, "Permission denied"), OSError(5, "Input/output error")])
def test_a_read_the_file_system_refuses_keeps_its_own_reason_and_is_retryable(tmp_path, monkeypatch, error):
    from datasets_spec.decode import retryable

    path = tmp_path / "a.png"
    Image.new("RGB", (4, 4)).save(path)

    def refuse(*args, **kwargs):
        raise error

    monkeypatch.setattr(Image, "open", refuse)
    with pytest.raises(ImageDecodeError) as caught:
        decode_image(path)
    assert caught.value.reason == f"cannot read file ({error.strerror})"
    assert retryable(caught.value.reason)
    assert not retryable("truncated image file") and not retryable("corrupt image data (x)")
