"""scripts/env.sh refuses, in one line, to start a fresh environment on a disk without room for it."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _checkout_with_free_space(tmp_path: Path, free_kib: int) -> tuple[Path, dict]:
    """A copy of env.sh and its inputs, and an environment whose `df` reports `free_kib` KiB free."""
    checkout = tmp_path / "checkout"
    (checkout / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "env.sh", checkout / "scripts" / "env.sh")
    for name in ("pyproject.toml", "constraints.txt"):
        shutil.copy(ROOT / name, checkout / name)
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "df").write_text(
        "#!/bin/sh\necho 'Filesystem 1024-blocks Used Available Capacity Mounted on'\n"
        f"echo '/dev/vda 264241152 100 {free_kib} 50% /'\n"
    )
    (fake / "df").chmod(0o755)
    # PYTHON=false: were the check missing, making the venv would fail at once, not install for minutes
    return checkout, {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}", "PYTHON": "false"}


def test_a_fresh_environment_on_a_full_disk_is_refused_before_anything_is_made(tmp_path):
    checkout, env = _checkout_with_free_space(tmp_path, free_kib=3 * 1024 * 1024)
    done = subprocess.run(
        ["bash", "-c", "source scripts/env.sh"], cwd=checkout, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"[c2fmae] only 3 GiB free on the disk of {checkout}; a fresh {checkout}/.venv needs about 8 GiB: "
        "free some space and rerun"
    ]
    assert not (checkout / ".venv").exists()
