"""Ray: joining or starting a cluster and making label workers — the one place that calls Ray's API.

Ray 2.x moved its actor-pool and concurrency arguments more than once; this job uses only core
actors (`ray.remote(...).options(...)`, `ray.wait`, `ray.get`), which have been stable, and the
autoscaler's `request_resources`, and keeps every Ray call here so an upgrade is one edit.
pyproject.toml declares the Ray versions that work (a range); constraints.txt the tested one.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import socket
import tempfile
import threading
from pathlib import Path
from typing import NamedTuple

import ray
from ray.autoscaler.sdk import request_resources
from ray.job_config import JobConfig
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from datasets_spec import storage
from plumbing.errors import one_line
from plumbing.processes import pid_alive

from .config import LabelConfig
from .errors import LabelingError
from .worker import ShardLabeler

# Without this, Ray advertises the machine's external address even for a purely local job.
LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
ADDRESS_ENV = "RAY_ADDRESS"  # what `ray job submit` sets for its entrypoint, and ray.init reads
LOCAL = "local"  # as an address: start a new local instance, as ray.init(address="local")
JOB_NAME_KEY = "job_name"  # the job-config metadata key Ray's job list shows (as `ray job submit` sets)
_TEMP_PREFIX = "c2f-ray-"  # $TMPDIR/c2f-ray-<driver PID>-<random>: a local instance's session files
# A local instance's logs kept by `shutdown(keep_logs=True)`: the workers' stdout/stderr, their core
# worker logs, and the raylet's (it says why a worker died), each at most its last _LOG_TAIL bytes.
_KEPT_LOGS = ("worker-*.out", "worker-*.err", "python-core-worker-*.log", "raylet.out")
_LOG_TAIL = 1 << 20
_NO_LIMIT = 1 << 16  # label workers a node holds when they need none of its resources


class Connection(NamedTuple):
    """What `connect` did: whether it started Ray (or joined a cluster), whether the Ray it uses is
    a cluster named by an address, and a local instance's temporary directory."""

    started: bool
    joined: bool = False
    temp_dir: str | None = None


def cluster_address(address: str | None) -> tuple[str, str] | None:
    """(the address of the cluster to join, where it was named), or None for a local instance.

    As ray.init reads them: `--address` wins over the environment's RAY_ADDRESS (which `ray job
    submit` sets for its entrypoint); "local" in either starts a new local instance.
    """
    named = (address, f"--address {address}") if address else None
    if named is None and os.environ.get(ADDRESS_ENV, "").strip():
        value = os.environ[ADDRESS_ENV].strip()
        named = (value, f"{ADDRESS_ENV}={value}")
    if named is None or named[0] == LOCAL:
        return None
    if named[0].startswith(("http://", "https://")):
        raise LabelingError(
            f"{named[1]}: that is a dashboard address (what `ray job submit` takes); c2f-label joins a "
            "cluster at its GCS address, HOST:6379, or `auto`, or ray://HOST:10001"
        )
    return named


def connect(address: str | None, job_name: str = "c2f-label") -> Connection:
    """Join the cluster at `address` (or RAY_ADDRESS, see `cluster_address`), or start a local one
    bound to loopback. `job_name` is what the cluster's job list shows for this driver.

    The caller passes the result to `shutdown`, which stops what this call started; an already
    initialised Ray session (tests, notebooks) is reused as it is. A local instance keeps its
    session files (logs, sockets, spilled objects) in a temporary directory of its own that
    `shutdown` removes, rather than piling up under /tmp/ray.
    """
    named = cluster_address(address)
    if ray.is_initialized():
        return Connection(started=False, joined=named is not None)
    job_config = JobConfig(metadata={JOB_NAME_KEY: job_name})
    if named is not None:
        target, source = named
        _check_reachable(target, source)
        try:
            _init(address=target, job_config=job_config)
        except (ConnectionError, RuntimeError) as exc:  # Ray's "Failed to connect to GCS ..."
            first = one_line(exc).split(". ", 1)[0]
            raise LabelingError(f"{source}: cannot join the Ray cluster there ({first})") from None
        return Connection(started=True, joined=True)
    os.environ.update(LOOPBACK_ENV)
    remove_orphaned_temp_dirs()
    temp_dir = tempfile.mkdtemp(prefix=f"{_TEMP_PREFIX}{os.getpid()}-")
    # "local": always a new instance; plain ray.init() would join any cluster `ray start` left here.
    _init(
        address=LOCAL,
        job_config=job_config,
        include_dashboard=False,
        object_store_memory=256 << 20,
        _temp_dir=temp_dir,
    )
    return Connection(started=True, temp_dir=temp_dir)


