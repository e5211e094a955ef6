"""The labeling job's configuration: typed, loaded from YAML, overridden by flags, strict.

An unknown key is an error naming the closest valid one; backend parameters are checked against
the backend's own signature when the backend is built.
"""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import yaml

from datasets_spec.decode import DEFAULT_MAX_PIXELS, MAX_PIXELS

from .errors import LabelingError


@dataclass
class BackendConfig:
    """One backend: its registered name and the keyword parameters of its constructor."""

    name: str
    params: dict = field(default_factory=dict)


@dataclass
class LabelConfig:
    semantic: BackendConfig = field(default_factory=lambda: BackendConfig("classic"))
    instance: BackendConfig | None = field(default_factory=lambda: BackendConfig("classic"))
    canvas: int = 256  # mask canvas side S
    shard_size: int = 128  # images per shard = per work item
    min_area: int = 4  # instance pieces smaller than this (canvas pixels) are dropped
    batch_size: int = 8  # images per model call
    decode_threads: int = 4  # per worker
    workers: int = 0  # 0 = one per GPU when the cluster has GPUs, else 1
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0  # fractional GPUs allowed
    shard_attempts: int = 3  # tries per shard before the job gives up on it
    address: str | None = None  # Ray cluster to join; None = start a local one
    limit: int | None = None  # label only the first N images of the list
    max_pixels: int = DEFAULT_MAX_PIXELS  # larger images (by their header) fail before decoding
    prompts: str | None = None  # JSON file: image key / folder / "*" → text prompts (see labeling/prompts.py)

    def identity(self) -> dict:
        """What must match for a rerun to resume an existing store (not paths or scheduling; the
        prompts enter through the input list's hash)."""
        return {
            "semantic": asdict(self.semantic),
            "instance": None if self.instance is None else asdict(self.instance),
            "canvas": self.canvas,
            "shard_size": self.shard_size,
            "min_area": self.min_area,
            "batch_size": self.batch_size,  # batch padding changes some models' outputs
            "max_pixels": self.max_pixels,  # which images fail; the trainer reads it back
            "device": "cuda" if self.gpus_per_worker > 0 else "cpu",  # bf16 on GPU, fp32 on CPU
        }


_SCHEDULING = {f.name for f in fields(LabelConfig)} - {"semantic", "instance"}


def load_config(path: str | Path | None = None, overrides: dict | None = None) -> LabelConfig:
    """Defaults ← YAML file at `path` ← `overrides` (flat keys as in the YAML); strict."""
    data: dict = {}
    if path is not None:
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise LabelingError(f"{path}: cannot read config ({exc})") from None
        if not isinstance(data, dict):
            raise LabelingError(f"{path}: config must be a mapping of keys to values")
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return _build(data, source=str(path or "flags"))


def _build(data: dict, source: str) -> LabelConfig:
    cfg = LabelConfig()
    valid = sorted(_SCHEDULING | {"semantic", "instance"})
    for key, value in data.items():
        if key not in valid:
            raise LabelingError(f"{source}: unknown key {key!r}{_suggest(key, valid)}")
        if key in ("semantic", "instance"):
            setattr(cfg, key, _backend(value, f"{source}: {key}"))
        else:
            setattr(cfg, key, _typed(key, value, source))
    for key, low in _MINIMUM.items():
        value = getattr(cfg, key)
        if value is not None and value < low:
            raise LabelingError(f"{source}: {key} must be ≥ {low}, got {value}")
    if cfg.canvas > 4096:
        raise LabelingError(f"{source}: canvas must be ≤ 4096, got {cfg.canvas}")
    if cfg.max_pixels > MAX_PIXELS:
        raise LabelingError(f"{source}: max_pixels must be ≤ {MAX_PIXELS}, got {cfg.max_pixels}")
    return cfg


# Smallest valid value of each numeric setting (None, where allowed, means "not set").
_MINIMUM = {"canvas": 8, "shard_size": 1, "min_area": 0, "batch_size": 1, "decode_threads": 1,
            "workers": 0, "cpus_per_worker": 0, "gpus_per_worker": 0, "shard_attempts": 1, "limit": 1,
            "max_pixels": 1}


def _backend(value, where: str) -> BackendConfig | None:
    """`name`, or {name: ..., other keys = parameters}, or None / "none" (instance only)."""
    if value is None or value == "none":
        if where.endswith("semantic"):
            raise LabelingError(f"{where}: a semantic backend is required")
        return None
    if isinstance(value, str):
        return BackendConfig(value)
    if not isinstance(value, dict) or "name" not in value:
        raise LabelingError(f"{where}: expected a backend name or a mapping with a 'name' key")
    params = {k: v for k, v in value.items() if k != "name"}
    return BackendConfig(str(value["name"]), params)


def _typed(key: str, value, source: str):
    kind = {f.name: f.type for f in fields(LabelConfig)}[key]
    try:
        if kind in ("int", "int | None"):
            return None if value is None else int(value)
        if kind == "float":
            return float(value)
        return None if value is None else str(value)
    except (TypeError, ValueError):
        raise LabelingError(f"{source}: {key} must be {kind}, got {value!r}") from None


def _suggest(key: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(key, valid, n=1)
    return f"; did you mean {close[0]!r}?" if close else f"; valid keys: {', '.join(valid)}"
