"""Semantic backends that fail on purpose, for the fault tests: `classic` plus a way to die.

Ray workers call `register` through the session's `worker_process_setup_hook`, and tests through
the `fault_backends` fixture (which undoes it), so a job can name these backends like built-in
ones. Each behaves exactly like `classic` until it dies, and its identity does not depend on whether
it died, so a faulty run can be compared with a clean one byte for byte. Their control files live in
`scratch(name)`: a parameter that is a path would enter the job's identity by its contents (see
labeling.identity.job_identity).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from labeling.backends import register_backend
from labeling.backends.classic import ClassicSemantic

NODE_ENV = "C2F_TEST_NODE"  # set on a `ray start` node by the cluster tests: the node's name
# The runtime env of the tests' Ray sessions and jobs: its workers register these backends when they start.
RAY_TEST_RUNTIME_ENV = {
    "worker_process_setup_hook": "tests.labeling.fault_backends.register",
    "env_vars": {"PYTHONPATH": str(Path(__file__).resolve().parents[2])},
}


def scratch(name: str) -> Path:
    """Where backend parameter `name` (a plain word) keeps its control files."""
    return Path(tempfile.gettempdir(), name)


def register() -> None:
    """Make the backends of this module buildable by name (Ray's worker_process_setup_hook)."""
    for name, cls in BACKENDS.items():
        register_backend("semantic", name)(cls)


def _die() -> None:
    os.kill(os.getpid(), 9)  # SIGKILL: what the OOM killer does


class CrashOnce(ClassicSemantic):
    """Kills its own process on the first batch anywhere: whoever creates `scratch(flag)` first dies."""

    def __init__(self, flag: str):
        super().__init__()
        self.flag = scratch(flag)

    def predict(self, images, sizes):
        try:
            os.close(os.open(self.flag, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return super().predict(images, sizes)
        _die()


class Poison(ClassicSemantic):
    """Kills its own process whenever a batch holds an image `height` pixels high."""

    def __init__(self, height: int):
        super().__init__()
        self.height = height

    def predict(self, images, sizes):
        if any(image.shape[0] == self.height for image in images):
            _die()
        return super().predict(images, sizes)


class Fails(ClassicSemantic):
    """Raises (its process lives) whenever a batch holds an image `height` pixels high."""

    def __init__(self, height: int):
        super().__init__()
        self.height = height

    def predict(self, images, sizes):
        if any(image.shape[0] == self.height for image in images):
            raise RuntimeError(f"fault injected on an image {self.height} pixels high")
        return super().predict(images, sizes)


class Gate(ClassicSemantic):
    """On the node named `hold_node` (NODE_ENV), while the file `scratch(events)/hold` exists:
    creates `held` beside it and then never returns, so a test can kill that node mid-shard."""

    def __init__(self, events: str, hold_node: str):
        super().__init__()
        self.events, self.hold_node = scratch(events), hold_node

    def predict(self, images, sizes):
        if os.environ.get(NODE_ENV) == self.hold_node and (self.events / "hold").exists():
            (self.events / "held").touch()
            while True:  # until the test kills this node
                time.sleep(1)
        return super().predict(images, sizes)


class Hold(ClassicSemantic):
    """While the file `scratch(events)/hold` exists, a batch holding an image `height` pixels high
    writes its process id into `held` beside it and waits until `hold` is gone, so a test can
    interrupt or kill a job at a known point: the shards before that image written, the rest not."""

    def __init__(self, events: str, height: int):
        super().__init__()
        self.events, self.height = scratch(events), height

    def predict(self, images, sizes):
        if any(image.shape[0] == self.height for image in images):
            if (self.events / "hold").exists():
                (self.events / "held").write_text(str(os.getpid()))
            while (self.events / "hold").exists():
                time.sleep(0.05)
        return super().predict(images, sizes)


BACKENDS = {"crash-once": CrashOnce, "poison": Poison, "fails": Fails, "gate": Gate, "hold": Hold}
