"""Loader start-up: DataLoader workers forked from a fork server that preloaded torch and the data
pipeline (training.data.worker_start, today) next to one that preloads nothing (each worker then
imports them itself), in one run.

    .venv/bin/python benchmarks/loader_start.py [--workers 4] [--rounds 3]

Each trial is a fresh Python process (a fork server lives as long as its process) that builds a
DataLoader over a trivial dataset and takes its first batch. Rounds alternate which setting goes
first; the table gives the medians of the wall time to the first batch and their ratio
(preload nothing / preload).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

TRIAL = """
import sys, time
sys.path.insert(0, {root!r})
from training.data import worker_start
if {plain}:
    worker_start.PRELOAD = ("__main__",)
import torch
from torch.utils.data import DataLoader, Dataset

class Zeros(Dataset):
    def __len__(self):
        return 1024
    def __getitem__(self, i):
        return torch.zeros(3)

if __name__ == "__main__":
    start = time.perf_counter()
    loader = DataLoader(Zeros(), batch_size=4, num_workers={workers}, persistent_workers=True,
                        multiprocessing_context=worker_start.worker_context())
    next(iter(loader))
    print(time.perf_counter() - start)
"""


def trial(plain: bool, workers: int, folder: Path) -> float:
    """Seconds to the first batch in one trial. The script is a file: workers import its dataset
    class from __main__."""
    script = folder / "trial.py"
    script.write_text(TRIAL.format(root=str(ROOT), plain=plain, workers=workers))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=True)
    return float(done.stdout.split()[-1])


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    results: dict[str, list[float]] = {"preload": [], "plain": []}
    with tempfile.TemporaryDirectory() as folder:
        for round_ in range(args.rounds):
            order = ("preload", "plain") if round_ % 2 == 0 else ("plain", "preload")
            for name in order:
                results[name].append(trial(name == "plain", args.workers, Path(folder)))
    wall = {name: statistics.median(runs) for name, runs in results.items()}
    print(f"seconds to the first batch with {args.workers} loader workers, median of {args.rounds} trials")
    for name, label in (("preload", "torch + data pipeline"), ("plain", "nothing")):
        print(f"  fork server preloads {label:22s} {wall[name]:6.2f}")
    ratio = wall["plain"] / wall["preload"]
    print(f"  nothing / preload: {ratio:.2f}x")
    return {"seconds": wall, "ratio": ratio, "workers": args.workers}


if __name__ == "__main__":
    started = time.perf_counter()
    main()
    print(f"({time.perf_counter() - started:.0f} s)")
