"""Losses: relabeling invariance, ignore handling, masking by gathering, fp32 under autocast."""

import torch

from training.losses import instance_loss, normalise_patches, rgb_loss, semantic_loss

from .relabeling import relabel


def test_instance_loss_is_invariant_to_relabeling():
    g = torch.Generator().manual_seed(0)
    embed = torch.randn(4, 6, 16, 8, generator=g)
    ids = torch.randint(-1, 5, (4, 6, 16), generator=g)
    ids[3] = -1
    a = instance_loss(embed, ids)
    renamed = relabel(ids, 1)
    assert not torch.equal(renamed, ids) and torch.equal(renamed <= 0, ids <= 0)  # other ids, same pixels
    b = instance_loss(embed, renamed)
    assert a > 0 and torch.allclose(a, b, atol=1e-6)
    merged = ids.clone()
    merged[merged == 2] = 1
    assert not torch.allclose(a, instance_loss(embed, merged))


def test_instance_loss_small_for_separated_clusters_and_has_finite_grads():
    ids = torch.tensor([[[1, 1, 2, 2], [0, 0, 2, -1]]])
    centres = torch.tensor([[5.0, 0.0], [0.0, 0.0], [0.0, 5.0]])
    embed = centres[ids.clamp(min=0)]
    assert instance_loss(embed, ids, reg_weight=0.0) == 0
    embed = torch.zeros(1, 2, 4, 2, requires_grad=True)
    loss = instance_loss(embed, ids)
    loss.backward()
    assert loss > 0 and torch.isfinite(embed.grad).all()


def test_semantic_loss_ignores_minus_one_and_handles_all_ignored():
    logits = torch.randn(2, 3, 4, 5, requires_grad=True)
    target = torch.randint(0, 5, (2, 3, 4))
    target[0] = -1
    expected = torch.nn.functional.cross_entropy(logits[1].reshape(-1, 5), target[1].reshape(-1))
    assert torch.allclose(semantic_loss(logits, target), expected)
    zero = semantic_loss(logits, torch.full_like(target, -1))
    zero.backward()
    assert zero == 0 and torch.isfinite(logits.grad).all()


def test_losses_run_in_fp32_under_bf16_autocast():
    logits = torch.randn(2, 3, 4, 5).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = semantic_loss(logits, torch.randint(0, 5, (2, 3, 4)))
        inst = instance_loss(torch.randn(2, 3, 4, 8).bfloat16(), torch.randint(0, 3, (2, 3, 4)))
        rgb = rgb_loss(torch.randn(2, 3, 12).bfloat16(), torch.randn(2, 3, 12))
    assert out.dtype == inst.dtype == rgb.dtype == torch.float32


def test_rgb_loss_normalises_target_per_patch():
    target = torch.randn(2, 3, 48) * 4 + 7
    assert torch.allclose(normalise_patches(target).mean(-1), torch.zeros(2, 3), atol=1e-5)
    assert rgb_loss(normalise_patches(target), target) < 1e-8
    assert rgb_loss(target, target, norm_pix=False) == 0
