"""Check a release: every checksum in SHA256SUMS, no unlisted file, then the store (c2f-data verify)."""

from __future__ import annotations

from pathlib import Path

from .checksums import SUMS_NAME, read_sums, release_files
from .publish import DATA
from .hashing import file_sha256
from .validate import validate


def verify(root, progress=None) -> list[str]:
    """One line per problem, each naming the file (empty list = the release is intact)."""
    root = Path(root)
    if not root.is_dir():
        return [f"{root}: no such release directory"]
    try:
        sums = read_sums(root)
    except FileNotFoundError:
        return [f"{SUMS_NAME}: missing"]
    except (OSError, ValueError) as exc:
        return [f"{SUMS_NAME}: unreadable ({exc})"]
    problems = []
    for rel, digest in sums.items():
        path = root / rel
        if not path.is_file():
            problems.append(f"{rel}: missing")
        elif file_sha256(path) != digest:
            problems.append(f"{rel}: checksum mismatch (changed since publishing)")
        if progress:
            progress(1)
    problems += [f"{rel}: not listed in {SUMS_NAME} (added after publishing)"
                 for rel in release_files(root) if rel not in sums]
    if problems:
        return problems
    return [f"{DATA}: {line}" for line in validate(root / DATA)]
