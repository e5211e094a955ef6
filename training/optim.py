"""AdamW with MAE's parameter groups and a per-step warmup + cosine learning-rate schedule.

The schedule is a pure function of the optimizer step, so `--max-steps` and resuming never change it.
Convention: step s (0-based) is the (s+1)-th optimizer update; its lr is `Schedule.lr(s)`.
`optim.warmup_from_zero` and `optim.decay_rule: mae` switch to MAE's own conventions (docs/training.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from training.config import OptimConfig


def effective_batch(cfg: OptimConfig, world_size: int) -> int:
    """Images per optimizer step over all processes: batch_size x accum_iter x world_size."""
    return cfg.batch_size * cfg.accum_iter * world_size


def peak_lr(cfg: OptimConfig, world_size: int) -> float:
    """MAE's linear scaling rule: lr = blr x effective batch / 256."""
    return cfg.blr * effective_batch(cfg, world_size) / 256


def param_groups(model: nn.Module, weight_decay: float, rule: str = "model") -> list[dict]:
    """Two AdamW groups: decayed weights, and undecayed norms / biases (/ tokens / embeddings).

    A parameter skips decay when it has ndim <= 1 (norm scales, biases) or, under rule "model",
    its name or a dotted suffix of it is in `model.no_weight_decay()` (e.g. 'pos_embed',
    'cls_token', 'mask_token'). Rule "mae" is MAE's: only the ndim <= 1 test, so learned tokens
    and embeddings are decayed.
    """
    skip = set(getattr(model, "no_weight_decay", lambda: set())()) if rule == "model" else set()
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        suffixes = {".".join(name.split(".")[i:]) for i in range(name.count(".") + 1)}
        (no_decay if param.ndim <= 1 or suffixes & skip else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(model: nn.Module, cfg: OptimConfig, world_size: int) -> torch.optim.AdamW:
    """AdamW over `param_groups`; its lr is overwritten every step by `Schedule.apply`."""
    return torch.optim.AdamW(
        param_groups(model, cfg.weight_decay, cfg.decay_rule), lr=peak_lr(cfg, world_size), betas=tuple(cfg.betas)
    )


@dataclass(frozen=True)
class Schedule:
    """Linear warmup to `peak` over `warmup_steps`, then half-cosine down to `floor` at `total_steps`.
    Warmup lr of step s: peak * (s + 1) / warmup_steps, or peak * s / warmup_steps (MAE's; the
    first step runs at lr 0) with `warmup_from_zero`."""

    peak: float
    floor: float
    warmup_steps: int
    total_steps: int
    warmup_from_zero: bool = False

    @classmethod
    def from_config(cls, cfg: OptimConfig, world_size: int, steps_per_epoch: int) -> Schedule:
        return cls(
            peak=peak_lr(cfg, world_size),
            floor=cfg.min_lr,
            warmup_steps=round(cfg.warmup_epochs * steps_per_epoch),
            total_steps=cfg.epochs * steps_per_epoch,
            warmup_from_zero=cfg.warmup_from_zero,
        )

    def lr(self, step: int) -> float:
        """Learning rate of optimizer step `step` (0-based); constant `floor` past the end."""
        if step < self.warmup_steps:
            done = step if self.warmup_from_zero else step + 1
            return self.peak * done / self.warmup_steps
        span = max(self.total_steps - self.warmup_steps, 1)
        t = min((step - self.warmup_steps) / span, 1.0)
        return self.floor + (self.peak - self.floor) * 0.5 * (1.0 + math.cos(math.pi * t))

    def apply(self, optimizer: torch.optim.Optimizer, step: int) -> float:
        """Set every group's lr for step `step`; returns it."""
        lr = self.lr(step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        return lr
