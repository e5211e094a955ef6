"""Transient object-storage faults: retried with bounded backoff, counted, never taken for a finding."""

from __future__ import annotations

import random

import pytest

from dataset_tools.cli import main as c2f_data
from datasets_spec import StoreError, create_store, retries, storage
from datasets_spec.errors import StorageUnavailable
from plumbing.cli_boundary import UNAVAILABLE
from plumbing.errors import from_outage

from .store_fixtures import LABEL_SPACE, make_store, store_content


@pytest.fixture
def sleeps(monkeypatch) -> list[float]:
    """The delays the retry loop asks for, recorded instead of slept; its jitter seeded."""
    asked: list[float] = []
    monkeypatch.setattr(retries, "_sleep", asked.append)
    monkeypatch.setattr(retries, "_jitter", random.Random(0))
    return asked


@pytest.mark.parametrize(
    ("message", "transient"),
    [
        ("ABORTED: All 3 retry attempts failed: CURL error Recv failure: Connection reset by peer", True),
        ("UNAVAILABLE: SlowDown: Please reduce your request rate", True),
        ("DEADLINE_EXCEEDED: Request timed out", True),
        ("RESOURCE_EXHAUSTED: Too many requests", True),
        ("INTERNAL: InternalError: We encountered an internal error. Please try again.", True),
        ("NOT_FOUND: etag not found in response headers", True),  # a PUT whose answer was cut short
        ('NOT_FOUND: Error writing "ds/semantic/c/1/0/0": etag not found in response headers', True),
        ("Malformed List response: 13", True),
        ("NOT_FOUND: NoSuchBucket: The specified bucket does not exist", False),
        ("PERMISSION_DENIED: AccessDenied: Access Denied", False),
        ("INVALID_ARGUMENT: Invalid S3 bucket name: ", False),
        ("DATA_LOSS: Error reading: Invalid JSON", False),
    ],
)
def test_transient_faults_are_told_from_permanent_ones(message, transient):
    assert retries.transient(ValueError(message)) is transient


def test_os_level_connection_faults_are_transient_and_other_errors_not():
    assert retries.transient(ConnectionResetError(104, "Connection reset by peer"))
    assert retries.transient(TimeoutError("timed out"))
    assert not retries.transient(FileNotFoundError("s3://b/x: no such object"))
    assert not retries.transient(StorageUnavailable("s3://b/x: object storage kept failing"))  # retried already


def test_a_transient_fault_is_retried_with_capped_full_jitter_backoff_and_counted(monkeypatch, sleeps):
    monkeypatch.setenv(retries.ENV, "5,0.5,1")
    faults = [ValueError("UNAVAILABLE: reset"), ValueError("ABORTED: All 3 retry attempts failed"), None]
    before = retries.counts()

    def attempt():
        fault = faults.pop(0)
        if fault:
            raise fault
        return "done"

    assert retries.retrying("write", "s3://b/x", attempt) == "done"
    assert retries.since(before) == {"write": 2}
    assert len(sleeps) == 2 and 0 <= sleeps[0] <= 0.5 and 0 <= sleeps[1] <= 1.0


def test_a_permanent_error_is_raised_at_once_and_not_counted(sleeps):
    before = retries.counts()
    calls = []

    def attempt():
        calls.append(1)
        raise ValueError("NOT_FOUND: NoSuchBucket: The specified bucket does not exist")

    with pytest.raises(ValueError, match="NoSuchBucket"):
        retries.retrying("read", "s3://b/x", attempt)
    assert calls == [1] and sleeps == [] and retries.since(before) == {}


def test_the_last_attempt_raises_one_line_naming_the_object(monkeypatch, sleeps):
    monkeypatch.setenv(retries.ENV, "3,0.01,0.02")

    def attempt():
        raise ValueError("ABORTED: All 3 retry attempts failed: CURL error\nsecond line")

    with pytest.raises(StorageUnavailable) as caught:
        retries.retrying("read", "s3://b/markers/shard-000001.json", attempt)
    message = str(caught.value)
    assert message.startswith("s3://b/markers/shard-000001.json: object storage kept failing (3 attempt(s)")
    assert message.endswith("last error: ABORTED: All 3 retry attempts failed: CURL error") and "\n" not in message
    assert len(sleeps) == 2 and max(sleeps) <= 0.02


