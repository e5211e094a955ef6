"""`c2f-train eval --protocol knn`: DINO's weighted k-NN, folder layouts, foreign timm encoders."""

from __future__ import annotations

import json
import shutil

import pytest
import timm
import torch

from training.cli import main
from training.eval.config import KnnConfig
from training.eval.knn import knn_scores
from training.eval.metrics import topk_accuracy

from .eval_fixtures import eval_argv, export_tiny_encoder, labeled_folders
from .worker_processes import workers_left_by

QUIET = ["--set", "run.num_workers=0", "--set", "run.progress=false"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    return labeled_folders(tmp_path_factory.mktemp("folders"))


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    return export_tiny_encoder(tmp_path_factory.mktemp("encoder") / "encoder")


def test_knn_is_perfect_on_features_that_separate_the_classes():
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(4, 16, generator=g) * 5
    train_y, test_y = torch.arange(4).repeat(10), torch.arange(4).repeat(5)
    train_x = centres[train_y] + 0.1 * torch.randn(40, 16, generator=g)
    test_x = centres[test_y] + 0.1 * torch.randn(20, 16, generator=g)
    scores = knn_scores(train_x, train_y, test_x, 4, KnnConfig(k=20, temperature=0.07))
    assert topk_accuracy(scores, test_y, ks=(1,)) == {"top1": 100.0}


def test_close_neighbours_outvote_many_far_ones():
    """One near neighbour of class 0 beats two far ones of class 1 with exp(sim / T) weights."""
    train_x = torch.tensor([[1.0, 0.0], [0.5, 1.0], [0.5, -1.0]])
    train_y = torch.tensor([0, 1, 1])
    scores = knn_scores(train_x, train_y, torch.tensor([[1.0, 0.05]]), 2, KnnConfig(k=3, temperature=0.07))
    assert scores.argmax().item() == 0
    flat = knn_scores(train_x, train_y, torch.tensor([[1.0, 0.05]]), 2, KnnConfig(k=3, temperature=100.0))
    assert flat.argmax().item() == 1  # nearly equal weights: the majority wins


def test_knn_command_writes_its_result(encoder, folders, tmp_path, capsys):
    train, val = folders
    code = main(
        [
            *eval_argv(encoder, "knn", train, val),
            "--out",
            str(tmp_path),
            *QUIET,
        ]
    )
    assert code == 0
    result = json.loads((tmp_path / "knn.json").read_text())
    assert result["metrics"]["top1"] == 100.0  # solid colours: even a random ViT separates them
    assert (result["num_train"], result["num_val"], result["num_classes"]) == (18, 9, 3)
    assert json.loads(capsys.readouterr().out)["top1"] == 100.0


def test_imagenet_flat_validation_layout_gives_the_same_result(encoder, folders, tmp_path):
    train, val = folders
    flat = tmp_path / "val"
    flat.mkdir()
    rows = ["ImageId,PredictionString"]
    for i, image in enumerate(sorted(val.rglob("*.png"))):
        shutil.copy(image, flat / f"ILSVRC2012_val_{i:08d}.png")
        rows.append(f"ILSVRC2012_val_{i:08d},{image.parent.name} 0 0 5 5")
    (tmp_path / "LOC_val_solution.csv").write_text("\n".join(rows) + "\n")
    for name, folder in (("folders", val), ("flat", flat)):
        assert (
            main(
                [
                    *eval_argv(encoder, "knn", train, folder),
                    "--out",
                    str(tmp_path / name),
                    *QUIET,
                ]
            )
            == 0
        )
    by_folder = json.loads((tmp_path / "folders" / "knn.json").read_text())["metrics"]
    by_solution = json.loads((tmp_path / "flat" / "knn.json").read_text())["metrics"]
    assert by_folder == by_solution


def test_a_timm_vits_own_state_dict_is_accepted(folders, tmp_path, capsys):
    train, val = folders
    vit = timm.create_model(
        "vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8, num_classes=7
    )  # random weights, with a classifier head
    torch.save(vit.state_dict(), tmp_path / "timm_vit.pth")
    args = [
        *eval_argv(tmp_path / "timm_vit.pth", "knn", train, val),
        *QUIET,
    ]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "encoder.timm_model" in err
    assert (
        main(
            args
            + [
                "--set",
                "encoder.timm_model=vit_tiny_patch16_224",
                "--set",
                "encoder.timm_kwargs={img_size: 32, patch_size: 8}",
            ]
        )
        == 0
    )
    assert 0 <= json.loads(capsys.readouterr().out)["top1"] <= 100


@pytest.mark.parametrize(
    "problem", ["missing encoder", "unknown val class", "wrong architecture", "corrupt image in a worker"]
)
def test_bad_input_is_one_line(encoder, folders, tmp_path, capsys, problem):
    train, val = folders
    args = {"encoder": str(encoder), "train": str(train), "val": str(val), "extra": []}
    if problem == "missing encoder":
        args["encoder"] = str(tmp_path / "nope.pth")
    elif problem == "unknown val class":
        (tmp_path / "val" / "purple").mkdir(parents=True)
        shutil.copy(next(val.rglob("*.png")), tmp_path / "val" / "purple" / "x.png")
        args["val"] = str(tmp_path / "val")
    elif problem == "wrong architecture":
        args["extra"] = ["--set", "encoder.timm_kwargs={embed_dim: 48}"]
    else:
        shutil.copytree(val, tmp_path / "val")
        (tmp_path / "val" / "red" / "000.png").write_bytes(b"not a png")
        args["val"] = str(tmp_path / "val")
        args["extra"] = ["--set", "run.num_workers=1"]
    code = main(
        [
            *eval_argv(args["encoder"], "knn", args["train"], args["val"]),
            *QUIET,
            *args["extra"],
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("c2f-train: error: ") and err.count("\n") == 1
    if problem == "corrupt image in a worker":
        assert "000.png: cannot read image" in err


def test_a_worker_error_stops_the_workers_at_once(encoder, folders, tmp_path, capsys):
    """Not at some later garbage collection, which found the loader's queues closed and then
    waited 5 s for workers that never heard of the shutdown."""
    train, val = folders
    shutil.copytree(val, tmp_path / "val")
    (tmp_path / "val" / "red" / "000.png").write_bytes(b"not a png")
    argv = eval_argv(encoder, "knn", train, tmp_path / "val")
    code, workers = workers_left_by(lambda: main([*argv, *QUIET, "--set", "run.num_workers=1"]))
    assert code == 2 and workers == []
    assert "000.png: cannot read image" in capsys.readouterr().err
