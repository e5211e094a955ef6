"""Check a release: every checksum in SHA256SUMS, no unlisted file, then its data: the Zarr store
(validate), or the Parquet files (_parquet_check) (c2f-data verify)."""

from __future__ import annotations

from datasets_spec import storage
from datasets_spec.errors import StorageUnavailable
from datasets_spec.validate import validate

from ._checksums import SUMS_NAME, parse_sums
from ._parquet_check import check_parquet, parquet_names
from .publish import DATA


def verify(root, progress=None) -> list[str]:
    """One line per problem, each naming the file (empty list = the release is intact).
    `root`: the release folder, or its copy on object storage (a URL)."""
    root = storage.normalize(root)
    if not storage.is_url(root) and not root.is_dir():
        return [f"{root}: no such release directory"]
    try:
        sums = parse_sums(storage.read_bytes(root, SUMS_NAME).decode())
    except FileNotFoundError:
        return [f"{SUMS_NAME}: missing"]
    except StorageUnavailable:
        raise  # an outage, not a finding about the release
    except (OSError, ValueError) as exc:
        return [f"{SUMS_NAME}: unreadable ({exc})"]
    problems = []
    for rel, digest in sums.items():
        try:
            found = storage.sha256(root, rel)
        except FileNotFoundError:
            problems.append(f"{rel}: missing")
        else:
            if found != digest:
                problems.append(f"{rel}: checksum mismatch (changed since publishing)")
        if progress:
            progress(1)
    problems += [
        f"{rel}: not listed in {SUMS_NAME} (added after publishing)"
        for rel in storage.list_all(root)
        if rel != SUMS_NAME and rel not in sums
    ]
    if problems:
        return problems
    if f"{DATA}/zarr.json" in sums:
        return [f"{DATA}: {line}" for line in validate(storage.join(root, DATA))]
    names = parquet_names(sums, DATA)
    if not names:
        return [f"{DATA}: neither a Zarr store (zarr.json) nor Parquet files ({DATA}/train-*.parquet)"]
    return check_parquet(root, DATA, names)
