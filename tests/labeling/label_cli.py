"""c2f-label in a process of its own, for the tests that interrupt or kill it mid-job. The test
backends (fault_backends.py) are known to its driver and, through the job config Ray reads from
its environment, to every worker of the local Ray it starts.

    python -m tests.labeling.label_cli IMAGES -o OUT --semantic hold --set semantic.height=80 ...
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEADLINE_S = 300  # generous: a loaded 2-core machine


def hold_args(events: Path, height: int) -> list[str]:
    """Arguments that label with the `hold` backend: it holds on the image `height` pixels high
    while `events/hold` exists (fault_backends.Hold)."""
    return ["--semantic", "hold", "--set", f"semantic.events={events.name}", "--set", f"semantic.height={height}"]


def hold_config(events: Path, height: int) -> dict:
    """The `semantic` section `hold_args` sets, for labeling.config.load_config."""
    return {"name": "hold", "events": events.name, "height": height}


def start_held(argv: list, events: Path, **popen) -> subprocess.Popen:
    """Start `c2f-label ARGV` (with `hold_args(events, ...)` among them) in a process group of its
    own, and return once a worker holds on its image: the job is then mid-way, for certain."""
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    cmd = [sys.executable, "-m", "tests.labeling.label_cli", *map(str, argv)]
    job = subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True, **popen)
    deadline = time.monotonic() + DEADLINE_S
    while not (events / "held").exists():
        assert job.poll() is None, f"c2f-label ended (exit {job.returncode}) before it reached the held image"
        assert time.monotonic() < deadline, "c2f-label never reached the held image"
        time.sleep(0.05)
    return job


def release(events: Path) -> None:
    """Remove `events/hold` once the worker that held (its id in `events/held`) is gone: Ray
    workers live in process groups of their own and outlive a killed driver by a moment, and one
    released earlier would finish its shard into the store of the killed job."""
    pid = int((events / "held").read_text())
    deadline = time.monotonic() + DEADLINE_S
    while _running(pid):
        assert time.monotonic() < deadline, f"the held worker (process {pid}) outlived its job"
        time.sleep(0.05)
    (events / "hold").unlink()


def kill_and_resume(images: Path, output, clean: Path, events: Path, height: int, before: int) -> None:
    """SIGKILL `c2f-label IMAGES -o OUTPUT --shard-size 1` (driver and local Ray) while it holds on
    the image `height` pixels high, the `before`-th in list order; then rerun the job here, and
    check it labeled only what was left and that OUTPUT equals a clean run's store at `clean`."""
    from datasets_spec import open_store
    from labeling.config import load_config
    from labeling.job import run_label_job
    from tests.datasets_spec.store_fixtures import store_content

    argv = [images, "-o", output, "--shard-size", "1", "--quiet", *hold_args(events, height)]
    job = start_held(argv, events, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.killpg(job.pid, signal.SIGKILL)
    job.wait()
    done = open_store(output).done_shards()
    assert done and set(done) <= set(range(before)), done  # nothing of the held image or after it
    release(events)
    cfg = load_config(flags={"shard_size": 1, "semantic": hold_config(events, height)})
    report = run_label_job(images, output, cfg, show_progress=False)
    assert report["this_run"]["shards"] == report["images"] - len(done)  # only what was left
    run_label_job(images, clean, cfg, show_progress=False)
    assert store_content(output) == store_content(clean)


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")  # a zombie has exited


if __name__ == "__main__":
    from labeling.cli import main
    from tests.labeling.fault_backends import RAY_TEST_RUNTIME_ENV, register

    register()
    os.environ["RAY_JOB_CONFIG_JSON_ENV_VAR"] = json.dumps({"runtime_env": RAY_TEST_RUNTIME_ENV})
    sys.exit(main(sys.argv[1:]))
