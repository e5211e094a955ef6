"""One atomic file write for every package: a reader sees the old file or the whole new one.

The new content goes to a hidden temporary file beside the target, `.NAME.PID.tmp` (the name the
store's and the trainer's stale-file clean-ups look for), is flushed and fsynced, renamed over the
target, and the folder is fsynced: once `atomic_write` returns, the new file survives a power cut.
One writer per target at a time within a process (two would share the temporary file).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

Content = bytes | Callable[[BinaryIO], object]


def atomic_write(path: str | os.PathLike, data: Content) -> None:
    """Make `path` hold `data`: bytes, or what `data(file)` writes into a binary file (torch.save,
    a streaming writer). On any failure the temporary file is removed and `path` is as it was."""
    path = Path(path)
    tmp = write_temp(path, data)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_temp(path: str | os.PathLike, data: Content) -> Path:
    """`data` in `path`'s temporary file, flushed and fsynced, for a caller that renames it itself
    (a checkpoint moves the old one aside first); removed on failure. Returns its path.

    An OSError that `data(file)` hid behind its own exception (torch.save turns a full disk into a
    RuntimeError) is raised as itself."""
    tmp = _temp_path(path)
    try:
        with open(tmp, "wb") as f:
            if isinstance(data, bytes | bytearray | memoryview):
                f.write(data)
            else:
                _call_writer(data, f)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def _temp_path(path: str | os.PathLike) -> Path:
    """dir/NAME -> dir/.NAME.PID.tmp"""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def fsync_dir(path: str | os.PathLike) -> None:
    """Make the renames inside folder `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _call_writer(write: Callable[[BinaryIO], object], f: BinaryIO) -> None:
    recording = _RecordingFile(f)
    try:
        write(recording)
    except Exception:
        if recording.error is None:
            raise
        raise recording.error from None


class _RecordingFile:
    """A binary file whose first write error is kept in `error`."""

    def __init__(self, file: BinaryIO):
        self.file, self.error = file, None

    def write(self, data) -> int:
        try:
            return self.file.write(data)
        except OSError as exc:
            self.error = self.error or exc
            raise

    def flush(self) -> None:
        self.file.flush()
