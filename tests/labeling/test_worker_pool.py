"""The elastic worker pool: it asks the autoscaler for what the job can use, waits for a node with
room (and gives up after --wait-timeout in one line), grows as nodes join, never beyond the work,
the limit or the nodes' room, and drops a new worker that cannot start. Most tests drive it over a
fake cluster and a fake clock (no Ray, no waiting); the last ones run c2f-label on a local Ray."""

from __future__ import annotations

import json
import logging
import signal

import pytest

from labeling import cluster, worker_pool
from labeling.cli import main
from labeling.config import load_config
from labeling.errors import LabelingError
from labeling.job import run_label_job
from labeling.shard_retry import NO_NODE_LEFT
from labeling.stop_signals import StopSignals
from labeling.worker_pool import CHECK_S, POLL_S, WorkerPool
from plumbing.cli_boundary import Terminated

from .photo_files import write_photos

ABSENT = "c2f_test_absent"  # a custom resource no node of the tests' local Ray has


class CannotStart(Exception):
    """A worker's first call failed; `reason` is what cluster.init_failure makes of it."""

    def __init__(self, reason: str | None):
        super().__init__(reason or "its node died")
        self.reason = reason


class FakeCluster:
    """What worker_pool calls of labeling.cluster: nodes that hold `fits` workers in all, workers
    named w1, w2, … whose first call fails when their name is in `broken` ({name: reason})."""

    WORKER_ERRORS = (CannotStart,)
    worker_bundle = staticmethod(cluster.worker_bundle)

    def __init__(self) -> None:
        self.fits, self.totals = 0, {"CPU": 1.0}
        self.made, self.killed, self.asked, self.broken = 0, [], [], {}

    def capacity(self, cfg) -> int:
        return self.fits

    def resources(self) -> dict:
        return self.totals

    def make_worker(self, cfg) -> str:
        self.made += 1
        return f"w{self.made}"

    def submit(self, worker, method):
        assert method == "identities"
        return ("ref", worker)

    def get(self, ref):
        if ref[1] in self.broken:
            raise CannotStart(self.broken[ref[1]])

    def wait_one(self, refs, timeout=None):
        return refs[0]

    def kill(self, worker) -> None:
        self.killed.append(worker)

    def init_failure(self, exc) -> str | None:
        return exc.reason

    def request_workers(self, cfg, count: int) -> None:
        self.asked.append(count)


class FakeClock:
    """time.monotonic and time.sleep for the pool; `on_sleep(clock)` runs at each sleep."""

    def __init__(self, on_sleep=None) -> None:
        self.now, self.sleeps, self.on_sleep = 1000.0, [], on_sleep

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        if self.on_sleep is not None:
            self.on_sleep(self)


@pytest.fixture
def fake(monkeypatch):
    fake = FakeCluster()
    monkeypatch.setattr(worker_pool, "cluster", fake)
    return fake


