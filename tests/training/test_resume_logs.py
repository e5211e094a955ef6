"""A resumed run's log, TensorBoard included, equals the uninterrupted run's, wherever it stopped;
the log rewrite survives a kill; run state that two identical runs must share is seeded."""

from __future__ import annotations

import io
import random

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import plumbing.files
import training.engine as engine
from training.logs import truncate_log

from .engine_fixtures import read_log, tiny_config

KEYS = ("step", "loss", "loss_rgb", "loss_semantic", "loss_instance", "lr", "w_semantic")
INTERVALS = ("engine.log_every=3", "engine.checkpoint_every=2", "engine.tensorboard=true")
STOP = 8


class _Killed(Exception):
    pass


def _kill_after(monkeypatch, step: int) -> None:
    """The loop dies right after optimizer step `step` (its log record and checkpoint, if due,
    are written; nothing later is)."""
    real = engine._after_step

    def after(run, logger, meter, done, lr, result):
        out = real(run, logger, meter, done, lr, result)
        if done == step:
            raise _Killed
        return out

    monkeypatch.setattr(engine, "_after_step", after)


@pytest.fixture(autouse=True)
def event_files_in_run_order():
    """TensorBoard reads a run's event files in name order; a name holds the time in whole seconds,
    the PID and a process-wide counter that sorts as text (…10 before …9). The runs of one test
    start in one process, often within a second: count from 100 so that their names sort in order."""
    from tensorboard.summary.writer import event_file_writer

    with pytest.MonkeyPatch.context() as patch:  # its own: tests here undo their `monkeypatch` midway
        patch.setattr(event_file_writer, "_global_uid", event_file_writer.AtomicCounter(100))
        yield


def _log(run_dir) -> list[list]:
    return [[r[k] for k in KEYS] for r in read_log(run_dir / "log.jsonl")]


def _tensorboard(run_dir) -> list[tuple[int, float]]:
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    return [(e.step, e.value) for e in events.Scalars("loss")]


@pytest.fixture(scope="module")
def uninterrupted(tiny_store, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("full") / "run"
    engine.train(tiny_config(*INTERVALS), tiny_store.path, tiny_store.images, run_dir, max_steps=STOP)
    return run_dir


@pytest.mark.slow
@pytest.mark.parametrize("killed_at", [3, 4, 5, 6])  # after a record; a checkpoint; neither; both
def test_a_run_killed_at_any_step_resumes_to_the_same_log(tiny_store, uninterrupted, tmp_path, monkeypatch, killed_at):
    cfg, run_dir = tiny_config(*INTERVALS), tmp_path / "run"
    _kill_after(monkeypatch, killed_at)
    with pytest.raises(_Killed):
        engine.train(cfg, tiny_store.path, tiny_store.images, run_dir, max_steps=STOP)
    monkeypatch.undo()
    engine.train(cfg, tiny_store.path, tiny_store.images, run_dir, max_steps=STOP)
    assert [r[0] for r in _log(uninterrupted)] == [3, 6, 8]
    assert _log(run_dir) == _log(uninterrupted)
    assert _tensorboard(run_dir) == _tensorboard(uninterrupted)


@pytest.mark.slow
def test_a_max_steps_stop_between_records_leaves_no_extra_record(tiny_store, uninterrupted, tmp_path):
    cfg, run_dir = tiny_config(*INTERVALS), tmp_path / "run"
    engine.train(cfg, tiny_store.path, tiny_store.images, run_dir, max_steps=4)
    assert [r[0] for r in _log(run_dir)] == [3, 4]  # the stop is logged for the person who asked
    engine.train(cfg, tiny_store.path, tiny_store.images, run_dir, max_steps=STOP)
    assert _log(run_dir) == _log(uninterrupted)
    assert _tensorboard(run_dir) == _tensorboard(uninterrupted)


class _DiesMidWrite:
    """A file whose first write stores half its data, then the process 'dies'."""

    def __init__(self, real):
        self.real = real

    def write(self, data):
        self.real.write(data[: len(data) // 2])
        self.real.flush()
        raise KeyboardInterrupt

    def __getattr__(self, name):
        return getattr(self.real, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.real.close()


def test_a_kill_during_the_log_rewrite_loses_no_record(tmp_path, monkeypatch):
    path = tmp_path / "log.jsonl"
    before = "".join(f'{{"step": {s}, "loss": {s / 10}}}\n' for s in range(1, 31))
    path.write_text(before)
    real_open = io.open

    def dying_open(file, mode="r", *args, **kwargs):
        handle = real_open(file, mode, *args, **kwargs)
        return _DiesMidWrite(handle) if "w" in mode else handle

    monkeypatch.setattr(plumbing.files, "open", dying_open, raising=False)  # the open its atomic write uses
    with pytest.raises(KeyboardInterrupt):
        truncate_log(path, 12)
    monkeypatch.undo()
    assert path.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.jsonl"]
    truncate_log(path, 12)
    assert [r["step"] for r in read_log(path)] == list(range(1, 13))


def test_identical_runs_hold_identical_global_rng_states(tiny_store, tmp_path):
    cfg = tiny_config()
    for entropy, name in enumerate(("a", "b")):  # two processes start from different states
        random.seed(entropy)
        np.random.seed(entropy)
        engine.train(cfg, tiny_store.path, tiny_store.images, tmp_path / name, max_steps=2)
    a, b = (torch.load(tmp_path / n / "latest.pt", weights_only=True)["rng"] for n in ("a", "b"))
    assert torch.equal(a["python"]["state"], b["python"]["state"])
    assert torch.equal(a["numpy"]["keys"], b["numpy"]["keys"])
    assert torch.equal(a["torch"], b["torch"])


def test_temporary_files_of_an_interrupted_save_are_removed(tiny_store, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / ".latest.pt.999999.tmp").write_bytes(b"half a checkpoint")
    (run_dir / ".tmp-abc123.pt").write_bytes(b"half a checkpoint, named as saves before plumbing.files did")
    engine.train(tiny_config(), tiny_store.path, tiny_store.images, run_dir, max_steps=1)
    assert not list(run_dir.glob(".*tmp*"))
    assert (run_dir / "latest.pt").exists()
