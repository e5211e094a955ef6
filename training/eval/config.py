"""Typed options of `c2f-train eval`: one section per protocol plus what they share.

Loaded like the training config (training/config.py: strict keys, `--set a.b=c`). Defaults are the
published recipes for ViT-B on ImageNet-1K: k-NN from DINO (Caron et al. 2021), the linear probe and
fine-tuning from MAE (He et al. 2022, appendix A.2/A.3). Each batch size is an effective (global)
batch; the learning rate is `blr * batch / 256` and the batch is capped at the training set size, so
the recipes scale down to small data without editing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from training.config import require


@dataclass
class EncoderConfig:
    """How to build the encoder. `timm_model`/`timm_kwargs` are read from encoder.json beside the
    weights when it exists (what `c2f-train export` writes); a bare timm state dict needs
    `timm_model` (and `timm_kwargs` for non-standard sizes)."""

    timm_model: str | None = None
    timm_kwargs: dict[str, int | float | str | bool] = field(default_factory=dict)
    pool: Literal["cls", "avg"] = "cls"  # image feature for knn/linear: cls token or mean of patches
    mean: tuple[float, float, float] | None = None  # None: encoder.json's, else ImageNet's
    std: tuple[float, float, float] | None = None
    crop_pct: float = 0.875  # eval transform: resize to size / crop_pct, centre crop


@dataclass
class RunConfig:
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    num_workers: int = 8  # DataLoader processes per rank
    feature_batch: int = 256  # images per forward pass when extracting frozen features
    progress: bool = True

    def __post_init__(self) -> None:
        require(self.num_workers >= 0 and self.feature_batch >= 1 and self.seed >= 0,
                "num_workers and seed must be >= 0, feature_batch >= 1")


@dataclass
class KnnConfig:
    """DINO's weighted k-NN: cosine similarity, the k nearest vote with weight exp(sim / T)."""

    k: int = 20
    temperature: float = 0.07

    def __post_init__(self) -> None:
        require(self.k >= 1 and self.temperature > 0, "k must be >= 1 and temperature > 0")


@dataclass
class LinearConfig:
    """MAE's linear probe: BatchNorm (no affine) + linear head on frozen features, 90 epochs.

    `optimizer: auto` is MAE's LARS when the batch (capped at the data size) is at least
    `lars_min_batch`, else SGD with momentum: LARS scales each step by 0.001 |w| / |grad|, a
    large-batch device that barely moves a small-data head (see docs/evaluation.md)."""

    epochs: int = 90
    warmup_epochs: int = 10
    batch_size: int = 16384
    blr: float = 0.1
    weight_decay: float = 0.0
    optimizer: Literal["auto", "lars", "sgd"] = "auto"
    lars_min_batch: int = 4096
    momentum: float = 0.9

    def __post_init__(self) -> None:
        require(self.epochs >= 1 and 0 <= self.warmup_epochs and self.batch_size >= 1,
                "epochs and batch_size must be >= 1, warmup_epochs >= 0")
        require(self.blr > 0 and self.weight_decay >= 0, "blr must be > 0, weight_decay >= 0")


@dataclass
class FinetuneConfig:
    """MAE's end-to-end fine-tuning recipe for ViT-B (ViT-L: layer_decay 0.75, drop_path 0.2, 50 ep)."""

    epochs: int = 100
    warmup_epochs: int = 5
    batch_size: int = 1024
    blr: float = 5e-4
    min_lr: float = 1e-6
    weight_decay: float = 0.05
    layer_decay: float = 0.65
    drop_path: float = 0.1
    betas: tuple[float, float] = (0.9, 0.999)
    clip_grad: float | None = None
    global_pool: Literal["avg", "token"] = "avg"  # MAE fine-tunes on the mean of patch tokens
    auto_augment: str | None = "rand-m9-mstd0.5-inc1"  # timm RandAugment string
    reprob: float = 0.25  # random erasing
    mixup: float = 0.8
    cutmix: float = 1.0
    mixup_prob: float = 1.0
    mixup_switch_prob: float = 0.5
    smoothing: float = 0.1
    checkpoint_every: int = 1000  # optimizer steps between atomic latest.pt saves
    eval_every_epochs: int = 1  # 0: evaluate only at the end
    max_steps: int | None = None  # stop after this many steps in total (schedule unchanged)

    def __post_init__(self) -> None:
        require(self.epochs >= 1 and self.batch_size >= 1 and self.warmup_epochs >= 0,
                "epochs and batch_size must be >= 1, warmup_epochs >= 0")
        require(0 < self.layer_decay <= 1 and 0 <= self.drop_path < 1 and 0 <= self.smoothing < 1,
                "need 0 < layer_decay <= 1, 0 <= drop_path < 1, 0 <= smoothing < 1")
        require(self.checkpoint_every >= 1 and self.eval_every_epochs >= 0,
                "checkpoint_every must be >= 1, eval_every_epochs >= 0")
        require(self.max_steps is None or self.max_steps >= 1, "max_steps must be >= 1 or null")


@dataclass
class DenseConfig:
    """Linear per-patch semantic probe on frozen patch tokens, scored by mIoU and pixel accuracy.

    `train_labels`/`val_labels` are c2fmae stores whose keys are image paths relative to
    --train/--val (pseudo-labels from c2f-label, or exact ground truth written in the same format).
    Each patch token predicts the classes of its (patch/stride)^2 cells of stride `stride` pixels.
    """

    train_labels: str | None = None
    val_labels: str | None = None
    stride: int = 4
    epochs: int = 20
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_epochs: int = 1

    def __post_init__(self) -> None:
        require(self.stride >= 1 and self.epochs >= 1 and self.batch_size >= 1,
                "stride, epochs and batch_size must be >= 1")
        require(self.lr > 0 and self.weight_decay >= 0 and self.warmup_epochs >= 0,
                "lr must be > 0; weight_decay and warmup_epochs >= 0")


@dataclass
class EvalConfig:
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    run: RunConfig = field(default_factory=RunConfig)
    knn: KnnConfig = field(default_factory=KnnConfig)
    linear: LinearConfig = field(default_factory=LinearConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    dense: DenseConfig = field(default_factory=DenseConfig)
