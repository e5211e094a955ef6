"""End-to-end fine-tuning with MAE's published recipe, assembled from timm's parts.

timm.data.create_transform (RandomResizedCrop, flip, RandAugment, random erasing; or, with
`augment: crop_flip`, a padded random crop and a flip, for images of a few dozen pixels), timm.data.Mixup
(mixup + cutmix + label smoothing), SoftTargetCrossEntropy, drop path (timm ViT), layer-wise lr
decay (timm.optim.param_groups_layer_decay), AdamW, warmup + cosine per step (timm's
CosineLRScheduler, which applies each group's lr_scale).

Exact resume: every random draw is a pure function of (seed, step or sample): the sample order and
RandAugment/erasing per sample from (seed, epoch, index), mixup and drop path from (seed, step,
rank); checkpoints hold model and optimizer state, so a run stopped and resumed at any checkpoint
ends bit-identical to an uninterrupted one. Checkpoints are training.checkpoint's (atomic latest.pt,
previous.pt fallback, weights_only loading) in OUT/finetune/.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import torch
from timm.data import Mixup, create_transform
from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
from timm.optim import param_groups_layer_decay
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms
from tqdm import tqdm

from plumbing.errors import one_line
from training import distributed
from training.checkpoint import FORMAT, load_checkpoint, save_checkpoint
from training.config import to_dict
from training.errors import TrainingError
from training.eval.config import EvalConfig, FinetuneConfig
from training.eval.encoder import EncoderSpec, eval_transform, load_encoder
from training.eval.features import extract, read_batches, worker_options
from training.eval.folders import FolderDataset, LabeledFolder
from training.eval.metrics import topk_accuracy
from training.eval.schedule import cosine_schedule
from training.sampler import ResumableSampler
from training.seeding import derive_seed

AUGMENT, STEP = 11, 12  # purposes of derived seeds (training.seeding uses 1-4)


class SeededSamples(Dataset):
    """dataset[(index, epoch)] with Python, numpy and torch seeded from (seed, epoch, index) first,
    so timm's random transforms give each sample the same augmentation in any worker or rerun."""

    def __init__(self, dataset: Dataset, seed: int):
        self.dataset, self.seed = dataset, seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item: tuple[int, int]):
        index, epoch = item
        _seed_globals(derive_seed(self.seed, AUGMENT, epoch, index))
        return self.dataset[index]


