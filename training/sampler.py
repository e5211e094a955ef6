"""Distributed, resumable sampler yielding `(index, epoch)` pairs for `dataset[(index, epoch)]`.

Each epoch is one permutation of range(size) drawn from (seed, epoch). An optimizer step consumes
one global batch of G = batch_size x accum_iter x world_size consecutive permutation entries, split
into micro-batches of `batch_size`: global micro-batch g = micro x world_size + rank takes entries
[g x batch_size, (g+1) x batch_size) of the step's slice. So one process with accum_iter x W micro-
batches sees exactly the samples W processes see, in the same micro-batches. The tail of a
permutation shorter than G is dropped (every rank runs the same number of steps).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

from training.errors import TrainingError
from training.seeding import PERMUTATION, derive_seed, generator


class ResumableSampler(Sampler):
    """This rank's share of each epoch's permutation, startable at any step of the epoch."""

    def __init__(
        self, size: int, *, batch_size: int, accum_iter: int = 1, rank: int = 0, world_size: int = 1, seed: int = 0
    ):
        self.size, self.batch_size, self.accum_iter = size, batch_size, accum_iter
        self.rank, self.world_size, self.seed = rank, world_size, seed
        self.global_batch = batch_size * accum_iter * world_size
        self.steps_per_epoch = size // self.global_batch
        if self.steps_per_epoch == 0:
            raise TrainingError(
                f"the dataset has {size} usable images, fewer than one global batch "
                f"of {self.global_batch} (batch_size x accum_iter x processes)"
            )
        self.epoch, self.start_step = 0, 0

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        """Iterate epoch `epoch` from its optimizer step `start_step` (0 = from the beginning)."""
        if not 0 <= start_step < self.steps_per_epoch:
            raise ValueError(f"start_step {start_step} outside [0, {self.steps_per_epoch})")
        self.epoch, self.start_step = epoch, start_step

    def permutation(self, epoch: int) -> torch.Tensor:
        """int64 [size]: the global order of epoch `epoch`, identical on every rank."""
        gen = generator(derive_seed(self.seed, PERMUTATION, epoch))
        return torch.randperm(self.size, generator=gen)

    def micro_id(self, micro: int) -> int:
        """Global id of this rank's micro-batch `micro` within a step (seeds its randomness)."""
        return micro * self.world_size + self.rank

    def __iter__(self) -> Iterator[tuple[int, int]]:
        perm = self.permutation(self.epoch).tolist()
        for step in range(self.start_step, self.steps_per_epoch):
            for micro in range(self.accum_iter):
                start = step * self.global_batch + self.micro_id(micro) * self.batch_size
                for index in perm[start : start + self.batch_size]:
                    yield index, self.epoch

    def __len__(self) -> int:
        return (self.steps_per_epoch - self.start_step) * self.accum_iter * self.batch_size
