"""The DataLoader workers of this process: children of its fork server (training.data.worker_start)."""

from __future__ import annotations

import gc
from collections.abc import Callable

import psutil


def workers_left_by(call: Callable[[], object]) -> tuple[object, list[psutil.Process]]:
    """`call()`'s result and the loader workers still alive right after it, garbage collection
    off meanwhile: what `call` leaves must go by reference counting alone, at once."""
    gc.disable()
    try:
        result = call()
        servers = [p for p in psutil.Process().children() if "forkserver" in " ".join(p.cmdline())]
        assert servers, "no fork server: the call started no loader workers"
        return result, [w for s in servers for w in s.children() if w.status() != psutil.STATUS_ZOMBIE]
    finally:
        gc.enable()
