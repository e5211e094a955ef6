"""Typed, strictly merged training configuration.

Layers, later wins: dataclass defaults (the published MAE recipe) <- a YAML file (which may name a
`base:` YAML, relative to itself) <- `--set a.b=c` overrides (values parsed with yaml.safe_load).
An unknown key is an error naming its source and the closest valid key; a wrongly typed value is an
error naming the key.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from training.data.config import DataConfig
from training.errors import TrainingError
from training.masking.curriculum import CurriculumConfig
from training.models.config import ModelConfig


@dataclass
class OptimConfig:
    """AdamW + warmup/cosine schedule; defaults are MAE's published ViT-B pre-training recipe."""

    blr: float = 1.5e-4  # base lr; lr = blr * effective batch / 256
    batch_size: int = 64  # per device; 64 x 64 devices = MAE's effective batch 4096
    accum_iter: int = 1
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.95)
    warmup_epochs: float = 40.0
    epochs: int = 1600
    min_lr: float = 0.0
    clip_grad: float | None = None  # max global grad norm; None = no clipping
    # MAE's code conventions (docs/training.md, "MAE parity"); `mae` configs switch both on
    warmup_from_zero: bool = False  # True: warmup lr = peak * step / warmup_steps (0-based step)
    decay_rule: Literal["model", "mae"] = "model"  # "mae": only 1-d params (norms, biases) skip decay

    def __post_init__(self) -> None:
        require(self.batch_size >= 1 and self.accum_iter >= 1 and self.epochs >= 1,
                "batch_size, accum_iter and epochs must be >= 1")
        require(self.blr > 0 and self.min_lr >= 0 and self.weight_decay >= 0
                and self.warmup_epochs >= 0, "blr must be > 0; min_lr, weight_decay, warmup_epochs >= 0")
        require(all(0 <= b < 1 for b in self.betas), f"betas must lie in [0, 1), got {self.betas}")
        require(self.clip_grad is None or self.clip_grad > 0, "clip_grad must be > 0 or null")


@dataclass
class EngineConfig:
    """Everything about running the loop that does not change what is learned."""

    seed: int = 0
    log_every: int = 20  # optimizer steps between log.jsonl / TensorBoard records
    image_every: int = 2000  # steps between PNG grids in RUN_DIR/images (0 = never)
    checkpoint_every: int = 1000  # steps between atomic latest.pt saves
    keep_every: int = 50000  # steps between permanent ckpt-{step}.pt copies (0 = never)
    max_nonfinite: int = 20  # abort after this many skipped non-finite steps
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: Literal["bf16", "fp16", "off"] = "bf16"  # CUDA only; the CPU always runs fp32
    tensorboard: bool = True
    progress: bool = True  # tqdm bar on rank 0

    def __post_init__(self) -> None:
        require(self.log_every >= 1 and self.checkpoint_every >= 1,
                "log_every and checkpoint_every must be >= 1")
        require(min(self.image_every, self.keep_every, self.max_nonfinite, self.seed) >= 0,
                "image_every, keep_every, max_nonfinite and seed must be >= 0")


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)

    def __post_init__(self) -> None:
        if self.data.img_size != self.model.img_size:
            raise ValueError(f"data.img_size ({self.data.img_size}) must equal model.img_size "
                             f"({self.model.img_size})")


def load_config(path: str | Path | None = None, overrides: typing.Sequence[str] = (),
                cls: type = TrainConfig) -> Any:
    """Resolve defaults <- YAML file (with its `base:` chain) <- `key=value` overrides into `cls`."""
    tree: dict = {}
    if path is not None:
        tree = _merge(tree, _read_yaml_chain(Path(path), ()), cls, str(path), cls)
    tree = _merge(tree, parse_overrides(overrides), cls, "--set", cls)
    return from_dict(cls, tree)


def parse_overrides(items: typing.Sequence[str]) -> dict:
    """['optim.blr=1e-3', 'engine.amp=off'] -> {'optim': {'blr': 0.001}, 'engine': {'amp': 'off'}}."""
    tree: dict = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise TrainingError(f"--set expects key=value, got {item!r}")
        node = tree
        *parents, leaf = key.strip().split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise TrainingError(f"--set {key}: {part!r} is set both as a value and a section")
        node[leaf] = _parse_value(raw)
    return tree


def from_dict(cls: type, data: dict, prefix: str = "") -> Any:
    """Build dataclass `cls` from a nested dict, type-checking every value (missing = default)."""
    hints = typing.get_type_hints(cls)
    unknown = set(data) - set(hints)
    if unknown:
        raise TrainingError(f"unknown key {prefix + sorted(unknown)[0]!r}")
    kwargs = {key: _coerce(value, hints[key], prefix + key) for key, value in data.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise TrainingError(f"invalid config section {prefix.rstrip('.') or 'root'}: {exc}") from None


def to_dict(cfg: Any) -> dict:
    """Dataclass -> plain nested dict of YAML/JSON/torch.load-safe values (tuples become lists)."""
    return _plain(dataclasses.asdict(cfg))


def save_config(cfg: Any, path: str | Path) -> None:
    """Write the resolved config as YAML (loadable again with load_config)."""
    Path(path).write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))


