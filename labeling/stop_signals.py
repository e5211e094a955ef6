"""How a label job hears that it must stop: SIGTERM (Kubernetes, Slurm, spot preemption, `ray job
stop`) or SIGINT (Ctrl-C).

While the driver hands out shards, a first signal is only recorded (`received`): the job then hands
out no more shards, gives the shards in flight a grace period, and ends with its report. A signal
that arrives while the driver blocks in Ray (`interruptible`), one outside the shard loop (starting
workers, creating the store), and any second signal raise KeyboardInterrupt at once: Ray's blocking
calls (`ray.wait`, `ray.get`) pass on KeyboardInterrupt only (another exception raised by a handler
comes out of them as a SystemError), so SIGTERM raises it too and `received` says which it was.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from plumbing.processes import handling

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """The stop signals of one job; `installed()` makes them reach it."""

    def __init__(self) -> None:
        self.received: int | None = None  # the first stop signal, e.g. signal.SIGTERM
        self._deferred = False

    @property
    def name(self) -> str | None:
        """ "SIGTERM" / "SIGINT", or None while no stop signal came."""
        return None if self.received is None else signal.Signals(self.received).name

    @contextmanager
    def installed(self) -> Iterator[StopSignals]:
        """Handle SIGINT and SIGTERM while the block runs, then put back the handlers that were
        there. Outside the main thread Python cannot take signals: nothing is installed."""
        with handling(SIGNALS, self._handle):
            yield self

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """Within the block a first signal is only recorded; the block checks `received`."""
        self._deferred = True
        try:
            yield
        finally:
            self._deferred = False

    def interruptible(self, call: Callable, *args, **kwargs):
        """`call(*args, **kwargs)`, a blocking Ray call inside a `deferred` block, during which a
        signal raises KeyboardInterrupt; so does a signal already received."""
        was, self._deferred = self._deferred, False
        try:
            if self.received is not None:
                raise KeyboardInterrupt
            return call(*args, **kwargs)
        finally:
            self._deferred = was

    def _handle(self, signum: int, _frame) -> None:
        first = self.received is None
        if first:
            self.received = signum
        if not (first and self._deferred):
            raise KeyboardInterrupt
