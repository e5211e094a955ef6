"""The label workers of one job, grown as nodes with room for them join the Ray cluster.

A job runs up to `limit(cfg)` workers at once, and never more than it has shards to label or the
alive nodes can hold (an actor never spans nodes). It asks Ray's autoscaler for that many
worker-shaped bundles, so an autoscaling cluster adds the nodes; where no node has room for a
worker yet (a cluster scaled to zero, or every worker lost with its node), it waits up to
`cfg.wait_timeout` seconds, saying what for. While shards are labeled, the shard loop calls `tend`
each round: every CHECK_S seconds it compares the alive nodes' room with the workers it has and
starts more. A new worker builds its backends in the background; the loop waits on its first call
(`starting`) beside the shards in flight and takes it once it answers (`joined`). A worker that
cannot start is a LabelingError while none has started (a wrong model path or parameter), and
later one dropped with a warning (a node that lacks something), its place not filled again.
"""

from __future__ import annotations

import logging
import time

from plumbing.errors import one_line

from . import cluster
from .config import LabelConfig
from .errors import LabelingError
from .shard_retry import NO_NODE_LEFT

log = logging.getLogger(__name__)

POLL_S = 1.0  # how often a wait for room looks at the cluster's nodes
CHECK_S = 2.0  # how often the shard loop looks for room for more workers


def limit(cfg: LabelConfig) -> int | None:
    """The most workers a job runs at once: `cfg.workers`; 0 = one per GPU share of the alive
    nodes on GPUs (None: no fixed limit), else 1."""
    if cfg.workers > 0:
        return cfg.workers
    return None if cfg.gpus_per_worker > 0 else 1


def worker_count(cfg: LabelConfig) -> int:
    """Workers to start now: `limit(cfg)`, capped by what the alive nodes can place at once (with a
    warning); LabelingError saying what is missing when no node has room for one."""
    fits = cluster.capacity(cfg)
    if fits < 1:
        raise LabelingError(no_room(cfg))
    want = limit(cfg) or fits
    if want > fits:
        log.warning(
            "%d workers asked for, but the cluster can place %d at a time (%s): starting %d, more if nodes join",
            want,
            fits,
            _amounts(cluster.resources(), cluster.worker_bundle(cfg)),
            fits,
        )
    return min(want, fits)


def no_room(cfg: LabelConfig) -> str:
    """Why no node of the cluster can hold a label worker, and what to change."""
    have, need = cluster.resources(), cluster.worker_bundle(cfg)
    short = next((r for r, n in need.items() if have.get(r, 0.0) < n), None)
    if short is None:
        return (
            f"each label worker needs {_amounts(need, need, ' and ')} on one node, and no node of the Ray cluster "
            f"has that much free: lower cpus_per_worker / gpus_per_worker or add larger nodes"
        )
    setting = {"CPU": "cpus_per_worker", "GPU": "gpus_per_worker"}.get(short, f"worker_resources.{short}")
    return (
        f"each label worker needs {need[short]:g} {short}, but the Ray cluster has "
        f"{have.get(short, 0.0):g}: lower {setting} or add nodes"
    )


def _amounts(amounts: dict, names: dict, sep: str = ", ") -> str:
    """e.g. "1 CPU, 0.5 GPU": `amounts` of the resources named in `names`."""
    return sep.join(f"{amounts.get(r, 0.0):g} {r}" for r in names)


