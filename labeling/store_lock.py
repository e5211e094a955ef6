"""One labeling job per store: an advisory lock beside the store that names its holder.

The lock is `flock` on the hidden file `.DATASET.c2f-label.lock` next to DATASET (the store may not
exist yet when a job starts). The kernel drops the lock when its holder exits, however it dies, so
a dead holder's lock is simply taken by the next job; on NFS, Linux maps `flock` onto the server's
byte-range locks, so jobs on different hosts of one shared file system exclude each other too. The
file stays after the job (removing it would let two later jobs lock two different files) and
holds the last holder's host, PID and start time, which the refusal message quotes.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from .errors import LabelingError


def lock_path(output: Path) -> Path:
    return output.with_name(f".{output.name}.c2f-label.lock")


@contextmanager
def store_lock(output: Path) -> Iterator[None]:
    """Hold the labeling lock of the store `output` for the `with` body, or raise LabelingError
    naming the job that holds it."""
    if not output.parent.is_dir():
        raise LabelingError(f"{output}: parent directory {output.parent} does not exist")
    path = lock_path(output)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise LabelingError(f"{output}: cannot create the job lock {path.name} beside it "
                            f"({exc.strerror})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LabelingError(f"{output}: another c2f-label job is labeling this store "
                                f"({_holder(fd)}); wait for it, or stop it and rerun") from None
        try:
            _write_holder(fd)
        except OSError as exc:  # a full disk takes the file but not its contents
            raise LabelingError(f"{output}: cannot write the job lock {path.name} beside it "
                                f"({exc.strerror})") from None
        yield
    finally:
        os.close(fd)  # releases the lock


def _holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0))
        return f"PID {info['pid']} on {info['host']} since {info['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "holder unknown"


def _write_holder(fd: int) -> None:
    info = {"host": socket.gethostname(), "pid": os.getpid(),
            "since": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(info).encode(), 0)
