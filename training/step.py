"""One optimizer step: accumulate micro-batches, skip non-finite losses, clip, update.

The step never looks at which method is trained: the model returns `{"loss", "losses", ...}`, the
step backpropagates `loss`, averages every named loss for the logs, and updates. On the steps the
engine probes (`engine.loss_probe`), it also asks the model for its `loss_probe` values
(training/loss_probe.py) before the backward pass and averages them over micro-batches and ranks. Its one all-reduce
(before the update) also carries each rank's stop request (training/preemption.py), so all ranks
agree on the step after which a preempted run stops, at no extra collective.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from training import distributed
from training.masking import Curriculum
from training.seeding import CURRICULUM, MASKING, derive_seed, generator


@dataclass
class StepContext:
    """Everything a step needs besides its batches; built once per run."""

    model: nn.Module  # possibly DDP-wrapped
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler | None
    curriculum: Curriculum
    device: torch.device
    amp_dtype: torch.dtype | None  # None = fp32
    clip_grad: float | None
    seed: int
    micro_id: Callable[[int], int]  # sampler.micro_id: micro index -> global micro-batch id
    prepare: Callable[[dict, torch.device], dict] | None = None  # loader batch -> device batch
    # (None: to_device; data.decode=gpu: training.data.gpu_decode.decode_batch)
    stop_requested: Callable[[], bool] = lambda: False  # this rank was asked to stop (SIGTERM)


@dataclass
class StepResult:
    losses: dict[str, torch.Tensor]  # "loss" and "loss_<target>": scalars, mean over micro-batches
    finite: bool  # False: every rank skipped the update
    grad_norm: float | None
    batch: dict  # the last micro-batch and the model's output on it (for pictures)
    out: dict
    stop: bool = False  # some rank was asked to stop: every rank stops after this step
    probe: dict[str, float] = field(default_factory=dict)  # the model's loss_probe values (probed steps)


def to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def train_step(
    ctx: StepContext, batches: Sequence[dict], step: int, progress: float, probe: bool = False
) -> StepResult:
    """Forward/backward `batches` (one per micro-batch) and update unless a loss was non-finite.

    Micro-batch m of step `step` draws its strategies and masks from generators seeded by
    (seed, step, micro_id(m)), so the result does not depend on restarts or on the DDP layout.
    probe: also measure the model's `loss_probe` (every rank must agree: one more all-reduce).
    """
    ctx.optimizer.zero_grad(set_to_none=True)
    sums: dict[str, torch.Tensor] = {}
    probes: dict[str, torch.Tensor] = {}
    finite = torch.ones((), device=ctx.device)
    for micro, raw in enumerate(batches):
        batch = (ctx.prepare or to_device)(raw, ctx.device)
        gid = ctx.micro_id(micro)
        strategy = ctx.curriculum.sample(
            len(batch["image"]), progress, generator(derive_seed(ctx.seed, CURRICULUM, step, gid)), ctx.device
        )
        masks = generator(derive_seed(ctx.seed, MASKING, step, gid), ctx.device)
        with _sync_context(ctx.model, last=micro == len(batches) - 1):
            with _autocast(ctx):
                out = ctx.model(batch, strategy, masks)
            if probe:
                for name, value in distributed.unwrap(ctx.model).loss_probe(batch, strategy, out).items():
                    probes[name] = probes.get(name, 0) + value.detach().float()
            loss = out["loss"].float()
            scaled = loss / len(batches)
            (ctx.scaler.scale(scaled) if ctx.scaler else scaled).backward()
        finite = finite * torch.isfinite(loss.detach())
        for name, value in _named_losses(out).items():
            sums[name] = sums.get(name, 0) + value.detach().float()
    losses = {name: total / len(batches) for name, total in sums.items()}
    probed = _probe_values(probes)
    finite, stop = _agree(finite, ctx.stop_requested())
    if not finite:
        ctx.optimizer.zero_grad(set_to_none=True)
        return StepResult(losses, False, None, batch, _detach(out), stop, probed)
    return StepResult(losses, True, _update(ctx), batch, _detach(out), stop, probed)


def _probe_values(probes: dict[str, torch.Tensor]) -> dict[str, float]:
    """name -> (sum, count) summed over micro-batches -> sum / count over all ranks (all-reduced
    means: the ratio is the same), names whose count is 0 left out."""
    if not probes:
        return {}
    names = sorted(probes)
    totals = distributed.all_mean(torch.stack([probes[n] for n in names])).tolist()
    return {n: s / c for n, (s, c) in zip(names, totals) if c > 0}


def _agree(finite: torch.Tensor, stop: bool) -> tuple[bool, bool]:
    """(every rank's loss was finite, some rank was asked to stop): one all-reduce, one sync."""
    go_on = torch.full((), 0.0 if stop else 1.0, device=finite.device)
    all_finite, all_go_on = distributed.all_min(torch.stack([finite, go_on])).tolist()
    return bool(all_finite), not all_go_on


def _update(ctx: StepContext) -> float | None:
    """Unscale, clip (optional) and step; returns the pre-clip gradient norm when clipping."""
    norm = None
    if ctx.scaler:
        ctx.scaler.unscale_(ctx.optimizer)
    if ctx.clip_grad is not None:
        params = [p for g in ctx.optimizer.param_groups for p in g["params"]]
        norm = float(torch.nn.utils.clip_grad_norm_(params, ctx.clip_grad))
    if ctx.scaler:
        ctx.scaler.step(ctx.optimizer)
        ctx.scaler.update()
    else:
        ctx.optimizer.step()
    return norm


def _detach(value):
    """Tensors in nested dicts detached, so a kept output does not hold the autograd graph."""
    if isinstance(value, dict):
        return {k: _detach(v) for k, v in value.items()}
    return value.detach() if torch.is_tensor(value) else value


def _named_losses(out: dict) -> dict[str, torch.Tensor]:
    """{"loss": total, "loss_<target>": each entry of out["losses"]}."""
    return {"loss": out["loss"], **{f"loss_{k}": v for k, v in out.get("losses", {}).items()}}


def _autocast(ctx: StepContext):
    if ctx.amp_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(ctx.device.type, dtype=ctx.amp_dtype)


def _sync_context(model: nn.Module, last: bool):
    """DDP gradient all-reduce only on the last micro-batch of a step."""
    if not last and hasattr(model, "no_sync"):
        return model.no_sync()
    return contextlib.nullcontext()
