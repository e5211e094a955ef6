"""c2f-label on a Ray cluster on this machine (loopback): shards spread over two nodes, a lost node's
shards go to the other, a node that joins gets workers (the job asks the autoscaler for it, and
waits for it where no node has room), a DATASET a node sees elsewhere is refused up front, and `ray
job submit` to a head labels on that cluster (RAY_ADDRESS, which the job server sets, joins it as
`--address` does)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psutil
import pytest

from datasets_spec import storage
from datasets_spec.validate import validate
from labeling import cluster as ray_cluster
from labeling import probe
from labeling.config import load_config
from labeling.errors import LabelingError
from labeling.job import run_label_job
from tests.datasets_spec.store_fixtures import store_content as _store_content
from tests.system import free_port, wait_for_port

from .fault_backends import NODE_ENV, scratch
from .label_cli import hold_config
from .photo_files import write_photos

ROOT = Path(__file__).resolve().parents[2]
RAY = Path(sys.executable).with_name("ray")
LIMIT_S = 120  # for anything to happen; a passing run takes seconds
# GCS declares a node dead after 3 failed health checks 0.5 s apart (default: 5 × 3 s).
FAST_HEALTH_CHECKS = {
    "RAY_health_check_period_ms": "500",
    "RAY_health_check_timeout_ms": "500",
    "RAY_health_check_failure_threshold": "3",
}


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Six small real photos, absolute path (every node of the cluster reads them)."""
    return write_photos(
        tmp_path_factory.mktemp("photos"), ("astronaut", "chelsea", "coffee", "rocket", "camera", "coins"), 0.2, ".png"
    )


