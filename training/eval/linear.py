"""MAE's linear probe on frozen features: BatchNorm without affine parameters, then a linear layer.

Recipe (MAE appendix A.2): LARS, momentum 0.9, no weight decay, base lr 0.1 with lr = blr * batch /
256, batch 16384, 90 epochs with 10 warmup epochs then cosine, head weights ~ N(0, 0.01). The
optimizer is timm's `Lars` set up to act as MAE's: the trust ratio scales the update of the weight
matrix only (`always_adapt`, because the recipe has no weight decay), the bias gets plain momentum
SGD. LARS steps are 0.001 * lr relative to |w|: with the few, small-lr steps of a small data set the
head hardly leaves its random initialisation, so `optimizer: auto` (the default) uses it only for
batches of `lars_min_batch` or more and otherwise SGD with momentum (the small-batch probes of
MoCo v3 and DINO use SGD too), with the same lr rule and schedule. Features are extracted once
without augmentation: the encoder is frozen, so this is the same probe at a fraction of the cost
(MAE augments with crop + flip; on small data that matters little next to the cost of re-encoding
every epoch).
"""

from __future__ import annotations

import math

import torch
from timm.optim import Lars
from torch import nn
from tqdm import tqdm

from training.eval.config import LinearConfig
from training.eval.schedule import cosine_schedule
from training.seeding import generator


class ProbeHead(nn.Sequential):
    """features [N, D] -> BatchNorm1d(affine=False) -> Linear -> logits [N, C]."""

    def __init__(self, dim: int, num_classes: int):
        super().__init__(nn.BatchNorm1d(dim, affine=False, eps=1e-6), nn.Linear(dim, num_classes))
        nn.init.trunc_normal_(self[1].weight, std=0.01)
        nn.init.zeros_(self[1].bias)


def train_probe(
    feats: torch.Tensor, labels: torch.Tensor, num_classes: int, cfg: LinearConfig, seed: int, progress: bool = False
) -> ProbeHead:
    """Train a ProbeHead on feats [N, D] with labels [N]; the same seed gives the same head."""
    torch.manual_seed(seed)
    head = ProbeHead(feats.shape[1], num_classes)
    batch = min(cfg.batch_size, len(feats))
    steps_per_epoch = math.ceil(len(feats) / batch)
    optimizer = _optimizer(head, cfg, batch)
    schedule = cosine_schedule(optimizer, cfg.epochs, cfg.warmup_epochs, steps_per_epoch)
    gen, loss_fn, step = generator(seed), nn.CrossEntropyLoss(), 0
    head.train()
    for _ in tqdm(range(cfg.epochs), desc="linear probe", unit="epoch", disable=not progress):
        order = torch.randperm(len(feats), generator=gen)
        for start in range(0, len(feats), batch):
            idx = order[start : start + batch]
            if len(idx) < 2:  # BatchNorm needs two samples for batch statistics
                continue
            schedule.step_update(step)
            loss = loss_fn(head(feats[idx]), labels[idx].long())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
    return head.eval()


def probe_optimizer(cfg: LinearConfig, batch: int) -> str:
    """ "lars" or "sgd": what `cfg.optimizer` means for this batch size."""
    if cfg.optimizer != "auto":
        return cfg.optimizer
    return "lars" if batch >= cfg.lars_min_batch else "sgd"


def _optimizer(head: ProbeHead, cfg: LinearConfig, batch: int) -> torch.optim.Optimizer:
    lr = cfg.blr * batch / 256
    linear = head[1]
    if probe_optimizer(cfg, batch) == "sgd":
        return torch.optim.SGD(head.parameters(), lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return Lars(
        [
            {"params": [linear.weight], "weight_decay": cfg.weight_decay, "always_adapt": True},
            {"params": [linear.bias], "weight_decay": 0.0, "always_adapt": False},
        ],
        lr=lr,
        momentum=cfg.momentum,
    )
