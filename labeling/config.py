"""The labeling job's configuration: typed (pydantic), loaded from YAML, overridden by flags, strict.

Layers, later wins: defaults <- a YAML file (which may name a `base:` file) <- command-line flags
<- `--set key=value` (`semantic.<param>=...` sets a backend parameter). Every problem is one
ConfigError line naming the file (or flag) and the key; an unknown key comes with the closest
valid one. Backend parameters are checked against the backend's own signature in the driver, before
Ray starts (`backends.check_parameters`: an unknown one gets the closest valid name).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, field
from pathlib import Path
from typing import Annotated, Any

import pydantic

from datasets_spec.decode import DEFAULT_MAX_PIXELS, MAX_PIXELS
from plumbing.config_build import build
from plumbing.config_fields import Count, NonNegative, Positive, Str, section
from plumbing.config_layers import find_config, merge_layers, parse_sets, read_config_chain

ROLES = ("semantic", "instance")
# Settings of how labels are computed, not of what they are: a store may be resumed with others
# (started on the CPU, finished on a GPU, with another batch size). Outputs can differ at rounding
# level between them (bf16 on a GPU; batch padding in some models), never in settings.
RUN_ONLY = ("batch_size", "device")
CONFIGS = Path(__file__).parent / "configs"  # the presets shipped in the package (label_paper)
Share = Annotated[float, pydantic.Strict(), pydantic.Field(ge=0)]
Amount = Annotated[float, pydantic.Strict(), pydantic.Field(gt=0)]
Canvas = Annotated[int, pydantic.Strict(), pydantic.Field(ge=8, le=4096)]
Pixels = Annotated[int, pydantic.Strict(), pydantic.Field(ge=1, le=MAX_PIXELS)]


@section
class BackendConfig:
    """One backend: its registered name and the keyword parameters of its constructor."""

    name: Str
    params: dict[str, Any] = field(default_factory=dict)


@section
class LabelConfig:
    semantic: BackendConfig = field(default_factory=lambda: BackendConfig("classic"))
    instance: BackendConfig | None = field(default_factory=lambda: BackendConfig("classic"))
    canvas: Canvas = 256  # mask canvas side S
    shard_size: Positive = 128  # images per shard = per work item
    min_area: Count = 4  # instance pieces smaller than this (canvas pixels) are dropped
    batch_size: Positive = 8  # images per model call
    decode_threads: Positive = 4  # per worker
    workers: Count = 0  # the most at once; 0 = one per GPU share of the alive nodes on GPUs, else 1
    cpus_per_worker: Share = 1.0
    gpus_per_worker: Share = 0.0  # fractional GPUs allowed
    # Custom Ray resources each worker takes from its node, e.g. {"accelerator_type:A100": 0.01}
    # (only nodes with an A100) or one a `ray start --resources` node advertises.
    worker_resources: dict[Str, Amount] = field(default_factory=dict)
    # Seconds to wait for a node with room for a worker (none yet, an autoscaler adding one, or
    # all lost); 0 = refuse at once.
    wait_timeout: NonNegative = 600.0
    shard_attempts: Positive = 3  # tries per shard before the job gives up on it
    address: Str | None = None  # Ray cluster to join; None = RAY_ADDRESS if set, else a local one
    # After SIGTERM / Ctrl-C: seconds the shards in flight get to finish; the rest stay pending.
    # Below Kubernetes' and Slurm's default 30 s before SIGKILL, leaving time for the report.
    grace: NonNegative = 20.0
    limit: Positive | None = None  # label only the first N images of the list
    max_pixels: Pixels = DEFAULT_MAX_PIXELS  # larger images (by their header) fail before decoding
    prompts: Str | None = None  # JSON file: image key / folder / "*" → text prompts (see labeling/prompts.py)

    @pydantic.field_validator("semantic", "instance", mode="before")
    @classmethod
    def _backend(cls, value: Any, info: pydantic.ValidationInfo) -> Any:
        """`name`, or {name: ..., other keys = parameters}, or null / "none" (instance only)."""
        if isinstance(value, dict) and set(value) == {"name"}:
            value = value["name"]
        if value is None or value == "none":
            if info.field_name == "semantic":
                raise ValueError("a semantic backend is required")
            return None
        if isinstance(value, str):
            return {"name": value}
        if isinstance(value, dict) and "name" in value:
            return {"name": value["name"], "params": {k: v for k, v in value.items() if k != "name"}}
        return value

    @pydantic.field_validator("worker_resources")
    @classmethod
    def _custom_only(cls, value: dict) -> dict:
        for name in ("CPU", "GPU"):
            if name in value:
                raise ValueError(f"{name} is set by {name.lower()}s_per_worker, not here")
        return value

    def identity(self) -> dict:
        """What the store records about the job (not paths or scheduling; the prompts enter
        through the input list's hash). A rerun must match all but RUN_ONLY to resume."""
        return {
            "semantic": asdict(self.semantic),
            "instance": None if self.instance is None else asdict(self.instance),
            "canvas": self.canvas,
            "shard_size": self.shard_size,
            "min_area": self.min_area,
            "batch_size": self.batch_size,
            "max_pixels": self.max_pixels,  # which images fail; the trainer reads it back
            "device": "cuda" if self.gpus_per_worker > 0 else "cpu",
        }


def load_config(
    path: str | Path | None = None, sets: Sequence[str] = (), *, flags: Mapping[str, Any] | None = None
) -> LabelConfig:
    """Defaults <- YAML file at `path` (or a packaged config's name: `label_paper`) <- `flags` (the
    command-line flags' values, flat keys as in the YAML; None = flag not given) <- `sets`
    ("key=value", dotted for backend parameters). Raises ConfigError."""
    defaults = {role: {"name": _name(getattr(LabelConfig(), role))} for role in ROLES}
    files = [("defaults", defaults), *(read_config_chain(find_config(path, CONFIGS)) if path is not None else [])]
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    files = _drop_replaced_backends(files, flags)
    flag_layers = [(f"--{k.replace('_', '-')}", {k: v}) for k, v in flags.items()]
    return build(LabelConfig, [*files, *flag_layers, ("--set", parse_sets(sets))], prepare=_backend_mappings)


def _backend_mappings(layer: dict) -> dict:
    """`semantic: hf` as {name: hf}, so that a later `semantic.<param>` adds to it."""
    return {k: {"name": v} if k in ROLES and isinstance(v, str) else v for k, v in layer.items()}


def _drop_replaced_backends(files: list, flags: dict) -> list:
    """A flag naming another backend replaces the file's, parameters included."""
    merged, _ = merge_layers([(s, _backend_mappings(t)) for s, t in files])
    replaced = [role for role in ROLES if role in flags and _name(flags[role]) != _name(merged.get(role))]
    return [(s, {k: v for k, v in t.items() if k not in replaced}) for s, t in files]


def _name(value: Any) -> Any:
    if isinstance(value, BackendConfig):
        return value.name
    return value.get("name") if isinstance(value, dict) else value
