"""One labeling job per store: an advisory lock beside the store that names its holder.

The lock is `flock` on the hidden file `.DATASET.c2f-label.lock` next to DATASET (the store may not
exist yet when a job starts). The kernel drops the lock when its holder exits, however it dies, so
a dead holder's lock is simply taken by the next job; on NFS, Linux maps `flock` onto the server's
byte-range locks, so jobs on different hosts of one shared file system exclude each other too. The
file stays after the job (removing it would let two later jobs lock two different files) and
holds the last holder's host, PID and start time, which the refusal message quotes.

A store on object storage (s3://, gs://) has no flock: its lock is the object `.NAME.c2f-label.lock`
beside the store's prefix, created only if absent (a conditional write) and deleted when the job
ends. A job killed on this host leaves it behind; the next job on this host sees that the PID is
gone and takes the lock over. A lock left by a job on another host must be deleted by hand once
that job is known to be gone (the refusal says which object). The condition is checked by the
server on GCS and AWS S3; on other S3-compatible servers tensorstore reads before it writes (a
narrow race between two jobs started at the same moment) unless C2F_S3_CONDITIONAL_WRITE=1
tells it the server honours conditional PUTs.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from datasets_spec import storage
from plumbing.processes import pid_alive

from .errors import LabelingError


def lock_path(output: Path) -> Path:
    return output.with_name(f".{output.name}.c2f-label.lock")


@contextmanager
def store_lock(output: Path) -> Iterator[None]:
    """Hold the labeling lock of the store `output` for the `with` body, or raise LabelingError
    naming the job that holds it. `output`: a local path or an object-storage URL."""
    if storage.is_url(output):
        with _object_lock(output):
            yield
        return
    if not output.parent.is_dir():
        raise LabelingError(f"{output}: parent directory {output.parent} does not exist")
    path = lock_path(output)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise LabelingError(f"{output}: cannot create the job lock {path.name} beside it ({exc.strerror})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LabelingError(
                f"{output}: another c2f-label job is labeling this store "
                f"({_holder(fd)}); wait for it, or stop it and rerun"
            ) from None
        try:
            _write_holder(fd)
        except OSError as exc:  # a full disk takes the file but not its contents
            raise LabelingError(f"{output}: cannot write the job lock {path.name} beside it ({exc.strerror})") from None
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
    info = _holder_info()
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(info).encode(), 0)


@contextmanager
def _object_lock(output: str) -> Iterator[None]:
    """The lock of a store on object storage: an object created only if absent (see above)."""
    try:
        folder, name = storage.parent(output), f".{storage.name(output)}.c2f-label.lock"
        mine = json.dumps(_holder_info()).encode()
        if not storage.create_exclusive(folder, name, mine):
            _take_over_dead_holder(output, folder, name, mine)
    except (OSError, ValueError) as exc:  # unreachable storage, refused credentials, no prefix
        raise LabelingError(f"{output}: cannot take the job lock ({exc})") from None
    try:
        yield
    finally:
        try:
            if storage.read_bytes(folder, name) == mine:
                storage.delete(folder, name)
        except (OSError, ValueError):
            pass  # the next job on this host takes a dead holder's lock over


def _take_over_dead_holder(output: str, folder: str, name: str, mine: bytes) -> None:
    """Take the lock object over if its holder was a process of this host that is gone; else
    raise LabelingError naming the holder."""
    try:
        held = storage.read_bytes(folder, name)
        info = json.loads(held)
        dead = info["host"] == socket.gethostname() and not pid_alive(int(info["pid"]))
        holder = f"PID {info['pid']} on {info['host']} since {info['since']}"
    except FileNotFoundError:
        held, dead, holder = None, True, "gone"
    except (ValueError, KeyError, TypeError):
        held, dead, holder = b"", False, "holder unknown"
    if dead and storage.create_exclusive(folder, name, mine, replacing=held):
        return
    raise LabelingError(
        f"{output}: another c2f-label job is labeling this store ({holder}); wait for it, or "
        f"once it is gone delete {storage.join(folder, name)} and rerun"
    )


def _holder_info() -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid(), "since": datetime.now(UTC).isoformat(timespec="seconds")}
