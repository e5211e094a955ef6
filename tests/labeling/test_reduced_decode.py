"""A JPEG above the pixel limit is labeled on a reduced (DCT-domain) decode: labels at the canvas
resolution as for a whole decode, records at the true resolution, orig_hw the true size. Other
formats above the limit still fail before any pixel is decoded."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from PIL import Image
from skimage import data

from datasets_spec import create_store, open_store
from datasets_spec.geometry import fit, labels_to_canvas, resize_labels
from datasets_spec.records import encode_rle
from datasets_spec.validate import validate
from labeling.backends.base import Instances
from labeling.config import LabelConfig
from labeling.decode import decode_for_labels
from labeling.errors import LabelingError
from labeling.fusion import fuse
from labeling.reduced_records import upsampled_fields
from labeling.sources import list_images
from labeling.worker import ShardLabeler
from training.data import DataConfig, build_dataset


@pytest.mark.parametrize(
    "shape, orig_hw", [((7, 9), (13, 20)), ((30, 17), (61, 35)), ((5, 5), (5, 5)), ((12, 40), (95, 318))]
)
def test_upsampled_fields_equal_those_of_the_upsampled_mask(shape, orig_hw):
    rng = np.random.default_rng(sum(shape))
    for density in (0.05, 0.5, 0.95):
        mask = rng.random(shape) < density
        mask[0, 0] = density > 0.5  # both first-pixel values occur
        if not mask.any():
            mask[-1, -1] = True
        edges = [np.zeros(shape, bool) for _ in range(4)]
        edges[0][0, 0] = edges[1][-1, -1] = edges[2][1:-1, 1:-1] = True
        edges[3][:] = True
        for one in [mask, *edges] if density == 0.5 else [mask]:
            if not one.any():
                continue
            full = resize_labels(one.astype(np.uint8), *orig_hw).astype(bool)
            fields = upsampled_fields(one, orig_hw)
            assert fields["rle"] == encode_rle(full)
            assert fields["area"] == int(full.sum())
            assert fields["box"] == _box(full)


def test_labels_of_a_reduced_decode_reach_the_canvas_as_if_upsampled_first():
    labels = np.random.default_rng(1).integers(0, 9, (37, 50)).astype(np.uint16)
    for orig_hw in ((37, 50), (74, 100), (290, 397), (148, 199)):
        upsampled = resize_labels(labels, *orig_hw)
        assert np.array_equal(labels_to_canvas(labels, 64, 0, orig_hw), labels_to_canvas(upsampled, 64, 0))


def test_fusion_on_reduced_masks_equals_fusion_on_the_upsampled_masks():
    reduced_hw, orig_hw, canvas = (40, 60), (157, 239), 64
    masks = np.zeros((3, *reduced_hw), bool)
    masks[0, 2:20, 3:30] = True
    masks[1, 25:38, 10:50] = True
    masks[2, 5:15, 40:58] = True
    scores = np.array([0.9, 0.8, 0.7], np.float32)
    semantic = np.random.default_rng(2).integers(-1, 4, fit(*orig_hw, canvas)).astype(np.int32)
    reduced = fuse(semantic, Instances(masks, scores, ["a", "b", "c"], "test"), orig_hw, canvas, 4, image_hw=reduced_hw)
    upsampled = np.stack([resize_labels(m.astype(np.uint8), *orig_hw).astype(bool) for m in masks])
    whole = fuse(semantic, Instances(upsampled, scores, ["a", "b", "c"], "test"), orig_hw, canvas, 4)
    assert reduced.orig_hw == whole.orig_hw == orig_hw
    assert np.array_equal(reduced.semantic, whole.semantic) and np.array_equal(reduced.instance, whole.instance)
    assert reduced.records == whole.records and len(reduced.records) == 3


def zeros_png(path, width: int, height: int) -> None:
    Image.new("L", (width, height)).save(path, "PNG")


def test_a_png_above_the_limit_fails_without_decoding_a_pixel(tmp_path):
    path = tmp_path / "big.png"
    zeros_png(path, 6000, 5000)  # 30 MP of real, highly compressible pixel data (~30 KB)
    tracemalloc.start()
    try:
        decode_for_labels(path, 1_000_000, 64)
        reason = None
    except LabelingError as err:
        reason = str(err)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < 2_000_000, peak  # decoding it takes 30 MB (grey) + 90 MB (RGB)
    assert reason == "image too large (6000×5000 = 30 MP > 1 MP)"


def test_a_jpeg_above_the_limit_decodes_reduced_not_below_the_canvas(tmp_path):
    path = tmp_path / "big.jpg"
    Image.fromarray(data.astronaut()).resize((901, 601)).save(path, quality=92)
    image, orig_hw = decode_for_labels(path, 200_000, 64)
    assert orig_hw == (601, 901) and image.shape == (301, 451, 3)  # 1/2: ceil(601/2) × ceil(901/2)
    image, orig_hw = decode_for_labels(path, 10_000, 64)
    assert orig_hw == (601, 901) and image.shape == (76, 113, 3)  # 1/8
    with pytest.raises(LabelingError, match="image too large"):
        decode_for_labels(path, 10_000, 128)  # 1/8 would be 113 px wide, the canvas needs 128
    with pytest.raises(LabelingError, match="image too large"):
        decode_for_labels(path, 8_000, 64)  # even 1/8 is above the limit


@pytest.fixture(scope="module")
def labeled(tmp_path_factory):
    """(store, images root): a small JPEG, a JPEG above the limit of 200,000 pixels, a PNG above it."""
    root = tmp_path_factory.mktemp("reduced")
    photos = root / "photos"
    photos.mkdir()
    astronaut = Image.fromarray(data.astronaut())
    astronaut.resize((120, 90)).save(photos / "a_small.jpg", quality=92)
    astronaut.resize((901, 601)).save(photos / "b_large.jpg", quality=92)
    zeros_png(photos / "c_huge.png", 6000, 5000)
    images = list_images(photos)
    cfg = LabelConfig(canvas=64, shard_size=3, max_pixels=200_000)
    labeler = ShardLabeler(cfg)
    store = root / "store"
    create_store(
        store,
        [i.key for i in images.items],
        [i.label for i in images.items],
        label_space=labeler.label_space(),
        canvas=64,
        shard_size=3,
        provenance={"job": cfg.identity()},
    )
    summary = labeler.label_shard(str(store), 0, str(images.root), list(images.items))
    return store, images.root, summary


def test_a_jpeg_above_the_limit_is_labeled_at_its_true_size(labeled):
    store, root, summary = labeled
    assert summary["done"] == 2
    assert summary["failures"] == [["c_huge.png", "image too large (6000×5000 = 30 MP > 0.2 MP)"]]
    opened = open_store(store)
    assert opened.keys()[opened.done_indices()].tolist() == ["a_small.jpg", "b_large.jpg"]
    orig_hw, valid_hw = opened.checked_geometry(opened.done_indices())
    assert orig_hw.tolist() == [[90, 120], [601, 901]] and valid_hw[1].tolist() == list(fit(601, 901, 64))
    assert validate(store) == []
    large = [r for r in opened.records(0) if r["key"] == "b_large.jpg"]
    assert large and all(r["rle"]["size"] == [601, 901] for r in large)


def test_the_trainer_reads_a_jpeg_labeled_on_a_reduced_decode(labeled):
    store, root, _ = labeled
    # no draft: only the pixel limit makes decode_crop reduce
    cfg = DataConfig(img_size=32, num_workers=0, scale=(0.05, 1.0), jpeg_draft=False)
    ds = build_dataset(cfg, store, root, seed=0)
    assert ds.max_pixels == 200_000  # the labeler's limit, from the store's job record
    for epoch in range(3):
        batch = ds.__getitems__([(pos, epoch) for pos in range(len(ds))])
        assert [s["image"].shape for s in batch] == [(3, 32, 32)] * 2


def _box(mask: np.ndarray) -> list[float]:
    """bool [H, W], not empty → [x, y, w, h] of its pixels."""
    ys, xs = np.nonzero(mask)
    return [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)]
