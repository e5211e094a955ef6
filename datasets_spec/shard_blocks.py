"""The store's mask arrays as Dask arrays with one block per shard, and running per-shard tasks.

`dask.array.from_zarr` on a store gives one block per *inner* chunk (one image), i.e. N tiny tasks;
we ask for whole shards instead (benchmarks/dask_chunking.py measures the choices side by side).
Per-shard work is a delayed call on the shard's two blocks; results are merged as they arrive, so
memory holds a few shards at a time however large the store is.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import dask
import dask.array as da
from dask.callbacks import Callback
from tqdm import tqdm

from . import schema as S
from .errors import StoreError
from .reader import Store

TASK_PREFIX = "c2f-shard-task"


def mask_arrays(store: Store) -> tuple[da.Array, da.Array]:
    """(semantic, instance) as Dask arrays [N, S, S] uint16, chunked one shard per block."""
    s, k = store.layout.canvas, store.layout.shard_size
    return tuple(da.from_zarr(store.array_url(name), chunks=(k, s, s)) for name in (S.SEMANTIC, S.INSTANCE))


def shard_blocks(store: Store) -> Iterator[tuple[int, object, object]]:
    """(shard, semantic block, instance block) as Delayed objects, for every shard."""
    semantic, instance = mask_arrays(store)
    sem_blocks, inst_blocks = semantic.to_delayed().ravel(), instance.to_delayed().ravel()
    for shard in range(store.layout.num_shards):
        yield shard, sem_blocks[shard], inst_blocks[shard]


def run_tasks(tasks: list, merge: Callable, start, *, scheduler: str | None = None, desc: str = "",
              progress: bool = True):
    """Compute delayed `tasks` and fold their results with merge(acc, result), starting at `start`.

    scheduler None: local threads; otherwise the address of a dask.distributed scheduler.
    """
    with tqdm(total=len(tasks), desc=desc, unit="shard", disable=not progress) as bar:
        if scheduler is None:
            return _run_threads(tasks, merge, start, bar)
        return _run_distributed(tasks, merge, start, scheduler, bar)


def _run_threads(tasks, merge, acc, bar):
    # Batches of a few tasks per thread keep at most that many shards in memory.
    batch = 4 * (os.cpu_count() or 1)
    for i in range(0, len(tasks), batch):
        with _TaskBar(bar):
            for result in dask.compute(*tasks[i:i + batch], scheduler="threads"):
                acc = merge(acc, result)
    return acc


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


