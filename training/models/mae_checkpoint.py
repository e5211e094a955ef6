"""Start a run from MAE's released pre-training weights (He et al. 2022), e.g.
``mae_pretrain_vit_base_full.pth``: ``model.init_from: PATH``.

MAE's file is ``{"model": {name: tensor}}`` (a bare ``{name: tensor}`` is accepted too). Its names
are ours except two: the prediction layer ``decoder_pred.*`` is our ``heads.rgb.*``, and
MAE's ``decoder_pos_embed`` [1, 1 + L, Dd] has a zero row for the cls token that ours
[1, L, Dd] leaves out (our decoder adds no position to the cls token, which is the same thing).

- A model built as MAE (RGB input, MAE's decoder: ``mode: mae``): every parameter comes from the
  file; a missing, unexpected or mis-shaped name is a TrainingError naming the first one.
- Any other (``c2f`` / ``parallel``): the encoder (``ENCODER_PREFIXES``) must load whole; of the
  rest, what exists here with the same shape loads (``decoder_embed``, ``heads.rgb``,
  ``decoder_pos_embed`` when the decoder widths match); MAE's mask token, decoder blocks and
  decoder norm have no place in the cascade and are left out. Everything else keeps its fresh
  initialisation.
"""

import logging

import torch
import torch.nn as nn

from plumbing.errors import one_line
from training.errors import TrainingError
from training.models.decoders import MAEDecoder
from training.models.encoder_io import ENCODER_PREFIXES

log = logging.getLogger("training")


def load_mae_checkpoint(model: nn.Module, path: str) -> dict[str, list[str]]:
    """Copy the weights of MAE checkpoint ``path`` into ``model`` (in place, before training).
    Returns {"loaded": our names, "unused": the file's names we had no place for (our names),
    "fresh": our names left as initialised}; logs the same, grouped."""
    state = to_our_names(read_mae_state(path), path)
    ours = model.state_dict()
    if model.inputs == ("rgb",) and isinstance(model.decoder, MAEDecoder):
        _require_fit(state, ours, set(ours), path, strict=True)
        take = state
    else:
        encoder = {k for k in ours if k.startswith(ENCODER_PREFIXES)}
        _require_fit(state, ours, encoder, path, strict=False)
        take = {k: v for k, v in state.items() if k in ours and v.shape == ours[k].shape}
    with torch.no_grad():
        for name, value in take.items():
            ours[name].copy_(value)
    report = {"loaded": sorted(take), "unused": sorted(set(state) - set(take)), "fresh": sorted(set(ours) - set(take))}
    log.info(
        "initialised from MAE checkpoint %s: loaded %s; not used from it: %s; fresh: %s",
        path,
        *(_summary(report[k]) for k in ("loaded", "unused", "fresh")),
    )
    return report


def read_mae_state(path: str) -> dict[str, torch.Tensor]:
    """The ``{name: tensor}`` of an MAE checkpoint file (``torch.load(weights_only=True)``)."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise TrainingError(f"model.init_from: no such file {path}") from None
    except Exception as exc:  # torch raises many types for damaged or foreign files
        raise TrainingError(f"model.init_from: cannot read {path} ({one_line(exc, named=True)})") from None
    if isinstance(obj, dict) and {"optimizer", "step", "config"} <= set(obj):
        raise TrainingError(
            f"model.init_from: {path} is a c2f-train checkpoint, not MAE's; "
            "to continue that run, pass its run directory as --out"
        )
    state = obj.get("model", obj) if isinstance(obj, dict) else obj
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise TrainingError(
            f"model.init_from: {path} is not an MAE checkpoint (expected {{'model': {{name: tensor}}}})"
        )
    return state


def to_our_names(state: dict[str, torch.Tensor], path: str) -> dict[str, torch.Tensor]:
    """MAE names and layouts -> ours (see the module docstring)."""
    out = {}
    for name, value in state.items():
        if name.startswith("decoder_pred."):
            name = "heads.rgb." + name.removeprefix("decoder_pred.")
        elif name == "decoder_pos_embed":
            if value.dim() != 3 or value[:, 0].abs().max() > 0:
                raise TrainingError(
                    f"model.init_from: {path}: decoder_pos_embed {tuple(value.shape)} lacks MAE's all-zero cls row"
                )
            value = value[:, 1:]
        out[name] = value
    return out


def _require_fit(state: dict, ours: dict, needed: set[str], path: str, strict: bool) -> None:
    """TrainingError naming (by MAE's name) the first of ``needed`` that ``state`` lacks or
    shapes differently, or (``strict``) the first name of ``state`` that ``ours`` lacks."""
    problems = [f"missing {_mae_name(k)!r}" for k in sorted(needed - set(state))]
    problems += [
        f"{_mae_name(k)!r} has shape {tuple(state[k].shape)}, this model {tuple(ours[k].shape)}"
        for k in sorted(needed & set(state))
        if state[k].shape != ours[k].shape
    ]
    if strict:
        problems += [f"unexpected {_mae_name(k)!r}" for k in sorted(set(state) - set(ours))]
    if problems:
        raise TrainingError(
            f"model.init_from: {path} does not fit this model ({len(problems)} problems; first: {problems[0]})"
        )


def _mae_name(name: str) -> str:
    """Our parameter name -> MAE's (the inverse of ``to_our_names`` on names)."""
    return "decoder_pred." + name.removeprefix("heads.rgb.") if name.startswith("heads.rgb.") else name


def _summary(names: list[str]) -> str:
    """['blocks.0.norm1.weight', ..., 'heads.rgb.bias'] -> 'blocks (24), heads.rgb (2)': tensors
    per top-level module (per head for ``heads``)."""
    groups: dict[str, int] = {}
    for name in names:
        parts = name.split(".")
        key = ".".join(parts[:2]) if parts[0] == "heads" else parts[0]
        groups[key] = groups.get(key, 0) + 1
    return ", ".join(f"{k} ({n})" for k, n in groups.items()) or "nothing"
