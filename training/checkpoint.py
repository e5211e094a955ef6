"""Atomic, resumable checkpoints: RUN_DIR/latest.pt, previous.pt and periodic ckpt-{step:07d}.pt keeps.

A checkpoint is a dict of tensors and plain Python values, loadable with `weights_only=True`:
  format, step, nonfinite, num_classes, config (nested dict), model, optimizer, scaler (or None)
  (state dicts), rng {python, numpy, torch, cuda}, meter (the log's running sums since its last
  record; absent in older checkpoints). The sampler's position and the curriculum follow from
  step and config. Older checkpoints also hold epoch, sampler and curriculum: ignored.
Saving writes a temporary file in RUN_DIR (`.latest.pt.PID.tmp`, plumbing.files), fsyncs it, moves
the old latest to previous.pt and renames the new file to latest.pt, so a crash at any moment leaves
at least one complete file; the temporary files a killed save leaves behind are removed by the next
run (`remove_stale_temps`).
"""

from __future__ import annotations

import logging
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from plumbing.errors import one_line
from plumbing.files import atomic_write, fsync_dir, write_temp
from training.errors import TrainingError
from training.models.config import TIMM_VITS

FORMAT = 1
LATEST, PREVIOUS = "latest.pt", "previous.pt"
_KEEP = re.compile(r"^ckpt-(\d+)\.pt$")
_REQUIRED = ("format", "step", "model", "optimizer", "config")
_LEGACY_TEMPS = ".tmp-*.pt"  # what saves before plumbing.files named their temporary files
# config keys added since format 1, with the value that runs written before them had
_LEGACY_CONFIG = {
    "model": {"decoder_context_embed": False, "patch_bias_init": "zeros", "init_from": None, "arch": None},
    "curriculum": {"mix": "sample"},
    "optim": {"warmup_from_zero": False, "decay_rule": "model"},
}
log = logging.getLogger("training")


def keep_name(step: int) -> str:
    return f"ckpt-{step:07d}.pt"


def save_checkpoint(run_dir: str | Path, state: dict, *, keep: bool = False) -> Path:
    """Atomically make `state` RUN_DIR/latest.pt (old one -> previous.pt); optionally copy a keep."""
    run_dir = Path(run_dir)
    latest = run_dir / LATEST
    try:
        tmp = write_temp(latest, lambda f: torch.save(state, f))
        if latest.exists():
            os.replace(latest, run_dir / PREVIOUS)
        os.replace(tmp, latest)
        if keep:
            with latest.open("rb") as src:
                atomic_write(run_dir / keep_name(int(state["step"])), lambda f: shutil.copyfileobj(src, f))
        fsync_dir(run_dir)
    except OSError as exc:  # a full or read-only disk; a failed write leaves the old checkpoints as they were
        raise TrainingError(f"{run_dir}: cannot write a checkpoint ({exc.strerror or one_line(exc)})") from None
    return latest


def load_checkpoint(run_dir: str | Path) -> tuple[dict, Path] | None:
    """Newest readable checkpoint of RUN_DIR and its path; None when the directory has none.

    An unreadable latest.pt falls back (with one warning line) to the newest of previous.pt and the
    keeps; TrainingError when checkpoint files exist but none can be read.
    """
    run_dir = Path(run_dir)
    files = [run_dir / LATEST] + _fallbacks(run_dir)
    files = [f for f in files if f.exists()]
    if not files:
        return None
    errors = []
    for path in files:
        try:
            state = _read(path)
        except TrainingError as exc:
            errors.append(str(exc))
            continue
        if errors:
            log.warning("%s; resuming from %s (step %d) instead", errors[0], path.name, state["step"])
        return state, path
    raise TrainingError(f"no readable checkpoint in {run_dir}: {errors[0]}")


def make_state(
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: Any,
    config: dict,
    step: int,
    nonfinite: int,
    num_classes: int,
    meter: dict | None = None,
) -> dict:
    """The checkpoint dict after `step` optimizer steps (model unwrapped from DDP by the caller)."""
    return {
        "format": FORMAT,
        "step": step,
        "nonfinite": nonfinite,
        "num_classes": num_classes,
        "config": config,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else None,
        "rng": capture_rng(),
        **({"meter": meter} if meter is not None else {}),
    }


