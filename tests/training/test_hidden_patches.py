"""Nothing of a masked patch reaches the model, and visible targets do not enter the loss.

Masks (and the encoder's tokens, which modality dropout and the token budget choose) are drawn
once (guided masking reads the label maps) and passed again with the changed batch, so only the
content of the patches changes.
"""

import dataclasses

import pytest
import torch

from training.masking import INSTANCE, RANDOM, SEMANTIC
from training.models import build_model
from training.models.decoders import TARGETS

TINY_CLASSES = 5  # as in conftest.tiny_train_batch
N = 4
STRATEGIES = {
    "random": torch.full((N,), RANDOM),
    "semantic": torch.full((N,), SEMANTIC),
    "instance": torch.full((N,), INSTANCE),
    "patch-mix": torch.tensor([[0.4, 0.3, 0.3]]).expand(N, 3),
}
VARIANTS = {
    "tokens": {},
    "sum": {"input_fusion": "sum"},
    "per-modality": {"per_modality_masking": True},
    "budget+dropout": {"token_budget": 7, "modality_dropout": 0.5},
    "sum+dropout": {"input_fusion": "sum", "modality_dropout": 0.5},
}
INPUTS = {"rgb": "image", "semantic": "semantic", "instance": "instance"}


def pixel_mask(patch_mask: torch.Tensor, patch: int) -> torch.Tensor:
    """patch_mask: [N, L] bool -> [N, H, W] bool, each patch's pixels."""
    grid = int(patch_mask.shape[1] ** 0.5)
    cells = patch_mask.reshape(-1, grid, grid)
    return cells.repeat_interleave(patch, 1).repeat_interleave(patch, 2)


def replace_patches(batch: dict, masks: dict, patch: int, hidden: bool, seed: int) -> dict:
    """A copy of batch whose masked (hidden=True) or visible patches hold other values: every input
    under its own target's mask; new instance ids include 0, -1 and ids not seen before."""
    g = torch.Generator().manual_seed(seed)
    out = dict(batch)
    for target, key in INPUTS.items():
        where = pixel_mask(masks[target].mask.bool() == hidden, patch)
        old = batch[key]
        if key == "image":
            new, where = torch.randn(old.shape, generator=g) * 3, where[:, None]
        else:
            high = TINY_CLASSES if key == "semantic" else 9
            new = torch.randint(-1, high, old.shape, generator=g)
        out[key] = torch.where(where, new, old)
        assert not torch.equal(out[key], old)
    return out


def make(cfg, **changes):
    torch.manual_seed(0)
    return build_model(dataclasses.replace(cfg, **changes), TINY_CLASSES).eval()


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_masked_patch_content_never_reaches_the_encoder(strategy, variant, tiny_model_cfg, tiny_train_batch):
    model = make(tiny_model_cfg, **VARIANTS[variant])
    gen = torch.Generator().manual_seed(1)
    masks = model.mask_patches(tiny_train_batch, STRATEGIES[strategy], gen)
    visible = model.choose_visible(masks, gen)
    changed = replace_patches(tiny_train_batch, masks, tiny_model_cfg.patch_size, True, seed=2)
    with torch.no_grad():
        latent = model.forward_encoder(tiny_train_batch, masks, visible)
        assert torch.equal(latent, model.forward_encoder(changed, masks, visible))


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_visible_targets_do_not_change_the_loss(strategy, variant, tiny_model_cfg, tiny_train_batch):
    model = make(tiny_model_cfg, **VARIANTS[variant])
    gen = torch.Generator().manual_seed(1)
    masks = model.mask_patches(tiny_train_batch, STRATEGIES[strategy], gen)
    visible = model.choose_visible(masks, gen)
    changed = replace_patches(tiny_train_batch, masks, tiny_model_cfg.patch_size, False, seed=3)
    with torch.no_grad():
        preds = model.forward_decoder(model.forward_encoder(tiny_train_batch, masks, visible), masks, visible)
        before = model.forward_loss(tiny_train_batch, preds, masks)
        after = model.forward_loss(changed, preds, masks)
    assert set(before) == set(TARGETS)
    assert all(torch.equal(before[t], after[t]) for t in TARGETS)