class WorkerPool:
    """The workers of one job (see the module docstring). `stops`: the job's StopSignals, which end
    a wait for room at once. `close` kills the workers still starting and withdraws the request."""

    def __init__(self, cfg: LabelConfig, stops) -> None:
        self.cfg, self.stops = cfg, stops
        self.peak = 0  # the most workers the job had at once
        self.starting: dict = {}  # {the ref of a new worker's first call: the worker}
        self._ready: list = []  # workers that answered, not yet handed to the loop
        self._started_any = False
        self._failed = 0  # workers that could not start: their places are not filled again
        self._asked: int | None = None  # workers the autoscaler was last asked for
        self._can_ask = True
        self._next_check = 0.0

    def first_worker(self, work: int):
        """A started worker, for calls before the shard loop (creating the store); the others the
        nodes have room for (up to `work` in all) start meanwhile, and `tend` hands them all out."""
        while not self._ready:
            self._ready = self.tend(work, live=0)
            if not self._ready:
                self._ready = self.joined(self.stops.interruptible(cluster.wait_one, list(self.starting)))
        return self._ready[0]

    def tend(self, work: int, live: int) -> list:
        """One round of the shard loop, with `work` shards queued or in flight and `live` workers
        (idle or busy): with none at all, wait for room for one; every CHECK_S seconds, ask the
        autoscaler again and start the workers the nodes have room for. Returns the workers that
        answered since, for the loop to use."""
        if work > 0 and live == 0 and not (self.starting or self._ready):
            self._wait_for_room(work)
            self._next_check = 0.0
        if time.monotonic() >= self._next_check:
            self._next_check = time.monotonic() + CHECK_S
            self._grow(work, live)
        ready, self._ready = self._ready, []
        self.peak = max(self.peak, live + len(ready))
        return ready

    def check_in(self, work: int, live: int) -> float | None:
        """How long the loop may block waiting for a shard: until the next look for room, or
        None (until a shard or a start finishes) when the pool cannot grow."""
        if live + len(self.starting) >= self._target(work):
            return None
        return max(0.0, self._next_check - time.monotonic())

    def joined(self, ref) -> list:
        """[the worker] whose first call `ref` finished, or [] if it could not start (warned)."""
        worker = self.starting.pop(ref)
        try:
            cluster.get(ref)
        except cluster.WORKER_ERRORS as exc:
            cluster.kill(worker)
            reason = cluster.init_failure(exc)
            if reason and not self._started_any:
                raise LabelingError(f"a label worker could not start: {reason}") from None
            self._failed += reason is not None
            log.warning(
                "a new label worker could not start (%s): going on without it",
                reason or one_line(exc, last=True, named=True),
            )
            return []
        self._started_any = True
        return [worker]

    def close(self) -> None:
        """Stop the workers still starting; withdraw the request to the autoscaler."""
        for worker in self.starting.values():
            cluster.kill(worker)
        self.starting.clear()
        if self._asked:
            self._ask(0)

    def _grow(self, work: int, live: int) -> None:
        fits, have = cluster.capacity(self.cfg), live + len(self.starting) + len(self._ready)
        self._ask(self._wanted(work, fits))
        if self._started_any or self.starting or fits < 1:
            count = min(fits - have - self._failed, self._target(work) - have)
        else:  # the first workers: as many as fit now, with a warning if fewer than asked for
            count = min(worker_count(self.cfg), work)
        if count > 0:
            log.info("starting %d label worker(s)", count)
        for _ in range(count):
            worker = cluster.make_worker(self.cfg)
            self.starting[cluster.submit(worker, "identities")] = worker

    def _target(self, work: int) -> int:
        """Workers the job can use for `work` shards."""
        return min(work, limit(self.cfg) or work)

    def _wanted(self, work: int, fits: int) -> int:
        """Workers to ask the autoscaler for: the target; without a fixed limit, as many as the
        alive nodes hold (`fits`), at least one."""
        return self._target(work) if limit(self.cfg) else min(work, max(1, fits))

    def _room(self) -> int:
        """Workers the alive nodes can hold, less those that could not start."""
        return cluster.capacity(self.cfg) - self._failed

    def _ask(self, count: int) -> None:
        """Ask the autoscaler for room for `count` workers, unless it was asked that last (or
        cannot be asked: then once a warning, and the pool makes do with the nodes that come)."""
        if count == self._asked or not self._can_ask:
            return
        self._asked = count
        try:
            cluster.request_workers(self.cfg, count)
        except Exception as exc:  # a hint only, whatever Ray raises (e.g. through a ray:// client)
            log.warning("could not ask the autoscaler for label workers (%s); going on without", one_line(exc))
            self._can_ask = False

    def _wait_for_room(self, work: int) -> None:
        """Until the alive nodes have room for a worker, looking every POLL_S seconds; a
        LabelingError naming what it waited for after `cfg.wait_timeout` seconds (at once for 0)."""
        if self._room() > 0:
            return
        self._ask(self._wanted(work, 0))
        bundle = cluster.worker_bundle(self.cfg)
        timeout, need = self.cfg.wait_timeout, _amounts(bundle, bundle)
        if timeout > 0:
            log.warning(
                "%swaiting up to %g s (--wait-timeout) for a node with room for a label worker (%s); "
                "asked the autoscaler for room for %d",
                "no label worker left: " if self._started_any else "",
                timeout,
                need,
                self._asked,
            )
        deadline = time.monotonic() + timeout
        while self._room() < 1:
            left = deadline - time.monotonic()
            if left <= 0:
                why = NO_NODE_LEFT if self._started_any else self._why_no_room()
                if timeout == 0:
                    raise LabelingError(why)
                raise LabelingError(
                    f"waited {timeout:g} s (--wait-timeout) for a node with room for a label worker ({need}): {why}"
                )
            self.stops.interruptible(time.sleep, min(POLL_S, left))

    def _why_no_room(self) -> str:
        if self._failed:
            return f"{self._failed} label worker(s) could not start (see the warnings above)"
        return no_room(self.cfg)
