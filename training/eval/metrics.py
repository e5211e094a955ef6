"""Scores: top-k accuracy of class scores, and mIoU / pixel accuracy of label maps."""

from __future__ import annotations

import torch


def topk_accuracy(scores: torch.Tensor, labels: torch.Tensor, ks=(1, 5)) -> dict[str, float]:
    """scores: [N, C], labels: [N] -> {"top1": %, "top5": %}; k is capped at C."""
    top = scores.topk(min(max(ks), scores.shape[1]), dim=1).indices  # [N, k]
    hits = top == labels[:, None]
    return {f"top{k}": 100.0 * hits[:, :k].any(dim=1).float().mean().item() for k in ks}


def confusion(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """pred, target: [...] class ids (target -1 = ignore) -> confusion counts [C, C] (target, pred)."""
    keep = target >= 0
    flat = target[keep].long() * num_classes + pred[keep].long()
    return torch.bincount(flat, minlength=num_classes**2).reshape(num_classes, num_classes)


def segmentation_scores(conf: torch.Tensor) -> dict[str, float]:
    """mIoU over the classes that occur (in target or prediction) and pixel accuracy, in [0, 1]."""
    conf = conf.double()
    tp = conf.diag()
    union = conf.sum(0) + conf.sum(1) - tp
    present = union > 0
    iou = tp[present] / union[present]
    return {
        "miou": iou.mean().item() if present.any() else 0.0,
        "pixel_accuracy": (tp.sum() / conf.sum().clamp(min=1)).item(),
        "classes_scored": int(present.sum()),
    }
