import numpy as np
import pytest

from datasets_spec.geometry import fit, image_to_canvas, labels_from_canvas, labels_to_canvas


@pytest.mark.parametrize(
    "hw, canvas, expected",
    [
        ((375, 500), 256, (192, 256)),
        ((500, 375), 256, (256, 192)),
        ((256, 256), 256, (256, 256)),
        ((5, 7), 256, (183, 256)),
        ((4000, 6000), 256, (171, 256)),
        ((1, 1000), 256, (1, 256)),
    ],
)
def test_fit_keeps_aspect_and_longer_side(hw, canvas, expected):
    assert fit(*hw, canvas) == expected


def test_fit_rejects_empty_size():
    with pytest.raises(ValueError):
        fit(0, 10, 256)


@pytest.mark.parametrize("hw", [(7, 5), (5, 7), (31, 17), (64, 64), (3, 1), (100, 37)])
def test_upscaled_labels_map_back_exactly(hw):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 50, hw).astype(np.uint16)
    canvas = labels_to_canvas(labels, 128, pad_value=65535)
    assert np.array_equal(labels_from_canvas(canvas, *hw), labels)


def test_canvas_padding_and_valid_region():
    labels = np.ones((300, 200), np.uint16)
    canvas = labels_to_canvas(labels, 64, pad_value=65535)
    h, w = fit(300, 200, 64)
    assert (h, w) == (64, 43)
    assert (canvas[:h, :w] == 1).all() and (canvas[:, w:] == 65535).all()


def test_downscaled_labels_follow_pixel_centres():
    labels = np.repeat(np.arange(8, dtype=np.uint16), 4)[None, :].repeat(32, 0)  # 8 stripes of 4 px
    canvas = labels_to_canvas(labels, 8, pad_value=0)
    assert np.array_equal(canvas[0], np.arange(8))


def test_image_to_canvas_shape_and_padding():
    image = np.full((60, 30, 3), 200, np.uint8)
    out = image_to_canvas(image, 32)
    assert out.shape == (32, 32, 3) and (out[:, :16] == 200).all() and (out[:, 16:] == 0).all()