class Cluster:
    """A head and a second node, each with 1 CPU, its own working directory, temp dir and
    resource, and NODE_ENV set to "head" / "second" in its workers."""

    def __init__(self, tmp_path: Path, images: Path):
        self.images = images
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.dirs = {name: tmp_path / name for name in ("head", "second")}
        self.nodes: dict[str, subprocess.Popen] = {}
        self.temp = Path(tempfile.mkdtemp(prefix="c2ft-"))  # short: Ray's socket paths must fit 107 bytes
        self.env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}

    def start(self) -> None:
        self.start_head()
        self.add_second()

    def add_second(self) -> None:
        """The second node, once `ray start` says it has joined."""
        self._start(
            "second",
            [sys.executable, str(ROOT / "tests/labeling/ray_node.py"), "start", f"--address={self.address}"],
            {},
        )
        self._wait_for_two_nodes()

    def start_head(self, dashboard_port: int | None = None) -> None:
        """The head alone (a cluster of one node), once it takes connections; with its dashboard
        (Ray's job server) on `dashboard_port` if given."""
        head = [str(RAY), "start", "--head", f"--port={self.port}"]
        if dashboard_port is None:
            head.append("--include-dashboard=false")
        else:
            head += ["--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard_port}"]
        self._start("head", head, FAST_HEALTH_CHECKS)
        wait_for_port(self.port, self.nodes["head"])
        if dashboard_port is not None:
            wait_for_port(dashboard_port, self.nodes["head"])

    def _start(self, name: str, command: list[str], env: dict) -> None:
        where = self.dirs[name]
        where.mkdir()
        command += [
            "--block",
            "--node-ip-address=127.0.0.1",
            "--num-cpus=1",
            "--disable-usage-stats",
            f"--dashboard-agent-listen-port={free_port()}",  # not Ray's fixed 52365, which nodes here would share
            f"--temp-dir={self.temp / name}",
            f"--resources={json.dumps({f'{name}_node': 1})}",
        ]
        self.nodes[name] = subprocess.Popen(  # `--block`: the node lives as long as this process group
            command,
            cwd=where,
            env={**self.env, **env, NODE_ENV: name},
            start_new_session=True,
            stdout=(where / "ray.log").open("w"),
            stderr=subprocess.STDOUT,
        )

    def _wait_for_two_nodes(self) -> None:
        """Until `ray start` of the second node says it has joined."""
        log, deadline = self.dirs["second"] / "ray.log", time.monotonic() + LIMIT_S
        while "Ray runtime started" not in log.read_text():
            assert all(p.poll() is None for p in self.nodes.values()) and time.monotonic() < deadline, log.read_text()[
                -2000:
            ]
            time.sleep(0.2)

    def label(self, output, overrides: dict, cwd: Path | None = None) -> subprocess.Popen:
        """Start a labeling job (tests/labeling/cluster_driver.py) on this cluster."""
        cmd = [
            sys.executable,
            "-m",
            "tests.labeling.cluster_driver",
            self.address,
            str(self.images),
            str(output),
            json.dumps(overrides),
        ]
        env = {**self.env, "PYTHONPATH": str(ROOT)}
        return subprocess.Popen(
            cmd, cwd=cwd or self.dirs["head"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def kill_raylet(self, name: str) -> None:
        """SIGKILL the raylet of node `name` (its workers go with it)."""
        node = psutil.Process(self.nodes[name].pid)
        raylets = [p for p in node.children(recursive=True) if p.name() == "raylet"]
        assert len(raylets) == 1, raylets
        raylets[0].kill()

    def stop(self) -> None:
        """SIGKILL both nodes' process groups (a graceful stop of a cluster that lost a node waits
        for a drain that never comes), and remove what Ray left on disk."""
        for process in self.nodes.values():
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait()
        shutil.rmtree(self.temp, ignore_errors=True)
        current = Path(tempfile.gettempdir(), "ray", "ray_current_cluster")  # Ray's pointer to the last cluster
        if current.is_file() and current.read_text().strip().endswith(f":{self.port}"):
            current.unlink()


@pytest.fixture
def cluster(tmp_path, images):
    cluster = Cluster(tmp_path, images)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def head(tmp_path, images):
    """A Ray cluster of one node (1 CPU): its head."""
    cluster = Cluster(tmp_path, images)
    try:
        cluster.start_head()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def job_server(tmp_path, images):
    """A Ray cluster of one node (1 CPU) with its job server: (the cluster, the dashboard's URL)."""
    cluster, dashboard = Cluster(tmp_path, images), free_port()
    try:
        cluster.start_head(dashboard)
        yield cluster, f"http://127.0.0.1:{dashboard}"
    finally:
        cluster.stop()


def _until(condition, job: subprocess.Popen, what: str) -> None:
    """Poll `condition()` until it holds; fail if the job ends or LIMIT_S passes first."""
    deadline = time.monotonic() + LIMIT_S
    while not condition():
        assert job.poll() is None, f"the job ended before {what}: {job.communicate()[1][-3000:]}"
        assert time.monotonic() < deadline, f"no {what} in {LIMIT_S} s"
        time.sleep(0.1)


def _autoscaler_request(address: str) -> list | None:
    """The bundles the cluster's autoscaler was last asked for (request_resources keeps them in the GCS)."""
    from ray._raylet import GcsClient
    from ray.autoscaler._private.constants import AUTOSCALER_RESOURCE_REQUEST_CHANNEL

    value = GcsClient(address=address).internal_kv_get(AUTOSCALER_RESOURCE_REQUEST_CHANNEL, None)
    return None if value is None else json.loads(value)


def _finish(job: subprocess.Popen) -> tuple[int, dict | None, str]:
    out, err = job.communicate(timeout=LIMIT_S)  # Ray may print a line of its own before the report
    return job.returncode, (json.loads(out.splitlines()[-1]) if job.returncode == 0 else None), err


@pytest.mark.slow
def test_a_dataset_seen_elsewhere_is_refused_and_a_node_lost_mid_shard_leaves_the_store_of_a_clean_run(
    cluster, tmp_path, ray_session, fault_backends
):
    # DATASET is relative: the head's workers (and the driver) resolve it in the head's working
    # directory, the second node's workers in their own, as on machines without a shared disk.
    code, _, err = _finish(cluster.label("ds", {"shard_size": 1, "workers": 2}))
    assert code == 2 and err.count("\n") == 1, err[-3000:]
    second_ds = cluster.dirs["second"] / "ds"
    assert err.startswith("c2f-label: error: node 127.0.0.1 (")
    assert f"cannot use {second_ds}/.c2f-probe-" in err and "missing on this node" in err
    assert not (cluster.dirs["head"] / "ds").exists() and not second_ds.exists()  # no store, no shard

    events = f"c2f-gate-{uuid.uuid4().hex}"
    overrides = {"shard_size": 1, "workers": 2, "semantic": {"name": "gate", "events": events, "hold_node": "second"}}
    scratch(events).mkdir()
    (scratch(events) / "hold").touch()  # the second node's worker blocks on its first shard
    try:  # an absolute path both nodes share passes
        job = cluster.label(tmp_path / "lost", overrides)
        deadline = time.monotonic() + LIMIT_S
        while not (scratch(events) / "held").exists():  # a shard went to the second node
            assert job.poll() is None and time.monotonic() < deadline, job.communicate()[1][-3000:]
            time.sleep(0.05)
        cluster.kill_raylet("second")
        code, lost, err = _finish(job)
    finally:
        shutil.rmtree(scratch(events))
    assert code == 0, err[-3000:]
    assert "a node was lost: going on with 1 label worker(s)" in err and "image by image" not in err
    assert (lost["done"], lost["pending"], lost["shards_given_up"]) == (6, 0, {})
    assert list(lost["this_run"]["shards_by_node"].values()) == [6]  # all written on the head
    run_label_job(cluster.images, tmp_path / "clean", load_config(flags=overrides), show_progress=False)
    assert _store_content(tmp_path / "lost") == _store_content(tmp_path / "clean")  # labeled here, on one node
    assert validate(tmp_path / "lost") == []


def test_the_probe_reaches_object_storage_with_the_drivers_credentials(ray_session, images, s3_bucket):
    probe.check_nodes(f"{s3_bucket}/ds", images / "coins.png", load_config())  # the node reads and writes there
    assert storage.list_all(s3_bucket) == []  # and leaves nothing behind


def test_a_probe_that_cannot_reach_object_storage_names_the_object_once(images, monkeypatch):
    url = "s3://bucket/ds"

    def unreachable(root, relpath):  # what datasets_spec.storage raises after its retries
        raise OSError(f"{root}/{relpath}: ABORTED: All 8 retry attempts failed: CURL error")

    monkeypatch.setattr(probe.storage, "read_bytes", unreachable)
    problem = probe.probe_node(url, ".c2f-probe-0123", b"token", str(images / "coins.png"))
    assert problem == f"{url}/.c2f-probe-0123: ABORTED: All 8 retry attempts failed: CURL error"


def test_the_probe_leaves_nothing_behind_and_names_an_unreadable_image(images, tmp_path, ray_session):
    cfg = load_config()
    probe.check_nodes(tmp_path / "ds", images / "coins.png", cfg)  # the one local node passes
    assert not (tmp_path / "ds").exists()  # the folder it made for its file is gone again
    (tmp_path / "store").mkdir()
    with pytest.raises(LabelingError, match=f"node 127.0.0.1 .* cannot use the input image {tmp_path}/gone.png: "):
        probe.check_nodes(tmp_path / "store", tmp_path / "gone.png", cfg)
    assert list((tmp_path / "store").iterdir()) == []  # a folder that was there stays, without probe files
    (tmp_path / "killed").mkdir()
    (tmp_path / "killed" / f"{probe.PREFIX}0123").write_bytes(b"left by a killed job")
    assert probe.remove_leftovers(tmp_path / "killed") == [tmp_path / "killed" / f"{probe.PREFIX}0123"]
    assert not (tmp_path / "killed").exists()


def test_the_address_is_the_flags_then_ray_address_and_local_means_a_local_instance(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert ray_cluster.cluster_address(None) is None
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    assert ray_cluster.cluster_address(None) == ("10.0.0.1:6379", "RAY_ADDRESS=10.0.0.1:6379")
    assert ray_cluster.cluster_address("10.0.0.2:6379") == ("10.0.0.2:6379", "--address 10.0.0.2:6379")
    assert ray_cluster.cluster_address("auto") == ("auto", "--address auto")
    assert ray_cluster.cluster_address("local") is None
    monkeypatch.setenv("RAY_ADDRESS", "local")
    assert ray_cluster.cluster_address(None) is None
    monkeypatch.setenv("RAY_ADDRESS", "http://127.0.0.1:8265")  # the dashboard, for `ray job submit`
    with pytest.raises(LabelingError, match=r"^RAY_ADDRESS=http://127.0.0.1:8265: that is a dashboard address"):
        ray_cluster.cluster_address(None)


def _jobs(address: str) -> list[dict]:
    """The metadata of every job (driver) in the job table of the cluster at `address`."""
    from ray._raylet import GcsClient

    return [dict(job.config.metadata) for job in GcsClient(address=address).get_all_job_info(timeout=LIMIT_S).values()]


@pytest.mark.slow
def test_ray_job_submit_labels_on_that_cluster_without_a_ray_of_its_own(job_server, tmp_path):
    cluster, dashboard = job_server
    output, submission = tmp_path / "ds", f"c2f-{uuid.uuid4().hex[:8]}"
    runtime_env = {"env_vars": {"PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}}
    submit = [str(RAY), "job", "submit", "--address", dashboard, "--submission-id", submission]
    submit += ["--runtime-env-json", json.dumps(runtime_env), "--"]
    label = ["python", "-m", "labeling.cli", str(cluster.images), "-o", str(output), "--shard-size", "2", "--quiet"]
    deadline = time.monotonic() + LIMIT_S
    while True:  # the job server takes submissions once the head's agent has registered with it
        done = subprocess.run([*submit, *label], env=cluster.env, capture_output=True, text=True, timeout=LIMIT_S)
        if "No available agent to submit job" not in done.stdout + done.stderr or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert f"store {output}: 6 images, 6 done, 0 failed, 0 pending" in done.stdout
    assert validate(output) == []
    # c2f-label's driver joined the head (RAY_ADDRESS, set by the job server): it is in the head's
    # job table under the submission; a Ray of its own would have held its driver instead.
    drivers = [job for job in _jobs(cluster.address) if job.get("job_submission_id") == submission]
    assert len(drivers) == 1, _jobs(cluster.address)


@pytest.mark.slow
def test_a_job_on_a_cluster_without_room_asks_the_autoscaler_waits_and_labels_on_the_node_that_joins(
    head, tmp_path, ray_session
):
    overrides = {"shard_size": 2, "workers": 2, "worker_resources": {"second_node": 1}}  # only the second has it
    job = head.label(tmp_path / "ds", overrides)
    try:
        _until(lambda: _autoscaler_request(head.address), job, "request to the autoscaler")  # it waits
        asked = _autoscaler_request(head.address)
        head.add_second()
        code, report, err = _finish(job)
    finally:
        if job.poll() is None:
            job.kill()
    assert asked == [{"CPU": 1.0, "second_node": 1.0}] * 2  # min(3 shards, 2 workers)
    assert code == 0, err[-3000:]
    assert "waiting up to 600 s (--wait-timeout) for a node with room for a label worker (1 CPU, 1 second_node)" in err
    assert (report["done"], report["pending"], report["this_run"]["workers"]) == (6, 0, 1)
    assert list(report["this_run"]["shards_by_node"].values()) == [3]  # on the node that joined
    assert _autoscaler_request(head.address) == []  # withdrawn
    run_label_job(head.images, tmp_path / "clean", load_config(flags={"shard_size": 2}), show_progress=False)
    assert _store_content(tmp_path / "ds") == _store_content(tmp_path / "clean")
    assert validate(tmp_path / "ds") == []


@pytest.mark.slow
def test_workers_start_on_a_node_that_joins_mid_job_while_the_others_label(
    head, tmp_path, ray_session, fault_backends, hold_events
):
    # Shards of 2 in list order: [astronaut, camera], [chelsea, coffee], [coins, rocket]. The head
    # holds one worker (1 CPU); it writes shard 0, then holds on coffee.png (80 px high) in shard 1.
    overrides = {"shard_size": 2, "workers": 2, "semantic": hold_config(hold_events, 80)}
    job = head.label(tmp_path / "ds", overrides)
    try:
        _until((hold_events / "held").exists, job, "hold on shard 1")
        asked = _autoscaler_request(head.address)
        head.add_second()
        _until((tmp_path / "ds" / storage.marker_path(2)).exists, job, "shard 2 written")  # by a new worker
        (hold_events / "hold").unlink()
        code, report, err = _finish(job)
    finally:
        if job.poll() is None:
            job.kill()
    assert asked == [{"CPU": 1.0}] * 2  # min(2 shards queued or in flight, 2 workers)
    assert code == 0, err[-3000:]
    assert (report["done"], report["pending"], report["this_run"]["workers"]) == (6, 0, 2)
    assert sorted(report["this_run"]["shards_by_node"].values()) == [1, 2]  # shard 2 on the new node
    assert _autoscaler_request(head.address) == []
    run_label_job(head.images, tmp_path / "clean", load_config(flags=overrides), show_progress=False)
    assert _store_content(tmp_path / "ds") == _store_content(tmp_path / "clean")
    assert validate(tmp_path / "ds") == []
