"""one_line: any caught exception as one line a user reads, whatever its message looks like."""

from __future__ import annotations

import pytest

from plumbing.errors import one_line

WORKER_TRACEBACK = """Caught ValueError in DataLoader worker process 0.
Original Traceback (most recent call last):
  File "loader.py", line 3, in fetch
    raise ValueError("image 7 is truncated")
ValueError: image 7 is truncated
"""


@pytest.mark.parametrize("exc", [OSError(), RuntimeError(""), KeyError(), ValueError("  \n \t\n")])
def test_an_empty_message_is_the_class_name(exc):
    assert one_line(exc) == type(exc).__name__
    assert one_line(exc, last=True) == type(exc).__name__
    assert one_line(exc, named=True) == type(exc).__name__


def test_the_first_non_empty_line_stripped():
    exc = ValueError("\n   FAILED_PRECONDITION: cannot open bucket   \n  detail 1\n  detail 2\n")
    assert one_line(exc) == "FAILED_PRECONDITION: cannot open bucket"


def test_a_worker_traceback_gives_its_exception_line():
    assert one_line(ValueError(WORKER_TRACEBACK), last=True) == "ValueError: image 7 is truncated"
    assert one_line(ValueError(WORKER_TRACEBACK)) == "Caught ValueError in DataLoader worker process 0."


def test_named_puts_the_class_first():
    assert one_line(EOFError("Ran out of input\nmore"), named=True) == "EOFError: Ran out of input"


def test_the_line_is_bounded():
    assert one_line(ValueError("x" * 1000)) == "x" * 300
    assert one_line(ValueError("x" * 1000), named=True, limit=20) == "ValueError: xxxxxxxx"
    assert one_line(OSError(), limit=3) == "OSE"


def test_the_os_message_of_an_os_error_is_kept():
    assert one_line(FileNotFoundError(2, "No such file or directory", "a.pt")) == (
        "[Errno 2] No such file or directory: 'a.pt'"
    )


def test_only_the_exceptions_own_message_counts_not_its_cause():
    try:
        try:
            raise KeyError("inner")
        except KeyError as inner:
            raise RuntimeError("outer failed") from inner
    except RuntimeError as exc:
        assert one_line(exc) == "outer failed"
    try:
        try:
            raise KeyError("inner")
        except KeyError as inner:
            raise RuntimeError() from inner
    except RuntimeError as exc:
        assert one_line(exc, named=True) == "RuntimeError"
