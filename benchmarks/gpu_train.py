"""One GPU: ViT-B/16 C2FMAE vs MAE (and parallel) training steps in bf16, and the loader's images/s.

Needs only torch, timm and numpy for the model part (batches are synthesised on the device: blocky
label maps, so guided masking has segments to hide); the loader part reads synthetic JPEGs through
training.data with one worker per core and is skipped, with a note, where the store stack
(datasets_spec: zarr, tensorstore) does not import. Under 5 minutes on an H100; prints a table.

    python benchmarks/gpu_train.py [--batch 256] [--steps 20] [--warmup 5]   # on the GPU machine
    python benchmarks/gpu_train.py --tiny                                    # CPU smoke run

`--decode gpu` measures the loader with data.decode: gpu, its batches decoded on the device by
training.data.gpu_decode (under --tiny, or without CUDA for the loader alone, on the CPU).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from training.models import create_model  # noqa: E402

MODES = ("mae", "c2fmae", "parallel")
NUM_CLASSES = 150  # ADE20K-sized label space


def synth_batch(n: int, img: int, device: torch.device, gen: torch.Generator) -> dict:
    """The batch contract on `device`: image [n, 3, img, img], blocky semantic/instance [n, img, img]."""
    cells = max(2, img // 32)

    def blocks(high: int) -> torch.Tensor:
        ids = torch.randint(0, high, (n, cells, cells), generator=gen, device=device)
        return ids.repeat_interleave(img // cells, 1).repeat_interleave(img // cells, 2)

    return {
        "image": torch.randn(n, 3, img, img, generator=gen, device=device),
        "semantic": blocks(NUM_CLASSES),
        "instance": blocks(8),
        "index": torch.arange(n, device=device),
    }


class Clock:
    """Seconds between marks: CUDA events on the GPU (no host sync per step), perf_counter on CPU."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"

    def mark(self):
        if not self.cuda:
            return time.perf_counter()
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event

    def seconds(self, start, end) -> float:
        if not self.cuda:
            return end - start
        end.synchronize()
        return start.elapsed_time(end) / 1e3


def make_step(mode: str, arch: str, args, device: torch.device):
    """A closure running one training step of `mode` on a fixed synthetic batch: forward + backward
    + fused AdamW, bf16 autocast on the GPU, fp32 on the CPU."""
    torch.manual_seed(0)
    model = create_model(f"{mode}_{arch}", num_classes=NUM_CLASSES, **args.overrides).to(device)
    cuda = device.type == "cuda"
    optim = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), fused=cuda)
    gen = torch.Generator(device).manual_seed(0)
    batch = synth_batch(args.batch, model.cfg.img_size, device, gen)
    strategy = torch.arange(args.batch, device=device) % 3

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            loss = model(batch, strategy, gen)["loss"]
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()

    return step


def bench_mode(mode: str, arch: str, args, device: torch.device) -> dict:
    """Median step time and peak memory (weights, optimizer state, activations) of one mode."""
    cuda = device.type == "cuda"
    step = make_step(mode, arch, args, device)
    for _ in range(args.warmup):
        step()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    clock = Clock(device)
    marks = [clock.mark()]
    for _ in range(args.steps):
        step()
        marks.append(clock.mark())
    times = [clock.seconds(a, b) for a, b in zip(marks, marks[1:])]
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")
    del step
    if cuda:
        torch.cuda.empty_cache()
    return {"step_s": statistics.median(times), "images_s": args.batch / statistics.median(times), "peak_gib": peak}


def profile_mode(mode: str, arch: str, args, device: torch.device) -> str:
    """torch.profiler's table of the ops that take the most device (or CPU) time in 3 steps."""
    step = make_step(mode, arch, args, device)
    for _ in range(2):
        step()
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as prof:
        for _ in range(3):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize()
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    return f"profile of {mode} (3 steps):\n" + prof.key_averages().table(sort_by=key, row_limit=18)


