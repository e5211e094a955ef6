"""The CLI boundary's exit codes: an outage of object storage is 75 with the rerun, never a usage error."""

from __future__ import annotations

import pytest

from plumbing.cli_boundary import UNAVAILABLE, USAGE, run
from plumbing.errors import Unavailable


class PackageError(Exception):
    """Stands for StoreError / LabelingError: a package's own one-line error."""


def _raise(exc: BaseException):
    def body() -> int:
        raise exc

    return body


def _wrapped_outage() -> int:
    try:
        raise Unavailable("s3://b/ds/zarr.json: object storage kept failing (5 attempt(s) over 12.0 s)")
    except OSError as exc:
        raise PackageError(f"s3://b/ds: cannot create store ({exc})") from None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (_raise(Unavailable("s3://b/x: object storage kept failing")), "s3://b/x: object storage kept failing"),
        (_wrapped_outage, "s3://b/ds: cannot create store (s3://b/ds/zarr.json: object storage kept failing"),
    ],
)
def test_an_outage_is_exit_75_naming_the_rerun(body, message, capsys):
    resume = ["c2f-label", "in", "-o", "s3://b/ds"]
    assert run("c2f-label", body, errors=(PackageError,), resume=resume) == UNAVAILABLE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"c2f-label: error: {message}")
    assert err.endswith("; to resume once it is reachable, run: c2f-label in -o s3://b/ds\n")


@pytest.mark.parametrize(
    "exc", [PackageError("s3://b/ds: no such store"), OSError("s3://b/x: NOT_FOUND: NoSuchBucket")]
)
def test_other_errors_stay_exit_2(exc, capsys):
    assert run("c2f-data", _raise(exc), errors=(PackageError,)) == USAGE
    assert capsys.readouterr().err == f"c2f-data: error: {exc}\n"