def valid_keys(cls: type, prefix: str = "") -> list[str]:
    """Every dotted key the config accepts, e.g. ['model.embed_dim', ..., 'optim.blr', ...]."""
    keys = []
    for name, tp in typing.get_type_hints(cls).items():
        keys.append(prefix + name)
        if dataclasses.is_dataclass(tp):
            keys.extend(valid_keys(tp, f"{prefix}{name}."))
    return keys


def require(ok: bool, message: str) -> None:
    """ValueError(message) unless `ok`: the one way a config section refuses a value."""
    if not ok:
        raise ValueError(message)


def _read_yaml_chain(path: Path, seen: tuple[Path, ...]) -> dict:
    """Load one YAML file, first merging the file named by its `base:` key (relative to it)."""
    path = path.resolve()
    if path in seen:
        raise TrainingError(f"config {path}: `base:` chain loops back to itself")
    try:
        tree = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise TrainingError(f"cannot read config {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise TrainingError(f"config {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(tree, dict):
        raise TrainingError(f"config {path} must be a mapping of sections, got {type(tree).__name__}")
    base = tree.pop("base", None)
    if base is None:
        return tree
    parent = _read_yaml_chain(path.parent / str(base), seen + (path,))
    return _deep_update(parent, tree)


def _merge(tree: dict, layer: dict, cls: type, source: str, root: type, prefix: str = "") -> dict:
    """Deep-merge `layer` into `tree`, refusing keys that `cls` (a section of `root`) lacks."""
    hints = typing.get_type_hints(cls)
    out = dict(tree)
    for key, value in layer.items():
        if key not in hints:
            raise _unknown_key(prefix + str(key), source, root)
        tp = hints[key]
        if dataclasses.is_dataclass(tp) and isinstance(value, dict):
            out[key] = _merge(out.get(key, {}), value, tp, source, root, f"{prefix}{key}.")
        elif _origin(tp) is dict and isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_update(out[key], value)
        else:
            out[key] = value
    return out


def _unknown_key(key: str, source: str, root: type) -> TrainingError:
    close = difflib.get_close_matches(key, valid_keys(root), n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return TrainingError(f"unknown key {key!r} in {source}{hint}")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check `value` against annotation `tp`; returns it converted (list -> tuple, int -> float)."""
    origin, args = _origin(tp), typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise _type_error(key, value, f"a section ({tp.__name__})")
        return from_dict(tp, value, key + ".")
    if origin in (typing.Union, types.UnionType):
        for option in args:
            try:
                return _coerce(value, option, key)
            except TrainingError:
                continue
        raise _type_error(key, value, " or ".join(_type_name(a) for a in args))
    if origin is Literal:
        if value not in args:
            raise _type_error(key, value, "one of " + ", ".join(repr(a) for a in args))
        return value
    if origin in (tuple, list):
        return _coerce_sequence(value, tp, key)
    if origin is dict:
        if not isinstance(value, dict):
            raise _type_error(key, value, "a mapping")
        return {_coerce(k, args[0], key): _coerce(v, args[1], f"{key}.{k}") for k, v in value.items()}
    return _coerce_scalar(value, tp, key)


def _coerce_sequence(value: Any, tp: Any, key: str) -> Any:
    origin, args = _origin(tp), typing.get_args(tp)
    if not isinstance(value, (list, tuple)):
        raise _type_error(key, value, "a list")
    if origin is tuple and args and args[-1] is not Ellipsis:
        if len(value) != len(args):
            raise _type_error(key, value, f"a list of {len(args)} values")
        return tuple(_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    items = [_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value)] if args else list(value)
    return tuple(items) if origin is tuple else items


def _coerce_scalar(value: Any, tp: Any, key: str) -> Any:
    if tp is Any:
        return value
    if tp is type(None):
        if value is not None:
            raise _type_error(key, value, "null")
        return None
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads "1e-4" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise _type_error(key, value, "a number")
    if tp is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise _type_error(key, value, "an integer")
    if tp in (bool, str) and not isinstance(value, tp):
        raise _type_error(key, value, _type_name(tp))
    return value


def _type_error(key: str, value: Any, expected: str) -> TrainingError:
    return TrainingError(f"config key {key!r} must be {expected}, got {value!r}")


def _type_name(tp: Any) -> str:
    return {bool: "true/false", str: "a string", int: "an integer", float: "a number",
            type(None): "null"}.get(tp, getattr(tp, "__name__", str(tp)))


def _origin(tp: Any) -> Any:
    return typing.get_origin(tp)


def _parse_value(raw: str) -> Any:
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw


def _deep_update(base: dict, layer: dict) -> dict:
    out = dict(base)
    for key, value in layer.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_update(out[key], value)
        else:
            out[key] = value
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
