"""DINO's weighted k-NN classifier on frozen, L2-normalised features (Caron et al. 2021, sec. 4.1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from training.eval.config import KnnConfig


@torch.no_grad()
def knn_scores(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    num_classes: int,
    cfg: KnnConfig,
    chunk: int = 1024,
) -> torch.Tensor:
    """Class votes [M, C] for test_x [M, D] from train_x [N, D] with labels train_y [N].

    Each of the k most cosine-similar training samples votes for its class with weight
    exp(similarity / temperature)."""
    train_x, test_x = F.normalize(train_x.float(), dim=1), F.normalize(test_x.float(), dim=1)
    k = min(cfg.k, len(train_x))
    out = []
    for start in range(0, len(test_x), chunk):
        sim, idx = (test_x[start : start + chunk] @ train_x.T).topk(k, dim=1)  # [m, k]
        votes = torch.zeros(len(sim), num_classes)
        out.append(votes.scatter_add_(1, train_y[idx].long(), (sim / cfg.temperature).exp()))
    return torch.cat(out)
