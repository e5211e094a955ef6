"""Input adapters that turn the label maps into tokens: [N, H, W] -> [N, K, D] for the K patches
``ids_keep`` (all L patches when it is None). Only the visible patches are embedded, so the
adapters cost a quarter of a full-grid embedding at mask ratio 0.75.

Both work on the stride-4 label grid (``label_patches``: (p / 4)^2 label pixels per patch) and end
in a linear map of the patch's flattened per-pixel features, which is what a conv with
kernel = stride = p / 4 computes, as the RGB patch embedding does for pixels.

- Semantic: a learned class embedding per label pixel (an extra row for "ignore", -1), projected.
  Mean-pooling the embeddings would be a special case of this projection; a full projection also
  keeps where inside the patch each class lies.
- Instance: ids are arbitrary per image, so the adapter never sees them. It sees, per label pixel,
  four relations that any relabeling of the ids >= 1 preserves: same instance as the patch centre
  (and that centre is an instance), "no instance" (0), "ignore" (-1), and instance boundary (differs
  from the right or lower neighbour inside the same patch). Its output is therefore exactly
  unchanged by relabeling.

Every feature of a patch is computed from that patch's own pixels: a token never carries anything
of a neighbouring patch, which may be masked (a boundary on the patch edge would tell the encoder
whether the hidden neighbour holds another object).
"""

import torch
import torch.nn as nn

from training.patches import LABEL_STRIDE, downsample_labels, gather_patches, label_patches, patchify


def _visible(x: torch.Tensor, ids_keep: torch.Tensor | None) -> torch.Tensor:
    """x: [N, L, ...] -> [N, K, ...] rows ``ids_keep`` (all rows when None)."""
    return x if ids_keep is None else gather_patches(x, ids_keep)


class SemanticAdapter(nn.Module):
    """semantic: [N, H, W] int64 class ids (-1 ignore), ids_keep: [N, K] -> tokens [N, K, D]."""

    def __init__(self, num_classes: int, patch_size: int, embed_dim: int, class_dim: int = 64):
        super().__init__()
        self.num_classes, self.patch_size = num_classes, patch_size
        self.class_embed = nn.Embedding(num_classes + 1, class_dim)
        self.proj = nn.Linear((patch_size // LABEL_STRIDE) ** 2 * class_dim, embed_dim)

    def forward(self, semantic: torch.Tensor, ids_keep: torch.Tensor | None = None) -> torch.Tensor:
        ids = _visible(label_patches(semantic, self.patch_size), ids_keep)
        ids = torch.where(ids < 0, torch.full_like(ids, self.num_classes), ids)
        return self.proj(self.class_embed(ids).flatten(2))


def instance_relations(instance: torch.Tensor, patch_size: int) -> torch.Tensor:
    """instance: [N, H, W] int64 (0 none, -1 ignore) -> [N, 4, H / 4, W / 4] float features:
    same-as-patch-centre, no-instance, ignore, boundary inside the patch. Each patch's features
    depend on its own pixels only; invariant to relabeling ids >= 1."""
    ids = downsample_labels(instance)
    n, h, w = ids.shape
    cells = patch_size // LABEL_STRIDE
    grid = ids.reshape(n, h // cells, cells, w // cells, cells)  # [N, row, y, col, x]
    centre = grid[:, :, cells // 2, :, cells // 2]
    same = (grid == centre[:, :, None, :, None]) & (centre[:, :, None, :, None] > 0)
    edge = torch.zeros_like(grid, dtype=torch.bool)
    edge[..., :-1] |= grid[..., 1:] != grid[..., :-1]
    edge[:, :, :-1] |= grid[:, :, 1:] != grid[:, :, :-1]
    feats = (same.reshape(n, h, w), ids == 0, ids < 0, edge.reshape(n, h, w))
    return torch.stack(feats, dim=1).float()


class InstanceAdapter(nn.Module):
    """instance: [N, H, W] int64 ids (0 none, -1 ignore), ids_keep: [N, K] -> tokens [N, K, D],
    id-free."""

    def __init__(self, patch_size: int, embed_dim: int):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Linear((patch_size // LABEL_STRIDE) ** 2 * 4, embed_dim)

    def forward(self, instance: torch.Tensor, ids_keep: torch.Tensor | None = None) -> torch.Tensor:
        feats = instance_relations(instance, self.patch_size).to(self.proj.weight.dtype)
        cells = patchify(feats, self.patch_size // LABEL_STRIDE)
        return self.proj(_visible(cells, ids_keep))
