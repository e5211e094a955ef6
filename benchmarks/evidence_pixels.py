"""The floor of benchmarks/small_evidence.py: the same probes on raw pixels instead of an encoder.

Image features: the whole normalised image flattened ([N, 3 * 32 * 32], not average-pooled: the
mean colour would be a needlessly weak floor). Patch features: each 4 x 4 patch's raw values
([N, 64, 48]), for the dense probe. The probes, their settings and seeds are c2f-train eval's.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision import transforms

from training.eval import EvalConfig
from training.eval.dense import StoreLabeledImages, score_dense, train_dense
from training.eval.encoder import IMAGENET_MEAN, IMAGENET_STD
from training.eval.folders import FolderDataset, scan_folder
from training.eval.knn import knn_scores
from training.eval.linear import train_probe
from training.eval.metrics import topk_accuracy

PATCH = 4


def pixel_scores(data: dict, few: Path, cfg: EvalConfig, seed: int) -> dict:
    """{"ft_all", "ft_few": linear classifier top-1 on all / few labels, "knn", "linear": k-NN and
    linear top-1 (all labels), "dense_miou": per-patch linear probe} on raw pixels."""
    classes = scan_folder(data["train"]).classes
    xt, yt = _images(data["train"], classes)
    xf, yf = _images(few, classes)
    xv, yv = _images(data["val"], classes)
    linear = _linear_top1(xt, yt, xv, yv, len(classes), cfg, seed)
    knn = topk_accuracy(knn_scores(xt, yt, xv, len(classes), cfg.knn), yv)["top1"]
    return {
        "ft_all": linear,
        "ft_few": _linear_top1(xf, yf, xv, yv, len(classes), cfg, seed),
        "knn": knn,
        "linear": linear,
        "dense_miou": _dense_miou(data, cfg, seed),
    }


def _images(folder: Path, classes: tuple[str, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """(flattened normalised images [N, 3 * S * S], labels [N]) of a class-folder tree."""
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    dataset = FolderDataset(scan_folder(folder, classes), transform)
    images, labels = zip(*(dataset[i] for i in range(len(dataset))))
    return torch.stack(images).flatten(1), torch.tensor(labels)


def _linear_top1(xt, yt, xv, yv, num_classes: int, cfg: EvalConfig, seed: int) -> float:
    head = train_probe(xt, yt, num_classes, cfg.linear, seed)
    with torch.no_grad():
        return topk_accuracy(head(xv), yv)["top1"]


def _dense_miou(data: dict, cfg: EvalConfig, seed: int) -> float:
    feats = []
    for store, root in ((data["gt"], data["train"]), (data["gt_val"], data["val"])):
        ds = StoreLabeledImages(store, root, 32, PATCH, IMAGENET_MEAN, IMAGENET_STD)
        images, cells = zip(*(ds[i] for i in range(len(ds))))
        patches = torch.stack(images).unfold(2, PATCH, PATCH).unfold(3, PATCH, PATCH)  # [N, 3, g, g, p, p]
        feats.append((patches.permute(0, 2, 3, 1, 4, 5).flatten(3).flatten(1, 2), torch.stack(cells)))
    num_classes = ds.num_classes
    head = train_dense(*feats[0], num_classes, cfg.dense, seed)
    return score_dense(head, *feats[1])["miou"]
