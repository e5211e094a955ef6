"""Patch geometry shared by adapters, decoder heads and losses.

Pixel patches are flattened ``(row, column, channel)``: ``[N, L, p * p * C]``. Dense label maps are
sampled at stride 4 (``LABEL_STRIDE``), taking the centre pixel of each 4x4 cell, and flattened per
patch ``[N, L, (p / 4) ** 2]``.
"""

import torch
from timm.layers import PatchEmbed

LABEL_STRIDE = 4


def rgb_patch_embed(img_size: int, patch_size: int, embed_dim: int) -> PatchEmbed:
    """timm's patch embedding (conv p x p, stride p), so its weights export to timm as they are."""
    return PatchEmbed(img_size=img_size, patch_size=patch_size, in_chans=3, embed_dim=embed_dim)


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


def patchify(images: torch.Tensor, patch: int) -> torch.Tensor:
    """images: [N, C, H, W] -> [N, L, p * p * C]."""
    n, c, h, w = images.shape
    x = images.reshape(n, c, h // patch, patch, w // patch, patch)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(n, (h // patch) * (w // patch), patch * patch * c)


def unpatchify(patches: torch.Tensor, patch: int, grid: tuple[int, int]) -> torch.Tensor:
    """patches: [N, L, p * p * C] -> [N, C, H, W] for a ``grid = (H / p, W / p)`` patch grid."""
    n, (gh, gw) = patches.shape[0], grid
    c = patches.shape[-1] // (patch * patch)
    x = patches.reshape(n, gh, gw, patch, patch, c).permute(0, 5, 1, 3, 2, 4)
    return x.reshape(n, c, gh * patch, gw * patch)


def gather_patches(x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """x: [N, L, ...], ids: [N, M] -> [N, M, ...], the rows ``ids`` of each sample."""
    index = ids.reshape(*ids.shape, *([1] * (x.dim() - 2))).expand(-1, -1, *x.shape[2:])
    return x.gather(1, index)


def downsample_labels(labels: torch.Tensor, stride: int = LABEL_STRIDE) -> torch.Tensor:
    """labels: [N, H, W] -> [N, H / s, W / s], the centre pixel of each s x s cell (nearest)."""
    return labels[:, stride // 2::stride, stride // 2::stride]


def label_patches(labels: torch.Tensor, patch: int) -> torch.Tensor:
    """labels: [N, H, W] full resolution -> [N, L, (p / 4) ** 2] stride-4 samples per patch."""
    small = downsample_labels(labels)
    return patchify(small[:, None], patch // LABEL_STRIDE)


def unpatchify_labels(patches: torch.Tensor, patch: int, grid: tuple[int, int]) -> torch.Tensor:
    """patches: [N, L, (p / 4) ** 2] -> [N, H / 4, W / 4]."""
    return unpatchify(patches, patch // LABEL_STRIDE, grid)[:, 0]
