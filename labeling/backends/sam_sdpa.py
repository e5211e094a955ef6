"""SAM's image encoder through torch's fused attention (`scaled_dot_product_attention`).

segment-anything's `Attention` (one per ViT block, windowed or global) writes the attention map out
by hand: scores = (q · scale) kᵀ plus decomposed relative positions (MViTv2: a term from the
query's and key's rows and one from their columns, each the query dotted with a learned vector per
offset), softmax, times v. `SdpaAttention` computes the same scores with the relative positions
as an additive bias [B, heads, L, L] handed to `scaled_dot_product_attention`, which runs a fused
kernel (memory-efficient or cuDNN on CUDA; flash attention takes no bias). It reuses the original
module's parameters, so the state dict keeps its keys and values.

`fuse_attention(encoder)` swaps every block's attention in place (idempotent); `compile=True` also
compiles the encoder in place with `torch.compile` (its first call then takes a while).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SdpaAttention(nn.Module):
    """A segment-anything `Attention`'s parameters (qkv, proj, rel_pos_h/w) run through SDPA."""

    def __init__(self, attention: nn.Module):
        super().__init__()
        self.num_heads = attention.num_heads
        self.qkv, self.proj = attention.qkv, attention.proj
        self.use_rel_pos = attention.use_rel_pos
        if self.use_rel_pos:
            self.rel_pos_h, self.rel_pos_w = attention.rel_pos_h, attention.rel_pos_w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, H, W, C] (a window or the whole grid) → [B, H, W, C]."""
        batch, height, width, dim = x.shape
        qkv = self.qkv(x).reshape(batch, height * width, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # [B, heads, L, d] each, L = H · W
        bias = self.position_bias(q, height, width) if self.use_rel_pos else None
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)  # scale d^-½, as segment-anything's
        return self.proj(out.transpose(1, 2).reshape(batch, height, width, dim))

    def position_bias(self, q: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """q: [B, heads, H·W, d] → bias [B, heads, H·W, H·W] in q's dtype: for query (r, c) and key
        (r', c'), q · R_h[r - r'] + q · R_w[c - c'] (unscaled q, as segment-anything adds it)."""
        grid = q.unflatten(2, (height, width))  # [B, n, H, W, d]
        by_row = torch.einsum("bnhwd,hkd->bnhwk", grid, offset_table(self.rel_pos_h, height).to(q.dtype))
        by_col = torch.einsum("bnhwd,wkd->bnhwk", grid, offset_table(self.rel_pos_w, width).to(q.dtype))
        bias = by_row[..., :, None] + by_col[..., None, :]  # [B, n, H, W, H', W']
        return bias.reshape(q.shape[0], q.shape[1], height * width, height * width)


def offset_table(table: torch.Tensor, size: int) -> torch.Tensor:
    """table [T, d] of vectors per offset -(size-1)..(size-1) → [size, size, d], entry (i, j) for
    offset i - j. A table trained for another size (T ≠ 2·size - 1) is resampled linearly."""
    span = 2 * size - 1
    if table.shape[0] != span:
        table = F.interpolate(table.T[None], size=span, mode="linear")[0].T
    index = torch.arange(size, device=table.device)
    return table[index[:, None] - index[None, :] + size - 1]


def fuse_attention(encoder: nn.Module, compile: bool = False) -> nn.Module:
    """In place: every block's `attn` of a segment-anything ImageEncoderViT → SdpaAttention; with
    `compile`, the encoder is compiled too (nn.Module.compile: same module, same keys). → encoder."""
    for block in encoder.blocks:
        if not isinstance(block.attn, SdpaAttention):
            block.attn = SdpaAttention(block.attn)
    if compile:
        encoder.compile()
    return encoder
