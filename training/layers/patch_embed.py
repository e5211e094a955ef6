"""The RGB input adapter (timm's patch embedding) and the fixed position table (patch geometry:
``training.patches``)."""

import torch
from timm.layers import PatchEmbed

from training.patches import gather_patches


class RGBAdapter(PatchEmbed):
    """image: [N, 3, H, W], ids_keep: [N, K] -> tokens [N, K, D] (all L patches when None). timm's
    patch embedding (conv p x p, stride p), so its weights export to timm as they are; it embeds
    the whole image and keeps the visible rows, as MAE does."""

    def __init__(self, img_size: int, patch_size: int, embed_dim: int):
        super().__init__(img_size=img_size, patch_size=patch_size, in_chans=3, embed_dim=embed_dim)

    def forward(self, image: torch.Tensor, ids_keep: torch.Tensor | None = None) -> torch.Tensor:
        tokens = super().forward(image)
        return tokens if ids_keep is None else gather_patches(tokens, ids_keep)


def sincos_pos_embed(dim: int, grid: int) -> torch.Tensor:
    """Fixed 2-D sine-cosine position embedding: [grid * grid, dim], row-major patches.
    MAE's layout: the first half of the channels encodes the column, the second half the row;
    each half is [sin(pos * w_k), cos(pos * w_k)] over ``dim / 4`` frequencies
    w_k = 1 / 10000^(k / (dim / 4))."""
    if dim % 4:
        raise ValueError(f"sin-cos position embedding needs dim % 4 == 0, got {dim}")
    freq = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float64) / (dim // 4))
    pos = torch.arange(grid, dtype=torch.float64)
    angle = pos[:, None] * freq[None]
    enc = torch.cat([angle.sin(), angle.cos()], dim=1)
    rows = enc[:, None, :].expand(grid, grid, dim // 2)
    cols = enc[None, :, :].expand(grid, grid, dim // 2)
    return torch.cat([cols, rows], dim=-1).reshape(grid * grid, dim).float()
