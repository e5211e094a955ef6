"""scripts/demo.sh's output folder: it deletes only what an earlier demo made.

Each test runs the real demo.sh from a copy of scripts/ whose env.sh stops it (exit 99) right
after the output folder is settled, so nothing is installed and no demo runs.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
MARKER = ".c2fmae-demo"
WENT_ON = 99  # the stand-in env.sh's exit status: the demo would have gone on


@pytest.fixture
def demo(tmp_path):
    """Run `bash demo.sh OUT` (the guard, then a stand-in env.sh that exits 99)."""
    scripts = tmp_path / "checkout" / "scripts"
    scripts.mkdir(parents=True)
    for name in ("demo.sh", "demo_out.sh"):
        shutil.copy(SCRIPTS / name, scripts / name)
    (scripts / "env.sh").write_text(f"exit {WENT_ON}\n")

    def run(out: Path) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", str(scripts / "demo.sh"), str(out)], capture_output=True, text=True, timeout=60)

    return run


def _snapshot(root: Path) -> dict[str, bytes | None]:
    """Every entry under `root`: file bytes, link target, or None for a folder."""
    return {
        str(p.relative_to(root)): (
            p.readlink().as_posix().encode() if p.is_symlink() else None if p.is_dir() else p.read_bytes()
        )
        for p in root.rglob("*")
    }


def _fill(folder: Path) -> None:
    (folder / "sub" / "deep").mkdir(parents=True)
    (folder / "notes.txt").write_bytes(b"mine\x00\xff")
    (folder / ".hidden").write_text("hidden")
    (folder / "sub" / "deep" / "data.bin").write_bytes(bytes(range(256)))


def _refused(done: subprocess.CompletedProcess, out: Path, reason: str) -> None:
    assert done.returncode == 2 and done.stdout == "", done
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("demo.sh: error: "), done.stderr
    assert str(out) in done.stderr and reason in done.stderr


def test_a_folder_the_demo_did_not_make_is_refused_and_left_intact(demo, tmp_path):
    out = tmp_path / "precious"
    out.mkdir()
    _fill(out)
    before = _snapshot(out)
    _refused(demo(out), out, f"no {MARKER} in it")
    assert _snapshot(out) == before


def test_a_file_is_refused_and_left_intact(demo, tmp_path):
    out = tmp_path / "a_file"
    out.write_bytes(b"keep me")
    _refused(demo(out), out, "is not a folder")
    assert out.read_bytes() == b"keep me"


def test_a_folder_an_earlier_demo_made_is_emptied_but_not_what_it_links_to(demo, tmp_path):
    out, elsewhere = tmp_path / "demo_out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    _fill(out)
    _fill(elsewhere)
    (out / MARKER).write_text("")
    (out / "link").symlink_to(elsewhere, target_is_directory=True)
    kept = _snapshot(elsewhere)
    done = demo(out)
    assert done.returncode == WENT_ON and done.stderr == "", done
    assert sorted(p.name for p in out.iterdir()) == [MARKER]
    assert _snapshot(elsewhere) == kept


@pytest.mark.parametrize("exists", [False, True], ids=["missing", "empty"])
def test_a_missing_or_empty_folder_becomes_a_marked_demo_folder(demo, tmp_path, exists):
    out = tmp_path / "new" / "demo_out"
    if exists:
        out.mkdir(parents=True)
    done = demo(out)
    assert done.returncode == WENT_ON and done.stderr == "", done
    assert [p.name for p in out.iterdir()] == [MARKER]
