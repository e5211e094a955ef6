"""The three reconstruction losses, each over the masked patches only.

Callers gather the masked patches first, so every loss here sees ``M = L - len_keep`` patches per
sample and no mask: ``pred: [N, M, ...]``, ``target: [N, M, ...]``. Dense targets live at stride 4
(``S = (patch / 4) ** 2`` label pixels per patch). All losses run in fp32, also under autocast.

``per_sample_terms`` splits each loss into per-sample sums and counts ``([N], [N])`` whose sums'
ratio over any set of samples is the loss of that set (``training.loss_probe`` groups samples by
masking strategy with them); the batch losses keep their own reduction.
"""

import functools

import torch
import torch.nn.functional as F

from training.ignore import IGNORE


def _fp32(fn):
    """Run ``fn`` with autocast off and floating tensor arguments cast to fp32."""

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        args = [a.float() if torch.is_tensor(a) and a.is_floating_point() else a for a in args]
        with torch.autocast(device_type=_device_type(args), enabled=False):
            return fn(*args, **kwargs)

    return wrapped


def _device_type(args) -> str:
    return next(a.device.type for a in args if torch.is_tensor(a))


@_fp32
def rgb_loss(pred: torch.Tensor, target: torch.Tensor, norm_pix: bool = True) -> torch.Tensor:
    """MAE pixel loss. pred, target: [N, M, P] patch pixels; with ``norm_pix`` the target is
    normalised per patch (``normalise_patches``). Mean squared error over all."""
    if norm_pix:
        target = normalise_patches(target)
    return (pred - target).pow(2).mean()


def patch_stats(patches: torch.Tensor, eps: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor]:
    """patches: [..., P] -> (mean, sqrt(var + eps)), each [..., 1]. MAE's statistics: the
    unbiased variance (divisor P - 1, torch's default)."""
    return patches.mean(dim=-1, keepdim=True), (patches.var(dim=-1, keepdim=True) + eps).sqrt()


