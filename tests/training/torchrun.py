"""`c2f-train` under torchrun on the CPU: two gloo processes, one torch thread each."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TORCHRUN = Path(sys.executable).with_name("torchrun")
C2F_TRAIN = Path(sys.executable).with_name("c2f-train")


def torchrun_c2f_train(*args) -> subprocess.CompletedProcess:
    """Run `torchrun --standalone --nproc_per_node 2 c2f-train ARGS`; asserts it succeeded."""
    cmd = [TORCHRUN, "--standalone", "--nproc_per_node", "2", C2F_TRAIN, *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(list(map(str, cmd)), capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc
