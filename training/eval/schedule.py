"""The learning-rate schedule the evaluation protocols share: timm's cosine, stepped per optimizer step."""

from __future__ import annotations

import torch
from timm.scheduler import CosineLRScheduler


def cosine_schedule(
    optimizer: torch.optim.Optimizer, epochs: int, warmup_epochs: int, steps_per_epoch: int, lr_min: float = 0.0
) -> CosineLRScheduler:
    """Linear warm-up over `warmup_epochs`, then cosine decay to `lr_min` at the end of `epochs`
    (MAE's probe and fine-tuning recipes); call `step_update(step)` with the optimizer step."""
    warmup = warmup_epochs * steps_per_epoch
    return CosineLRScheduler(
        optimizer,
        t_initial=max(1, epochs * steps_per_epoch - warmup),
        lr_min=lr_min,
        warmup_t=warmup,
        warmup_prefix=True,
        t_in_epochs=False,
    )
