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
from datasets_spec.geometry import image_to_canvas
from datasets_spec.schema import SEMANTIC_IGNORE
from training.data import DataConfig, build_dataset, loader_kwargs
from training.data.images import load_rgb
from training.data.transforms import augment, sample_crop

from .data_fixtures import NUM_CLASSES, decode_colours, make_tiny_store, paint

SMALL = dict(img_size=32, num_workers=0)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_store(tmp_path_factory.mktemp("tiny"))


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


def test_image_colours_agree_with_semantic_after_crop_and_flip(tiny):
    cfg = DataConfig(**SMALL)
    ds = build_dataset(cfg, tiny.path, tiny.images, seed=1)
    checked = 0
    for pos in range(len(ds)):
        for epoch in range(4):
            sample = ds[(pos, epoch)]
            semantic = sample["semantic"].numpy()
            colours = decode_colours(_rgb(sample, cfg))
            inner = _interior(semantic)
            assert (colours[inner] == semantic[inner]).mean() > 0.99
            flipped = semantic[:, ::-1]
            inner_flip = inner & _interior(flipped)
            if (semantic[inner_flip] != flipped[inner_flip]).mean() > 0.2:  # asymmetric: flips show
                assert (colours[inner_flip] == flipped[inner_flip]).mean() < 0.9
                checked += 1
    assert checked > 5


def test_instance_map_is_cropped_and_flipped_like_semantic():
    rng = np.random.default_rng(0)
    semantic = np.full((64, 64), SEMANTIC_IGNORE, np.uint16)
    semantic[:40, :50] = rng.integers(0, 5, (4, 5)).repeat(10, 0).repeat(10, 1)
    instance = np.zeros((64, 64), np.uint16)
    instance[:40, :50] = semantic[:40, :50] + 1
    cfg = DataConfig(img_size=24, crop_within_valid=False, scale=(0.5, 1.0))
    for seed in range(20):
        _, sem, inst = augment(paint(semantic), semantic, instance, (40, 50), cfg,
                               np.random.default_rng(seed))
        assert np.array_equal(inst, np.where(sem >= 0, sem + 1, -1))


def test_full_crop_without_flip_is_the_canvas_itself(tiny):
    cfg = DataConfig(img_size=64, scale=(1.0, 1.0), ratio=(1.0, 1.0), hflip=0.0, num_workers=0)
    ds = build_dataset(cfg, tiny.path, tiny.images, seed=0)
    pos = next(p for p in range(len(ds)) if tuple(ds.valid_hw[p]) == (64, 64))  # a square image
    view = open_store(tiny.path).read(int(ds.indices[pos]))
    sample = ds[(pos, 5)]
    canvas = image_to_canvas(load_rgb(ds.image_path(pos)), 64)
    assert np.array_equal(_rgb(sample, cfg), canvas)
    expected = np.where(view.semantic == SEMANTIC_IGNORE, -1, view.semantic.astype(np.int64))
    assert np.array_equal(sample["semantic"].numpy(), expected)
    assert np.array_equal(sample["instance"].numpy(), view.instance.astype(np.int64))


def test_padding_becomes_ignore_in_both_masks(tiny):
    whole = DataConfig(img_size=64, crop_within_valid=False, scale=(1.0, 1.0), ratio=(1.0, 1.0),
                       hflip=0.0, num_workers=0)
    ds = build_dataset(whole, tiny.path, tiny.images, seed=0)
    for pos in range(len(ds)):
        sample = ds[(pos, 0)]
        h, w = ds.valid_hw[pos]
        inside = np.zeros((64, 64), bool)
        inside[:h, :w] = True
        assert (sample["instance"].numpy()[~inside] == -1).all()
        assert (sample["semantic"].numpy()[~inside] == -1).all()
        assert (sample["instance"].numpy()[inside] >= 0).all()


def test_crops_within_valid_region_never_see_padding(tiny):
    ds = build_dataset(DataConfig(**SMALL), tiny.path, tiny.images, seed=0)
    for pos in range(len(ds)):
        for epoch in range(3):
            assert (ds[(pos, epoch)]["instance"] >= 0).all()


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
    with pytest.raises(ValueError, match="labeled at"):
        ds[(0, 0)]


def test_random_resized_crop_stays_inside_and_falls_back_to_centre():
    rng = np.random.default_rng(0)
    for _ in range(500):
        top, left, h, w = sample_crop(rng, 30, 50, (0.2, 1.0), (3 / 4, 4 / 3))
        assert 0 <= top and top + h <= 30 and 0 <= left and left + w <= 50
        assert 0.2 * 1500 * 0.9 <= h * w <= 1500
    # A 2 × 100 strip cannot hold any sampled box: the fallback is the centred, ratio-clamped box.
    assert sample_crop(rng, 2, 100, (0.2, 1.0), (3 / 4, 4 / 3)) == (0, 48, 2, 3)


def test_load_rgb_applies_exif_orientation_and_converts_modes(tmp_path):
    stored = np.zeros((20, 30, 3), np.uint8)
    stored[:, :10] = 255
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    Image.fromarray(stored).save(tmp_path / "rot.jpg", exif=exif, quality=95)
    assert load_rgb(tmp_path / "rot.jpg").shape == (30, 20, 3)
    Image.fromarray(np.full((5, 6), 7, np.uint8)).save(tmp_path / "gray.png")
    Image.fromarray(np.zeros((5, 6, 4), np.uint8)).save(tmp_path / "rgba.png")
    Image.fromarray(np.zeros((5, 6, 3), np.uint8)).convert("CMYK").save(tmp_path / "cmyk.jpg")
    cv2.imwrite(str(tmp_path / "deep.png"), np.full((5, 6), 65535, np.uint16))
    for name in ("gray.png", "rgba.png", "cmyk.jpg", "deep.png"):
        rgb = load_rgb(tmp_path / name)
        assert rgb.shape == (5, 6, 3) and rgb.dtype == np.uint8
    assert (load_rgb(tmp_path / "deep.png") == 255).all()
    assert (load_rgb(tmp_path / "gray.png") == 7).all()
    with pytest.raises(ValueError, match="cannot read image"):
        load_rgb(tmp_path / "absent.png")


def test_config_accepts_yaml_lists_and_rejects_bad_values():
    assert DataConfig(scale=[0.3, 1]).scale == (0.3, 1.0)
    with pytest.raises(ValueError, match="data.scale"):
        DataConfig(scale=(0.5, 0.2))
    with pytest.raises(ValueError, match="data.hflip"):
        DataConfig(hflip=2)
