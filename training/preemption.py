"""SIGTERM as a request to stop at the next step boundary, with a checkpoint (preemption).

Kubernetes, Slurm and spot reclaims stop a job with SIGTERM and SIGKILL it after a grace period
(30 s by default); torchrun passes its SIGTERM on to every rank's process group. The handler only
sets a flag. The training step reads it at the all-reduce it already does (training/step.py), so
every rank sees the same answer at the same step, whichever ranks the signal reached; the loop then
writes the checkpoint at that step and returns, and `c2f-train` exits 143 with the resume line.

Further SIGTERMs while stopping change nothing: a scheduler and torchrun may each deliver one to
the same process (Slurm signals every process of a step, and torchrun forwards its own). To stop
at once, send SIGINT (Ctrl-C: exit 130, the run resumes from its last checkpoint) or SIGKILL.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator

from plumbing.processes import handling


class StopRequest:
    """A flag that a signal handler sets; `requested()` reads it."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def requested(self) -> bool:
        return self.signum is not None

    def handle(self, signum: int, _frame) -> None:
        self.signum = signum  # nothing else: the step loop acts on it at a step boundary


@contextlib.contextmanager
def stop_on_sigterm() -> Iterator[StopRequest]:
    """A StopRequest set by SIGTERM while the block runs; the previous handler is restored after.

    Outside the main thread (where Python cannot install handlers) the request is never set.
    """
    request = StopRequest()
    with handling((signal.SIGTERM,), request.handle):
        yield request
