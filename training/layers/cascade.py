"""One cascaded-decoder stage, used three times (semantic -> instance -> RGB).

A stage decodes the masked positions of one target. Its queries start as the stage's learned
query token plus the decoder position embedding of each masked patch. Each block runs
self-attention over the queries, cross-attention from the queries to a context, then an MLP
(pre-norm residuals, fused attention through ``F.scaled_dot_product_attention``).

The context is K = V = H (+) scatter(F_prev): the encoder tokens H (in the decoder's width, with
the decoder position and input embeddings of ``decoder_context_embed``), followed by the previous
stage's output placed back on the full token grid (``scatter_to_grid``): its features at the
positions it decoded, a learned "no feature" token at the others, plus the position embedding.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import Mlp
from timm.models.vision_transformer import Attention


class CrossAttention(nn.Module):
    """x: [N, M, D] queries, context: [N, K, D], attend: [N, K] bool (False: never read; None:
    all) -> [N, M, D]."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor, attend: torch.Tensor | None = None) -> torch.Tensor:
        n, m, d = x.shape
        q = self.q(x).reshape(n, m, self.num_heads, -1).transpose(1, 2)
        k, v = self.kv(context).reshape(n, -1, 2, self.num_heads, d // self.num_heads).unbind(2)
        mask = None if attend is None else attend[:, None, None]
        out = F.scaled_dot_product_attention(q, k.transpose(1, 2), v.transpose(1, 2), attn_mask=mask)
        return self.proj(out.transpose(1, 2).reshape(n, m, d))


class CascadeBlock(nn.Module):
    """Self-attention, cross-attention to the context, MLP. x: [N, M, D], context: [N, K, D],
    attend: [N, K] bool or None (``CrossAttention``)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.self_attn = Attention(dim, num_heads=num_heads, qkv_bias=True)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.norm_context = nn.LayerNorm(dim, eps=1e-6)
        self.cross_attn = CrossAttention(dim, num_heads)
        self.norm3 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, context: torch.Tensor, attend: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.self_attn(self.norm1(x))
        x = x + self.cross_attn(self.norm2(x), self.norm_context(context), attend)
        return x + self.mlp(self.norm3(x))


class CascadeStage(nn.Module):
    """pos: [N, M, D] position embeddings of the masked patches, context: [N, K, D], attend:
    [N, K] bool or None (``CrossAttention``) -> features F: [N, M, D] (normalised)."""

    def __init__(self, dim: int, depth: int, num_heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.query_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.blocks = nn.ModuleList(CascadeBlock(dim, num_heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, pos: torch.Tensor, context: torch.Tensor, attend: torch.Tensor | None = None) -> torch.Tensor:
        x = self.query_token + pos
        for block in self.blocks:
            x = block(x, context, attend)
        return self.norm(x)


def scatter_to_grid(features: torch.Tensor, ids: torch.Tensor, fill: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """Place a stage's output back on the token grid.

    features: [N, M, D] at patch indices ids: [N, M]; fill: [1, 1, D] token for the other
    positions; pos: [1, L, D] position embedding. Returns [N, L, D].
    """
    n, _, d = features.shape
    grid = fill.to(features.dtype).expand(n, pos.shape[1], d)
    grid = grid.scatter(1, ids[..., None].expand(-1, -1, d), features)
    return grid + pos
