"""Export a run's RGB encoder in timm's Hugging Face layout (training/models/timm_layout.py).

export_encoder(run_dir, "encoder")
-> encoder/model.safetensors: {timm name: tensor}, no classifier head
-> encoder/config.json: architecture, model_args, pretrained_cfg (input size, crop, interpolation,
   the run's mean/std), and under "c2fmae" the format version, run name, checkpoint and step;
-> encoder/README.md: the model card for the Hub (training/model_card.py), licence and dataset id
   as given;
so ``timm.create_model("local-dir:encoder", pretrained=True)`` is the encoder, normalisation included.
Format 1 (encoder.pth + encoder.json) is no longer written; `c2f-train eval` still reads it.
"""

from __future__ import annotations

import json
from pathlib import Path

from plumbing.files import atomic_write
from training.checkpoint import load_checkpoint
from training.config import TrainConfig, from_dict
from training.errors import TrainingError
from training.model_card import CardInfo, check_dataset, check_license, render_card
from training.models.factory import build_model
from training.models.timm_layout import CARD_FILE, CONFIG_FILE, WEIGHTS_FILE, hf_config, weights_bytes

LEGACY_SUFFIXES = (".pth", ".pt")


def export_encoder(
    run_dir: str | Path, out_dir: str | Path, license: str | None = None, dataset: str | None = None
) -> dict:
    """Write RUN_DIR's latest encoder and its model card to directory `out_dir`; returns its
    config.json content. license: a Hub licence id; dataset: a Hub dataset id (or None each)."""
    license, dataset = check_license(license), check_dataset(dataset)  # before anything is read
    run_dir = Path(run_dir)
    found = load_checkpoint(run_dir) if run_dir.is_dir() else None
    if found is None:
        raise TrainingError(f"{run_dir}: no checkpoint to export (is this a c2f-train run directory?)")
    state, path = found
    cfg = from_dict(TrainConfig, state["config"])
    model = build_model(cfg.model, int(state["num_classes"]))
    model.load_state_dict(state["model"])
    return write_encoder(
        model,
        out_dir,
        cfg.model.img_size,
        cfg.data.mean,
        cfg.data.std,
        card=CardInfo(cfg, license, dataset),
        run=run_dir.resolve().name,  # a name, never the trainer's absolute path
        checkpoint=path.name,
        step=int(state["step"]),
        model_mode=cfg.model.mode,
    )


def write_encoder(
    model, out_dir: str | Path, img_size: int, mean, std, card: CardInfo | None = None, **provenance
) -> dict:
    """Write `model`'s encoder (its `encoder_state_dict()` and `timm_spec()`) to `out_dir` as
    model.safetensors, then config.json (input size [3, img_size, img_size], mean/std,
    `provenance`: run name, checkpoint, step, model mode), then with `card` README.md. Each file
    is replaced atomically. Returns the config."""
    out_dir = Path(out_dir)
    if out_dir.suffix in LEGACY_SUFFIXES:
        raise TrainingError(
            f"{out_dir}: export writes a directory now (timm's layout: {WEIGHTS_FILE} + {CONFIG_FILE}); "
            f"give -o DIR, e.g. -o {out_dir.with_suffix('')}"
        )
    if out_dir.exists() and not out_dir.is_dir():
        raise TrainingError(f"{out_dir}: exists and is not a directory")
    config = hf_config(model.timm_spec(), img_size, mean, std, provenance)
    readme = render_card(config, card) if card is not None else None
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(out_dir / WEIGHTS_FILE, weights_bytes(model.encoder_state_dict()))
    atomic_write(out_dir / CONFIG_FILE, (json.dumps(config, indent=2) + "\n").encode())
    if readme is not None:
        atomic_write(out_dir / CARD_FILE, readme.encode())
    return config
