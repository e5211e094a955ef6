"""Settings for the whole suite: no network, Ray bound to loopback, one torch thread."""

import json
import logging
import os
import re

# Tiny models run much faster on one thread than on two on a shared 2-core machine, and pytest-xdist
# runs one test process per core. Set before anything imports torch; subprocesses inherit it.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import pytest


@pytest.fixture(scope="session")
def ray_session(tmp_path_factory):
    """One local Ray for the whole test session (start-up costs seconds), bound to loopback, its
    session files in the test's temporary directory; its workers know the test backends."""
    import ray

    from tests.labeling.fault_backends import RAY_TEST_RUNTIME_ENV

    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=256 << 20,
        configure_logging=False,
        log_to_driver=False,
        _temp_dir=str(tmp_path_factory.mktemp("ray")),
        runtime_env=RAY_TEST_RUNTIME_ENV,
    )
    yield ray
    ray.shutdown()


@pytest.fixture
def fault_backends(monkeypatch):
    """The backends of tests/labeling/fault_backends.py, registered in this process for one test."""
    from labeling import backends
    from tests.labeling import fault_backends

    monkeypatch.setattr(backends, "_REGISTRY", dict(backends._REGISTRY))
    fault_backends.register()
    return fault_backends


@pytest.fixture(scope="session")
def gcs_endpoint():
    """A GCS emulator on loopback for the session, in memory: its endpoint URL."""
    from gcp_storage_emulator.server import create_server

    from tests.system import free_port

    port = free_port()
    server = create_server("127.0.0.1", port, in_memory=True)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def gcs_bucket(gcs_endpoint, monkeypatch, request):
    """A fresh bucket on the loopback GCS emulator (one per test: the emulator lists a bucket's
    objects without tensorstore's key range), tensorstore pointed at it (TENSORSTORE_GCS_HTTP_URL;
    a placeholder token instead of Google credentials), inherited by subprocesses and passed on to
    Ray workers. Returns its URL, "gs://NAME"."""
    import urllib.request

    monkeypatch.setenv("TENSORSTORE_GCS_HTTP_URL", gcs_endpoint)
    monkeypatch.setenv("GOOGLE_AUTH_TOKEN_FOR_TESTING", "emulator")
    name = f"c2f-{re.sub('[^a-z0-9]+', '-', request.node.name.lower())[:40].strip('-')}-{os.getpid()}"
    create = urllib.request.Request(
        f"{gcs_endpoint}/storage/v1/b?project=c2f",
        data=json.dumps({"name": name}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    urllib.request.urlopen(create).close()
    return f"gs://{name}"


@pytest.fixture(scope="session")
def moto_endpoint():
    """An S3-compatible server (moto) on loopback for the session: its endpoint URL."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_bucket(moto_endpoint, monkeypatch, request):
    """A fresh bucket on the loopback S3 server, the AWS environment pointing at it (inherited by
    subprocesses and passed on to Ray workers). Returns its URL, "s3://NAME"."""
    import boto3

    env = {
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_REGION", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    name = f"c2f-{re.sub('[^a-z0-9]+', '-', request.node.name.lower())[:40].strip('-')}-{os.getpid()}"
    boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1").create_bucket(Bucket=name)
    return f"s3://{name}"


@pytest.fixture
def flaky_s3(s3_bucket, moto_endpoint, monkeypatch):
    """`s3_bucket` reached through a FaultyProxy (tests/faulty_proxy.py) that cuts every 4th
    request (resets, and an answer cut short, in turn): AWS_ENDPOINT_URL points at the proxy, and
    C2F_STORAGE_RETRIES allows 8 attempts with short delays (both inherited by subprocesses and
    passed on to Ray workers). Returns (the bucket's URL, the proxy); a test may change
    `proxy.every` (1: nothing gets through)."""
    from tests.faulty_proxy import FaultyProxy

    with FaultyProxy(int(moto_endpoint.rsplit(":", 1)[1]), every=4) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        monkeypatch.setenv("C2F_STORAGE_RETRIES", "8,0.02,0.1")
        yield s3_bucket, proxy
