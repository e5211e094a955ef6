"""Patch masking: one score per patch, a stable argsort, keep exactly ``len_keep`` per sample.

Conventions, born here and kept everywhere in ``training``:

- patches are numbered row-major over the ``[H/p, W/p]`` grid, ``L = (H/p) * (W/p)``;
- ``ids_keep: [N, len_keep]`` visible patches, ``len_keep = int(L * (1 - mask_ratio))``;
- ``mask: [N, L]`` float, 0 keep / 1 remove;
- ``ids_restore: [N, L]`` inverse of the shuffle (``ids_shuffle[ids_restore] == arange(L)``);
- ``strategy: [N]`` int64 per sample, ``SEMANTIC`` (0), ``INSTANCE`` (1) or ``RANDOM`` (2); or
  ``[N, 3]`` float mixing weights ``(alpha_S, alpha_I, alpha_R)`` per sample (patch mixing, below).

Strategies differ only in the primary sort key. Patches are ordered by (segment key, noise):
random masking has a constant segment key, so the order is the noise order; guided masking gives
every segment one random key, so segments are removed whole, and only the segment that straddles
``len_keep`` is split. Segments are mode-pooled patch labels (``pool_patches``). A patch whose
mode is "ignore" (-1, all its pixels unlabeled) is a segment of its own in both guided
strategies, and so is an instance-guided patch whose mode is 0 ("no instance"): background and
padding are masked like random patches, labelled regions whole.

Patch mixing (``curriculum.mix: patch``) mixes the sort keys instead of drawing one strategy per
sample: a patch's primary key is ``alpha_S * k_S + alpha_I * k_I + alpha_R * noise``, with ``k_S``
its semantic segment's key and ``k_I`` its instance segment's key (independent uniforms). Patches
of one segment share that segment's term and differ only in the others, so the larger
``alpha_S + alpha_I``, the more often whole segments are hidden together; (1, 0, 0) gives exactly
semantic-guided masks and (0, 0, 1) exactly random ones (same generator state).
"""

from typing import NamedTuple

import torch

from training.ignore import IGNORE
from training.patches import downsample_labels, patchify_labels

SEMANTIC, INSTANCE, RANDOM = 0, 1, 2
STRATEGY_NAMES = ("semantic", "instance", "random")


class Masks(NamedTuple):
    """The result of masking one batch (shapes in the module docstring)."""

    ids_keep: torch.Tensor
    mask: torch.Tensor
    ids_restore: torch.Tensor

    def ids_masked(self) -> torch.Tensor:
        """[N, L - len_keep] indices of the removed patches, in shuffle order."""
        return self.ids_restore.argsort(dim=1)[:, self.ids_keep.shape[1] :]


def num_keep(num_patches: int, mask_ratio: float) -> int:
    """Visible patches per sample: ``int(L * (1 - mask_ratio))``, at least one."""
    return max(1, int(num_patches * (1.0 - mask_ratio)))


def patch_mode(labels: torch.Tensor, patch: int) -> torch.Tensor:
    """Most frequent label >= 0 in each patch, the smallest on ties, -1 if none.

    labels: [N, H, W] int64 (negative = ignore) -> [N, L] int64.
    Sort-based: after sorting each patch, the length of the run ending at each position is
    position - run start + 1; the mode ends the first longest run.
    """
    sentinel = torch.iinfo(torch.int64).max
    x = patchify_labels(labels, patch)
    x = torch.where(x < 0, torch.full_like(x, sentinel), x).sort(dim=-1).values
    pos = torch.arange(x.shape[-1], device=x.device).expand_as(x)
    new_run = torch.ones_like(x, dtype=torch.bool)
    new_run[..., 1:] = x[..., 1:] != x[..., :-1]
    run_start = torch.where(new_run, pos, torch.zeros_like(pos)).cummax(dim=-1).values
    run_len = (pos - run_start + 1).masked_fill(x == sentinel, 0)
    mode = x.gather(-1, run_len.argmax(dim=-1, keepdim=True)).squeeze(-1)
    return mode.masked_fill(mode == sentinel, IGNORE)