@pytest.mark.parametrize("value", ["0", "x", "3,-1", "2.5,1", "1,2,3,4"])
def test_a_bad_retry_setting_is_one_line_naming_the_variable(monkeypatch, value):
    monkeypatch.setenv(retries.ENV, value)
    with pytest.raises(StoreError, match=f"{retries.ENV}=.*expected ATTEMPTS"):
        retries.policy()


def test_objects_survive_a_flapping_endpoint_and_the_retries_are_counted(flaky_s3):
    bucket, proxy = flaky_s3
    root, before = f"{bucket}/ds", retries.counts()
    objects = {f"records/shard-{i:06d}.json": bytes([i]) * (1 + 997 * i) for i in range(24)}
    for rel, data in objects.items():
        storage.write_bytes(root, rel, data)
    assert storage.list_names(root, "records") == sorted(name.split("/")[1] for name in objects)
    for rel, data in objects.items():
        assert storage.read_bytes(root, rel) == data and storage.exists(root, rel)
        assert storage.size(root, rel, len(data)) == len(data)
    assert storage.create_exclusive(root, "lock", b"mine") and not storage.create_exclusive(root, "lock", b"other")
    for rel in list(objects)[:6]:
        storage.delete(root, rel)
    assert storage.list_all(root) == ["lock", *sorted(objects)[6:]]
    counted = retries.since(before)
    assert proxy.resets >= 30  # a quarter of the requests were cut
    assert counted.get("request", 0) > 0  # resets, retried by tensorstore's driver
    assert sum(n for kind, n in counted.items() if kind != "request") > 0  # answers cut short: retried here


def test_a_store_written_through_a_flapping_endpoint_equals_a_clean_one(flaky_s3, moto_endpoint, monkeypatch):
    bucket, proxy = flaky_s3
    make_store(f"{bucket}/flaky", n=24, shard_size=4)
    assert proxy.resets > 0
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)  # the clean one, and both read, without the proxy
    make_store(f"{bucket}/clean", n=24, shard_size=4)
    assert store_content(f"{bucket}/flaky") == store_content(f"{bucket}/clean")


def test_a_conditional_write_whose_answer_was_lost_is_known_as_ours(flaky_s3):
    bucket, proxy = flaky_s3
    storage.exists(bucket, "warm-up")  # the endpoint reached once
    before = retries.counts()
    proxy.requests, proxy.every, proxy.cuts = 0, 3, ("short",)  # a read, a check, then the PUT is cut
    assert storage.create_exclusive(bucket, "lock", b"holder 1")
    assert storage.read_bytes(bucket, "lock") == b"holder 1" and retries.since(before)["write"] == 1


def test_a_dead_endpoint_fails_quickly_in_one_line_never_as_not_found(flaky_s3, monkeypatch, sleeps, capsys):
    bucket, proxy = flaky_s3
    monkeypatch.setenv(retries.ENV, "2,0.01,0.02")
    proxy.every, proxy.cuts = 1, ("before", "after", "mid")  # every request reset: nothing gets through
    with pytest.raises(StorageUnavailable, match=f"^{bucket}/ds/markers/x.json: object storage kept failing"):
        storage.read_bytes(f"{bucket}/ds", "markers/x.json")
    with pytest.raises(StorageUnavailable, match=f"^{bucket}/ds/records/y: .*2 attempt"):
        storage.write_bytes(f"{bucket}/ds", "records/y", b"data")
    assert len(sleeps) == 2  # one wait between the two attempts of each
    with pytest.raises(StoreError, match="cannot create store .*object storage kept failing") as caught:
        create_store(f"{bucket}/new", ["a.jpg"], [0], label_space=LABEL_SPACE, canvas=16, shard_size=1)
    assert from_outage(caught.value)  # so the command line says 75, not 2
    capsys.readouterr()
    assert c2f_data(["validate", f"{bucket}/ds"]) == UNAVAILABLE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "object storage kept failing" in err and "no such" not in err