def _init(**kwargs) -> None:
    """ray.init, keeping the driver's SIGTERM handler: ray.init installs its own (sys.exit, which
    ends in Ray's C++ signal dump), which would take over the job's graceful stop."""
    main = threading.current_thread() is threading.main_thread()
    before = signal.getsignal(signal.SIGTERM) if main else None
    ray.init(configure_logging=False, log_to_driver=False, **kwargs)
    if before is not None:
        signal.signal(signal.SIGTERM, before)


def _check_reachable(address: str, source: str, timeout_s: float = 10.0) -> None:
    """Refuse a `host:port` nobody answers on at once: ray.init would retry it for minutes.
    `source` names where the address came from in the message ("--address X", "RAY_ADDRESS=X")."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not (sep and host and port.isdigit()):
        return  # "auto" and the like: Ray finds the address itself
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as exc:
        local = "leave out --address" if source.startswith("--") else f"unset {ADDRESS_ENV} (or pass --address local)"
        raise LabelingError(
            f"{source}: no Ray cluster answers there ({exc.strerror or exc}); "
            f"start one with `ray start --head`, or {local} for a local one"
        ) from None


def remove_orphaned_temp_dirs() -> list[Path]:
    """Remove the temporary directories of local instances whose job was killed (SIGKILL leaves
    no chance to clean up): `c2f-ray-PID-*` whose PID no longer runs. Returns what went."""
    orphans = []
    for path in Path(tempfile.gettempdir()).glob(f"{_TEMP_PREFIX}*-*"):
        pid = path.name[len(_TEMP_PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)
            orphans.append(path)
    return orphans


def shutdown(connection: Connection, keep_logs: bool = False) -> dict[str, bytes]:
    """Stop what `connect` started. With `keep_logs`, returns a local instance's worker logs
    ({file name: its last MiB}, empty files left out) read before its directory goes; a cluster's
    logs stay on its nodes (`ray logs`)."""
    if connection.started:
        ray.shutdown()
    if connection.temp_dir is None:
        return {}
    logs = _worker_logs(Path(connection.temp_dir)) if keep_logs else {}
    shutil.rmtree(connection.temp_dir, ignore_errors=True)
    return logs


def _worker_logs(temp_dir: Path) -> dict[str, bytes]:
    logs, where = {}, temp_dir / "session_latest" / "logs"  # Ray's link to its (here only) session
    for pattern in _KEPT_LOGS:
        for path in sorted(where.glob(pattern)):
            with path.open("rb") as f:
                f.seek(max(0, path.stat().st_size - _LOG_TAIL))
                data = f.read()
            if data:
                logs[path.name] = data
    return logs


def resources() -> dict[str, float]:
    """The cluster's total resources, e.g. {"CPU": 16.0, "GPU": 2.0, ...}."""
    return dict(ray.cluster_resources())


class RayShardLabeler(ShardLabeler):
    """ShardLabeler as a Ray actor: each shard's summary says on which node it was written."""

    def label_shard(self, *args) -> dict:
        return {**super().label_shard(*args), "node": ray.get_runtime_context().get_node_id()}

    def write_results(self, *args) -> dict:
        return {**super().write_results(*args), "node": ray.get_runtime_context().get_node_id()}


def make_worker(cfg: LabelConfig):
    """A label worker actor: models load once in it. The driver replaces a dead one and retries its shard."""
    actor = ray.remote(RayShardLabeler).options(
        num_cpus=cfg.cpus_per_worker,
        num_gpus=cfg.gpus_per_worker,
        resources=dict(cfg.worker_resources),
        max_restarts=0,  # the driver decides about retries, per shard
        runtime_env=_runtime_env(),
    )
    device = "cuda" if cfg.gpus_per_worker > 0 else None
    return actor.remote(cfg, device)


def started(worker):
    """`worker` once it has built its backends. A failure while building (a bad model path, a wrong
    parameter) is a LabelingError with the worker's own one-line reason, not Ray's traceback."""
    try:
        ray.get(worker.identities.remote())
    except ray.exceptions.RayActorError as exc:
        reason = init_failure(exc)
        if reason is None:
            raise
        raise LabelingError(f"a label worker could not start: {reason}") from None
    return worker


