"""Every `c2f-data` command on a store of ImageNet's size (1,281,167 images): wall time and peak memory.

Builds once, under CACHE, with `make_synthetic_store(..., distinct=K)`:
- `complete/`: every shard done (K distinct synthetic images repeated, on a small canvas; their
  photos written once and hard-linked for every key, so `show` finds any image it picks),
- `partial/`: the same images with only the first PARTIAL_DONE shards done (the rest pending),
then runs each command of COMMANDS in its own process and reports its wall time, its CPU seconds
(user + system, which move less with the load) and its peak resident memory (ru_maxrss from wait4,
or the largest RSS sum of its process tree sampled every 50 ms, whichever is larger). Outputs (COCO
JSON, releases) go to a temporary folder that is removed at the end.

    .venv/bin/python benchmarks/data_at_scale.py [--cache /tmp/c2f-data-at-scale] [--only stats info]

Absolute seconds are the measure (the goal: every command under 2 GB, its time written down), so
each row carries the machine's 1-minute load average before it started. A command this checkout
does not have (export-semantic, `publish --format parquet` before they are merged) is skipped with
a note. `--code DIR` runs another checkout's commands on the same stores, for a before/after.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from dataset_tools.synthetic import make_synthetic_store  # noqa: E402

TOTAL = 1_281_167  # ImageNet-1K's training images
PARTIAL_DONE = 29  # shards done in the partial store (what the run had)


@dataclass(frozen=True)
class Command:
    """One row: `c2f-data ARGS` on the complete or partial store. ARGS may name {store},
    {images} (the photos' root), {out} (a scratch folder) and {release} (what publish wrote).
    needs: (subcommand, option or None) that must exist in the checkout, else the row is skipped."""

    name: str
    store: str
    args: tuple[str, ...]
    needs: tuple[str, str | None]


COMMANDS = (
    Command("stats, 29 shards done", "partial", ("stats", "{store}", "--json", "--quiet"), ("stats", None)),
    Command("info", "complete", ("info", "{store}", "--json"), ("info", None)),
    Command("validate", "complete", ("validate", "--quiet", "{store}"), ("validate", None)),
    Command("stats", "complete", ("stats", "{store}", "--json", "--quiet"), ("stats", None)),
    Command(
        "show (16 random)",
        "complete",
        ("show", "{store}", "--images", "{images}", "-o", "{out}/show.png"),
        ("show", None),
    ),
    Command(
        "show --keys (1 key)",
        "complete",
        ("show", "{store}", "--images", "{images}", "--keys", "synth/0640000.png", "-o", "{out}/show-key.png"),
        ("show", None),
    ),
    Command(
        "export-coco", "complete", ("export-coco", "{store}", "-o", "{out}/coco.json", "--quiet"), ("export-coco", None)
    ),
    Command(
        "export-semantic",
        "complete",
        ("export-semantic", "{store}", "-o", "{out}/semantic", "--quiet"),
        ("export-semantic", None),
    ),
    Command(
        "publish --format zarr",
        "complete",
        ("publish", "{store}", "-o", "{release}", "--format", "zarr", "--quiet"),
        ("publish", "--format"),
    ),
    Command("verify (zarr release)", "complete", ("verify", "{release}"), ("verify", None)),
    Command(
        "publish --format parquet",
        "complete",
        ("publish", "{store}", "-o", "{out}/release-parquet", "--format", "parquet", "--quiet"),
        ("publish", "--format"),
    ),
    Command("verify (parquet release)", "complete", ("verify", "{out}/release-parquet"), ("verify", None)),
)


def build_stores(cache: Path, total: int = TOTAL, *, canvas: int = 32, shard_size: int = 128, distinct: int = 64):
    """(complete store, partial store, photo root) under `cache`, made on the first call; later
    calls with the same arguments reuse them."""
    stamp = cache / "built.json"
    params = {"total": total, "canvas": canvas, "shard_size": shard_size, "distinct": distinct, "v": 1}
    paths = cache / "complete", cache / "partial", cache / "images"
    if stamp.exists() and json.loads(stamp.read_text()) == params:
        return paths
    shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir(parents=True)
    t0 = time.perf_counter()
    common = {"count": total, "canvas": canvas, "shard_size": shard_size, "distinct": distinct}
    make_synthetic_store(paths[0], paths[2], **common)
    make_synthetic_store(paths[1], None, **common, done_shards=PARTIAL_DONE)  # the same images
    stamp.write_text(json.dumps(params))
    print(f"built {total:,}-image stores under {cache} in {time.perf_counter() - t0:.0f} s", flush=True)
    return paths


def available(code: Path, needs: tuple[str, str | None]) -> bool:
    """Whether the checkout's c2f-data has the subcommand (and option) `needs`."""
    sub, option = needs
    text = _help(code, sub)
    return text is not None and (option is None or option in text)


@functools.cache
def _help(code: Path, sub: str) -> str | None:
    """`c2f-data SUB --help` of the checkout, None if it has no such subcommand."""
    cmd = [sys.executable, "-m", "dataset_tools.cli", sub, "--help"]
    run = subprocess.run(cmd, cwd=code, env=_env(code), capture_output=True, text=True)
    return run.stdout if run.returncode == 0 else None


def measure(code: Path, args: list[str], timeout: float | None = None) -> dict:
    """Run `c2f-data ARGS` of checkout `code` (killed after `timeout` s): {seconds, cpu_s (user +
    system), peak_mb, rc, note (the end of its stderr when it failed)}."""
    err = tempfile.TemporaryFile()
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "dataset_tools.cli", *args]
    job = subprocess.Popen(cmd, cwd=code, env=_env(code), stdout=subprocess.DEVNULL, stderr=err)
    proc, sampled, killed = psutil.Process(job.pid), 0, False
    while True:
        pid, status, usage = os.wait4(job.pid, os.WNOHANG)
        if pid:
            break
        sampled = max(sampled, _tree_rss(proc))
        if timeout and time.perf_counter() - t0 > timeout and not killed:
            job.kill()
            killed = True
        time.sleep(0.05)
    job.returncode = os.waitstatus_to_exitcode(status)
    row = {
        "seconds": time.perf_counter() - t0,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_mb": max(usage.ru_maxrss * 1024, sampled) / 1e6,
        "rc": job.returncode,
    }
    err.seek(0)
    if killed:
        row["note"] = f"killed after {timeout:.0f} s"
    elif job.returncode:
        row["note"] = f"exit {job.returncode}: " + "".join(
            err.read().decode(errors="replace").strip().splitlines()[-1:]
        )
    return row


