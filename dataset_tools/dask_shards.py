"""The store's mask arrays as Dask arrays with one block per shard, and running per-shard tasks.

`dask.array.from_zarr` on a store gives one block per *inner* chunk (one image), i.e. N tiny tasks,
each paying zarr-python's per-call overhead. We build the arrays from one tensorstore read per shard
instead (`Store.read_masks`), the fastest of the layouts measured by benchmarks/dask_chunking.py.
Per-shard work is a delayed call on the two blocks of a done shard (pending shards cost nothing);
results are merged as they arrive, so memory holds a few shards at a time however large the store is.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator

import dask
import dask.array as da
import numpy as np
from dask.callbacks import Callback
from tqdm import tqdm

from datasets_spec import schema
from datasets_spec.errors import StoreError
from datasets_spec.reader import Store

TASK_PREFIX = "c2f-shard-task"
BATCH = 256  # shard tasks per Dask graph (run one after another, each on every thread)


def mask_arrays(store: Store) -> tuple[da.Array, da.Array]:
    """(semantic, instance) as Dask arrays [N, S, S] uint16, one block per shard."""
    s = store.layout.canvas
    blocks = {schema.SEMANTIC: [], schema.INSTANCE: []}
    for shard, start, stop in store.iter_shards():
        for name, block in zip(blocks, _shard_read(store, shard)):
            blocks[name].append(da.from_delayed(block, (stop - start, s, s), np.uint16))
    return tuple(da.concatenate(blocks[name]) for name in blocks)


def _shard_read(store: Store, shard: int):
    """Delayed (semantic, instance) [K, S, S] of one shard: one read, whichever blocks are used."""
    key = ("c2f-read-shard", str(store.path), shard)
    return dask.delayed(_read_shard, pure=True, nout=2)(store, *store.layout.shard_range(shard), dask_key_name=key)


def _read_shard(store: Store, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    return store.read_masks(range(start, stop))


def shard_blocks(store: Store) -> Iterator[tuple[int, object, object]]:
    """(shard, semantic block, instance block) as Delayed objects [K, S, S] uint16, for every done
    shard (the others hold no labels: their data is never read, nor a task made for them)."""
    for shard in store.done_shards():
        semantic, instance = _shard_read(store, shard)
        yield shard, semantic, instance


def run_tasks(
    tasks: Iterable,
    merge: Callable,
    start,
    *,
    scheduler: str | None = None,
    desc: str = "",
    progress: bool = True,
    total: int | None = None,
):
    """Compute delayed `tasks` and fold their results with merge(acc, result), starting at `start`.

    tasks: a list, or an iterable made lazily (then `total` says how many, for the progress bar).
    scheduler None: local threads; otherwise the address of a dask.distributed scheduler.
    """
    total = len(tasks) if total is None else total
    with tqdm(total=total, desc=desc, unit="shard", disable=not progress) as bar:
        if scheduler is None:
            return _run_threads(tasks, merge, start, bar)
        return _run_distributed(list(tasks), merge, start, scheduler, bar)


def _run_threads(tasks, merge, acc, bar):
    """BATCH tasks at a time: one graph of all 10,010 shards' tasks held ~22 kB per shard in Dask's
    graph and scheduler state (~250 MB at ImageNet size); batches keep that bounded."""
    with _TaskBar(bar):
        for batch in _batched(tasks):
            acc = merge(acc, _tree(batch, merge))
    return acc


def _tree(tasks: list, merge: Callable):
    # A pairwise tree of merges: Dask frees each shard's blocks and partials once merged, so memory
    # holds about one shard per thread (checked in tests/dataset_tools/test_stats.py).
    level = tasks
    while len(level) > 1:
        level = [dask.delayed(merge)(a, b) for a, b in zip(level[::2], level[1::2])] + level[len(level) // 2 * 2 :]
    (result,) = dask.compute(level[0], scheduler="threads")
    return result


def _batched(tasks):
    """Lists of BATCH tasks (itertools.batched from Python 3.12)."""
    it = iter(tasks)
    while batch := list(itertools.islice(it, BATCH)):
        yield batch


def _run_distributed(tasks, merge, acc, address, bar):
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise StoreError("--scheduler needs dask.distributed: pip install distributed") from None
    try:
        client = Client(address, timeout=30, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise StoreError(f"cannot reach the Dask scheduler at {address} ({exc})") from None
    with client:
        for future in as_completed(client.compute(tasks), loop=client.loop):
            acc = merge(acc, future.result())
            future.release()
            bar.update(1)
    return acc


def shard_task(func, shard: int, *args):
    """Delayed func(*args), named as the task of one shard (so progress can count it)."""
    return dask.delayed(func, pure=False)(*args, dask_key_name=(TASK_PREFIX, func.__name__, shard))


class _TaskBar(Callback):
    """Advance a tqdm bar each time a top-level task (one per shard) finishes."""

    def __init__(self, bar):
        super().__init__()
        self.bar = bar

    def _posttask(self, key, result, dsk, state, worker_id):
        if isinstance(key, tuple) and key and key[0] == TASK_PREFIX:
            self.bar.update(1)
