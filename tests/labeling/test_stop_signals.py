"""SIGTERM (Kubernetes, Slurm, spot preemption, `ray job stop`) and Ctrl-C stop a label job
gracefully: no more shards handed out, the shards in flight get a grace period, the report is
written, exit 143 / 130 with the command that resumes, and never Ray's signal dump."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess

import pytest

from datasets_spec import open_store, storage
from datasets_spec.validate import validate
from labeling.cli import main
from labeling.stop_signals import StopSignals
from plumbing.cli_boundary import TERMINATED, Terminated, run
from tests.datasets_spec.store_fixtures import store_content

from .label_cli import hold_args, release, start_held
from .photo_files import write_photos

HELD = 40  # coffee.png's height: the 3rd of the 4 photos, in list order
RAY_DUMP = ("SIGTERM received", "logging.cc", "Traceback")  # what Ray's own SIGTERM handler leaves


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Four small real photos in a plain folder."""
    return write_photos(tmp_path_factory.mktemp("photos"), ("astronaut", "chelsea", "coffee", "rocket"), 0.1, ".png")


def test_a_first_signal_in_the_shard_loop_is_only_recorded_and_a_second_raises():
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    stops = StopSignals()
    with stops.installed():
        with stops.deferred():
            signal.raise_signal(signal.SIGTERM)
            assert stops.name == "SIGTERM"
            with pytest.raises(KeyboardInterrupt):
                signal.raise_signal(signal.SIGINT)
        assert stops.received == signal.SIGTERM  # the first one counts
    assert {sig: signal.getsignal(sig) for sig in before} == before  # put back


def test_a_signal_raises_while_ray_blocks_and_outside_the_shard_loop():
    def blocking_call():
        signal.raise_signal(signal.SIGTERM)
        raise AssertionError("the signal did not interrupt the call")

    stops = StopSignals()
    with stops.installed(), stops.deferred(), pytest.raises(KeyboardInterrupt):
        stops.interruptible(blocking_call)
    assert stops.received == signal.SIGTERM
    with stops.installed(), stops.deferred(), pytest.raises(KeyboardInterrupt):
        stops.interruptible(pytest.fail, "called after a stop signal")  # one already received
    outside = StopSignals()
    with outside.installed(), pytest.raises(KeyboardInterrupt):
        signal.raise_signal(signal.SIGINT)
    assert outside.name == "SIGINT"


def test_terminated_is_exit_143_with_the_resume_line(capsys):
    def body():
        raise Terminated

    assert run("c2f-x", body, resume=["c2f-x", "a b"]) == TERMINATED == 143
    assert capsys.readouterr().err == "c2f-x: terminated; to resume, run: c2f-x 'a b'\n"


def _report(output) -> dict:
    (name,) = [n for n in storage.list_all(output) if n.startswith("reports/label-") and n.endswith(".json")]
    return json.loads(storage.read_bytes(output, name))


def _sigterm(job: subprocess.Popen) -> None:
    os.kill(job.pid, signal.SIGTERM)  # to the driver alone, as Kubernetes signals a container's PID 1


@pytest.mark.slow
def test_sigterm_abandons_a_shard_past_the_grace_period_and_the_resume_command_completes_the_store(
    capsys, photos, tmp_path, ray_session, fault_backends, hold_events
):
    options = ["--shard-size", "1", "--grace", "1", "--quiet", *hold_args(hold_events, HELD)]
    argv = [str(photos), "-o", str(tmp_path / "ds"), *options]
    job = start_held(argv, hold_events, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _sigterm(job)
        out, err = job.communicate(timeout=300)
        assert job.returncode == 143, err
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
    assert err.splitlines()[-1] == f"c2f-label: terminated; to resume, run: {shlex.join(['c2f-label', *argv])}", err
    assert not any(dump in err for dump in RAY_DUMP), err
    report = _report(tmp_path / "ds")
    assert (report["stopped_by"], report["shards_abandoned"], report["pending"]) == ("SIGTERM", [2], 2)
    assert "stopped by SIGTERM: 1 shard(s) begun were not finished" in out
    assert set(open_store(tmp_path / "ds").done_shards()) == {0, 1}  # nothing of the held image or after it
    release(hold_events)
    resume = shlex.split(err.splitlines()[-1].split("to resume, run: ", 1)[1])
    assert main(resume[1:]) == 0
    assert main([argv[0], "-o", tmp_path / "clean", *options]) == 0
    assert store_content(tmp_path / "ds") == store_content(tmp_path / "clean")
    assert validate(tmp_path / "ds") == []


@pytest.mark.slow
def test_sigterm_keeps_a_shard_that_finishes_within_the_grace_period_and_a_verbose_run_keeps_worker_logs(
    photos, tmp_path, hold_events
):
    argv = [photos, "-o", tmp_path / "ds", "--shard-size", "1", "--grace", "300", "-v", *hold_args(hold_events, HELD)]
    job = start_held(argv, hold_events, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _sigterm(job)
        seen = []
        while not seen or "SIGTERM: waiting up to 300 s for 1 shard(s) in flight" not in seen[-1]:
            seen.append(job.stderr.readline())  # the driver stops handing out shards, then says so
            assert seen[-1], "".join(seen)
        (hold_events / "hold").unlink()  # now the held shard finishes, within the grace period
        out, err = job.communicate(timeout=300)
        assert job.returncode == 143, err
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
    assert not any(dump in "".join(seen) + err for dump in RAY_DUMP), err
    assert "terminated; to resume, run: c2f-label " in err.splitlines()[-1]
    report = _report(tmp_path / "ds")
    assert (report["stopped_by"], report["shards_abandoned"], report["pending"]) == ("SIGTERM", [], 1)
    assert "the shards in flight were finished" in out
    assert set(open_store(tmp_path / "ds").done_shards()) == {0, 1, 2}  # the held one kept, none after it
    held_pid = (hold_events / "held").read_text()
    logs = [n for n in storage.list_all(tmp_path / "ds") if n.startswith(f"{report['worker_logs']}/")]
    assert any(n.endswith(f"_{held_pid}.log") for n in logs), logs  # the held worker's core-worker log
