"""Transient object-storage faults: which errors another try can cure, one bounded retry loop, counts.

Two layers retry. tensorstore's S3/GCS drivers retry a single HTTP request that failed at the
transport level (a reset, a refused connection, a 5xx), briefly (`storage._REQUEST_RETRIES`).
Some faults get past them: a response cut short after its status line reaches tensorstore as an
answer without its headers (`NOT_FOUND: etag not found in response headers` on a PUT that did
land; `Malformed List response` on a listing), the check before a conditional write is not
retried at all, and an outage longer than their few attempts ends in `ABORTED: All N retry
attempts failed`. `retrying` retries those whole operations (an object read, write, listing or
delete, an array's opening, a whole-shard write), all of them idempotent, with exponential
backoff and full jitter, and counts every retry by kind; after the last attempt it raises
StorageUnavailable, one line naming the object and the last error.

C2F_STORAGE_RETRIES="ATTEMPTS[,FIRST_DELAY_S[,MAX_DELAY_S]]" (default "5,1,8") sets the loop:
attempt n waits uniform(0, min(MAX, FIRST * 2**(n-1))) seconds before the next. The defaults ride
out several seconds of resets and give up on an endpoint that stays dead after ~10-20 s.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import tensorstore as ts

from .errors import StorageUnavailable, StoreError

log = logging.getLogger(__name__)
T = TypeVar("T")

ENV = "C2F_STORAGE_RETRIES"
KINDS = ("read", "write", "list", "delete")  # operations this loop retried
REQUEST = "request"  # HTTP requests tensorstore's S3/GCS drivers retried themselves
# tensorstore status codes a later try can cure: transport faults, 5xx (INTERNAL, UNAVAILABLE,
# DEADLINE_EXCEEDED), throttling (RESOURCE_EXHAUSTED), 409 and its own retries exhausted (ABORTED)
_TRANSIENT_CODES = frozenset({"UNAVAILABLE", "ABORTED", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "INTERNAL"})
# an answer cut short after its status line: the request may well have succeeded
_CUT_SHORT = ("etag not found in response headers", "Malformed List response")

_counts: Counter = Counter()
_lock = threading.Lock()
_sleep = time.sleep  # tests replace these two to run the loop without waiting, deterministically
_jitter = random.Random()


@dataclass(frozen=True)
class Policy:
    attempts: int = 5
    first_delay_s: float = 1.0
    max_delay_s: float = 8.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt `attempt` (1-based): full jitter."""
        return _jitter.uniform(0.0, min(self.max_delay_s, self.first_delay_s * 2 ** (attempt - 1)))


def policy() -> Policy:
    """The loop's settings, from C2F_STORAGE_RETRIES (read at each call: tests and workers set it)."""
    raw = os.environ.get(ENV, "").strip()
    if not raw:
        return Policy()
    try:
        values = [float(part) for part in raw.split(",")]
        if not 1 <= len(values) <= 3 or values[0] != int(values[0]):
            raise ValueError
        out = Policy(int(values[0]), *values[1:])
        if out.attempts < 1 or out.first_delay_s < 0 or out.max_delay_s < 0:
            raise ValueError
    except ValueError:
        raise StoreError(f"{ENV}={raw!r}: expected ATTEMPTS[,FIRST_DELAY_S[,MAX_DELAY_S]], e.g. 5,1,8") from None
    return out


def transient(exc: BaseException) -> bool:
    """Whether `exc` is a fault another try can cure (tensorstore raises ValueError with the
    status code first: `UNAVAILABLE: ...`). A real missing object, refused credentials or a
    missing bucket (NOT_FOUND, PERMISSION_DENIED, ...) are not."""
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    if not isinstance(exc, ValueError):
        return False
    text = str(exc)
    return text.split(":", 1)[0].strip() in _TRANSIENT_CODES or any(cut in text for cut in _CUT_SHORT)


def retrying(kind: str, what: str | Callable[[], str], attempt: Callable[[], T]) -> T:
    """`attempt()`'s result; called again after a transient fault, up to the policy's attempts.

    `attempt` must be idempotent (it issues its requests anew each call). kind: one of KINDS,
    the counter a retry adds to; what: the object, for messages (or a function that names it, called
    only when a message needs it). Raises StorageUnavailable
    once the attempts are spent, the other errors at once."""
    if kind not in KINDS:
        raise ValueError(f"retry kind must be one of {KINDS}, got {kind!r}")
    rules = policy()
    start = time.monotonic()
    for n in range(1, rules.attempts + 1):
        try:
            return attempt()
        except Exception as exc:
            if not transient(exc):
                raise
            name = what() if callable(what) else what
            if n == rules.attempts:
                raise StorageUnavailable(
                    f"{name}: object storage kept failing ({n} attempt(s) over "
                    f"{time.monotonic() - start:.1f} s); last error: {_first_line(exc)}"
                ) from None
            with _lock:
                _counts[kind] += 1
            log.info("%s: %s; retrying (attempt %d of %d)", name, _first_line(exc), n + 1, rules.attempts)
            _sleep(rules.delay(n))
    raise AssertionError("unreachable")


def counts() -> dict[str, int]:
    """Retries so far in this process, by kind (KINDS and REQUEST); zeros left out."""
    with _lock:
        out = dict(_counts)
    out[REQUEST] = _request_retries()
    return {kind: n for kind, n in sorted(out.items()) if n}


def since(before: dict[str, int]) -> dict[str, int]:
    """Retries in this process since `before` (an earlier `counts()`), by kind; zeros left out."""
    now = counts()
    return {kind: n - before.get(kind, 0) for kind, n in now.items() if n - before.get(kind, 0)}


def add(*many: dict[str, int]) -> dict[str, int]:
    """The sum of retry counts by kind (e.g. the workers' and the driver's); zeros left out."""
    total = sum((Counter(c) for c in many), Counter())
    return {kind: n for kind, n in sorted(total.items()) if n}


def _request_retries() -> int:
    """HTTP requests retried by tensorstore's object-storage drivers in this process (its metrics)."""
    return sum(
        int(value.get("value", 0))
        for metric in ts.experimental_collect_matching_metrics("/tensorstore/kvstore/")
        if metric["name"].endswith("/retries")
        for value in metric.get("values", [])
    )


def _first_line(exc: BaseException) -> str:
    return ((str(exc).strip().splitlines() or [type(exc).__name__])[0])[:300]
