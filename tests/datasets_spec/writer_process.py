"""Runs in a child process: write some shards of a test store, optionally dying mid-shard.

usage: python -m tests.datasets_spec.writer_process STORE SEED SHARD[,SHARD...] [--die-before records|marker]

Tests start it with `start_writer`.
"""

import os
import signal
import subprocess
import sys
from pathlib import Path

from datasets_spec import open_store, shard_writer, write_shard

from .store_fixtures import make_results

ROOT = Path(__file__).resolve().parents[2]


def start_writer(path, shards, *extra) -> subprocess.Popen:
    """This module in a new process writing `shards` of the store at `path` (seed 0), `extra` its options."""
    cmd = [sys.executable, "-m", "tests.datasets_spec.writer_process", str(path), "0", ",".join(map(str, shards))]
    return subprocess.Popen([*cmd, *extra], cwd=ROOT)


def _die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)


def main(argv):
    path, seed, shards = argv[0], int(argv[1]), [int(s) for s in argv[2].split(",")]
    if len(argv) > 3 and argv[3] == "--die-before":
        # Kill this process right before the records file (pixels written) or the marker.
        target = {"records": "write_records", "marker": "_write_json_atomic"}[argv[4]]
        setattr(shard_writer, target, _die)
    layout = open_store(path).layout
    results = make_results(layout.num_images, layout.canvas, seed)
    for shard in shards:
        write_shard(path, shard, results[slice(*layout.shard_range(shard))])


if __name__ == "__main__":
    main(sys.argv[1:])
