"""Predicted time of small_evidence.py's gpu preset on one H100, from counted FLOPs per step.

How: torch's FlopCounterMode counts the FLOPs of one forward + backward of every step kind the
preset runs (mae / parallel / c2fmae and its switch rows' pre-training, fine-tuning) at a small
batch on the CPU (FLOPs grow linearly with the batch; the operator count does not), and of the step
whose GPU time docs/performance.md measured: MAE ViT-B/16 at batch 256, 73.5 ms on one H200 (bf16).
That measured rate (FLOPs / 73.5 ms) divides the preset's FLOPs. The H100 SXM has the H200's bf16
peak (989 TFLOP/s) with less memory bandwidth, so the rate is taken as equal. Small models reach a
smaller share of the peak than ViT-B, so each step costs at least a floor: the operators it
dispatches times OP_SECONDS (an assumed launch cost, not measured). The sum of max(compute, floor)
over the grid's steps is the prediction: an estimate until a GPU run measures it.
"""

from __future__ import annotations

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from training.config import load_config
from training.models.factory import build_model, create_model

REF_STEP_S = 0.0735  # docs/performance.md: mae ViT-B/16, batch 256, bf16, one H200
REF_BATCH = 256
OP_SECONDS = 8e-6  # assumed host + launch cost of one dispatched operator on a GPU
NUM_CLASSES = 7  # background + six shapes
COUNT_BATCH = 8  # samples per counted step: modality dropout is drawn per sample, so not 1


class _OpCount(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops += 1
        return func(*args, **(kwargs or {}))


def _pretrain_cost(model: torch.nn.Module, batch: int) -> tuple[float, int]:
    """(FLOPs, dispatched operators) of one forward + backward of `model` on a batch of `batch`."""
    n, size, gen = COUNT_BATCH, model.cfg.img_size, torch.Generator().manual_seed(0)
    labels = torch.randint(0, NUM_CLASSES, (n, size // 4, size // 4), generator=gen)
    data = {
        "image": torch.randn(n, 3, size, size, generator=gen),
        "semantic": labels.repeat_interleave(4, 1).repeat_interleave(4, 2),
        "instance": (labels % 3).repeat_interleave(4, 1).repeat_interleave(4, 2),
        "index": torch.arange(n),
    }
    strategy = torch.full((n,), 2)  # random masking: every mode can run it
    flops, ops = _count(lambda: model(data, strategy, gen)["loss"])
    return flops * batch / n, ops


def _finetune_cost(model: torch.nn.Module, batch: int) -> tuple[float, int]:
    from timm.models.vision_transformer import VisionTransformer

    kwargs = {k: v for k, v in model.timm_spec()["kwargs"].items() if k != "num_classes"}
    vit = VisionTransformer(**kwargs, num_classes=NUM_CLASSES - 1, global_pool="avg")
    size = model.cfg.img_size
    flops, ops = _count(lambda: vit(torch.randn(1, 3, size, size)).sum())
    return flops * batch, ops


def _count(loss_fn) -> tuple[float, int]:
    flops, ops = FlopCounterMode(display=False), _OpCount()
    with flops, ops:
        loss_fn().backward()
    return float(flops.get_total_flops()), ops.ops


def predict(preset: dict, model_overrides: list[str], seeds: int, switches: dict[str, tuple[str, list[str]]]) -> dict:
    """{"seconds": predicted H100 seconds of the whole grid, "rows": seconds per row, "how": ...}.
    `switches`: the grid's switch rows, name -> (their base row's config, their --set overrides)."""
    ref = create_model("mae_vit_base_patch16", num_classes=NUM_CLASSES)
    ref_flops, _ = _pretrain_cost(ref, REF_BATCH)
    rate = ref_flops / REF_STEP_S
    b, spe = preset["batch"], preset["train"] // preset["batch"]
    few_spe = max(1, (6 * preset["few"]) // min(b, 6 * preset["few"]))
    models = {}
    configs = {"mae": ("mae_tiny_cpu", []), "parallel": ("parallel_tiny_cpu", []), "c2f": ("c2fmae_tiny_cpu", [])}
    configs |= switches
    for mode, (config, sets) in configs.items():
        cfg = load_config(config, [*model_overrides, *sets])
        models[mode] = build_model(cfg.model, num_classes=NUM_CLASSES)
    ft_cost = _finetune_cost(models["mae"], b)
    ft_s = _step_seconds(*ft_cost, rate)
    finetune = preset["ft_epochs"] * spe * ft_s + preset["few_epochs"] * few_spe * _step_seconds(
        *_finetune_cost(models["mae"], min(b, 6 * preset["few"])), rate
    )
    pre = {m: preset["pretrain_epochs"] * spe * _step_seconds(*_pretrain_cost(models[m], b), rate) for m in models}
    rows = {
        "supervised": (preset["pretrain_epochs"] + preset["ft_epochs"]) * spe * ft_s,
        "random-init": finetune,
        "mae": pre["mae"] + finetune,
        "parallel": pre["parallel"] + finetune,
        **{row: pre["c2f"] + finetune for row in ("c2fmae", "c2fmae-nocurr", "c2fmae-gt")},
        **{row: pre[row] + finetune for row in switches},
    }
    return {
        "seconds": seeds * sum(rows.values()),
        "pilot_seconds": seeds * sum(rows[r] for r in ("supervised", "random-init", "mae")),
        "rows_per_seed_s": rows,
        "reference_tflop_per_s": rate / 1e12,
        "finetune_step": {"flops": ft_cost[0], "ops": ft_cost[1]},
        "how": __doc__.split("\n\n")[1].replace("\n", " "),
    }


def _step_seconds(flops: float, ops: int, rate: float) -> float:
    return max(flops / rate, ops * OP_SECONDS)