def finetune(
    spec: EncoderSpec,
    cfg: EvalConfig,
    train: LabeledFolder,
    val: LabeledFolder,
    info: distributed.DistInfo,
    out_dir: Path,
) -> dict:
    """Fine-tune the encoder of `spec` on `train`, evaluate on `val`; resumes from OUT/finetune."""
    ft, seed, run_dir = cfg.finetune, cfg.run.seed, out_dir / "finetune"
    num_classes = len(train.classes)
    torch.manual_seed(seed)
    model = load_encoder(spec, num_classes=num_classes, drop_path_rate=ft.drop_path, global_pool=ft.global_pool)
    nn.init.trunc_normal_(model.head.weight, std=2e-5)  # MAE's head initialisation
    sampler, per_rank = _sampler(len(train.items), ft, info, seed)
    optimizer = _optimizer(model, ft, per_rank * info.world_size)
    step = _resume(run_dir, model, optimizer, cfg)
    model.to(info.device)
    _optimizer_to(optimizer, info.device)
    ddp = distributed.wrap_ddp(model, info)
    spe = sampler.steps_per_epoch
    total = ft.epochs * spe
    stop = min(total, ft.max_steps or total)
    schedule = cosine_schedule(optimizer, ft.epochs, ft.warmup_epochs, spe, lr_min=ft.min_lr)
    mixup, loss_fn = _mixing(ft, num_classes)
    dataset = SeededSamples(FolderDataset(train, _train_transform(spec, ft)), seed)
    val_set = FolderDataset(val, eval_transform(spec, cfg.encoder.crop_pct))
    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=stop, initial=step, desc="finetune", unit="step", disable=not (cfg.run.progress and info.is_main))
    history = []
    while step < stop:
        sampler.set_epoch(*divmod(step, spe))
        loader = DataLoader(
            dataset, batch_size=per_rank, sampler=sampler, drop_last=True, **worker_options(cfg.run.num_workers)
        )
        for images, labels in read_batches(loader):
            ddp.train()
            schedule.step_update(step)
            loss = _train_step(
                ddp,
                optimizer,
                images.to(info.device),
                labels.to(info.device),
                mixup,
                loss_fn,
                ft,
                derive_seed(seed, STEP, step, info.rank),
            )
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.3f}")
            if step % spe == 0 and ft.eval_every_epochs and (step // spe) % ft.eval_every_epochs == 0:
                history.append(
                    {"step": step, "epoch": step // spe, "loss": loss, **_evaluate(model, val_set, cfg, info)}
                )
                _log(run_dir, history[-1], info)
            if step % ft.checkpoint_every == 0 or step == stop:
                _save(run_dir, model, optimizer, cfg, step, info)
            if step == stop:
                break
    bar.close()
    final = history[-1] if history and history[-1]["step"] == step else _evaluate(model, val_set, cfg, info)
    return {
        "top1": final["top1"],
        "top5": final["top5"],
        "step": step,
        "total_steps": total,
        "best_top1": max([h["top1"] for h in history] + [final["top1"]]),
        "lr": ft.blr * per_rank * info.world_size / 256,
        "batch_size": per_rank * info.world_size,
        "steps_per_epoch": spe,
        "checkpoint_dir": str(run_dir),
    }


def _train_step(model, optimizer, images, labels, mixup, loss_fn, ft: FinetuneConfig, seed: int) -> float:
    _seed_globals(seed)  # mixup draws from numpy, drop path from torch
    if mixup is not None:
        images, labels = mixup(images, labels)
    with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=images.device.type == "cuda"):
        loss = loss_fn(model(images), labels)
    if not torch.isfinite(loss):
        raise TrainingError(f"fine-tuning loss is {loss.item()}; lower finetune.blr or set finetune.clip_grad")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if ft.clip_grad is not None:
        nn.utils.clip_grad_norm_(model.parameters(), ft.clip_grad)
    optimizer.step()
    return loss.item()


@torch.no_grad()
def _evaluate(model: nn.Module, val_set: Dataset, cfg: EvalConfig, info) -> dict:
    model.eval()
    logits, labels = extract(
        model,
        val_set,
        info,
        batch_size=cfg.run.feature_batch,
        num_workers=cfg.run.num_workers,
        progress=False,
        desc="eval",
    )
    return topk_accuracy(logits, labels)


def _sampler(size: int, ft: FinetuneConfig, info, seed: int) -> tuple[ResumableSampler, int]:
    """The resumable sampler and the per-rank batch: ft.batch_size capped at the data, split over ranks."""
    per_rank = min(ft.batch_size, size) // info.world_size
    if ft.mixup > 0 or ft.cutmix > 0:
        per_rank -= per_rank % 2  # timm's batch mixup pairs samples
    if per_rank < 1:
        raise TrainingError(f"{size} training images cannot fill one batch per process")
    return ResumableSampler(size, batch_size=per_rank, rank=info.rank, world_size=info.world_size, seed=seed), per_rank


def _optimizer(model: nn.Module, ft: FinetuneConfig, batch: int) -> torch.optim.Optimizer:
    groups = param_groups_layer_decay(
        model, weight_decay=ft.weight_decay, layer_decay=ft.layer_decay, no_weight_decay_list=model.no_weight_decay()
    )
    return torch.optim.AdamW(groups, lr=ft.blr * batch / 256, betas=ft.betas)


def _mixing(ft: FinetuneConfig, num_classes: int):
    """(Mixup or None, loss): MAE uses SoftTargetCrossEntropy with mixup, else label smoothing."""
    if ft.mixup > 0 or ft.cutmix > 0:
        mixup = Mixup(
            mixup_alpha=ft.mixup,
            cutmix_alpha=ft.cutmix,
            prob=ft.mixup_prob,
            switch_prob=ft.mixup_switch_prob,
            label_smoothing=ft.smoothing,
            num_classes=num_classes,
        )
        return mixup, SoftTargetCrossEntropy()
    if ft.smoothing > 0:
        return None, LabelSmoothingCrossEntropy(smoothing=ft.smoothing)
    return None, nn.CrossEntropyLoss()


def _train_transform(spec: EncoderSpec, ft: FinetuneConfig):
    """PIL image -> [3, img_size, img_size]: MAE's timm recipe, or pad + random crop + flip."""
    if ft.augment == "crop_flip":
        return transforms.Compose(
            [
                transforms.Resize(spec.img_size, interpolation=transforms.InterpolationMode.BICUBIC),
                transforms.CenterCrop(spec.img_size),
                transforms.RandomCrop(spec.img_size, padding=ft.crop_padding, padding_mode="reflect"),
                transforms.RandomHorizontalFlip(),
                transforms.ToTensor(),
                transforms.Normalize(spec.mean, spec.std),
            ]
        )
    return create_transform(
        spec.img_size,
        is_training=True,
        auto_augment=ft.auto_augment,
        interpolation="bicubic",
        re_prob=ft.reprob,
        re_mode="pixel",
        re_count=1,
        mean=spec.mean,
        std=spec.std,
    )


def _resume(run_dir: Path, model: nn.Module, optimizer, cfg: EvalConfig) -> int:
    found = load_checkpoint(run_dir) if run_dir.is_dir() else None
    if found is None:
        return 0
    state, path = found
    if state["config"] != _identity(cfg):
        raise TrainingError(
            f"{path} was written with other eval settings; use a new --out or the original --set values"
        )
    try:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
    except (RuntimeError, ValueError) as exc:
        raise TrainingError(f"{path} does not fit this model: {one_line(exc)}") from None
    return int(state["step"])


def _identity(cfg: EvalConfig) -> dict:
    """The settings a resumed run must share with the run that wrote the checkpoint."""
    recipe = {
        k: v
        for k, v in to_dict(cfg.finetune).items()
        if k not in ("max_steps", "checkpoint_every", "eval_every_epochs")
    }
    return {"encoder": to_dict(cfg.encoder), "finetune": recipe, "seed": cfg.run.seed}


def _save(run_dir: Path, model: nn.Module, optimizer, cfg: EvalConfig, step: int, info) -> None:
    if info.is_main:
        save_checkpoint(
            run_dir,
            {
                "format": FORMAT,
                "step": step,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "config": _identity(cfg),
            },
        )
    distributed.barrier()


def _log(run_dir: Path, record: dict, info) -> None:
    if info.is_main:
        with (run_dir / "log.jsonl").open("a") as f:
            f.write(json.dumps(record) + "\n")


def _optimizer_to(optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    for state in optimizer.state.values():
        for key, value in state.items():
            if isinstance(value, torch.Tensor) and key != "step":
                state[key] = value.to(device)


def _seed_globals(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
