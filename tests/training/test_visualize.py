"""The picture grid: a row per image, seven columns, predictions of any supported form; its PNG."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from training.data import DataConfig, build_dataset
from training.models import create_model
from training.visualize import COLUMNS, GAP, HEADER, draw_grid, write_png

from .data_fixtures import make_tiny_store


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    tiny = make_tiny_store(tmp_path_factory.mktemp("vis"))
    ds = build_dataset(DataConfig(img_size=64, num_workers=0), tiny.path, tiny.images, seed=0)
    samples = [ds[(p, 0)] for p in range(len(ds))]
    return {k: torch.stack([s[k] for s in samples]) for k in samples[0]}


def _output(batch: dict, instance_embedding: bool) -> dict:
    """A fake model output for a patch size of 16: [N, 16] mask and stride-4 predictions."""
    n = batch["image"].shape[0]
    gen = torch.Generator().manual_seed(0)
    instance = torch.randn(n, 3, 16, 16, generator=gen) if instance_embedding else batch["instance"][:, ::4, ::4]
    return {
        "mask": (torch.rand(n, 16, generator=gen) > 0.25).float(),
        "pred": {
            "rgb": batch["image"] + 0.1 * torch.randn(batch["image"].shape, generator=gen),
            "semantic": torch.randn(n, 6, 16, 16, generator=gen),
            "instance": instance,
        },
    }


def save_grid(path, batch: dict, out: dict, **options):
    """The grid written as the engine writes it: a PNG of `draw_grid`."""
    return write_png(path, draw_grid(batch, out, **options))


@pytest.mark.parametrize("embedding", [False, True])
def test_grid_has_a_row_per_image_and_seven_columns(batch, tmp_path, embedding):
    grid = draw_grid(batch, _output(batch, embedding), max_images=5)
    path = write_png(tmp_path / "sub" / "grid.png", grid)
    image = cv2.imread(str(path))
    assert image.shape == (HEADER + 5 * (64 + GAP) - GAP, len(COLUMNS) * (64 + GAP) - GAP, 3)
    assert np.array_equal(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), grid)  # the PNG holds the RGB grid


def test_grid_shows_input_and_greys_masked_patches(batch, tmp_path):
    out = _output(batch, False)
    out["mask"][0] = 0
    out["mask"][0, 0] = 1  # only the top-left 16 × 16 patch of the first image is removed
    image = cv2.cvtColor(cv2.imread(str(save_grid(tmp_path / "g.png", batch, out))), cv2.COLOR_BGR2RGB)
    first_input = image[HEADER : HEADER + 64, :64]
    visible = image[HEADER : HEADER + 64, 64 + GAP : 2 * 64 + GAP]
    assert (visible[:16, :16] == 128).all()
    assert np.array_equal(visible[16:], first_input[16:])


def test_missing_predictions_leave_blank_tiles(batch, tmp_path):
    out = {"mask": torch.zeros(batch["image"].shape[0], 16), "pred": {"rgb": batch["image"]}}
    image = cv2.imread(str(save_grid(tmp_path / "mae.png", batch, out, max_images=2)))
    assert image.shape[0] == HEADER + 2 * (64 + GAP) - GAP
    sem_pred = image[HEADER : HEADER + 64, 3 * (64 + GAP) : 3 * (64 + GAP) + 64]
    assert (sem_pred == 220).all()


@pytest.mark.parametrize("mode", ["c2fmae", "mae"])
def test_grid_draws_the_tiny_model_output(batch, tmp_path, mode):
    model = create_model(f"{mode}_vit_tiny_cpu", num_classes=6)
    n = batch["image"].shape[0]
    with torch.no_grad():
        out = model(batch, torch.arange(n) % 3, torch.Generator().manual_seed(0))
    image = cv2.imread(str(save_grid(tmp_path / f"{mode}.png", batch, out, max_images=3)))
    assert image.shape == (HEADER + 3 * (64 + GAP) - GAP, len(COLUMNS) * (64 + GAP) - GAP, 3)
