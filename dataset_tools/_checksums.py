"""SHA256SUMS of a release folder: `sha256sum`'s format (hash, two spaces, relative path)."""

from __future__ import annotations

from pathlib import Path

from datasets_spec.hashing import file_sha256

SUMS_NAME = "SHA256SUMS"


def release_files(root: Path) -> list[str]:
    """Relative paths (POSIX) of every file under `root` except SHA256SUMS, sorted."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and p.name != SUMS_NAME)


def write_sums(root: Path, progress=None) -> int:
    """Write root/SHA256SUMS over every file; return how many files it lists."""
    lines = []
    for rel in release_files(root):
        lines.append(f"{file_sha256(root / rel)}  {rel}\n")
        if progress:
            progress(1)
    (root / SUMS_NAME).write_text("".join(lines))
    return len(lines)


def parse_sums(text: str) -> dict[str, str]:
    """{relative path: sha256} from the text of a SHA256SUMS file; ValueError on a malformed line."""
    sums = {}
    for n, line in enumerate(text.splitlines(), 1):
        digest, sep, rel = line.partition("  ")
        if not sep or len(digest) != 64 or not rel:
            raise ValueError(f"line {n} is not '<sha256>  <path>'")
        sums[rel] = digest
    return sums
