"""The trainer sees the pixels the labeler labeled: the quirky image set, labeled, then read for training."""

from __future__ import annotations

import numpy as np
import pytest

from datasets_spec import create_store, open_store
from labeling.config import LabelConfig
from labeling.decode import decode_image
from labeling.sources import list_images
from labeling.worker import ShardLabeler
from training.data import DataConfig, build_dataset

from ..labeling.quirky import BAD, make_quirky_imagenet

pytestmark = pytest.mark.slow  # labels a 24-megapixel photo among others: ~10 s


@pytest.fixture(scope="module")
def labeled(tmp_path_factory):
    """(store path, images root, {key: (H, W)} of the good images), labeled in-process (no Ray)."""
    root = tmp_path_factory.mktemp("quirky")
    good = make_quirky_imagenet(root / "imagenet")
    images = list_images(root / "imagenet")
    labeler = ShardLabeler(LabelConfig(canvas=64, shard_size=4))
    store = root / "store"
    layout = create_store(
        store,
        [i.key for i in images.items],
        [i.label for i in images.items],
        label_space=labeler.label_space(),
        canvas=64,
        shard_size=4,
    )
    for shard in range(layout.num_shards):
        labeler.label_shard(str(store), shard, str(images.root), list(images.items[slice(*layout.shard_range(shard))]))
    return store, images.root, good


def test_the_quirky_set_labels_as_expected(labeled):
    store, _, good = labeled
    opened = open_store(store)
    done = set(opened.keys()[opened.done_indices()].tolist())
    assert done == set(good) and not done & set(BAD)


def test_training_full_image_rgb_equals_the_labelers_pixel_for_pixel(labeled):
    store, root, good = labeled
    ds = build_dataset(DataConfig(img_size=32, num_workers=0), store, root, seed=0)
    assert len(ds) == len(good)
    for pos in range(len(ds)):
        height, width = (int(v) for v in ds.orig_hw[pos])
        labeler_rgb = decode_image(ds.image_path(pos))
        assert labeler_rgb.shape == (height, width, 3)
        assert np.array_equal(ds.rgb(pos, (0, 0, height, width), (height, width)), labeler_rgb), ds.image_path(pos)


def test_no_image_labeled_done_fails_to_load_in_training(labeled):
    store, root, good = labeled
    ds = build_dataset(DataConfig(img_size=32, num_workers=0, scale=(0.05, 1.0)), store, root, seed=0)
    for epoch in range(4):
        batch = ds.__getitems__([(pos, epoch) for pos in range(len(ds))])
        assert all(sample["image"].shape == (3, 32, 32) for sample in batch)
        assert all(bool(np.isfinite(sample["image"].numpy()).all()) for sample in batch)


def test_gpu_decode_mode_gives_the_cpu_modes_masks_and_nearly_its_rgb(labeled):
    """data.decode: gpu run on the CPU over every labeled quirky image: same masks, RGB within
    tests/training/rgb_tolerance.py's tolerance (levels 0..255)."""
    import torch
    from torch.utils.data import default_collate

    from training.data.gpu_decode import collate, decode_batch

    from .rgb_tolerance import RGB_MAX_DIFF, RGB_MEAN_DIFF, level_diff

    store, root, _ = labeled
    common = {"img_size": 32, "num_workers": 0, "jpeg_draft": False, "scale": (0.05, 1.0)}
    cpu_ds, gpu_cfg = build_dataset(DataConfig(**common), store, root, seed=0), DataConfig(**common, decode="gpu")
    items = [(pos, epoch) for epoch in range(2) for pos in range(len(cpu_ds))]
    cpu = default_collate(cpu_ds.__getitems__(items))
    raw = collate(build_dataset(gpu_cfg, store, root, seed=0).__getitems__(items))
    gpu = decode_batch(raw, torch.device("cpu"), gpu_cfg)
    assert 0 < len(raw["rgb_at"]) < len(items)  # CMYK and PNG files stay on the CPU, the rest do not
    assert all(torch.equal(gpu[k], cpu[k]) for k in ("semantic", "instance", "index"))
    diff = level_diff(gpu["image"], cpu["image"], gpu_cfg.std)
    assert diff.max() <= RGB_MAX_DIFF and diff.mean() <= RGB_MEAN_DIFF, (diff.max(), diff.mean())
