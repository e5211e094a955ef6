"""The distributed, resumable sampler: a permutation per epoch, split by rank, startable mid-epoch."""

from __future__ import annotations

import pytest

from training.errors import TrainingError
from training.sampler import ResumableSampler


def _steps(sampler: ResumableSampler) -> list[list[int]]:
    """The sampler's output grouped per optimizer step (batch_size x accum_iter items each)."""
    items = list(sampler)
    per_step = sampler.batch_size * sampler.accum_iter
    assert all(epoch == sampler.epoch for _, epoch in items)
    return [[i for i, _ in items[k : k + per_step]] for k in range(0, len(items), per_step)]


def test_each_epoch_is_a_permutation_reshuffled_per_epoch():
    s = ResumableSampler(23, batch_size=4, seed=1)
    s.set_epoch(0)
    first = [i for i, _ in s]
    s.set_epoch(1)
    second = [i for i, _ in s]
    assert len(first) == len(s) == 20  # 5 steps x 4, the tail of 3 dropped
    assert len(set(first)) == 20 and set(first) <= set(range(23))
    assert first != second


def test_ranks_are_disjoint_equal_and_cover_the_global_batch_of_one_process():
    one = ResumableSampler(50, batch_size=3, accum_iter=4, seed=2)  # one process, 12 per step
    ranks = [ResumableSampler(50, batch_size=3, accum_iter=2, rank=r, world_size=2, seed=2) for r in (0, 1)]
    for s in (one, *ranks):
        s.set_epoch(3)
    assert one.steps_per_epoch == ranks[0].steps_per_epoch == 4
    one_steps, r0, r1 = _steps(one), _steps(ranks[0]), _steps(ranks[1])
    assert len(r0) == len(r1)
    for k in range(4):
        assert not set(r0[k]) & set(r1[k])
        # global micro-batch g = micro x world + rank: rank r's micro m = one process's micro 2m + r
        micro = [one_steps[k][j : j + 3] for j in range(0, 12, 3)]
        assert r0[k] == micro[0] + micro[2] and r1[k] == micro[1] + micro[3]


def test_starting_mid_epoch_continues_the_same_order():
    s = ResumableSampler(40, batch_size=2, accum_iter=2, seed=0)
    s.set_epoch(5)
    full = list(s)
    s.set_epoch(5, start_step=3)
    assert list(s) == full[3 * 4 :] and len(s) == len(full) - 12


def test_too_small_dataset_and_bad_start_are_errors():
    with pytest.raises(TrainingError, match="fewer than one global batch"):
        ResumableSampler(7, batch_size=4, world_size=2)
    s = ResumableSampler(8, batch_size=4)
    with pytest.raises(ValueError):
        s.set_epoch(0, start_step=2)


def test_micro_ids_interleave_ranks():
    s = ResumableSampler(100, batch_size=2, accum_iter=3, rank=1, world_size=4)
    assert [s.micro_id(m) for m in range(3)] == [1, 5, 9]
