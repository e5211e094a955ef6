"""SIGTERM (a scheduler's stop, or torchrun passing one on): a checkpoint at the step where every
rank stopped, exit 143 with the resume line, and a resume that loses no step."""

from __future__ import annotations

import os
import re
import shlex
import signal

import pytest
import torch

from training import engine

from .engine_fixtures import read_log, tiny_config, train_argv, write_tiny_yaml
from .torchrun import TORCHRUN
from .train_cli import ROOT, finish, kill_started, rank_pids, start, start_held, wait_for

KEYS = ("step", "loss", "loss_rgb", "loss_semantic", "loss_instance", "lr", "w_semantic")
# step 5, where the run stops, is neither a record's nor a checkpoint's step
INTERVALS = ("engine.log_every=3", "engine.checkpoint_every=4")
HOLD, STOP = 4, 8


@pytest.fixture(autouse=True)
def _no_run_left():
    """A failed test leaves no c2f-train (or torchrun and its ranks) running."""
    yield
    kill_started()


def _log(run_dir) -> list[list]:
    return [[r[k] for k in KEYS] for r in read_log(run_dir / "log.jsonl")]


def _checkpoint_step(run_dir) -> int:
    return int(torch.load(run_dir / "latest.pt", weights_only=True)["step"])


def _resume_argv(stderr: str) -> list[str]:
    """The c2f-train arguments of the resume line."""
    line = [line for line in stderr.splitlines() if "to resume, run: " in line]
    assert len(line) == 1, stderr
    return shlex.split(line[0].split("to resume, run: ", 1)[1])[1:]


def test_a_stop_request_ends_the_run_after_that_step_with_its_checkpoint(tiny_store, tmp_path):
    cfg, run_dir, polls = tiny_config(*INTERVALS), tmp_path / "run", []

    def stop_at_the_third_step() -> bool:
        polls.append(len(polls) + 1)
        return polls[-1] == 3

    summary = engine.train(
        cfg, tiny_store.path, tiny_store.images, run_dir, max_steps=STOP, stop=stop_at_the_third_step
    )
    assert summary["stopped"] and summary["step"] == 3 == _checkpoint_step(run_dir)
    assert polls == [1, 2, 3]  # once per step
    # a request at the last step changes nothing: the run is done, not stopped
    summary = engine.train(cfg, tiny_store.path, tiny_store.images, run_dir, max_steps=4, stop=lambda: True)
    assert not summary["stopped"] and summary["step"] == 4 == _checkpoint_step(run_dir)


@pytest.mark.slow
def test_sigterm_to_the_process_group_checkpoints_the_step_and_resumes_to_the_same_log(tiny_store, tmp_path):
    # the whole group, as torchrun and Slurm send it: the loader workers get it too
    config = write_tiny_yaml(tmp_path / "c.yaml", *INTERVALS, "data.num_workers=2")
    run_dir, events = tmp_path / "run", tmp_path / "events"
    argv = train_argv(config, tiny_store.path, tiny_store.images, run_dir, "--max-steps", STOP)
    proc = start_held(events, HOLD, argv)
    os.killpg(proc.pid, signal.SIGTERM)
    code, out, err = finish(proc)

    assert code == 143, err
    assert f"c2f-train: terminated at step {HOLD + 1}, checkpoint {run_dir}/latest.pt; to resume" in err
    assert "Traceback" not in err, err
    assert _resume_argv(err) == argv
    assert _checkpoint_step(run_dir) == HOLD + 1
    assert [r["step"] for r in read_log(run_dir / "log.jsonl")] == [3]  # no record forced at the stop

    code, out, err = finish(start(tmp_path / "events-2", 0, _resume_argv(err)))
    assert code == 0, err
    assert f"resuming from {run_dir}/latest.pt at step {HOLD + 1}" in err
    uninterrupted = tmp_path / "uninterrupted"
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        engine.train(tiny_config(*INTERVALS), tiny_store.path, tiny_store.images, uninterrupted, max_steps=STOP)
    finally:
        torch.set_num_threads(before)
    assert [r[0] for r in _log(uninterrupted)] == [3, 6, 8]
    assert _log(run_dir) == _log(uninterrupted)


@pytest.mark.slow
@pytest.mark.parametrize("signalled", ["torchrun", "rank 1 only"])
def test_ddp_ranks_agree_on_the_step_where_sigterm_stops_them(tiny_store, tmp_path, signalled):
    config = write_tiny_yaml(tmp_path / "c.yaml", *INTERVALS, "optim.batch_size=2")
    run_dir, events = tmp_path / "run", tmp_path / "events"
    argv = train_argv(config, tiny_store.path, tiny_store.images, run_dir, "--max-steps", STOP)
    torchrun = [TORCHRUN, "--standalone", "--nproc_per_node", "2"]
    proc = start_held(events, HOLD, argv, ranks=2, torchrun=torchrun)
    if signalled == "torchrun":  # as Kubernetes does: torchrun forwards it to each rank's group
        proc.send_signal(signal.SIGTERM)
    else:  # a scheduler that signals one process: rank 0 goes on and must stop with it
        os.kill(rank_pids(proc, 2)[1], signal.SIGTERM)
        wait_for(proc, lambda: (events / "released-1").exists(), "rank 1 to see its SIGTERM")
        (events / "go").touch()
    code, out, err = finish(proc)

    assert [(events / f"exit-{r}").read_text() for r in (0, 1)] == ["143", "143"], err
    assert code != 0  # torchrun reports its own failure: see docs/training.md
    lines = [line for line in err.splitlines() if line.startswith("c2f-train: terminated")]
    assert sorted(lines) == [
        f"c2f-train: terminated at step {HOLD + 1} (rank 1), checkpoint {run_dir}/latest.pt",
        f"c2f-train: terminated at step {HOLD + 1}, checkpoint {run_dir}/latest.pt; "
        f"to resume, run: c2f-train {shlex.join(map(str, argv))}",
    ], err
    ours = re.compile(rf'File "{re.escape(str(ROOT))}/(?!\.venv/)')  # the venv may live in the checkout
    assert not ours.search(err), err  # no traceback of ours (torchrun prints its own)
    assert _checkpoint_step(run_dir) == HOLD + 1
    if signalled == "rank 1 only":
        return
    code, out, err = finish(start(tmp_path / "events-2", 0, _resume_argv(err), torchrun=torchrun))
    assert code == 0, err
    assert f"resuming from {run_dir}/latest.pt at step {HOLD + 1}" in err
    assert [r["step"] for r in read_log(run_dir / "log.jsonl")] == [3, 6, 8]
    assert _checkpoint_step(run_dir) == STOP


def test_the_stop_line_names_the_step_and_the_command_that_resumes(tmp_path, monkeypatch, capsys):
    import training.cli

    handler = signal.getsignal(signal.SIGTERM)

    def stopped(cfg, data, images, out, max_steps=None, stop=None):
        return {"step": 7, "run_dir": str(out), "stopped": True}

    monkeypatch.setattr(engine, "train", stopped)
    config = write_tiny_yaml(tmp_path / "c.yaml")
    argv = train_argv(config, tmp_path / "store", tmp_path / "images", tmp_path / "my run")
    assert training.cli.main(argv) == 143
    assert capsys.readouterr().err == (
        f"c2f-train: terminated at step 7, checkpoint {tmp_path}/my run/latest.pt; "
        f"to resume, run: c2f-train {shlex.join(argv)}\n"
    )
    assert signal.getsignal(signal.SIGTERM) == handler