@pytest.fixture
def clock(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(worker_pool, "time", clock)
    return clock


def _pool(**settings) -> WorkerPool:
    return WorkerPool(load_config(flags=settings), StopSignals())


def _join_all(pool: WorkerPool) -> list:
    return [worker for ref in list(pool.starting) for worker in pool.joined(ref)]


def test_the_pool_grows_as_nodes_join_up_to_the_limit_and_the_work(fake, clock, caplog):
    pool = _pool(workers=3)
    fake.fits = 1
    with caplog.at_level(logging.WARNING, logger="labeling.worker_pool"):
        assert pool.tend(5, live=0) == []  # one node with room for one: it starts
    assert "3 workers asked for, but the cluster can place 1 at a time" in caplog.text
    assert fake.asked == [3] and len(pool.starting) == 1
    assert pool.check_in(5, live=0) == CHECK_S  # it can grow: look again in a moment
    assert _join_all(pool) == ["w1"]
    fake.fits = 4  # nodes joined
    assert pool.tend(5, live=1) == [] and not pool.starting  # not looked yet
    clock.now += CHECK_S
    pool.tend(5, live=1)
    assert sorted(w for _, w in pool.starting) == ["w2", "w3"]  # up to the limit of 3, not the 4 that fit
    assert pool.check_in(5, live=1) is None  # at its limit: block until a shard finishes
    assert _join_all(pool) == ["w2", "w3"]
    clock.now += CHECK_S
    pool.tend(2, live=3)  # two shards left: the autoscaler is asked for two, nothing starts
    assert fake.asked == [3, 2] and fake.made == 3 and pool.peak == 3
    clock.now += CHECK_S
    fake.fits = 0
    assert pool.tend(2, live=2) == [] and fake.made == 3  # a node left: no worker replaces its own
    pool.close()
    assert fake.asked == [3, 2, 0] and fake.killed == []  # the request withdrawn


def test_a_worker_that_cannot_start_is_fatal_before_any_started_and_dropped_after(fake, clock, caplog):
    fake.fits, fake.broken = 2, {"w1": "classic: clusters must be in 1..16, got 99"}
    pool = _pool(workers=2)
    with pytest.raises(LabelingError, match=r"^a label worker could not start: classic: clusters must be in 1..16"):
        pool.first_worker(4)
    pool.close()
    assert fake.killed == ["w1", "w2"]  # the one that failed, then the one still starting

    fake.made, fake.killed, fake.broken = 0, [], {"w3": "a model file missing on that node", "w4": None}
    pool = _pool(workers=4)
    assert pool.first_worker(4) == "w1" and pool.tend(4, live=0) == ["w1"] and _join_all(pool) == ["w2"]
    fake.fits = 4
    clock.now += CHECK_S
    with caplog.at_level(logging.WARNING, logger="labeling.worker_pool"):
        pool.tend(4, live=2)
        assert _join_all(pool) == []
    assert "a new label worker could not start (a model file missing on that node): going on without it" in caplog.text
    assert "a new label worker could not start (CannotStart: its node died)" in caplog.text
    assert fake.killed == ["w3", "w4"]
    clock.now += CHECK_S
    pool.tend(4, live=2)
    assert [w for _, w in pool.starting] == ["w5"]  # the place of the one that died with its node only


def test_waiting_for_a_node_says_what_for_and_gives_up_after_the_timeout_in_one_line(fake, clock, caplog):
    fake.totals = {"CPU": 4.0}
    pool = _pool(workers=2, wait_timeout=5.5, worker_resources={"labeler": 1})
    with caplog.at_level(logging.WARNING, logger="labeling.worker_pool"):
        with pytest.raises(LabelingError) as refused:
            pool.first_worker(3)
    assert str(refused.value) == (
        "waited 5.5 s (--wait-timeout) for a node with room for a label worker (1 CPU, 1 labeler): "
        "each label worker needs 1 labeler, but the Ray cluster has 0: lower worker_resources.labeler or add nodes"
    )
    assert caplog.messages == [
        "waiting up to 5.5 s (--wait-timeout) for a node with room for a label worker (1 CPU, 1 labeler); "
        "asked the autoscaler for room for 2"
    ]
    assert clock.sleeps == [POLL_S] * 5 + [0.5] and fake.made == 0  # looked every second, started nothing
    pool.close()
    assert fake.asked == [2, 0]

    with pytest.raises(LabelingError, match=r"^each label worker needs 1 labeler, but the Ray cluster has 0: "):
        _pool(wait_timeout=0, worker_resources={"labeler": 1}).first_worker(3)  # 0: refused at once, as before
    assert len(clock.sleeps) == 6


def test_a_node_that_joins_during_the_wait_gets_the_workers(fake, clock):
    def join_at_the_third_look(clock):
        fake.fits = 2 if len(clock.sleeps) >= 3 else 0

    clock.on_sleep = join_at_the_third_look
    pool = _pool(workers=2)
    assert pool.first_worker(3) == "w1"
    assert len(clock.sleeps) == 3 and fake.made == 2 and fake.asked == [2]
    assert pool.tend(3, live=0) == ["w1"]  # handed to the shard loop once


def test_a_job_that_lost_every_worker_waits_for_a_node_then_stops_naming_the_resume(fake, clock):
    fake.fits = 1
    pool = _pool(wait_timeout=2)
    pool.first_worker(3)
    pool.tend(3, live=0)
    fake.fits = 0  # its node was lost with the worker
    with pytest.raises(LabelingError) as stopped:
        pool.tend(3, live=0)
    assert str(stopped.value) == (
        f"waited 2 s (--wait-timeout) for a node with room for a label worker (1 CPU): {NO_NODE_LEFT}"
    )


def test_an_autoscaler_that_cannot_be_asked_is_one_warning(fake, clock, caplog):
    def refuse(cfg, count):
        fake.asked.append(count)
        raise RuntimeError("GCS client is not available")

    fake.request_workers, fake.fits = refuse, 1
    pool = _pool(workers=2)
    with caplog.at_level(logging.WARNING, logger="labeling.worker_pool"):
        assert pool.first_worker(3) == "w1"
        clock.now += CHECK_S
        pool.tend(1, live=1)
        pool.close()
    assert fake.asked == [2]  # not asked again
    assert [m for m in caplog.messages if "autoscaler" in m] == [
        "could not ask the autoscaler for label workers (GCS client is not available); going on without"
    ]


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return write_photos(tmp_path_factory.mktemp("photos"), ("astronaut", "chelsea", "coffee", "rocket"), 0.1, ".png")


def _autoscaler_request(ray) -> bytes:
    """What the autoscaler was last asked for (request_resources writes it to the GCS)."""
    from ray._raylet import GcsClient
    from ray.autoscaler._private.constants import AUTOSCALER_RESOURCE_REQUEST_CHANNEL

    gcs = GcsClient(address=ray.get_runtime_context().gcs_address)
    return gcs.internal_kv_get(AUTOSCALER_RESOURCE_REQUEST_CHANNEL, None)


def test_a_local_ray_without_room_is_waited_for_then_refused_in_one_line(photos, tmp_path, ray_session, capsys):
    argv = [photos, "-o", tmp_path / "ds", "--shard-size", "2", "--quiet", "--worker-resources", f'{{"{ABSENT}": 1}}']
    assert main([*argv, "--wait-timeout", "0.2"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"c2f-label: warning: waiting up to 0.2 s (--wait-timeout) for a node with room for a label worker "
        f"(1 CPU, 1 {ABSENT}); asked the autoscaler for room for 1",
        f"c2f-label: error: waited 0.2 s (--wait-timeout) for a node with room for a label worker (1 CPU, 1 {ABSENT}): "
        f"each label worker needs 1 {ABSENT}, but the Ray cluster has 0: lower worker_resources.{ABSENT} or add nodes",
    ]
    assert _autoscaler_request(ray_session) == b"[]"  # withdrawn
    assert main([*argv, "--wait-timeout", "0"]) == 2
    assert capsys.readouterr().err == (
        f"c2f-label: error: each label worker needs 1 {ABSENT}, but the Ray cluster has 0: "
        f"lower worker_resources.{ABSENT} or add nodes\n"
    )
    assert not (tmp_path / "ds").exists()


def test_sigterm_while_waiting_for_a_node_stops_the_job_cleanly(photos, tmp_path, ray_session):
    asked = []

    class StopWhenWaiting(logging.Handler):
        def emit(self, record):
            if record.getMessage().startswith("waiting up to"):
                asked.append(_autoscaler_request(ray_session))
                signal.raise_signal(signal.SIGTERM)  # as Kubernetes would, while the job waits

    handler, before = StopWhenWaiting(), signal.getsignal(signal.SIGTERM)
    logging.getLogger("labeling.worker_pool").addHandler(handler)
    cfg = load_config(flags={"shard_size": 1, "workers": 3, "worker_resources": {ABSENT: 0.5}})
    try:
        with pytest.raises(Terminated):
            run_label_job(photos, tmp_path / "ds", cfg, show_progress=False)
    finally:
        logging.getLogger("labeling.worker_pool").removeHandler(handler)
    assert asked == [json.dumps([{"CPU": 1.0, ABSENT: 0.5}] * 3).encode()]  # min(4 shards, 3 workers)
    assert _autoscaler_request(ray_session) == b"[]"  # withdrawn
    assert signal.getsignal(signal.SIGTERM) == before  # the job's handler is gone again
    assert not (tmp_path / "ds").exists()
