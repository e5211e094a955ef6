"""Start-up and resume of `c2f-label` on an ImageNet-sized folder (1,281,167 files, 1000 classes).

Builds once, under CACHE, a tree shaped like ImageNet's training set (`train/<wnid>/<wnid>_<i>.JPEG`,
the 1000 real wnids, 1281 or 1282 files each) of hard links to a few real photos, then runs
`c2f-label` on it (classic backend, one worker, no --limit) in a subprocess and reports:
- seconds from the start to the first shard's completion marker (the store's markers/ polled),
- the driver's peak RSS (VmHWM of the driver process; its Ray processes are not counted),
then stops the job with Ctrl-C (SIGINT) and times `c2f-data info` and `c2f-data validate` on the
partly done store, and the resumed run to its first NEW shard, the same way.

    .venv/bin/python benchmarks/imagenet_startup.py [--cache /tmp/c2f-imagenet-tree] [--keep STORE] [--code DIR]

`--code DIR` runs the commands of another checkout (e.g. `git archive OLD | tar -x -C DIR`) on
the same tree, for a before/after comparison on the same machine.

Absolute seconds are the measure here (the goal is "first shard under 20 s on 2 cores"), so the
table says the machine's load average before and after: on a shared machine they are inflated.
The 128 images of the first shard take about 5 s of the classic worker's time.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
TOTAL = 1_281_167  # ImageNet-1K's training images
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry")
COPIES = 32  # files per photo: a file system caps a file's hard links (ext4: 65,000)


def wnids() -> list[str]:
    table = (ROOT / "datasets_spec" / "imagenet_classes.tsv").read_text().splitlines()
    return [line.split("\t")[1] for line in table if line.strip()]


def build_tree(cache: Path, total: int = TOTAL) -> Path:
    """The ImageNet-shaped root of `total` files under `cache` (made on the first call; later
    calls for as many files reuse it)."""
    root, done = cache / "imagenet", cache / "complete"
    if done.exists() and done.read_text().strip() == str(total):
        return root
    shutil.rmtree(cache, ignore_errors=True)
    photos = _photos(cache / "photos")
    classes = wnids()
    per_class, extra = divmod(total, len(classes))
    t0 = time.perf_counter()
    n = 0
    for c, wnid in enumerate(classes):
        folder = root / "train" / wnid
        folder.mkdir(parents=True)
        for i in range(per_class + (c < extra)):
            os.link(photos[n % len(photos)], folder / f"{wnid}_{i}.JPEG")
            n += 1
    done.write_text(f"{n}\n")
    print(f"built {n:,} hard links under {root} in {time.perf_counter() - t0:.0f} s", flush=True)
    return root


def _photos(folder: Path) -> list[Path]:
    import cv2
    import skimage.data

    folder.mkdir(parents=True)
    out = []
    for name in PHOTOS:
        rgb = getattr(skimage.data, name)()
        _, jpeg = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
        for copy in range(COPIES):
            path = folder / f"{name}-{copy}.JPEG"
            path.write_bytes(jpeg.tobytes())
            out.append(path)
    return out


def _env(code: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(code), env.get("PYTHONPATH")) if p)
    env.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    env.setdefault("RAY_AUTH_MODE", "disabled")
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def _markers(store: Path) -> set[str]:
    """Names of the store's completion markers (markers/ also holds its group's zarr.json)."""
    try:
        return {e.name for e in os.scandir(store / "markers") if re.fullmatch(r"shard-\d+\.json", e.name)}
    except FileNotFoundError:
        return set()


def _peak_rss(proc: psutil.Process, sampled: int) -> int:
    """The process's peak resident set (VmHWM on Linux), else the largest sample taken."""
    try:
        for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return sampled


def first_new_shard(code: Path, images: Path, store: Path, limit_s: float, flags=()) -> tuple[float, int]:
    """Run c2f-label until a shard marker that was not there before appears, then Ctrl-C it.
    Returns (seconds to that marker, driver peak RSS in bytes)."""
    before = _markers(store)
    cmd = [sys.executable, "-m", "labeling.cli", str(images), "-o", str(store), "--backend", "classic"]
    cmd += ["--workers", "1", "--quiet", *flags]
    t0 = time.perf_counter()
    job = subprocess.Popen(cmd, cwd=code, env=_env(code), start_new_session=True, stderr=subprocess.PIPE, text=True)
    proc, sampled = psutil.Process(job.pid), 0
    try:
        while not (_markers(store) - before):
            if job.poll() is not None:
                raise SystemExit(f"c2f-label exited {job.returncode} before a new shard:\n{job.stderr.read()}")
            if time.perf_counter() - t0 > limit_s:
                raise SystemExit(f"no new shard after {limit_s:.0f} s")
            sampled = max(sampled, proc.memory_info().rss)
            time.sleep(0.05)
        seconds = time.perf_counter() - t0
        peak = _peak_rss(proc, sampled)
    finally:
        job.send_signal(signal.SIGINT)
        try:
            job.wait(120)
        except subprocess.TimeoutExpired:
            job.kill()
            job.wait()
    return seconds, peak


def timed(code: Path, *args: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, *args], cwd=code, env=_env(code), check=True, capture_output=True)
    return time.perf_counter() - t0


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "c2f-imagenet-tree")
    parser.add_argument("--limit-s", type=float, default=600, help="give up on a run after this long")
    parser.add_argument("--keep", type=Path, help="write the store here and keep it (default: a temporary folder)")
    parser.add_argument("--code", type=Path, default=ROOT, help="the checkout whose c2f-label runs (default: this one)")
    parser.add_argument("--images", type=int, default=TOTAL, help="files in the tree (a smaller one for a smoke test)")
    parser.add_argument("--shard-size", type=int, help="c2f-label's --shard-size (default: its own)")
    args = parser.parse_args(argv)
    images = build_tree(args.cache, args.images)
    flags = ["--shard-size", str(args.shard_size)] if args.shard_size else []
    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="c2f-startup-"))
    store = args.keep or work / "store"
    try:
        first, first_rss = first_new_shard(args.code, images, store, args.limit_s, flags)
        info_s = timed(args.code, "-m", "dataset_tools.cli", "info", str(store))
        validate_s = timed(args.code, "-m", "dataset_tools.cli", "validate", "--quiet", str(store))
        resume, resume_rss = first_new_shard(args.code, images, store, args.limit_s, flags)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    load_after = os.getloadavg()
    rows = {
        "first shard done (s)": first,
        "driver peak RSS, first run (MB)": first_rss / 1e6,
        "c2f-data info (s)": info_s,
        "c2f-data validate (s)": validate_s,
        "resume: first new shard (s)": resume,
        "driver peak RSS, resume (MB)": resume_rss / 1e6,
    }
    print(f"c2f-label of {args.code} on {args.images:,} files (classic, 1 worker), {os.cpu_count()} CPUs")
    print(f"load average (1, 5, 15 min): before {_load(load_before)}, after {_load(load_after)}")
    for what, value in rows.items():
        print(f"  {what:34s}{value:9.1f}")
    return rows


def _load(avg) -> str:
    return ", ".join(f"{x:.1f}" for x in avg)


if __name__ == "__main__":
    main()
