"""The one way files are hashed: sha256 through `hashlib.file_digest`, as a hex string."""

from __future__ import annotations

import hashlib
import os


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of the file's bytes, hex (what `sha256sum` prints)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
