"""Frozen features: run the encoder once over a dataset, split across DDP ranks, gathered on all.

Rank r encodes items r, r + W, r + 2W, ... (W = world size); the gather puts every row back at its
dataset position, so every rank ends with the same [N, ...] tensor as a single process would.
"""

from __future__ import annotations

import functools
import math
import os

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from plumbing.errors import one_line
from training.data.parent_watch import exit_with_trainer
from training.data.worker_start import worker_context
from training.distributed import DistInfo
from training.errors import TrainingError


def pooled_features(tokens: torch.Tensor, prefix: int, pool: str) -> torch.Tensor:
    """tokens: [N, T, D] (prefix tokens first) -> [N, D]: the cls token, or the mean patch token."""
    return tokens[:, 0] if pool == "cls" else tokens[:, prefix:].mean(dim=1)


def patch_features(tokens: torch.Tensor, prefix: int) -> torch.Tensor:
    """tokens: [N, T, D] -> patch tokens [N, L, D] in raster order."""
    return tokens[:, prefix:]


@torch.no_grad()
def extract(
    forward, dataset: Dataset, info: DistInfo, *, batch_size: int, num_workers: int, progress: bool, desc: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run `forward(images [B, 3, H, W]) -> [B, ...]` over every item (image, target) of `dataset`.

    Returns (outputs [N, ...] float32, targets [N, ...]) on the CPU, identical on every rank. The
    caller puts its model in eval mode.
    """
    mine = Subset(dataset, range(info.rank, len(dataset), info.world_size))
    loader = DataLoader(mine, batch_size=batch_size, shuffle=False, **worker_options(num_workers))
    feats, targets = [], []
    bar = tqdm(total=len(dataset), desc=desc, unit="img", disable=not (progress and info.is_main))
    for images, target in read_batches(loader):
        feats.append(forward(images.to(info.device)).float().cpu())
        targets.append(torch.as_tensor(target))
        bar.update(len(images) * info.world_size)
    bar.close()
    return _gather(torch.cat(feats), len(dataset), info), _gather(torch.cat(targets), len(dataset), info)


def worker_options(num_workers: int) -> dict:
    """DataLoader worker arguments. Workers start from a fork server, never by forking this
    process: tensorstore aborts a forked child once the parent has used it (the dense probe's
    store), as training/data does; and they exit when this process dies (parent_watch)."""
    if num_workers == 0:
        return {"num_workers": 0}
    return {
        "num_workers": num_workers,
        "persistent_workers": True,  # fine-tuning's epochs reuse them
        "multiprocessing_context": worker_context(),
        "worker_init_fn": functools.partial(exit_with_trainer, trainer_pid=os.getpid()),
    }


def read_batches(loader: DataLoader):
    """Iterate `loader`; an image that fails inside a worker becomes one TrainingError line, its
    workers stopped first."""
    batches = iter(loader)
    while True:
        try:
            yield next(batches)
        except StopIteration:
            return
        except (TrainingError, OSError, ValueError) as exc:  # worker errors arrive with a traceback
            message = one_line(exc, last=True)
            exc.__traceback__ = None  # its frames hold `batches`
            break
    # The workers stop now; left to a later garbage collection, their queues may close first and
    # the shutdown waits 5 s for workers that never hear of it.
    del batches
    raise TrainingError(message)


def _gather(local: torch.Tensor, total: int, info: DistInfo) -> torch.Tensor:
    """Rows r::W of every rank -> the full [total, ...] tensor in dataset order."""
    if not info.distributed:
        return local
    rows = math.ceil(total / info.world_size)
    padded = torch.zeros((rows, *local.shape[1:]), dtype=local.dtype)
    padded[: len(local)] = local
    padded = padded.to(info.device)
    parts = [torch.empty_like(padded) for _ in range(info.world_size)]
    dist.all_gather(parts, padded)
    return torch.stack(parts, dim=1).flatten(0, 1)[:total].cpu()
