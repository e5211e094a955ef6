"""Where a store's objects live — local-only stand-in for the storage layer.

The full layer (object storage URLs through tensorstore) comes from the storage branch with these
same five functions; until it merges, a root is a local directory and a URL is refused.
"""

from __future__ import annotations

import os
from pathlib import Path

URL_SCHEMES = ("s3", "gs")


def is_url(root) -> bool:
    """Whether `root` names object storage (s3://, gs://) rather than a local path."""
    return isinstance(root, str) and "://" in root and root.partition("://")[0] in URL_SCHEMES


def _local(root) -> Path:
    if is_url(root):
        raise ValueError(f"{root}: object storage is not supported by this build")
    return Path(root)


def write_bytes(root, relpath: str, data: bytes) -> None:
    """Store `data` at `root/relpath`; a reader sees the old file or the whole new one (a hidden
    temporary file, flushed, then renamed)."""
    path = _local(root) / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_bytes(root, relpath: str) -> bytes:
    """The file `root/relpath`; FileNotFoundError if there is none."""
    return (_local(root) / relpath).read_bytes()


def exists(root, relpath: str) -> bool:
    return (_local(root) / relpath).is_file()


def delete(root, relpath: str) -> None:
    """Remove `root/relpath` if it exists."""
    (_local(root) / relpath).unlink(missing_ok=True)
