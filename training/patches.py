"""Patch geometry, the one place for it: how images and label maps become patch rows and back.

Patches are numbered row-major over the ``[H/p, W/p]`` grid, ``L = (H/p) * (W/p)``. Pixel patches
are flattened ``(row, column, channel)``: ``[N, L, p * p * C]``. Dense label maps are sampled at
stride 4 (``LABEL_STRIDE``), taking the centre pixel of each 4x4 cell, and flattened per patch
``[N, L, (p / 4) ** 2]``.
"""

import torch

LABEL_STRIDE = 4


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


def patchify_labels(labels: torch.Tensor, patch: int) -> torch.Tensor:
    """labels: [N, H, W] -> [N, L, p * p], pixels row-major inside each patch."""
    return patchify(labels[:, None], patch)


def gather_patches(x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """x: [N, L, ...], ids: [N, M] -> [N, M, ...], the rows ``ids`` of each sample."""
    index = ids.reshape(*ids.shape, *([1] * (x.dim() - 2))).expand(-1, -1, *x.shape[2:])
    return x.gather(1, index)


def downsample_labels(labels: torch.Tensor, stride: int = LABEL_STRIDE) -> torch.Tensor:
    """labels: [N, H, W] -> [N, H / s, W / s], the centre pixel of each s x s cell (nearest)."""
    return labels[:, stride // 2 :: stride, stride // 2 :: stride]


def label_patches(labels: torch.Tensor, patch: int) -> torch.Tensor:
    """labels: [N, H, W] full resolution -> [N, L, (p / 4) ** 2] stride-4 samples per patch."""
    return patchify_labels(downsample_labels(labels), patch // LABEL_STRIDE)


def unpatchify_labels(patches: torch.Tensor, patch: int, grid: tuple[int, int]) -> torch.Tensor:
    """patches: [N, L, (p / 4) ** 2] -> [N, H / 4, W / 4]."""
    return unpatchify(patches, patch // LABEL_STRIDE, grid)[:, 0]
