"""Typed, strictly merged training configuration (pydantic dataclasses, built by plumbing.config_build).

Layers, later wins: defaults (the published MAE recipe) <- a YAML file (which may name a `base:`
YAML, relative to itself) <- `--set a.b=c` overrides (values read as YAML). `model.arch` names a
preset of training.models.ARCH_PRESETS: the layer that sets it gets the preset's sizes, its own
keys winning. Every problem is one ConfigError line naming the file (or --set) and the dotted key;
an unknown key comes with the closest valid one.
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any, Literal

import pydantic
import yaml

from plumbing.config_build import build
from plumbing.config_fields import Bool, Count, Fraction, NonNegative, Positive, PositiveFloat, section
from plumbing.config_layers import find_config, parse_sets, read_config_chain
from training.data.config import DataConfig
from training.masking.curriculum import CurriculumConfig
from training.models.config import ModelConfig, with_arch


@section
class OptimConfig:
    """AdamW + warmup/cosine schedule; defaults are MAE's published ViT-B pre-training recipe."""

    blr: PositiveFloat = 1.5e-4  # lr = blr * batch / 256
    batch_size: Positive = 64  # per device; 64 x 64 devices = MAE's effective batch 4096
    accum_iter: Positive = 1
    weight_decay: NonNegative = 0.05
    betas: tuple[Fraction, Fraction] = (0.9, 0.95)
    warmup_epochs: NonNegative = 40.0
    epochs: Positive = 1600
    min_lr: NonNegative = 0.0
    clip_grad: PositiveFloat | None = None  # None: no clipping
    # MAE's code conventions (docs/training.md, "MAE parity"); `mae` configs switch both on
    warmup_from_zero: Bool = False  # True: warmup lr = peak * step / warmup_steps (0-based step)
    decay_rule: Literal["model", "mae"] = "model"  # "mae": only 1-d params (norms, biases) skip decay


@section
class EngineConfig:
    """Everything about running the loop that does not change what is learned."""

    seed: Count = 0
    log_every: Positive = 20  # optimizer steps between log.jsonl / TensorBoard records
    # on each logged step: each loss's gradient share and the per-strategy losses (training/loss_probe.py)
    loss_probe: Bool = False
    image_every: Count = 2000  # steps between PNG grids in RUN_DIR/images (0 = never)
    checkpoint_every: Positive = 1000  # steps between atomic latest.pt saves
    keep_every: Count = 50000  # steps between permanent ckpt-{step}.pt copies (0 = never)
    max_nonfinite: Count = 20  # abort after this many skipped non-finite steps
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: Literal["bf16", "fp16", "off"] = "bf16"  # CUDA only; the CPU always runs fp32
    tensorboard: Bool = True
    progress: Bool = True  # tqdm bar on rank 0


CONFIGS = Path(__file__).parent / "configs"  # the presets shipped in the package (c2fmae_vit_b16_1600e, ...)


@section
class TrainConfig:
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    curriculum: CurriculumConfig = dataclasses.field(default_factory=CurriculumConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    engine: EngineConfig = dataclasses.field(default_factory=EngineConfig)

    @pydantic.model_validator(mode="after")
    def _same_image_size(self) -> TrainConfig:
        if self.data.img_size != self.model.img_size:
            raise ValueError(f"data.img_size ({self.data.img_size}) must equal model.img_size ({self.model.img_size})")
        return self


def load_config(
    path: str | Path | None = None, sets: typing.Sequence[str] = (), *, config_class: type = TrainConfig
) -> Any:
    """Defaults <- YAML file at `path` (with its `base:` chain; or a packaged config's name, e.g.
    `c2fmae_tiny_cpu`) <- `sets` ("key=value", dotted keys), resolved into `config_class`
    (TrainConfig, or e.g. EvalConfig). Raises ConfigError."""
    layers = read_config_chain(find_config(path, CONFIGS)) if path is not None else []
    return build(config_class, [*layers, ("--set", parse_sets(sets))], prepare=_presets)


def from_dict(cls: type, data: dict, source: str = "config") -> Any:
    """`cls` from a nested dict (e.g. a checkpoint's saved config), validated; missing = default."""
    return build(cls, [(source, data)], prepare=_presets)


def to_dict(cfg: Any) -> dict:
    """Dataclass -> plain nested dict of YAML/JSON/torch.load-safe values (tuples become lists)."""
    return _plain(dataclasses.asdict(cfg))


def save_config(cfg: Any, path: str | Path) -> None:
    """Write the resolved config as YAML (loadable again with load_config)."""
    Path(path).write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))


def _presets(layer: dict) -> dict:
    """A layer's `model.arch` expanded into the preset's sizes (the layer's own keys win)."""
    model = layer.get("model")
    if not isinstance(model, dict) or model.get("arch") is None:
        return layer
    return {**layer, "model": with_arch(model)}


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