def _tree_rss(proc: psutil.Process) -> int:
    try:
        members = [proc, *proc.children(recursive=True)]
        return sum(p.memory_info().rss for p in members)
    except psutil.Error:  # it just exited
        return 0


def _env(code: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(code), env.get("PYTHONPATH")) if p)
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def run_table(code: Path, stores, only=None, timeout: float | None = None) -> list[dict]:
    """Each command of COMMANDS (or those named in `only`) measured once, in order."""
    complete, partial, images = stores
    work = Path(tempfile.mkdtemp(prefix="c2f-data-at-scale-"))
    rows = []
    try:
        for cmd in COMMANDS:
            if only and not any(cmd.name.startswith(o) for o in only):
                continue
            where = {"store": complete if cmd.store == "complete" else partial, "images": images, "out": work}
            rows.append(_run_one(code, cmd, where, work / "release", timeout))
            _print_row(rows[-1])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rows


def _run_one(code: Path, cmd: Command, where: dict, release: Path, timeout: float | None) -> dict:
    if not available(code, cmd.needs):
        return {"command": cmd.name, "note": f"skipped: this checkout has no {' '.join(filter(None, cmd.needs))}"}
    load = os.getloadavg()[0]
    return {
        "command": cmd.name,
        "load": load,
        **measure(code, [a.format(release=release, **where) for a in cmd.args], timeout),
    }


def _print_row(row: dict) -> None:
    if "seconds" not in row:
        print(f"  {row['command']:28s} {row['note']}", flush=True)
        return
    note = f"  {row['note']}" if row.get("note") else ""
    print(
        f"  {row['command']:28s} {row['seconds']:8.1f} s {row['cpu_s']:8.1f} s CPU {row['peak_mb']:8.0f} MB"
        f"   load {row['load']:.1f}{note}",
        flush=True,
    )


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "c2f-data-at-scale")
    parser.add_argument("--images", type=int, default=TOTAL, help="images in the stores (fewer for a smoke test)")
    parser.add_argument("--canvas", type=int, default=32)
    parser.add_argument("--shard-size", type=int, default=128)
    parser.add_argument("--distinct", type=int, default=64, help="different synthetic images, repeated")
    parser.add_argument("--code", type=Path, default=ROOT, help="the checkout whose c2f-data runs (default: this one)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only the commands whose names start so")
    parser.add_argument("--timeout", type=float, help="kill a command after this many seconds")
    args = parser.parse_args(argv)
    stores = build_stores(
        args.cache, args.images, canvas=args.canvas, shard_size=args.shard_size, distinct=args.distinct
    )
    print(
        f"c2f-data of {args.code} on {args.images:,} images (canvas {args.canvas}, shards of {args.shard_size}), "
        f"{os.cpu_count()} CPUs; load average at start {', '.join(f'{x:.1f}' for x in os.getloadavg())}",
        flush=True,
    )
    rows = run_table(args.code, stores, args.only, args.timeout)
    print(f"load average at the end {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    return rows


if __name__ == "__main__":
    main()
