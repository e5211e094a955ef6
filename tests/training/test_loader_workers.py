"""Loader workers end with their trainer, however it dies, and live through a SIGTERM to its
process group until it has stopped them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from torch.utils.data import DataLoader

from training.data import DataConfig, build_dataset, loader_kwargs

from .engine_fixtures import train_argv, write_tiny_yaml

C2F_TRAIN = Path(sys.executable).with_name("c2f-train")
DEADLINE_S = 120  # generous: a loaded 2-core machine; the workers go within a second when idle


def _descendants(pid: int) -> set[int]:
    """PIDs of every living descendant of `pid` (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pids: set[int]) -> set[int]:
    return {
        p
        for p in pids
        if Path(f"/proc/{p}").exists() and Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    }


def _at_least(count: int, pids: set[int]) -> set[int] | None:
    return pids if len(pids) >= count else None


def _wait_for(condition, what: str):
    end = time.monotonic() + DEADLINE_S
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"gave up waiting for {what}")


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killing_the_trainer_ends_its_loader_workers(tiny_store, tmp_path, sig):
    config = write_tiny_yaml(tmp_path / "c.yaml", "data.num_workers=2", "optim.epochs=100000")
    trainer = subprocess.Popen(
        [str(C2F_TRAIN), *train_argv(config, tiny_store.path, tiny_store.images, tmp_path / "run")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    helpers: set[int] = set()
    try:
        # the fork server, its two workers and the resource tracker
        helpers = _wait_for(lambda: _at_least(4, _descendants(trainer.pid)), "the loader workers to start")
        _wait_for(lambda: (tmp_path / "run" / "log.jsonl").exists(), "the first step")
        os.kill(trainer.pid, sig)
        trainer.wait()
        _wait_for(lambda: not _alive(helpers), f"processes {sorted(_alive(helpers))} to exit")
    finally:
        trainer.kill()
        for pid in _alive(helpers):
            os.kill(pid, signal.SIGKILL)


def test_the_fork_server_and_the_loader_workers_ignore_sigterm(tiny_store):
    # torchrun and Slurm signal the trainer's group: the trainer stops them after its checkpoint
    server, workers = _sigterm_ignored_by_loader_processes(tiny_store)
    assert server and workers == [True, True]
    assert not _ignores_sigterm(os.getpid())


def _sigterm_ignored_by_loader_processes(store) -> tuple[bool, list[bool]]:
    """Whether the fork server, and each worker, of a loader with 2 workers ignores SIGTERM; the
    loader is gone when this returns (a failed assertion would keep it alive)."""
    cfg = DataConfig(img_size=32, num_workers=2, prefetch_factor=1)
    dataset = build_dataset(cfg, store.path, store.images, 0)
    loader = DataLoader(dataset, batch_size=2, sampler=[(p, 0) for p in range(4)], **loader_kwargs(cfg))
    assert len(list(loader)) == 2  # a batch from each worker: both have run their start hook
    (server,) = [p for p in psutil.Process().children() if "forkserver" in " ".join(p.cmdline())]
    workers = [w for w in server.children() if w.status() != psutil.STATUS_ZOMBIE]
    return _ignores_sigterm(server.pid), [_ignores_sigterm(w.pid) for w in workers]


def _ignores_sigterm(pid: int) -> bool:
    """Whether process `pid` ignores SIGTERM (its SigIgn mask in /proc)."""
    line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith("SigIgn:"))
    return bool(int(line.split()[1], 16) >> (signal.SIGTERM - 1) & 1)


KEEPS_A_LOADER = """
import sys
from torch.utils.data import DataLoader
from training.data import DataConfig, build_dataset, loader_kwargs

cfg = DataConfig(img_size=32, num_workers=2, prefetch_factor=1)
dataset = build_dataset(cfg, sys.argv[1], sys.argv[2], 0)
kept = iter(DataLoader(dataset, batch_size=2, sampler=[(p, 0) for p in range(4)], **loader_kwargs(cfg)))
next(kept)
print("exiting with the loader's workers alive", flush=True)
"""


def test_a_process_exits_while_a_loader_it_keeps_has_workers(tiny_store):
    # e.g. a failed test's traceback holds the loader: the workers ignore SIGTERM and wait for
    # this process to exit, multiprocessing's exit hook would wait for them
    done = subprocess.run(
        [sys.executable, "-c", KEEPS_A_LOADER, str(tiny_store.path), str(tiny_store.images)],
        capture_output=True,
        text=True,
        timeout=DEADLINE_S,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "exiting with the loader's workers alive\n"