def normalise_patches(patches: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """patches: [..., P] -> per-patch (x - mean) / sqrt(var + eps), as ``patch_stats``."""
    mean, std = patch_stats(patches, eps)
    return (patches - mean) / std


@_fp32
def semantic_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-pixel cross-entropy. logits: [N, M, S, C]; target: [N, M, S] int64, -1 ignored.
    Mean over labelled pixels; 0 (with a gradient) when none is labelled."""
    loss = F.cross_entropy(logits.flatten(0, 2), target.flatten(), ignore_index=IGNORE, reduction="sum")
    return loss / (target != IGNORE).sum().clamp(min=1)


@_fp32
def instance_loss(
    embed: torch.Tensor, ids: torch.Tensor, pull_margin: float = 0.5, push_margin: float = 3.0, reg_weight: float = 1e-3
) -> torch.Tensor:
    """Discriminative embedding loss (De Brabandere et al. 2017), invariant to relabeling ids.

    embed: [N, M, S, E] pixel embeddings; ids: [N, M, S] int64 instance ids, -1 ignored; all id-0
    ("no instance") pixels of a sample form one background cluster. Per sample: pull each pixel
    to within ``pull_margin`` of its cluster mean, push cluster means ``push_margin`` apart, keep
    means small; averaged over clusters, then over samples that have any labelled pixel. The
    value depends only on which pixels share an id, never on the id values.
    """
    per_sample, has_pixels = _instance_terms(embed, ids, pull_margin, push_margin, reg_weight)
    return (per_sample * has_pixels).sum() / has_pixels.sum().clamp(min=1)


def _instance_terms(embed, ids, pull_margin, push_margin, reg_weight) -> tuple[torch.Tensor, torch.Tensor]:
    """``instance_loss`` per sample [N] and whether the sample has any labelled pixel [N] bool."""
    n, e = embed.shape[0], embed.shape[-1]
    embed, ids = embed.reshape(n, -1, e), ids.reshape(n, -1)
    cluster, valid, num_clusters = _local_clusters(ids)
    width = int(num_clusters.max()) + 1
    cluster = torch.where(valid, cluster, width - 1 + torch.zeros_like(cluster))
    counts = torch.zeros(n, width, device=embed.device).scatter_add_(1, cluster, valid.float())
    sums = torch.zeros(n, width, e, device=embed.device).scatter_add_(
        1, cluster[..., None].expand(-1, -1, e), embed * valid[..., None]
    )
    means = sums / counts.clamp(min=1)[..., None]
    exists = counts > 0
    pull = _pull(embed, means, cluster, valid, counts, pull_margin)
    push = _push(means, exists, push_margin)
    reg = (means.norm(dim=-1) * exists).sum(1)
    per_sample = (pull + reg_weight * reg) / num_clusters.clamp(min=1) + push
    return per_sample, num_clusters > 0


@_fp32
def per_sample_terms(
    target: str, pred: torch.Tensor, truth: torch.Tensor, norm_pix: bool, pull_margin: float, push_margin: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(sums [N], counts [N]) of ``target``'s loss (rgb, semantic or instance; arguments as the
    loss takes them): rgb squared errors and their number, semantic cross-entropy over labelled
    pixels and their number, instance the sample's loss and 1 if it has labelled pixels."""
    if target == "rgb":
        target_pixels = normalise_patches(truth) if norm_pix else truth
        sq = (pred - target_pixels).pow(2).flatten(1)
        return sq.sum(1), torch.full_like(sq[:, 0], sq.shape[1])
    if target == "semantic":
        ce = F.cross_entropy(pred.flatten(0, 2), truth.flatten(), ignore_index=IGNORE, reduction="none")
        return ce.reshape(truth.shape[0], -1).sum(1), (truth != IGNORE).flatten(1).sum(1).float()
    per_sample, has_pixels = _instance_terms(pred, truth, pull_margin, push_margin, 1e-3)
    return per_sample * has_pixels, has_pixels.float()


def _local_clusters(ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """ids: [N, P] -> (cluster [N, P] in [0, C_n), valid [N, P] bool, C_n [N])."""
    n = ids.shape[0]
    valid = ids >= 0
    top = ids.max().clamp(min=0) + 1
    sample = torch.arange(n, device=ids.device)[:, None]
    key = torch.where(valid, sample * top + ids, torch.full_like(ids, -1))
    inverse = torch.unique(key, return_inverse=True)[1]
    first = torch.where(valid, inverse, torch.full_like(inverse, inverse.max() + 1))
    local = inverse - first.min(dim=1, keepdim=True).values
    num = torch.where(valid, local + 1, torch.zeros_like(local)).max(dim=1).values
    return local.clamp(min=0), valid, num


def _pull(embed, means, cluster, valid, counts, margin) -> torch.Tensor:
    """Sum over clusters of the mean hinge^2 distance to the cluster mean: [N]."""
    e = embed.shape[-1]
    own = means.gather(1, cluster[..., None].expand(-1, -1, e))
    hinge = F.relu((embed - own).norm(dim=-1) - margin).pow(2) * valid
    per_cluster = torch.zeros_like(counts).scatter_add_(1, cluster, hinge)
    return (per_cluster / counts.clamp(min=1)).sum(1)


def _push(means, exists, margin) -> torch.Tensor:
    """Mean hinge^2 over ordered pairs of distinct clusters of each sample: [N]."""
    pairs = exists[:, :, None] & exists[:, None, :]
    pairs &= ~torch.eye(means.shape[1], dtype=torch.bool, device=means.device)
    sq = (means[:, :, None] - means[:, None]).pow(2).sum(-1)
    # masked before the sqrt so that coinciding means never produce an inf/NaN gradient
    dist = torch.where(pairs, sq, torch.ones_like(sq)).add(1e-12).sqrt()
    hinge = F.relu(margin - dist).pow(2) * pairs
    return hinge.sum((1, 2)) / pairs.sum((1, 2)).clamp(min=1)
