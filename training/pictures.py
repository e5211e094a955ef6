"""Drawable predictions: a forward's output turned into image-shaped tensors, which
``visualize.draw_grid`` lays out. Built only when asked (the engine draws every
``engine.image_every`` steps). Each target's masked patches show the prediction, its visible
patches the input (instance: 0).
"""

import torch

from training.losses import patch_stats
from training.models.config import ModelConfig
from training.patches import LABEL_STRIDE, gather_patches, label_patches, patchify, unpatchify, unpatchify_labels


@torch.no_grad()
def draw_predictions(cfg: ModelConfig, batch: dict, out: dict) -> dict[str, torch.Tensor]:
    """One picture per predicted target of ``out = model(batch, ...)``: rgb [N, 3, H, W],
    semantic [N, H/4, W/4], instance [N, 3, H/4, W/4] (see the functions below)."""
    draw = {"rgb": picture_rgb, "semantic": picture_semantic, "instance": picture_instance}
    return {t: draw[t](cfg, batch, pred, out["masks"][t].ids_masked()) for t, pred in out["preds"].items()}


def picture_rgb(cfg: ModelConfig, batch: dict, pred: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """pred: [N, M, p*p*3] at patches ids [N, M] -> [N, 3, H, W] in normalised image space; with
    norm_pix_loss, predictions are un-normalised with the true patch mean and variance (a picture
    aid, as in MAE's visualisations)."""
    target = patchify(batch["image"], cfg.patch_size)
    pred = pred.float()
    if cfg.norm_pix_loss:
        mean, std = patch_stats(gather_patches(target, ids))
        pred = pred * std + mean
    return unpatchify(paste(target, ids, pred), cfg.patch_size, (cfg.grid, cfg.grid))


def picture_semantic(cfg: ModelConfig, batch: dict, logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """logits: [N, M, (p/4)^2 * C] -> argmax class ids at masked patches, the target elsewhere:
    [N, H/4, W/4]."""
    labels = label_patches(batch["semantic"], cfg.patch_size)
    argmax = logits.unflatten(-1, (labels.shape[-1], -1)).argmax(-1)
    return unpatchify_labels(paste(labels, ids, argmax), cfg.patch_size, (cfg.grid, cfg.grid))


def picture_instance(cfg: ModelConfig, batch: dict, embed: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """embed: [N, M, (p/4)^2 * E] -> the first three embedding channels, min-max stretched per
    image to [0, 1], 0 at visible patches: [N, 3, H/4, W/4]. ``batch`` is not read."""
    cells = (cfg.patch_size // LABEL_STRIDE) ** 2
    emb = embed.float().unflatten(-1, (cells, -1))[..., :3]
    lo, hi = emb.amin((1, 2, 3), keepdim=True), emb.amax((1, 2, 3), keepdim=True)
    emb = ((emb - lo) / (hi - lo).clamp(min=1e-6)).flatten(2)
    canvas = emb.new_zeros(emb.shape[0], cfg.num_patches, emb.shape[-1])
    return unpatchify(paste(canvas, ids, emb), cfg.patch_size // LABEL_STRIDE, (cfg.grid, cfg.grid))


def paste(grid: torch.Tensor, ids: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """A copy of grid [N, L, K] with rows ids [N, M] replaced by values [N, M, K]."""
    index = ids[..., None].expand(-1, -1, grid.shape[-1])
    return grid.scatter(1, index, values.to(grid.dtype))
