"""Export a run's RGB encoder as a timm-loadable state dict plus a JSON format record.

export_encoder(run_dir, "encoder.pth")
-> encoder.pth: {name: tensor}, loads with strict=True into
   timm.create_model(meta["timm_model"], pretrained=False, **meta["timm_kwargs"]), or, when
   timm_model is null (no timm name has these sizes), into
   timm.models.vision_transformer.VisionTransformer(**meta["timm_kwargs"])
-> encoder.json (same stem, beside it): timm name (or null) and kwargs, input size,
   mean/std, format version, source run, step.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from plumbing.files import atomic_write
from training.checkpoint import load_checkpoint
from training.config import TrainConfig, from_dict
from training.errors import TrainingError
from training.models.factory import build_model

FORMAT_VERSION = 1


def export_encoder(run_dir: str | Path, out_path: str | Path) -> dict:
    """Write RUN_DIR's latest encoder weights to `out_path` and its record beside it; returns the record."""
    run_dir, out_path = Path(run_dir), Path(out_path)
    found = load_checkpoint(run_dir) if run_dir.is_dir() else None
    if found is None:
        raise TrainingError(f"{run_dir}: no checkpoint to export (is this a c2f-train run directory?)")
    state, path = found
    cfg = from_dict(TrainConfig, state["config"])
    model = build_model(cfg.model, int(state["num_classes"]))
    model.load_state_dict(state["model"])
    return write_encoder(
        model,
        out_path,
        cfg.model.img_size,
        cfg.data.mean,
        cfg.data.std,
        source_run=str(run_dir.resolve()),
        checkpoint=path.name,
        step=int(state["step"]),
        model_mode=cfg.model.mode,
    )


def write_encoder(model, out_path: str | Path, img_size: int, mean, std, **provenance) -> dict:
    """Write `model`'s encoder weights (its `encoder_state_dict()`) to `out_path` and the format
    record beside it: timm name and kwargs, input size [3, img_size, img_size], mean/std, format
    version, then `provenance` (source run, checkpoint, step, model mode). Returns the record."""
    out_path = Path(out_path)
    spec = model.timm_spec()
    record = {
        "format_version": FORMAT_VERSION,
        "timm_model": spec["model"],
        "timm_kwargs": {**spec["kwargs"], "num_classes": 0},
        "input_size": [3, img_size, img_size],
        "mean": list(mean),
        "std": list(std),
        **provenance,
    }
    out_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out_path, lambda f: torch.save(model.encoder_state_dict(), f))
    atomic_write(meta_path(out_path), (json.dumps(record, indent=2) + "\n").encode())
    return record


def meta_path(out_path: str | Path) -> Path:
    """encoder.pth -> encoder.json."""
    return Path(out_path).with_suffix(".json")