def pool_patches(labels: torch.Tensor, patch: int, stride: int) -> torch.Tensor:
    """labels: [N, H, W] -> [N, L] mode over the centre pixels of each patch's stride x stride
    cells (``patch_mode`` of the nearest-downsampled map)."""
    return patch_mode(downsample_labels(labels, stride), patch // stride)


def segment_ids(patch_labels: torch.Tensor, singleton: torch.Tensor) -> torch.Tensor:
    """Compact per-sample segment ids.

    patch_labels: [N, L] int64; singleton: [N, L] bool, patches that form a segment on their own.
    Returns [N, L] int64 in [0, L): patches of one sample share an id iff they share a label and
    neither is a singleton; ids are numbered in increasing label order, singletons last by position.
    """
    n, num = patch_labels.shape
    top = patch_labels.max().clamp(min=-1) + 1
    pos = torch.arange(num, device=patch_labels.device)
    seg = torch.where(singleton, top + pos, patch_labels.clamp(min=0))
    sample = torch.arange(n, device=patch_labels.device)[:, None]
    inverse = torch.unique(sample * (top + num) + seg, return_inverse=True)[1]
    return inverse - inverse.min(dim=1, keepdim=True).values


def lexsort(primary: torch.Tensor, secondary: torch.Tensor) -> torch.Tensor:
    """ids_shuffle: [N, L], the order of increasing (primary, secondary); both [N, L]."""
    by_secondary = secondary.argsort(dim=1, stable=True)
    by_primary = primary.gather(1, by_secondary).argsort(dim=1, stable=True)
    return by_secondary.gather(1, by_primary)


def masks_from_order(ids_shuffle: torch.Tensor, len_keep: int) -> Masks:
    """ids_shuffle: [N, L] -> Masks keeping the first ``len_keep`` of each row."""
    ids_restore = ids_shuffle.argsort(dim=1)
    mask = torch.ones(ids_shuffle.shape, device=ids_shuffle.device)
    mask[:, :len_keep] = 0
    return Masks(ids_shuffle[:, :len_keep], mask.gather(1, ids_restore), ids_restore)


def draw_uniforms(
    n: int, num_patches: int, generator: torch.Generator | None, device: torch.device, count: int = 2
) -> tuple[torch.Tensor, ...]:
    """``count`` [N, L] uniforms ((noise, keys) by default), drawn on the generator's device,
    moved to ``device``."""
    source = generator.device if generator is not None else device
    u = torch.rand(count, n, num_patches, generator=generator, device=source).to(device)
    return tuple(u)


def guided_keys(patch_labels: torch.Tensor, keys: torch.Tensor, background: int) -> torch.Tensor:
    """One key per segment. patch_labels: [N, L]; keys: [N, L] uniforms; patches with
    label < ``background`` are singletons. Returns [N, L], a patch's key = its segment's key."""
    return keys.gather(1, segment_ids(patch_labels, patch_labels < background))


def masks_from_uniforms(
    strategy: torch.Tensor,
    noise: torch.Tensor,
    keys: torch.Tensor,
    len_keep: int,
    semantic_patches: torch.Tensor | None = None,
    instance_patches: torch.Tensor | None = None,
) -> Masks:
    """Deterministic core of ``generate_masks``.

    strategy: [N]; noise, keys: [N, L] uniforms; semantic_patches / instance_patches: [N, L]
    mode-pooled labels (needed only if some sample uses that strategy).
    """
    primary = torch.zeros_like(noise)
    for sid, patches, background in ((SEMANTIC, semantic_patches, 0), (INSTANCE, instance_patches, 1)):
        chosen = (strategy == sid)[:, None]
        if patches is None:
            if bool(chosen.any()):
                raise ValueError(f"{STRATEGY_NAMES[sid]}-guided masking needs its label map")
            continue
        primary = torch.where(chosen, guided_keys(patches, keys, background), primary)
    return masks_from_order(lexsort(primary, noise), len_keep)


def mixed_keys(
    weights: torch.Tensor,
    noise: torch.Tensor,
    keys: torch.Tensor,
    instance_keys: torch.Tensor,
    semantic_patches: torch.Tensor | None = None,
    instance_patches: torch.Tensor | None = None,
) -> torch.Tensor:
    """Primary key of patch mixing: [N, L] = alpha_S * k_S + alpha_I * k_I + alpha_R * noise.

    weights: [N, 3] (alpha_S, alpha_I, alpha_R); noise, keys, instance_keys: [N, L] uniforms
    (segment keys of the semantic and of the instance segments); *_patches: [N, L] mode-pooled
    labels, needed only where their weight is positive.
    """
    weights = weights.to(noise)
    primary = weights[:, 2:] * noise
    for col, patches, seg_keys, background in (
        (SEMANTIC, semantic_patches, keys, 0),
        (INSTANCE, instance_patches, instance_keys, 1),
    ):
        alpha = weights[:, col : col + 1]
        if patches is None:
            if bool((alpha > 0).any()):
                raise ValueError(f"{STRATEGY_NAMES[col]}-guided masking needs its label map")
            continue
        primary = primary + alpha * guided_keys(patches, seg_keys, background)
    return primary


def generate_masks(
    strategy: torch.Tensor,
    *,
    num_patches: int,
    mask_ratio: float,
    patch_size: int | None = None,
    semantic: torch.Tensor | None = None,
    instance: torch.Tensor | None = None,
    label_stride: int = 4,
    generator: torch.Generator | None = None,
) -> Masks:
    """Mask a batch, each sample with its own strategy, without a loop over samples.

    strategy: [N] int64, or [N, 3] float patch-mixing weights; semantic / instance: [N, H, W]
    int64 label maps (-1 ignore; instance 0 = no instance). Segments are their mode over each
    ``patch_size`` patch, counted on the centre pixels of its ``label_stride`` cells (the grid the dense
    targets use; 16x fewer pixels to sort at stride 4). Random numbers come from ``generator``: two
    [N, L] uniforms per call, whatever the strategies, and a third (instance segment keys) with
    mixing weights.
    """
    mixing = strategy.is_floating_point()
    if mixing and (strategy.dim() != 2 or strategy.shape[1] != 3):
        raise ValueError(f"patch-mixing weights must be [N, 3], got {list(strategy.shape)}")
    n, device = strategy.shape[0], strategy.device
    noise, keys = draw_uniforms(n, num_patches, generator, device)
    pooled = [
        None if labels is None else pool_patches(labels, patch_size, label_stride) for labels in (semantic, instance)
    ]
    len_keep = num_keep(num_patches, mask_ratio)
    if mixing:
        instance_keys = draw_uniforms(n, num_patches, generator, device, count=1)[0]
        primary = mixed_keys(strategy, noise, keys, instance_keys, *pooled)
        return masks_from_order(lexsort(primary, noise), len_keep)
    return masks_from_uniforms(strategy, noise, keys, len_keep, *pooled)
