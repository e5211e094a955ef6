"""Loader workers end with their trainer.

DataLoader workers start from a fork server (see `loader_kwargs`), so their parent is the fork
server, not the trainer: PyTorch's own check (is my parent still the process that started me?)
never fires when the trainer is killed, and the workers and the fork server live on. Each worker
therefore watches the trainer itself: a pidfd (Linux ≥ 5.3) becomes readable the moment the process
exits, with no polling and no PID-reuse race; elsewhere the worker checks once a second.
"""

from __future__ import annotations

import os
import select
import threading
import time

from plumbing.processes import pid_alive

POLL_SECONDS = 1.0


def exit_with(pid: int) -> None:
    """End this process (``os._exit``) as soon as process `pid` has exited; returns at once."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        os._exit(1)
    except (AttributeError, OSError):  # no pidfd on this platform or kernel
        target = _poll_until_gone
    else:
        target = _wait_readable
        pid = fd
    threading.Thread(target=target, args=(pid,), name="exit-with-trainer", daemon=True).start()


def exit_with_trainer(worker_id: int, trainer_pid: int) -> None:
    """A DataLoader ``worker_init_fn`` (bind ``trainer_pid`` with functools.partial)."""
    exit_with(trainer_pid)


def _wait_readable(fd: int) -> None:
    select.select([fd], [], [])
    os._exit(1)


def _poll_until_gone(pid: int) -> None:
    while pid_alive(pid):
        time.sleep(POLL_SECONDS)
    os._exit(1)
