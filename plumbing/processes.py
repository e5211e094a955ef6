"""Processes on this host, as lock files, cluster records and parent watchers see them, and the
signals a command takes while it runs."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator


def pid_alive(pid: int) -> bool:
    """Whether process `pid` runs on this host (one we may not signal counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def handling(signals: tuple[int, ...], handler: Callable) -> Iterator[None]:
    """`handler` for `signals` while the block runs, then the handlers that were there again.
    Outside the main thread Python cannot take signals: nothing is installed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
