"""Typed options of `c2f-train eval`: one section per protocol plus what they share.

Loaded like the training config (training/config.py: strict keys, `--set a.b=c`). Defaults are the
published recipes for ViT-B on ImageNet-1K: k-NN from DINO (Caron et al. 2021), the linear probe and
fine-tuning from MAE (He et al. 2022, appendix A.2/A.3). Each batch size is an effective (global)
batch; the learning rate is `blr * batch / 256` and the batch is capped at the training set size, so
the recipes scale down to small data without editing.
"""

from __future__ import annotations

from dataclasses import field
from typing import Annotated, Literal

import pydantic

from plumbing.config_fields import (
    Bool,
    Count,
    Float,
    Fraction,
    NonNegative,
    Positive,
    PositiveFloat,
    Probability,
    Str,
    section,
)

UpToOne = Annotated[float, pydantic.Strict(), pydantic.Field(gt=0, le=1)]


@section
class EncoderConfig:
    """How to build the encoder. `timm_model`/`timm_kwargs` are read from the export's config.json
    (architecture, model_args), or from encoder.json beside a format-1 .pth; a bare timm state dict
    needs `timm_model` (and `timm_kwargs` for non-standard sizes)."""

    timm_model: Str | None = None
    timm_kwargs: dict[str, int | float | str | bool] = field(default_factory=dict)
    pool: Literal["cls", "avg"] = "cls"  # image feature for knn/linear: cls token or mean of patches
    mean: tuple[Float, Float, Float] | None = None  # None: the export's, else ImageNet's
    std: tuple[PositiveFloat, PositiveFloat, PositiveFloat] | None = None
    crop_pct: UpToOne = 0.875  # eval transform: resize to size / crop_pct, centre crop


@section
class RunConfig:
    seed: Count = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    num_workers: Count = 8  # DataLoader processes per rank
    feature_batch: Positive = 256  # images per forward pass when extracting frozen features
    progress: Bool = True


@section
class KnnConfig:
    """DINO's weighted k-NN: cosine similarity, the k nearest vote with weight exp(sim / T)."""

    k: Positive = 20
    temperature: PositiveFloat = 0.07


@section
class LinearConfig:
    """MAE's linear probe: BatchNorm (no affine) + linear head on frozen features, 90 epochs.

    `optimizer: auto` is MAE's LARS when the batch (capped at the data size) is at least
    `lars_min_batch`, else SGD with momentum: LARS scales each step by 0.001 |w| / |grad|, a
    large-batch device that barely moves a small-data head (see docs/evaluation.md)."""

    epochs: Positive = 90
    warmup_epochs: Count = 10
    batch_size: Positive = 16384
    blr: PositiveFloat = 0.1
    weight_decay: NonNegative = 0.0
    optimizer: Literal["auto", "lars", "sgd"] = "auto"
    lars_min_batch: Positive = 4096
    momentum: Fraction = 0.9


@section
class FinetuneConfig:
    """MAE's end-to-end fine-tuning recipe for ViT-B (ViT-L: layer_decay 0.75, drop_path 0.2, 50 ep)."""

    epochs: Positive = 100
    warmup_epochs: Count = 5
    batch_size: Positive = 1024
    blr: PositiveFloat = 5e-4
    min_lr: NonNegative = 1e-6
    weight_decay: NonNegative = 0.05
    layer_decay: UpToOne = 0.65
    drop_path: Fraction = 0.1
    betas: tuple[Fraction, Fraction] = (0.9, 0.999)
    clip_grad: PositiveFloat | None = None
    global_pool: Literal["avg", "token"] = "avg"  # MAE fine-tunes on the mean of patch tokens
    # "timm": MAE's (RandomResizedCrop at scale 0.08-1, flip, RandAugment, erasing); "crop_flip": a
    # random img_size crop of the image reflect-padded by crop_padding, and a flip (small images)
    augment: Literal["timm", "crop_flip"] = "timm"
    crop_padding: Count = 4
    auto_augment: Str | None = "rand-m9-mstd0.5-inc1"  # timm RandAugment string (augment: timm)
    reprob: Probability = 0.25  # random erasing (augment: timm)
    mixup: NonNegative = 0.8
    cutmix: NonNegative = 1.0
    mixup_prob: Probability = 1.0
    mixup_switch_prob: Probability = 0.5
    smoothing: Fraction = 0.1
    checkpoint_every: Positive = 1000  # optimizer steps between atomic latest.pt saves
    eval_every_epochs: Count = 1  # 0: evaluate only at the end
    max_steps: Positive | None = None  # stop after this many steps in total (schedule unchanged)


@section
class DenseConfig:
    """Linear per-patch semantic probe on frozen patch tokens, scored by mIoU and pixel accuracy.

    `train_labels`/`val_labels` are c2fmae stores whose keys are image paths relative to
    --train/--val (pseudo-labels from c2f-label, or exact ground truth written in the same format).
    Each patch token predicts the classes of its (patch/stride)^2 cells of stride `stride` pixels.
    """

    train_labels: Str | None = None
    val_labels: Str | None = None
    stride: Positive = 4
    epochs: Positive = 20
    batch_size: Positive = 256
    lr: PositiveFloat = 1e-3
    weight_decay: NonNegative = 1e-4
    warmup_epochs: Count = 1


@section
class EvalConfig:
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    run: RunConfig = field(default_factory=RunConfig)
    knn: KnnConfig = field(default_factory=KnnConfig)
    linear: LinearConfig = field(default_factory=LinearConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    dense: DenseConfig = field(default_factory=DenseConfig)
