"""Training data: the store's done images, RGB and masks augmented together, deterministic per item."""

from __future__ import annotations

import pickle

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from datasets_spec import StoreError, open_store
from datasets_spec.geometry import image_to_canvas, labels_from_canvas, resize_labels
from datasets_spec.schema import SEMANTIC_IGNORE
from training.data import DataConfig, build_dataset, loader_kwargs
from training.data.transforms import draw, sample_crop

from .data_fixtures import (
    NUM_CLASSES,
    SIZES,
    decode_colours,
    label_maps,
    make_photo_store,
    make_tiny_store,
    paint,
)

SMALL = dict(img_size=32, num_workers=0)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_store(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def large(tmp_path_factory):
    """Originals 4-6× the canvas side: the canvas is much coarser than the RGB."""
    sizes = [(4 * h, 4 * w) for h, w in SIZES[:4]]
    return make_tiny_store(
        tmp_path_factory.mktemp("large"), num_images=8, shard_size=4, pending_shards=(), failed=(), sizes=sizes
    )


def _rgb(sample, cfg: DataConfig) -> np.ndarray:
    """Normalised image [3, s, s] → [s, s, 3] uint8."""
    image = sample["image"].numpy().transpose(1, 2, 0) * np.array(cfg.std) + np.array(cfg.mean)
    return np.clip(np.round(image * 255), 0, 255).astype(np.uint8)


def _interior(labels: np.ndarray) -> np.ndarray:
    """Pixels whose 5×5 neighbourhood holds one label: away from edges that interpolation blends
    and that two nearest resamplings (original → canvas → crop) may move by a pixel each."""
    shifted = (labels + 2).astype(np.uint8)
    kernel = np.ones((5, 5), np.uint8)
    return (cv2.erode(shifted, kernel) == shifted) & (cv2.dilate(shifted, kernel) == shifted)


def test_serves_only_done_images_in_store_order(tiny):
    ds = build_dataset(DataConfig(**SMALL), tiny.path, tiny.images, seed=0)
    assert len(ds) == len(tiny.done)
    assert [int(ds[(p, 0)]["index"]) for p in range(len(ds))] == tiny.done
    assert ds.num_classes == NUM_CLASSES


def test_sample_matches_the_batch_contract(tiny):
    ds = build_dataset(DataConfig(**SMALL), tiny.path, tiny.images, seed=0)
    sample = ds[(3, 2)]
    assert sample["image"].shape == (3, 32, 32) and sample["image"].dtype == torch.float32
    for name in ("semantic", "instance"):
        assert sample[name].shape == (32, 32) and sample[name].dtype == torch.int64
    assert sample["index"].shape == () and sample["index"].dtype == torch.int64


@pytest.mark.parametrize("store", ["tiny", "large"])
@pytest.mark.parametrize("scale", [0.2, 0.5, 1.0])
@pytest.mark.parametrize("hflip", [0.0, 1.0])
def test_image_colours_agree_with_semantic_after_crop_and_flip(request, store, scale, hflip):
    data = request.getfixturevalue(store)
    cfg = DataConfig(img_size=32, num_workers=0, scale=(scale, scale), hflip=hflip)
    ds = build_dataset(cfg, data.path, data.images, seed=1)
    for pos in range(len(ds)):
        for epoch in range(3):
            sample = ds[(pos, epoch)]
            semantic = sample["semantic"].numpy()
            inner = _interior(semantic)
            assert inner.mean() > 0.3
            assert (decode_colours(_rgb(sample, cfg))[inner] == semantic[inner]).mean() >= 0.99, (pos, epoch)


@pytest.mark.parametrize("hflip", [0.0, 1.0])
def test_masks_are_the_box_of_the_label_maps_at_original_resolution(large, hflip):
    """Through the store's geometry: canvas → original (labels_from_canvas), then the box, nearest."""
    cfg = DataConfig(img_size=24, num_workers=0, hflip=hflip)
    ds = build_dataset(cfg, large.path, large.images, seed=2)
    store = open_store(large.path)
    for pos in range(len(ds)):
        index, (height, width) = int(ds.indices[pos]), ds.orig_hw[pos]
        view = store.read(index)
        (top, left, h, w), flip = draw(np.random.default_rng([2, 4, index]), (height, width), cfg)
        assert flip == bool(hflip)
        sample = ds[(pos, 4)]
        for name, canvas in (("semantic", view.semantic), ("instance", view.instance)):
            original = labels_from_canvas(canvas, height, width)
            expected = resize_labels(original[top : top + h, left : left + w], 24, 24).astype(np.int64)
            expected[expected == SEMANTIC_IGNORE] = -1
            expected = expected[:, ::-1] if flip else expected
            assert np.array_equal(sample[name].numpy(), expected), (pos, name)


def test_full_crop_without_flip_is_the_decoded_original(tmp_path):
    """Canvas = image size, so the store holds the label maps as painted: the sample must equal them
    (expectation from the fixture's own generator, not from the functions under test)."""
    data = make_tiny_store(
        tmp_path, num_images=1, shard_size=1, canvas=90, sizes=[(90, 90)], pending_shards=(), failed=()
    )
    semantic, instance = label_maps(np.random.default_rng(0), 90, 90)  # what make_tiny_store drew
    cfg = DataConfig(img_size=90, scale=(1.0, 1.0), ratio=(1.0, 1.0), hflip=0.0, num_workers=0)
    sample = build_dataset(cfg, data.path, data.images, seed=0)[(0, 5)]
    assert np.array_equal(_rgb(sample, cfg), paint(semantic))  # PNG: lossless
    expected = np.where(semantic == SEMANTIC_IGNORE, -1, semantic.astype(np.int64))
    assert (expected == -1).any() and np.array_equal(sample["semantic"].numpy(), expected)
    assert np.array_equal(sample["instance"].numpy(), instance.astype(np.int64))


def test_crops_never_see_padding(tiny):
    """The box lies in the original image: no letterbox padding (instance -1) at any crop or aspect."""
    cfg = DataConfig(img_size=32, num_workers=0, scale=(0.2, 1.0), ratio=(0.1, 10.0))
    ds = build_dataset(cfg, tiny.path, tiny.images, seed=0)
    for pos in range(len(ds)):
        for epoch in range(4):
            assert (ds[(pos, epoch)]["instance"] >= 0).all()


def grating(height: int, width: int, period: float) -> np.ndarray:
    """[H, W, 3] uint8 vertical stripes of `period` pixels, full contrast."""
    wave = 127.5 + 127.5 * np.sin(2 * np.pi * np.arange(width) / period)
    return np.broadcast_to(np.round(wave).astype(np.uint8)[None, :, None], (height, width, 3)).copy()


def test_rgb_is_cut_from_the_original_not_the_canvas(tmp_path):
    """A grating too fine for the 64-px canvas survives in the crop: the RGB is PIL crop + bicubic
    resize of the original, to rounding, where the old canvas path gives a nearly flat image."""
    data = make_photo_store(tmp_path, [grating(1200, 1600, period=24.0)], canvas=64)
    cfg = DataConfig(img_size=96, num_workers=0, scale=(0.2, 0.3), hflip=0.0, jpeg_draft=False)
    ds = build_dataset(cfg, data.path, data.images, seed=0)
    original = Image.open(data.images / data.keys[0]).convert("RGB")
    canvas = image_to_canvas(np.asarray(original), 64)
    for epoch in range(4):
        top, left, h, w = draw(np.random.default_rng([0, epoch, 0]), (1200, 1600), cfg)[0]
        rgb = _rgb(ds[(0, epoch)], cfg).astype(int)
        direct = np.asarray(original.crop((left, top, left + w, top + h)).resize((96, 96), Image.BICUBIC))
        assert np.abs(rgb - direct).max() <= 1
        c = [round(v * 64 / 1600) for v in (top, left, h, w)]  # the same box on the old canvas
        old = cv2.resize(canvas[c[0] : c[0] + c[2], c[1] : c[1] + c[3]], (96, 96), interpolation=cv2.INTER_LINEAR)
        assert rgb.std() > 60 and rgb.std() > 8 * old.std()


def test_same_item_same_sample_other_epoch_or_seed_differs(tiny):
    cfg = DataConfig(**SMALL)
    ds = build_dataset(cfg, tiny.path, tiny.images, seed=0)
    again = build_dataset(cfg, tiny.path, tiny.images, seed=0)
    other_seed = build_dataset(cfg, tiny.path, tiny.images, seed=5)
    first, repeat = ds[(2, 3)], again[(2, 3)]
    for name in first:
        assert torch.equal(first[name], repeat[name])
    assert not torch.equal(first["image"], ds[(2, 4)]["image"])
    assert not torch.equal(first["image"], other_seed[(2, 3)]["image"])


def test_a_batch_gives_the_same_samples_as_single_items(tiny):
    ds = build_dataset(DataConfig(**SMALL), tiny.path, tiny.images, seed=0)
    items = [(p, 7) for p in reversed(range(len(tiny.done)))]
    for a, b in zip(ds.__getitems__(items), [ds[item] for item in items]):
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_two_dataloader_workers_match_in_process(tiny):
    cfg = DataConfig(img_size=32, num_workers=2, prefetch_factor=1)
    ds = build_dataset(cfg, tiny.path, tiny.images, seed=3)
    items = [(p, 1) for p in range(len(ds))]
    loader = DataLoader(ds, batch_size=3, sampler=items, **loader_kwargs(cfg))
    batches = list(loader)
    expected = [ds[item] for item in items]
    got = {k: torch.cat([b[k] for b in batches]) for k in expected[0]}
    for k in expected[0]:
        assert torch.equal(got[k], torch.stack([e[k] for e in expected]))


def test_pickled_dataset_reopens_the_store_itself(tiny):
    ds = build_dataset(DataConfig(**SMALL), tiny.path, tiny.images, seed=0)
    first = ds[(1, 0)]
    copy = pickle.loads(pickle.dumps(ds))
    assert copy._store is None
    assert torch.equal(copy[(1, 0)]["image"], first["image"])


def test_in_process_loader_kwargs(tiny):
    cfg = DataConfig(**SMALL)
    ds = build_dataset(cfg, tiny.path, tiny.images, seed=0)
    batch = next(iter(DataLoader(ds, batch_size=4, sampler=[(p, 0) for p in range(4)], **loader_kwargs(cfg))))
    assert batch["image"].shape == (4, 3, 32, 32) and batch["index"].tolist() == tiny.done[:4]


def test_missing_image_key_names_it(tiny, tmp_path):
    partial = tmp_path / "images"
    for key in tiny.keys[:3]:
        (partial / key).parent.mkdir(parents=True, exist_ok=True)
        (partial / key).write_bytes((tiny.images / key).read_bytes())
    missing = next(k for k in (tiny.keys[i] for i in tiny.done) if not (partial / k).exists())
    with pytest.raises(ValueError, match=f"'{missing}'"):
        build_dataset(DataConfig(**SMALL), tiny.path, partial, seed=0)
    with pytest.raises(ValueError, match="not a directory"):
        build_dataset(DataConfig(**SMALL), tiny.path, tmp_path / "nowhere", seed=0)


def test_store_without_done_images_is_an_error(tmp_path):
    empty = make_tiny_store(tmp_path, num_images=4, shard_size=2, pending_shards=(0, 1), failed=())
    with pytest.raises(StoreError, match="no done images"):
        build_dataset(DataConfig(**SMALL), empty.path, empty.images, seed=0)


def test_image_of_another_size_than_labeled_is_an_error(tiny, tmp_path):
    images = tmp_path / "images"
    for key in tiny.keys:
        (images / key).parent.mkdir(parents=True, exist_ok=True)
        (images / key).write_bytes((tiny.images / key).read_bytes())
    key = tiny.keys[tiny.done[0]]
    cv2.imwrite(str(images / key), np.zeros((10, 12, 3), np.uint8))
    ds = build_dataset(DataConfig(**SMALL), tiny.path, images, seed=0)
    with pytest.raises(StoreError, match=f"{key}: image is 10×12, not the .* it was labeled at"):
        ds[(0, 0)]


def test_random_resized_crop_stays_inside_and_falls_back_to_centre():
    rng = np.random.default_rng(0)
    for _ in range(500):
        top, left, h, w = sample_crop(rng, 30, 50, (0.2, 1.0), (3 / 4, 4 / 3))
        assert 0 <= top and top + h <= 30 and 0 <= left and left + w <= 50
        assert 0.2 * 1500 * 0.9 <= h * w <= 1500
    # A 2 × 100 strip cannot hold any sampled box: the fallback is the centred, ratio-clamped box.
    assert sample_crop(rng, 2, 100, (0.2, 1.0), (3 / 4, 4 / 3)) == (0, 48, 2, 3)


def test_config_accepts_yaml_lists_and_rejects_bad_values():
    assert DataConfig(scale=[0.3, 1]).scale == (0.3, 1.0)
    with pytest.raises(ValueError, match="data.scale"):
        DataConfig(scale=(0.5, 0.2))
    with pytest.raises(ValueError, match="hflip"):
        DataConfig(hflip=2)
