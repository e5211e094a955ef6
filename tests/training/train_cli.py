"""c2f-train in a process of its own that holds after one step, for the tests that send it SIGTERM.

    python -m tests.training.train_cli EVENTS HOLD_STEP [c2f-train arguments]
    torchrun ... -m tests.training.train_cli EVENTS HOLD_STEP [c2f-train arguments]

After optimizer step HOLD_STEP (its record and checkpoint, if due, written) each rank writes
EVENTS/held-RANK and waits until it is asked to stop (its own SIGTERM) or EVENTS/go exists; then it
writes EVENTS/released-RANK and goes on. A signal thus reaches a run that is mid-way for certain,
and the run stops after step HOLD_STEP + 1. Each rank writes its exit status to EVENTS/exit-RANK
(torchrun does not report its workers' statuses when it was signalled itself).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import training.cli
import training.engine

ROOT = Path(__file__).resolve().parents[2]
DEADLINE_S = 150  # generous (a loaded 2-core machine), and within pytest-timeout's 300 s per test
POLL_S = 0.05
STARTED: list[subprocess.Popen] = []  # for `kill_started`


def start(events: Path, hold_step: int, argv: list, *, torchrun=None) -> subprocess.Popen:
    """Start c2f-train ARGV, holding after step `hold_step` (0: never), under `torchrun` (a command
    prefix) when given, in a process group of its own."""
    events.mkdir(parents=True, exist_ok=True)
    launcher = [*map(str, torchrun), "-m"] if torchrun else [sys.executable, "-m"]
    cmd = [*launcher, "tests.training.train_cli", str(events), str(hold_step), *map(str, argv)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    STARTED.append(proc)
    return proc


def start_held(events: Path, hold_step: int, argv: list, *, ranks: int = 1, torchrun=None) -> subprocess.Popen:
    """`start`, returning once all `ranks` hold after step `hold_step`."""
    proc = start(events, hold_step, argv, torchrun=torchrun)
    wait_for(proc, lambda: all((events / f"held-{r}").exists() for r in range(ranks)), "every rank to hold")
    return proc


def wait_for(proc: subprocess.Popen, condition, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        if proc.poll() is not None:
            err = proc.stderr.read()[-3000:]
            raise AssertionError(f"c2f-train ended (exit {proc.returncode}) before {what}: {err}")
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(POLL_S)


def finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    """Wait for the run to end (SIGKILL its group if it hangs); (exit status, stdout, stderr)."""
    try:
        out, err = proc.communicate(timeout=DEADLINE_S)
    except subprocess.TimeoutExpired:
        kill_started()
        out, err = proc.communicate()
        raise AssertionError(f"c2f-train hung; its stderr: {err[-3000:]}") from None
    return proc.returncode, out, err


def kill_started() -> None:
    """SIGKILL what `start` started and is still running: its process group and those of its
    children (torchrun starts each rank in a session of its own)."""
    while STARTED:
        proc = STARTED.pop()
        if proc.poll() is None:
            for pid in [*_children(proc.pid), proc.pid]:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
            proc.wait()


def rank_pids(proc: subprocess.Popen, ranks: int) -> dict[int, int]:
    """{rank: pid} of the ranks that torchrun `proc` started (read from their environments)."""
    found = {}
    for child in _children(proc.pid):
        environ = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
        rank = [e.split(b"=", 1)[1] for e in environ if e.startswith(b"RANK=")]
        if rank:
            found[int(rank[0])] = child
    assert sorted(found) == list(range(ranks)), found
    return found


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _hold(events: Path, hold_step: int):
    rank = os.environ.get("RANK", "0")
    after_step = training.engine._after_step

    def hold_after(run, logger, meter, done, lr, result):
        record = after_step(run, logger, meter, done, lr, result)
        if done == hold_step:
            (events / f"held-{rank}").touch()
            while not (run.ctx.stop_requested() or (events / "go").exists()):
                time.sleep(POLL_S)
            (events / f"released-{rank}").touch()
        return record

    return hold_after


def main(argv: list[str]) -> int:
    events, hold_step = Path(argv[0]), int(argv[1])
    training.engine._after_step = _hold(events, hold_step)
    code = training.cli.main(argv[2:])
    (events / f"exit-{os.environ.get('RANK', '0')}").write_text(str(code))
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
