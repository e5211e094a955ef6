"""Files that killed writers leave behind, and their removal.

Writers never leave a partial file under its final name (see docs/dataset-format.md), but a writer
killed midway leaves its temporary file: `.NAME.PID.tmp` beside a record file or a marker, and
`.DATASET.creating-PID/` beside a store being created. `remove_stale_files` is for the one job that
owns the store (c2f-label holds a lock while it runs) before it starts any writer. On object storage
there are none: an object is written by one PUT, and a killed create is redone by the next one.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from plumbing.processes import pid_alive

from . import schema, storage


def remove_stale_files(path) -> list[Path]:
    """Remove the temporary files of killed writers of the store at `path`, and abandoned creations
    of it whose process is gone from this host. Returns what was removed."""
    if storage.is_url(path):
        return []
    path = Path(path)
    stale = [p for sub in (schema.RECORDS_DIR, schema.MARKERS_DIR) for p in (path / sub).glob(".*.tmp")]
    stale += [p for p in path.parent.glob(f".{path.name}.creating-*") if not _creator_alive(p.name)]
    for p in stale:
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    return stale


def _creator_alive(creating_name: str) -> bool:
    """Whether the process named by `.DATASET.creating-PID` still runs (unknown: assume it does)."""
    pid = creating_name.rsplit("-", 1)[-1]
    return not pid.isdigit() or pid_alive(int(pid))