def init_failure(exc: Exception) -> str | None:
    """The one-line reason a worker failed while building its backends, or None (another fault)."""
    if not (isinstance(exc, ray.exceptions.RayActorError) and exc.actor_init_failed):
        return None
    return _reason([line.strip() for line in str(exc).splitlines() if line.strip()])


def _reason(lines: list[str]) -> str:
    """The exception line of a worker's traceback, without the package path of a LabelingError."""
    prefix = f"{LabelingError.__module__}.{LabelingError.__name__}: "
    ours = [line[len(prefix) :] for line in lines if line.startswith(prefix)]
    return ours[-1] if ours else lines[-1] if lines else "unknown reason"


def submit(worker, method: str, *args):
    return getattr(worker, method).remote(*args)


def wait_one(refs: list, timeout: float | None = None):
    """The first finished of `refs`, blocking up to `timeout` seconds (None: until one finishes);
    None when none finished in time."""
    ready, _ = ray.wait(refs, num_returns=1, timeout=timeout)
    return ready[0] if ready else None


def get(ref):
    return ray.get(ref)


def task_cause(exc: Exception) -> BaseException:
    """The exception a worker's task raised, which Ray wraps in a RayTaskError."""
    return getattr(exc, "cause", None) or exc


def kill(worker) -> None:
    ray.kill(worker, no_restart=True)


def worker_nodes(cfg: LabelConfig) -> list[tuple[str, str]]:
    """(node id, address) of every alive node with room for at least one label worker."""
    return [
        (node["NodeID"], node["NodeManagerAddress"])
        for node in ray.nodes()
        if node["Alive"] and _fits(node["Resources"], cfg) > 0
    ]


def capacity(cfg: LabelConfig) -> int:
    """How many label workers the alive nodes can hold at once (an actor never spans nodes)."""
    return sum(_fits(node["Resources"], cfg) for node in ray.nodes() if node["Alive"])


def worker_bundle(cfg: LabelConfig) -> dict[str, float]:
    """What one label worker takes from its node, e.g. {"CPU": 8.0, "GPU": 1.0}: its CPUs, GPUs and
    custom resources (`worker_resources`), those it needs none of left out."""
    need = {"CPU": cfg.cpus_per_worker, "GPU": cfg.gpus_per_worker, **cfg.worker_resources}
    return {r: n for r, n in need.items() if n > 0}


def _fits(resources: dict, cfg: LabelConfig) -> int:
    need = worker_bundle(cfg)
    if not need:
        return _NO_LIMIT
    return min(math.floor(resources.get(r, 0.0) / n + 1e-9) for r, n in need.items())


def request_workers(cfg: LabelConfig, count: int) -> None:
    """Ask the cluster's autoscaler for room for `count` label workers in all (0 withdraws the
    request). A hint that the next request replaces, for the whole cluster; a cluster without an
    autoscaler (a local instance, fixed nodes) keeps it and does nothing."""
    bundle = worker_bundle(cfg)
    request_resources(bundles=[bundle] * count if bundle else [])


def node_died(exc: Exception) -> bool:
    """Whether `exc` says a worker was lost with its whole node (not that its process died)."""
    return isinstance(exc, ray.exceptions.RayActorError) and "because its node has died" in str(exc)


def _runtime_env() -> dict | None:
    """What the driver's environment passes on to workers and probes: storage.ENVIRONMENT, so they
    reach the store where the driver does (endpoint, credentials), and the hub's offline switch."""
    env = {k: os.environ[k] for k in ("HF_HUB_OFFLINE", *storage.ENVIRONMENT) if k in os.environ}
    return {"env_vars": env} if env else None


def run_on_nodes(fn, nodes: list[tuple[str, str]], *args) -> list[tuple[object, str | None]]:
    """Run `fn(*args)` once on each node of `nodes` (pinned there), all at once, in the workers'
    environment. Returns (result, None) or (None, the task's one-line failure) per node, in order."""
    task = ray.remote(fn)
    refs = [
        task.options(
            num_cpus=0,
            max_retries=0,
            scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
            runtime_env=_runtime_env(),
        ).remote(*args)
        for node_id, _ in nodes
    ]
    out = []
    for ref in refs:
        try:
            out.append((ray.get(ref), None))
        except ray.exceptions.RayError as exc:
            out.append((None, one_line(exc, last=True, named=True)))
    return out


WORKER_ERRORS = (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError, ray.exceptions.ObjectLostError)
TASK_ERRORS = (ray.exceptions.RayTaskError,)
