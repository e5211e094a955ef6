"""c2f-label -o s3://... through a flapping endpoint: one run, exit 0, the same store; an outage: exit 75."""

from __future__ import annotations

import json
import subprocess

import pytest

from datasets_spec import open_store, retries, storage
from labeling.cli import main
from labeling.config import load_config
from labeling.job import run_label_job
from plumbing.cli_boundary import UNAVAILABLE
from tests.datasets_spec.store_fixtures import store_content

from .label_cli import DEADLINE_S, hold_args, hold_config, start_held


def _report(url: str) -> dict:
    (name,) = [n for n in storage.list_names(url, "reports") if n.startswith("label-")]
    return json.loads(storage.read_bytes(url, f"reports/{name}"))


def test_a_job_into_a_dead_endpoint_exits_75_naming_the_object_and_the_rerun(
    photo_folder, flaky_s3, monkeypatch, capsys
):
    bucket, proxy = flaky_s3
    monkeypatch.setenv(retries.ENV, "2,0.01,0.02")
    proxy.every, proxy.cuts = 1, ("before", "after", "mid")  # every request reset
    argv = [str(photo_folder), "-o", f"{bucket}/ds", "--quiet"]
    assert main(argv) == UNAVAILABLE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{bucket}/.ds.c2f-label.lock: object storage kept failing (2 attempt(s)" in err
    assert err.rstrip().endswith(f"to resume once it is reachable, run: c2f-label {' '.join(argv)}")


@pytest.mark.slow
def test_a_job_through_a_flapping_endpoint_completes_in_one_run_equal_to_a_clean_one(
    photo_folder, flaky_s3, moto_endpoint, ray_session, monkeypatch, capsys
):
    bucket, proxy = flaky_s3
    url = f"{bucket}/flaky"
    assert main([str(photo_folder), "-o", url, "--shard-size", "2", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert proxy.resets > 10 and "storage faults retried: " in out
    report = _report(url)
    assert (report["done"], report["pending"], report["shards_given_up"]) == (6, 0, {})
    assert report["storage_retries"].get("request", 0) > 0  # resets, retried by tensorstore's driver
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)  # the clean run, and the comparison, without the proxy
    cfg = load_config(flags={"shard_size": 2})
    clean = run_label_job(photo_folder, f"{bucket}/clean", cfg, show_progress=False)
    assert clean["storage_retries"] == {}
    assert store_content(url) == store_content(f"{bucket}/clean")


@pytest.mark.slow
def test_storage_lost_mid_job_stops_it_with_exit_75_and_the_rerun_completes_it(
    photo_folder, flaky_s3, moto_endpoint, ray_session, fault_backends, hold_events, monkeypatch, tmp_path
):
    bucket, proxy = flaky_s3
    url = f"{bucket}/lost"
    monkeypatch.setenv(retries.ENV, "2,0.01,0.02")  # the job's own, in its process and its workers
    argv = [photo_folder, "-o", url, "--shard-size", "1", "--quiet", *hold_args(hold_events, 80)]  # coffee.jpg
    job = start_held(argv, hold_events, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proxy.every, proxy.cuts = 1, ("before", "after", "mid")  # storage goes away while a worker labels
    (hold_events / "hold").unlink()
    _, err = job.communicate(timeout=DEADLINE_S)
    assert job.returncode == UNAVAILABLE, err
    last = err.strip().splitlines()[-1]
    assert "object storage kept failing" in last and "the shards already done are kept" in last
    assert "to resume once it is reachable, run: c2f-label" in last
    proxy.every, proxy.cuts = 4, ("before", "after", "mid", "short")  # back, flapping
    monkeypatch.setenv(retries.ENV, "8,0.02,0.1")
    cfg = load_config(flags={"shard_size": 1, "semantic": hold_config(hold_events, 80)})
    done_before = len(open_store(url).done_shards())
    report = run_label_job(photo_folder, url, cfg, show_progress=False)
    assert report["pending"] == 0 and report["this_run"]["shards"] == 6 - done_before
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    run_label_job(photo_folder, f"{bucket}/clean", cfg, show_progress=False)
    assert store_content(url) == store_content(f"{bucket}/clean")
