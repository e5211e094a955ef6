"""SAM's image encoder with its attention through SDPA equals segment-anything's own, windowed and
global blocks, in fp32 and (within bf16 rounding) under bf16 autocast on the CPU."""

from __future__ import annotations

import copy
from functools import partial

import pytest
import torch
from segment_anything.modeling import ImageEncoderViT

from labeling.backends.sam_sdpa import SdpaAttention, fuse_attention


def encoder(img_size=160, window=4, table=None) -> ImageEncoderViT:
    """Depth 3 (blocks 0 and 2 windowed, 1 global), grid 10 × 10: windows of 4 need padding. Relative
    position tables random (segment-anything starts them at zero), optionally `table` rows long."""
    torch.manual_seed(0)
    model = ImageEncoderViT(
        img_size=img_size,
        patch_size=16,
        embed_dim=48,
        depth=3,
        num_heads=3,
        mlp_ratio=2,
        out_chans=32,
        norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
        qkv_bias=True,
        use_rel_pos=True,
        global_attn_indexes=(1,),
        window_size=window,
    ).eval()
    with torch.no_grad():
        for block in model.blocks:
            for name in ("rel_pos_h", "rel_pos_w"):
                rows = table or getattr(block.attn, name).shape[0]
                setattr(block.attn, name, torch.nn.Parameter(torch.randn(rows, 16)))
    return model


def both(model):
    return model, fuse_attention(copy.deepcopy(model))


@pytest.mark.parametrize("table", [None, 9])  # 9 rows: resampled to 7 (windows) and 19 (global)
def test_fp32_outputs_equal_the_original(table):
    original, fused = both(encoder(table=table))
    assert all(isinstance(b.attn, SdpaAttention) for b in fused.blocks)
    x = torch.randn(2, 3, 160, 160)
    with torch.no_grad():
        want, got = original(x), fused(x)
    assert want.abs().mean() > 0.1
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_each_block_kind_equals_the_original():
    """Windowed (block 0, padded windows) and global (block 1) attention modules on their own."""
    original, fused = both(encoder())
    for index in (0, 1):
        size = (4, 4) if index == 0 else (10, 10)
        x = torch.randn(3, *size, 48)
        with torch.no_grad():
            torch.testing.assert_close(
                fused.blocks[index].attn(x), original.blocks[index].attn(x), rtol=1e-5, atol=1e-5
            )


def test_bf16_autocast_stays_within_bf16_rounding_of_the_original():
    original, fused = both(encoder())
    x = torch.randn(2, 3, 160, 160)
    with torch.no_grad():
        exact = original(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            want, got = original(x).float(), fused(x).float()
    scale = exact.abs().max()
    assert (want - exact).abs().max() < 0.05 * scale  # the original's own bf16 error, for scale
    assert (got - exact).abs().max() < 0.05 * scale
    assert (got - want).abs().mean() < 0.01 * exact.abs().mean()


def test_state_dict_keys_and_values_are_kept_and_swapping_twice_is_a_no_op():
    original, fused = both(encoder())
    want, got = original.state_dict(), fused.state_dict()
    assert list(got) == list(want)
    assert all(torch.equal(got[k], want[k]) for k in want)
    attention = fused.blocks[0].attn
    assert fuse_attention(fused).blocks[0].attn is attention


def test_hq_sam_loads_with_sdpa_attention_equal_to_eager(sam_hq_dir):
    """transformers 5 has an SDPA attention for SamHQ's vision encoder; load_sam_hq asks for it."""
    from transformers import SamHQModel

    from labeling.backends.sam_loader import load_sam_hq

    fused, _ = load_sam_hq(str(sam_hq_dir), None, torch.device("cpu"))
    eager = SamHQModel.from_pretrained(sam_hq_dir, attn_implementation="eager").eval()
    assert type(fused.vision_encoder.layers[0].attn).__name__ == "SamHQVisionSdpaAttention"
    assert type(eager.vision_encoder.layers[0].attn).__name__ == "SamHQVisionAttention"
    torch.manual_seed(0)
    with torch.no_grad():
        for ours, theirs in zip(fused.vision_encoder.layers, eager.vision_encoder.layers):
            for name in ("rel_pos_h", "rel_pos_w"):  # zero after init: make the bias matter
                getattr(ours.attn, name).copy_(torch.randn_like(getattr(ours.attn, name)))
                getattr(theirs.attn, name).copy_(getattr(ours.attn, name))
        pixels = torch.randn(2, 3, 256, 256)
        got, want = fused.vision_encoder(pixels), eager.vision_encoder(pixels)
    torch.testing.assert_close(got.last_hidden_state, want.last_hidden_state, rtol=1e-5, atol=1e-5)
    for a, b in zip(got.intermediate_embeddings, want.intermediate_embeddings):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_sam_compile_compiles_the_image_encoder_in_place(monkeypatch, grounding_dino_dir):
    """The flag reaches nn.Module.compile on SAM's encoder (not run here: inductor needs minutes)."""
    from labeling.backends import create_backend

    from .tiny_models import tiny_sam

    compiled = []
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, *a, **k: compiled.append(self))
    sam = tiny_sam()
    create_backend("instance", "grounded", detector=str(grounding_dino_dir), sam_model=sam, sam_variant="sam")
    assert compiled == []
    create_backend(
        "instance", "grounded", detector=str(grounding_dino_dir), sam_model=sam, sam_variant="sam", sam_compile=True
    )
    create_backend("instance", "sam-amg", sam_model=sam, sam_compile=True)
    assert compiled == [sam.image_encoder, sam.image_encoder]
