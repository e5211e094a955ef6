"""AdamW groups and the warmup + cosine schedule as a pure function of the optimizer step."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from training.config import OptimConfig
from training.optim import Schedule, build_optimizer, param_groups, peak_lr


class _Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.pos_embed = nn.Parameter(torch.zeros(1, 4, 8))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, 8))
        self.proj = nn.Linear(8, 8)
        self.norm = nn.LayerNorm(8)
        self.decoder = nn.Module()
        self.decoder.mask_token = nn.Parameter(torch.zeros(1, 1, 8))

    def no_weight_decay(self):
        return {"pos_embed", "cls_token", "mask_token"}


def test_lr_scales_with_the_effective_batch():
    cfg = OptimConfig(blr=1.5e-4, batch_size=64, accum_iter=2)
    assert peak_lr(cfg, world_size=8) == pytest.approx(1.5e-4 * 64 * 2 * 8 / 256)


def test_schedule_values_at_known_steps():
    s = Schedule(peak=1.0, floor=0.1, warmup_steps=10, total_steps=110)
    assert s.lr(0) == pytest.approx(0.1)  # step s uses (s + 1) / warmup
    assert s.lr(4) == pytest.approx(0.5)
    assert s.lr(9) == pytest.approx(1.0)
    assert s.lr(10) == pytest.approx(1.0)  # cosine starts at the peak
    assert s.lr(60) == pytest.approx(0.1 + 0.9 * 0.5)  # half way down
    assert s.lr(85) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.75)))
    assert s.lr(110) == pytest.approx(0.1) and s.lr(500) == pytest.approx(0.1)


def test_schedule_from_config_uses_epochs_times_steps_per_epoch():
    cfg = OptimConfig(blr=0.256, batch_size=4, warmup_epochs=2, epochs=10, min_lr=0.001)
    s = Schedule.from_config(cfg, world_size=2, steps_per_epoch=5)
    assert s == Schedule(peak=pytest.approx(0.008), floor=0.001, warmup_steps=10, total_steps=50)
    values = [s.lr(k) for k in range(50)]
    assert values[:10] == pytest.approx([0.008 * (k + 1) / 10 for k in range(10)])
    assert values[30] == pytest.approx(0.001 + 0.007 * 0.5)  # half way down the cosine (40 steps)
    assert s.lr(50) == pytest.approx(0.001) and values[-1] > 0.001
    assert [s.lr(k) for k in reversed(range(50))] == values[::-1]  # pure: no hidden state
    half = Schedule.from_config(OptimConfig(warmup_epochs=0.5, warmup_from_zero=True), 1, steps_per_epoch=5)
    assert (half.warmup_steps, half.total_steps, half.lr(0)) == (2, 1600 * 5, 0.0)


def test_no_decay_on_norms_biases_and_tokens():
    model = _Toy()
    decay, no_decay = param_groups(model, 0.05)
    names = {id(p): n for n, p in model.named_parameters()}
    assert {names[id(p)] for p in decay["params"]} == {"proj.weight"}
    assert {names[id(p)] for p in no_decay["params"]} == {
        "pos_embed",
        "cls_token",
        "proj.bias",
        "norm.weight",
        "norm.bias",
        "decoder.mask_token",
    }
    assert (decay["weight_decay"], no_decay["weight_decay"]) == (0.05, 0.0)


def test_optimizer_is_adamw_with_the_configured_betas():
    opt = build_optimizer(_Toy(), OptimConfig(betas=(0.8, 0.9)), world_size=1)
    assert isinstance(opt, torch.optim.AdamW) and opt.param_groups[0]["betas"] == (0.8, 0.9)
