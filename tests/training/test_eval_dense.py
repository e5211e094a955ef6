"""`c2f-train eval --protocol dense`: a linear per-patch head on frozen patch tokens, mIoU."""

from __future__ import annotations

import json

import numpy as np
import torch
from PIL import Image

from datasets_spec import ImageResult, create_store, write_shard
from training.cli import main
from training.eval.config import DenseConfig
from training.eval.dense import DenseHead, score_dense, train_dense
from training.eval.metrics import confusion, segmentation_scores

from .eval_fixtures import eval_argv, export_tiny_encoder

QUIET = ["--set", "run.num_workers=0", "--set", "run.progress=false"]


def _patch_labels_as_a_function_of_features(n: int, seed: int):
    """feats [n, 4, 6] (2 x 2 patches); each cell's label depends on its patch's feature code and
    on the cell's place in the patch: targets [n, 4, 4] (2 x 2 cells per patch)."""
    g = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, 3, (n, 4), generator=g)  # a class per patch
    feats = torch.nn.functional.one_hot(codes, 3).float() * 4 + 0.05 * torch.randn(n, 4, 3, generator=g)
    feats = torch.cat([feats, torch.ones(n, 4, 3)], dim=2)
    cells = codes.view(n, 2, 2, 1, 1).expand(n, 2, 2, 2, 2).clone()
    cells[:, :, :, 0, 0] = 3  # the top-left cell of every patch is class 3
    return feats, cells.permute(0, 1, 3, 2, 4).reshape(n, 4, 4)


def test_miou_is_one_when_labels_are_a_function_of_the_features():
    feats, targets = _patch_labels_as_a_function_of_features(64, seed=0)
    val_feats, val_targets = _patch_labels_as_a_function_of_features(16, seed=1)
    head = train_dense(feats, targets, 4, DenseConfig(epochs=60, batch_size=16, lr=0.05), seed=0)
    scores = score_dense(head, val_feats, val_targets)
    assert scores["miou"] == 1.0 and scores["pixel_accuracy"] == 1.0 and scores["classes_scored"] == 4


def test_the_head_places_each_patchs_cells_in_its_own_block():
    """Patch p = (py, px) of a 2 x 2 grid, output unit a * 2 + b -> map pixel (2 py + a, 2 px + b)."""
    head = DenseHead(dim=4, num_classes=1, cells=2)
    with torch.no_grad():
        head.linear.weight.copy_(torch.eye(4))
        head.linear.bias.zero_()
    patches = (100 * torch.arange(4.0)).view(1, 4, 1) + torch.arange(4.0).view(1, 1, 4)
    expected = torch.zeros(4, 4)
    for p in range(4):
        for a in range(2):
            for b in range(2):
                expected[2 * (p // 2) + a, 2 * (p % 2) + b] = 100 * p + 2 * a + b
    assert torch.equal(head(patches)[0, 0], expected)


def test_segmentation_scores_ignore_unlabelled_pixels():
    target = torch.tensor([[0, 0, 1, -1]])
    conf = confusion(torch.tensor([[0, 1, 1, 0]]), target, 2)
    scores = segmentation_scores(conf)
    assert conf.sum() == 3 and abs(scores["pixel_accuracy"] - 2 / 3) < 1e-9
    assert abs(scores["miou"] - (1 / 2 + 1 / 2) / 2) < 1e-9


def _store_with_images(root, name: str, count: int, seed: int):
    """Images whose left half is red and right half blue (or swapped), labels = colour (S = 32)."""
    rng = np.random.default_rng(seed)
    images = root / f"{name}_images"
    images.mkdir(parents=True)
    keys, semantics = [], []
    for i in range(count):
        flip = bool(rng.integers(2))
        semantic = np.zeros((32, 32), np.uint16)
        semantic[:, 16:] = 1
        if flip:
            semantic = 1 - semantic
        rgb = np.where(semantic[..., None] == 0, [220, 30, 30], [30, 30, 220]).astype(np.uint8)
        Image.fromarray(rgb).save(images / f"{i:03d}.png")
        keys.append(f"{i:03d}.png")
        semantics.append(semantic)
    store = root / f"{name}_store"
    create_store(store, keys, [-1] * count, label_space={0: "red", 1: "blue"}, canvas=32, shard_size=count)
    write_shard(
        store,
        0,
        [
            ImageResult(semantic=s, instance=np.zeros((32, 32), np.uint16), orig_hw=(32, 32), records=[])
            for s in semantics
        ],
    )
    return images, store


def test_dense_command_scores_against_a_store(tmp_path):
    encoder = export_tiny_encoder(tmp_path / "encoder")
    train_images, train_store = _store_with_images(tmp_path, "train", 8, seed=0)
    val_images, val_store = _store_with_images(tmp_path, "val", 4, seed=1)
    # one DataLoader worker: it reads the store that this process opened (no fork: tensorstore)
    assert (
        main(
            [
                *eval_argv(encoder, "dense", train_images, val_images),
                "--out",
                str(tmp_path / "out"),
                "--set",
                "run.num_workers=1",
                "--set",
                "run.progress=false",
                "--set",
                f"dense.train_labels={train_store}",
                "--set",
                f"dense.val_labels={val_store}",
                "--set",
                "dense.epochs=40",
                "--set",
                "dense.lr=0.01",
            ]
        )
        == 0
    )
    result = json.loads((tmp_path / "out" / "dense.json").read_text())
    assert result["num_classes"] == 2 and result["label_space"] == {"0": "red", "1": "blue"}
    assert (result["num_train"], result["num_val"]) == (8, 4)
    assert result["metrics"]["pixel_accuracy"] > 0.9  # colour is visible in every patch token


def test_dense_with_a_store_of_other_images_is_one_line(tmp_path, capsys):
    encoder = export_tiny_encoder(tmp_path / "encoder")
    _, store = _store_with_images(tmp_path, "train", 4, seed=0)
    code = main(
        [
            *eval_argv(encoder, "dense", tmp_path, tmp_path),
            *QUIET,
            "--set",
            f"dense.train_labels={store}",
            "--set",
            f"dense.val_labels={store}",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "is not an image under" in err