def bench_loader(args, device: torch.device) -> dict | None:
    """images/s of training.data over synthetic JPEGs with one worker per core (with --decode gpu
    including the batch decode on `device`), or None if the store stack does not import here."""
    try:
        from torch.utils.data import DataLoader

        from benchmarks.train_step import FULL, TINY, Sizes, make_data
        from training.data import DataConfig, build_dataset, loader_kwargs
        from training.data.gpu_decode import decode_batch
    except ImportError as exc:
        print(f"note: loader part skipped, the store stack does not import here ({exc})")
        return None
    base = TINY if args.tiny else FULL
    workers = 1 if args.tiny else max(1, (os.cpu_count() or 2) - 1)
    sizes = Sizes(**{**vars(base), "images": base.images * (1 if args.tiny else 4)})
    cfg = DataConfig(img_size=base.loader_img, num_workers=workers, prefetch_factor=4, decode=args.decode)
    finish = (lambda b: decode_batch(b, device, cfg)["image"]) if args.decode == "gpu" else (lambda b: b["image"])
    batch = 4 if args.tiny else 64
    with tempfile.TemporaryDirectory() as tmp:
        store, images = make_data(Path(tmp), sizes)
        ds = build_dataset(cfg, store, images, seed=0)
        passes = 2 if args.tiny else 3
        items = [(p % len(ds), p // len(ds)) for p in range(len(ds) * passes)]
        batches = iter(DataLoader(ds, batch_size=batch, sampler=items, drop_last=True, **loader_kwargs(cfg)))
        finish(next(batches))  # worker start-up excluded
        start, count = time.perf_counter(), 0
        for b in batches:
            count += len(finish(b))
        if device.type == "cuda":
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
    return {"workers": workers, "images_s": count / elapsed, "decode": args.decode, "device": str(device)}


def _override(item: str) -> tuple[str, object]:
    """'key=value' → (key, JSON value, or the plain string)."""
    key, _, text = item.partition("=")
    try:
        return key, json.loads(text)
    except ValueError:
        return key, text


def report(results: dict, loader: dict | None, arch: str, args, device: torch.device) -> str:
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    ref = "mae" if "mae" in results else next(iter(results))
    ref_s = results[ref]["step_s"]
    lines = [
        f"{arch} on {name}, batch {args.batch}, {'bf16 autocast' if device.type == 'cuda' else 'fp32'}, "
        f"median of {args.steps} steps after {args.warmup} warm-up, overrides {args.overrides or 'none'}",
        f"  {'mode':10s} {'ms/step':>9s} {'images/s':>10s} {'peak GiB':>9s} {'vs ' + ref:>7s}",
    ]
    for mode, r in results.items():
        lines.append(
            f"  {mode:10s} {r['step_s'] * 1e3:9.1f} {r['images_s']:10.1f} {r['peak_gib']:9.2f} "
            f"{r['step_s'] / ref_s:6.2f}x"
        )
    if loader and "c2fmae" in results:
        lines.append(
            f"loader (decode {loader['decode']} on {loader['device']}): {loader['images_s']:.0f} "
            f"images/s with {loader['workers']} workers "
            f"({loader['images_s'] / results['c2fmae']['images_s']:.2f}x the c2fmae step rate)"
        )
    return "\n".join(lines)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny model on the CPU (smoke test)")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="model config override for every mode, e.g. input_fusion=sum",
    )
    parser.add_argument("--no-loader", action="store_true", help="skip the loader measurement")
    parser.add_argument("--profile", choices=MODES, help="also print the op profile of this mode")
    parser.add_argument(
        "--decode",
        choices=("cpu", "gpu"),
        default="cpu",
        help="the loader's data.decode (gpu: batches decoded on the device)",
    )
    args = parser.parse_args(argv)
    args.overrides = dict(_override(item) for item in args.set)
    if args.tiny:
        args.batch, args.steps, args.warmup = min(args.batch, 4), min(args.steps, 2), 1
    arch = "vit_tiny_cpu" if args.tiny else "vit_base_patch16"
    device = torch.device("cuda" if torch.cuda.is_available() and not args.tiny else "cpu")
    if args.decode == "gpu" and device.type != "cuda" and not args.tiny:
        parser.error("--decode gpu needs CUDA (under --tiny it runs on the CPU)")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    results = {mode: bench_mode(mode, arch, args, device) for mode in args.modes}
    loader = None if args.no_loader else bench_loader(args, device)
    print(report(results, loader, arch, args, device))
    if args.profile:
        print(profile_mode(args.profile, arch, args, device))
    return {"modes": results, "loader": loader}


if __name__ == "__main__":
    main()
