"""The model: modes, cascade wiring, relabeling invariance, learning, export to timm."""

import dataclasses

import pytest
import torch

from training.layers.adapters import InstanceAdapter, SemanticAdapter
from training.masking.patch_masks import masks_from_order
from training.models import ModelConfig, build_model, create_model, list_models
from training.models.config import ARCH_PRESETS
from training.models.encoder_io import build_timm_vit
from training.optim import param_groups
from training.patches import gather_patches
from training.pictures import draw_predictions

from .relabeling import relabel

MIXED = torch.tensor([0, 1, 2, 0])
TINY_CLASSES = 5  # as in conftest.tiny_train_batch


def make(cfg: ModelConfig, **changes):
    torch.manual_seed(0)
    return build_model(dataclasses.replace(cfg, **changes), TINY_CLASSES)


def run(model, batch, strategy=MIXED, seed=0):
    return model(batch, strategy, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("mode", ["c2f", "parallel", "mae"])
def test_every_mode_runs_forward_and_backward(mode, tiny_model_cfg, tiny_train_batch):
    model = make(tiny_model_cfg, mode=mode)
    out = run(model, tiny_train_batch)
    out["loss"].backward()
    names = {"rgb"} if mode == "mae" else {"semantic", "instance", "rgb"}
    pictures = draw_predictions(model.cfg, tiny_train_batch, out)
    assert set(out["losses"]) == names and set(pictures) == names
    assert torch.isfinite(out["loss"]) and out["loss"].ndim == 0
    assert torch.allclose(out["loss"], sum(out["losses"].values()))
    assert out["mask"].shape == (4, 16) and torch.all(out["mask"].sum(1) == 12)
    assert pictures["rgb"].shape == (4, 3, 32, 32)
    if mode != "mae":
        assert pictures["semantic"].shape == (4, 8, 8)
        assert pictures["instance"].shape == (4, 3, 8, 8)
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_reconstruction_picture_keeps_visible_patches(tiny_model_cfg, tiny_train_batch):
    model = make(tiny_model_cfg)
    out = run(model, tiny_train_batch)
    visible = (1 - out["mask"]).bool()
    truth = model.patchify(tiny_train_batch["image"])[visible]
    assert torch.allclose(model.patchify(draw_predictions(model.cfg, tiny_train_batch, out)["rgb"])[visible], truth)


def stage_param(model, stage):
    return model.stages[stage].blocks[0].mlp.fc1.weight


@pytest.mark.parametrize("mode, reaches", [("c2f", True), ("parallel", False)])
def test_rgb_loss_reaches_the_semantic_stage_only_in_c2f(mode, reaches, tiny_model_cfg, tiny_train_batch):
    model = make(tiny_model_cfg, mode=mode)
    run(model, tiny_train_batch)["losses"]["rgb"].backward()
    for stage in ("semantic", "instance"):
        grad = stage_param(model, stage).grad
        assert (grad is not None and grad.abs().sum() > 0) == reaches
    assert stage_param(model, "rgb").grad.abs().sum() > 0


@pytest.mark.parametrize("mode, changes", [("c2f", True), ("parallel", False)])
def test_changing_stage_one_output_changes_stage_two(mode, changes, tiny_model_cfg, tiny_train_batch):
    model = make(tiny_model_cfg, mode=mode).eval()
    seen = []
    model.stages["instance"].register_forward_hook(lambda m, i, o: seen.append(o.detach()))
    run(model, tiny_train_batch)
    hook = model.stages["semantic"].register_forward_hook(lambda m, i, o: o + 1.0)
    run(model, tiny_train_batch)
    hook.remove()
    assert (not torch.allclose(seen[0], seen[1])) == changes


def swap_two_visible(masks):
    """Masks with the first two visible tokens of every sample at each other's patch."""
    keep = masks.ids_keep.clone()
    keep[:, [0, 1]] = keep[:, [1, 0]]
    return masks_from_order(torch.cat([keep, masks.ids_masked()], 1), keep.shape[1])


@pytest.mark.parametrize("mode", ["c2f", "parallel"])
@pytest.mark.parametrize("fusion", ["tokens", "sum"])
def test_moving_visible_tokens_changes_the_prediction_only_with_context_embed(
    mode, fusion, tiny_model_cfg, tiny_train_batch
):
    for embed in (True, False):
        model = make(tiny_model_cfg, mode=mode, input_fusion=fusion, decoder_context_embed=embed).eval()
        masks = model.mask_patches(tiny_train_batch, MIXED, torch.Generator().manual_seed(0))
        moved = dict.fromkeys(masks, swap_two_visible(masks["rgb"]))
        assert torch.equal(moved["rgb"].ids_masked(), masks["rgb"].ids_masked())
        with torch.no_grad():
            latent = model.forward_encoder(tiny_train_batch, masks)
            a, b = model.forward_decoder(latent, masks), model.forward_decoder(latent, moved)
        for t in ("semantic", "instance", "rgb"):
            assert torch.allclose(a[t], b[t], atol=1e-5) != embed, (t, embed)


def test_the_decoder_knows_which_input_a_token_came_from(tiny_model_cfg, tiny_train_batch):
    for embed in (True, False):
        model = make(tiny_model_cfg, decoder_context_embed=embed).eval()
        masks = model.mask_patches(tiny_train_batch, MIXED, torch.Generator().manual_seed(0))
        with torch.no_grad():
            latent = model.forward_encoder(tiny_train_batch, masks)
            cls, sem, inst, rgb = latent.split([1, 4, 4, 4], dim=1)  # shared mask: same patches
            a = model.forward_decoder(latent, masks)
            b = model.forward_decoder(torch.cat([cls, rgb, inst, sem], dim=1), masks)
        assert torch.allclose(a["rgb"], b["rgb"], atol=1e-5) != embed


def test_mae_mode_has_no_context_embedding(tiny_model_cfg):
    names = [set(make(tiny_model_cfg, mode="mae", decoder_context_embed=embed).state_dict()) for embed in (True, False)]
    assert names[0] == names[1] and not any("source" in n for n in names[0])
    assert "decoder_source_embed.weight" in make(tiny_model_cfg).state_dict()


def test_instance_embedding_and_loss_are_invariant_to_relabeling(tiny_model_cfg, tiny_train_batch):
    relabeled = dict(tiny_train_batch, instance=relabel(tiny_train_batch["instance"], seed=3))
    assert not torch.equal(relabeled["instance"], tiny_train_batch["instance"])
    adapter = InstanceAdapter(8, 16)
    assert torch.equal(adapter(tiny_train_batch["instance"]), adapter(relabeled["instance"]))
    model = make(tiny_model_cfg)
    strategy = torch.tensor([0, 2, 2, 0])  # instance-guided masks depend on label order
    a, b = run(model, tiny_train_batch, strategy), run(model, relabeled, strategy)
    assert torch.allclose(a["losses"]["instance"], b["losses"]["instance"], atol=1e-6)
    assert torch.allclose(a["loss"], b["loss"], atol=1e-6)


def test_adapters_embed_visible_patches_like_the_full_grid(tiny_train_batch):
    ids_keep = torch.tensor([[0, 5, 9, 15]] * 4)
    for adapter, labels in (
        (SemanticAdapter(TINY_CLASSES, 8, 16, 4), "semantic"),
        (InstanceAdapter(8, 16), "instance"),
    ):
        full = adapter(tiny_train_batch[labels])
        assert full.shape == (4, 16, 16)
        assert torch.allclose(adapter(tiny_train_batch[labels], ids_keep), gather_patches(full, ids_keep))


def test_same_generator_seed_gives_the_same_step(tiny_model_cfg, tiny_train_batch):
    model = make(tiny_model_cfg)
    a, b = run(model, tiny_train_batch, seed=7), run(model, tiny_train_batch, seed=7)
    assert torch.equal(a["mask"], b["mask"]) and torch.equal(a["loss"], b["loss"])
    assert not torch.equal(a["mask"], run(model, tiny_train_batch, seed=8)["mask"])


@pytest.mark.parametrize("mode", ["c2f", "parallel", "mae"])
def test_a_few_cpu_steps_reduce_the_loss(mode, tiny_model_cfg, tiny_train_batch):
    model = make(tiny_model_cfg, mode=mode)
    opt = torch.optim.AdamW(param_groups(model, 0.05), lr=2e-3, betas=(0.9, 0.95))
    losses = []
    for _ in range(15):
        out = run(model, tiny_train_batch)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(out["loss"].item())
    assert losses[-1] < 0.8 * losses[0]


@pytest.mark.parametrize("changes", [{"per_modality_masking": True}, {"input_fusion": "sum"}])
def test_masking_and_fusion_options(changes, tiny_model_cfg, tiny_train_batch):
    model = make(tiny_model_cfg, **changes)
    latent = model.forward_encoder(tiny_train_batch, model.mask_patches(tiny_train_batch, MIXED, None))
    assert latent.shape[1] == 1 + (4 if changes.get("input_fusion") == "sum" else 12)
    run(model, tiny_train_batch)["loss"].backward()


@pytest.mark.parametrize("mode", ["c2f", "mae"])
def test_patch_mixing_weights_drive_the_model(mode, tiny_model_cfg, tiny_train_batch):
    model = make(tiny_model_cfg, mode=mode)
    out = run(model, tiny_train_batch, torch.tensor([[0.5, 0.25, 0.25]]).expand(4, 3))
    assert torch.all(out["mask"].sum(1) == 12)
    out["loss"].backward()


def test_bf16_autocast_keeps_losses_fp32(tiny_model_cfg, tiny_train_batch):
    model = make(tiny_model_cfg)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = run(model, tiny_train_batch)
    assert all(v.dtype == torch.float32 for v in out["losses"].values())
    assert torch.isfinite(out["loss"])


def test_no_weight_decay_and_param_groups(tiny_model_cfg):
    model = make(tiny_model_cfg)
    skip = model.no_weight_decay()
    assert {
        "cls_token",
        "pos_embed",
        "decoder_pos_embed",
        "norm.weight",
        "grid_token",
        "semantic_embed.class_embed.weight",
        "blocks.0.attn.qkv.bias",
    } <= skip
    assert "blocks.0.attn.qkv.weight" not in skip and "heads.rgb.weight" not in skip
    decay, no_decay = param_groups(model, 0.05)  # what the engine builds its optimizer from
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert len(decay["params"]) + len(no_decay["params"]) == len(trainable)
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0


def load_into_timm(model):
    spec = model.timm_spec()
    vit = build_timm_vit(spec["model"], {**spec["kwargs"], "num_classes": 0})
    vit.load_state_dict(model.encoder_state_dict(), strict=True)
    return vit.eval()


def test_encoder_export_loads_strict_into_timm_and_matches(tiny_model_cfg, tiny_train_batch):
    model = make(tiny_model_cfg).eval()
    vit = load_into_timm(model)
    image = tiny_train_batch["image"]
    with torch.no_grad():
        assert torch.allclose(vit.forward_features(image), model.forward_features(image), atol=1e-5)


@pytest.mark.slow
def test_vit_base_encoder_loads_into_vit_base_patch16_224():
    model = create_model("c2fmae_vit_base_patch16", num_classes=150)
    assert model.timm_spec()["model"] == "vit_base_patch16_224"
    vit = load_into_timm(model)
    assert sum(p.numel() for p in vit.parameters()) == 85_798_656


def test_registry_names_and_errors():
    assert {"c2fmae_vit_base_patch16", "mae_vit_base_patch16", "parallel_vit_tiny_cpu"} <= set(list_models())
    with pytest.raises(ValueError, match="c2fmae_vit_base_patch16"):
        create_model("c2fmae_vit_bse_patch16", num_classes=3)
    with pytest.raises(ValueError, match="embed_dims"):
        ModelConfig.from_arch("vit_tiny_cpu", embed_dims=3)
    with pytest.raises(ValueError, match="mode"):
        ModelConfig(mode="cascade")
    assert set(ARCH_PRESETS) >= {"vit_base_patch16", "vit_tiny_cpu"}
