"""The model with modality dropout and a token budget: what the encoder sees, what it never reads."""

import dataclasses

import pytest
import torch

from training.masking import RANDOM
from training.models import build_model
from training.patches import gather_patches

TINY_CLASSES = 5  # as in conftest.tiny_train_batch
N, K = 4, 4  # tiny_train_batch: 4 samples; 16 patches at ratio 0.75 keep 4
MIXED = torch.tensor([0, 1, 2, 0])


def make(cfg, **changes):
    torch.manual_seed(0)
    return build_model(dataclasses.replace(cfg, **changes), TINY_CLASSES)


def run(model, batch, seed=0):
    return model(batch, MIXED, torch.Generator().manual_seed(seed))


def rgb_only_latent(model, batch, masks) -> torch.Tensor:
    """The encoder on the visible RGB tokens alone, as downstream fine-tuning feeds it."""
    ids = masks["rgb"].ids_keep
    pos = gather_patches(model.pos_embed[:, 1:].expand(N, -1, -1), ids)
    return model.run_encoder([model.patch_embed(batch["image"], ids) + pos])


@pytest.mark.parametrize("fusion", ["tokens", "sum"])
def test_modality_dropout_one_gives_the_encoder_rgb_alone(fusion, tiny_model_cfg, tiny_train_batch):
    model = make(tiny_model_cfg, input_fusion=fusion, modality_dropout=1.0).eval()
    with torch.no_grad():
        out = run(model, tiny_train_batch)
        expected = rgb_only_latent(model, tiny_train_batch, out["masks"])
    assert out["latent"].shape == (N, 1 + K, tiny_model_cfg.embed_dim)  # 1 + 3K without dropout (tokens)
    assert torch.allclose(out["latent"], expected, atol=1e-6)
    assert set(out["losses"]) == {"semantic", "instance", "rgb"}  # the label maps stay targets


def test_modality_dropout_zero_leaves_the_step_unchanged(tiny_model_cfg, tiny_train_batch):
    default, switched = make(tiny_model_cfg), make(tiny_model_cfg, modality_dropout=0.0, token_budget=None)
    a, b = run(default, tiny_train_batch), run(switched, tiny_train_batch)
    assert a["latent"].shape[1] == 1 + 3 * K
    assert torch.equal(a["loss"], b["loss"]) and torch.equal(a["latent"], b["latent"])


def test_a_dropped_samples_label_maps_never_reach_its_predictions(tiny_model_cfg, tiny_train_batch):
    """Dropout p=0.5 and a budget above len_keep: dropped samples are padded; changing their label
    maps (masks and token choice held fixed) changes no prediction."""
    model = make(tiny_model_cfg, modality_dropout=0.5, token_budget=7).eval()
    gen = torch.Generator().manual_seed(3)
    masks = model.mask_patches(tiny_train_batch, MIXED, gen)
    visible = model.choose_visible(masks, gen)
    dropped = visible.dropped
    assert 0 < dropped.sum() < N and visible.valid is not None and not visible.valid[dropped].all()
    changed = dict(tiny_train_batch)
    for key, high in (("semantic", TINY_CLASSES), ("instance", 9)):
        other = torch.randint(-1, high, changed[key].shape, generator=torch.Generator().manual_seed(4))
        changed[key] = torch.where(dropped[:, None, None], other, changed[key])
    with torch.no_grad():
        a = model.forward_decoder(model.forward_encoder(tiny_train_batch, masks, visible), masks, visible)
        b = model.forward_decoder(model.forward_encoder(changed, masks, visible), masks, visible)
    for t in a:
        assert torch.allclose(a[t], b[t], atol=1e-6), t


@pytest.mark.parametrize("budget", [1, K, 7, 3 * K])
def test_the_token_budget_sets_the_encoder_tokens(budget, tiny_model_cfg, tiny_train_batch):
    model = make(tiny_model_cfg, token_budget=budget)
    out = run(model, tiny_train_batch)
    assert out["latent"].shape[1] == 1 + budget  # budget = len_keep: MAE's encoder tokens
    assert torch.all(out["mask"].sum(1) == 12)  # the targets are the masks' hidden patches, as before
    out["loss"].backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_switches_are_reproducible_from_the_generator_seed(tiny_model_cfg, tiny_train_batch):
    model = make(tiny_model_cfg, modality_dropout=0.5, token_budget=K)
    a, b, c = run(model, tiny_train_batch, 1), run(model, tiny_train_batch, 1), run(model, tiny_train_batch, 2)
    assert torch.equal(a["loss"], b["loss"]) and not torch.equal(a["loss"], c["loss"])


def test_switches_keep_the_masks_of_the_default(tiny_model_cfg, tiny_train_batch):
    """Their draws come after the masks', so the hidden patches (the targets) are the default's."""
    a = run(make(tiny_model_cfg), tiny_train_batch)
    b = run(make(tiny_model_cfg, modality_dropout=0.5, token_budget=K), tiny_train_batch)
    assert torch.equal(a["mask"], b["mask"])


def test_an_mae_model_ignores_strategies(tiny_model_cfg, tiny_train_batch):
    model = make(tiny_model_cfg, mode="mae")
    assert torch.all(model.strategy_used(MIXED) == RANDOM)
    assert torch.equal(make(tiny_model_cfg).strategy_used(MIXED), MIXED)