def remove_stale_temps(run_dir: str | Path) -> list[Path]:
    """Delete the temporary files of saves that were killed midway (one trainer per RUN_DIR, so
    every temporary file present when a run starts is stale). Returns what was removed."""
    run_dir = Path(run_dir)
    stale = sorted([*run_dir.glob(".*.tmp"), *run_dir.glob(_LEGACY_TEMPS)])
    for path in stale:
        path.unlink(missing_ok=True)
        log.info("removed %s, left by a save that was interrupted", path.name)
    return stale


def check_compatible(state: dict, model: torch.nn.Module, model_config: dict, path: Path) -> None:
    """Refuse a checkpoint whose parameters do not fit `model` (names or shapes differ)."""
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    have = {k: tuple(v.shape) for k, v in state["model"].items()}
    if want == have:
        return
    old = state["config"].get("model", {})
    changed = [f"model.{k}: {old.get(k)!r} -> {v!r}" for k, v in model_config.items() if old.get(k) != v]
    if not changed:
        name = sorted(set(want) ^ set(have)) or [k for k in want if want[k] != have[k]]
        changed = [f"parameter {name[0]}"]
    raise TrainingError(
        f"checkpoint {path} was written for a different model shape "
        f"({', '.join(changed)}); use a new --out directory or the original model config"
    )


def capture_rng() -> dict:
    """Global RNG states (python, numpy, torch CPU, CUDA) as tensors and plain values."""
    version, py_state, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    cuda = torch.cuda.get_rng_state() if torch.cuda.is_initialized() else None  # this device only
    return {
        "python": {"version": version, "state": torch.tensor(py_state, dtype=torch.int64), "gauss": gauss},
        "numpy": {
            "name": name,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "torch": torch.get_rng_state(),
        "cuda": cuda,
    }


def restore_rng(rng: dict) -> None:
    """Inverse of `capture_rng`. Training draws its randomness from derived seeds (seeding.py);
    these global streams are restored for anything else (e.g. stochastic depth). A DDP checkpoint
    holds rank 0's states and every rank restores them."""
    py = rng["python"]
    random.setstate((py["version"], tuple(py["state"].tolist()), py["gauss"]))
    np_state = rng["numpy"]
    np.random.set_state(
        (
            np_state["name"],
            np_state["keys"].numpy().astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["cached"],
        )
    )
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(rng["cuda"])


def _read(path: Path, mmap: bool = False) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as exc:  # torch raises many types for damaged files (zip, pickle, EOF, ...)
        raise TrainingError(f"checkpoint {path} is unreadable ({one_line(exc, named=True)})") from None
    if not isinstance(state, dict) or any(k not in state for k in _REQUIRED):
        raise TrainingError(f"checkpoint {path} is not a c2f-train checkpoint")
    if state["format"] != FORMAT:
        raise TrainingError(f"checkpoint {path} has format {state['format']}, expected {FORMAT}")
    for section, values in _LEGACY_CONFIG.items():
        if isinstance(state["config"].get(section), dict):
            state["config"][section] = {**values, **state["config"][section]}
    _drop_false_timm_name(state["config"].get("model"))
    return state


def _drop_false_timm_name(model: dict | None) -> None:
    """Runs from before timm names were checked claimed vit_tiny_patch16_224 for the tiny preset."""
    claim = TIMM_VITS.get(model.get("timm_model")) if isinstance(model, dict) else None
    if claim and any(model.get(k) != v for k, v in claim.items()):
        model["timm_model"] = None


def _fallbacks(run_dir: Path) -> list[Path]:
    """previous.pt and the keeps, newest step first (previous.pt peeked with a memory map)."""
    keeps = sorted(
        (int(m.group(1)), run_dir / m.group(0)) for p in run_dir.glob("ckpt-*.pt") if (m := _KEEP.match(p.name))
    )
    previous = run_dir / PREVIOUS
    try:
        prev_step = int(_read(previous, mmap=True)["step"]) if previous.exists() else -1
    except TrainingError:
        prev_step = -1
    ordered = [(step, 1, path) for step, path in keeps] + [(prev_step, 0, previous)]
    return [path for _, _, path in sorted(ordered, reverse=True)]
