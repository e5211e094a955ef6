"""atomic_write: the target holds the old content or the whole new one, and no temporary file
outlives a write, whether it succeeds or fails."""

from __future__ import annotations

import errno
import os

import pytest

from plumbing.files import atomic_write, write_temp
from tests.system import small_tmpfs


def _hidden(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_bytes_replace_the_file_and_leave_no_temporary_file(tmp_path):
    target = tmp_path / "x.json"
    target.write_bytes(b"old")
    atomic_write(target, b"new")
    assert target.read_bytes() == b"new" and _hidden(tmp_path) == []
    atomic_write(tmp_path / "fresh.bin", bytearray(b"\0\1"))
    assert (tmp_path / "fresh.bin").read_bytes() == b"\0\1"


def test_a_writer_fills_a_hidden_temporary_file_beside_the_target(tmp_path):
    target = tmp_path / "x.pt"
    target.write_bytes(b"old")
    seen = []

    def write(f):
        f.write(b"new ")
        f.write(b"content")
        seen.append((_hidden(tmp_path), target.read_bytes()))

    atomic_write(target, write)
    assert seen == [([f".x.pt.{os.getpid()}.tmp"], b"old")]  # the name the stale-file clean-ups look for
    assert target.read_bytes() == b"new content" and _hidden(tmp_path) == []


def test_a_failing_writer_leaves_the_old_file_and_no_temporary_file(tmp_path):
    target = tmp_path / "x.pt"
    target.write_bytes(b"old")

    def write(f):
        f.write(b"half of it")
        raise ValueError("the writer broke")

    with pytest.raises(ValueError, match="the writer broke"):
        atomic_write(target, write)
    assert target.read_bytes() == b"old" and _hidden(tmp_path) == []


def test_a_failing_rename_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "x"
    (target / "inside").mkdir(parents=True)  # a non-empty folder cannot be replaced by a file
    with pytest.raises(OSError):
        atomic_write(target, b"new")
    assert (target / "inside").is_dir() and _hidden(tmp_path) == []


def test_a_missing_folder_is_an_os_error_and_nothing_is_created(tmp_path):
    with pytest.raises(FileNotFoundError):
        atomic_write(tmp_path / "no" / "x", b"new")
    assert list(tmp_path.iterdir()) == []


def test_write_temp_leaves_the_rename_to_the_caller(tmp_path):
    target = tmp_path / "latest.pt"
    target.write_bytes(b"old")
    tmp = write_temp(target, b"new")
    assert tmp.parent == tmp_path and tmp.read_bytes() == b"new" and target.read_bytes() == b"old"
    with pytest.raises(KeyError):
        write_temp(tmp_path / "other.pt", lambda f: {}["boom"])
    assert _hidden(tmp_path) == [tmp.name]  # the failed one is gone, the finished one is the caller's


@pytest.fixture
def full_disk(tmp_path):
    """A 64 KiB tmpfs holding `old` (3 bytes) and too little room for 1 MiB more."""
    with small_tmpfs(tmp_path / "disk", "64k") as mount:
        (mount / "old").write_bytes(b"old")
        yield mount


def test_a_full_disk_is_an_os_error_that_leaves_the_old_file(full_disk):
    with pytest.raises(OSError) as caught:
        atomic_write(full_disk / "old", b"\0" * 2**20)
    assert caught.value.errno == errno.ENOSPC
    assert (full_disk / "old").read_bytes() == b"old" and _hidden(full_disk) == []


def test_an_os_error_a_writer_hides_is_raised_as_itself(full_disk):
    def write(f):  # as torch.save does: the file's OSError becomes the writer's own RuntimeError
        try:
            f.write(b"\0" * 2**20)
            f.flush()
        except OSError:
            raise RuntimeError("PytorchStreamWriter failed writing file data/0") from None

    with pytest.raises(OSError) as caught:
        atomic_write(full_disk / "old", write)
    assert caught.value.errno == errno.ENOSPC
    assert (full_disk / "old").read_bytes() == b"old" and _hidden(full_disk) == []
