"""How loader workers start: forked from a fork server that has imported torch and the data
pipeline once, so that each worker begins by a fork rather than by importing them again
(benchmarks/loader_start.py measures it; the figures are in docs/performance.md).

The fork server never opens a store: tensorstore aborts a forked child once the parent has used it,
which is why workers never fork from the trainer itself (see training/data/dataset.loader_kwargs).
"""

from __future__ import annotations

import atexit
import functools
import multiprocessing
from multiprocessing.context import BaseContext

# fork_server first: the fork server ignores SIGTERM from its start (see that module)
PRELOAD = ("training.data.fork_server", "__main__", "torch", "training.data.dataset", "training.eval.folders")


def worker_context() -> BaseContext:
    """The multiprocessing context for DataLoader workers. The preload takes effect when the
    process starts its fork server, at its first loader with workers."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(PRELOAD))
    _kill_workers_at_exit()
    return context


@functools.cache
def _kill_workers_at_exit() -> None:
    atexit.register(_kill_daemonic_children)


def _kill_daemonic_children() -> None:
    """SIGKILL this process's daemonic children (loader workers) still running at interpreter exit,
    e.g. those of a loader that a kept traceback holds. They ignore SIGTERM (fork_server) and exit
    only after this process: multiprocessing's own exit hook, which sends them SIGTERM and then
    joins them, would wait forever. Registered after that hook, so it runs first (atexit is LIFO)."""
    for child in multiprocessing.active_children():
        if child.daemon:
            child.kill()
