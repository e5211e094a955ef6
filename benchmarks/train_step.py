"""Training on the CPU at tiny size: step time per model mode, loader throughput, data-wait fraction.

All numbers come from one run, measured side by side (interleaved repeats in alternating order,
medians); on shared 2-core machines read the ratios, not the absolute times.
- step: forward + backward + AdamW of the tiny model in modes c2fmae, parallel and mae, and c2fmae
  with the comparison's switches (modality dropout 0.5, a token budget of MAE's visible tokens,
  the loss probe on every step), each as a ratio to mae;
- loader: images/s of the store dataset (a batch per call, as the DataLoader asks, with one
  batched mask read; item by item; with JPEG draft off) against the old canvas path (RGB shrunk
  onto the label canvas, then cropped: what the loader did before it cut the RGB from the original)
  and a PIL-per-file baseline reading the same JPEGs plus one PNG per mask per image (MultiMAE's
  published layout) with the same augmentation, in one process; the store's mask reads alone,
  batched and one by one; and the same readers over a few large photos (1.5-3 k px a side), where
  JPEG draft decoding matters;
- wait: the fraction of a short c2fmae training loop spent waiting for the DataLoader.

    .venv/bin/python benchmarks/train_step.py [--tiny] [--images 256] [--repeats 5] [--steps-only]
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from dataset_tools.synthetic import LABEL_SPACE, image_result, synth_image  # noqa: E402
from datasets_spec import create_store, open_store, write_shard  # noqa: E402
from datasets_spec.decode import decode_crop, decode_image  # noqa: E402
from datasets_spec.geometry import image_to_canvas, resize_labels  # noqa: E402
from training.data import DataConfig, StoreDataset, build_dataset, loader_kwargs  # noqa: E402
from training.data.transforms import draw, normalize, sample_crop  # noqa: E402
from training.masking import num_keep  # noqa: E402
from training.models import create_model, model_config  # noqa: E402

MODES = ("c2fmae", "parallel", "mae")
BASELINE = "PIL per file (MultiMAE layout)"
STORE_BATCHED = "store dataset, a batch per call"
NO_DRAFT = "store dataset, batch, JPEG draft off"
CANVAS = "old canvas path, a batch per call"
RATIOS = {
    "RGB from the original vs old canvas path": (STORE_BATCHED, CANVAS),
    "JPEG draft on vs off": (STORE_BATCHED, NO_DRAFT),
}  # speed-ups: other's time / fast's time
MASKS_BATCHED = "  masks only, a batch per read"
MASKS_ONE = "  masks only, one by one"
ARCH = "vit_tiny_cpu"
FLOPS_ARCH = "vit_base_patch16"  # --flops: the paper's size, counted rather than timed


def step_rows(arch: str) -> dict[str, tuple[str, dict, bool]]:
    """name -> (model name prefix, model overrides, run the loss probe before backward); the
    token budget is MAE's visible tokens at ``arch`` (16 of 64 for vit_tiny_cpu, 49 of 196 at ViT-B)."""
    keep = num_keep(model_config(f"mae_{arch}").num_patches, 0.75)
    return {
        **{mode: (mode, {}, False) for mode in MODES},
        "c2fmae, modality dropout 0.5": ("c2fmae", {"modality_dropout": 0.5}, False),
        f"c2fmae, token budget {keep}": ("c2fmae", {"token_budget": keep}, False),
        "c2fmae, budget + dropout 0.5": ("c2fmae", {"token_budget": keep, "modality_dropout": 0.5}, False),
        "c2fmae, input_fusion sum": ("c2fmae", {"input_fusion": "sum"}, False),
        "c2fmae, loss probe every step": ("c2fmae", {}, True),
    }


STEP_ROWS = step_rows(ARCH)


@dataclass
class Sizes:
    images: int
    side: tuple[int, int]  # original image sides drawn from [lo, hi]
    canvas: int
    loader_img: int  # crop size of the loader comparison
    batch: int
    repeats: int
    wait_steps: int
    workers: int
    large_images: int = 16  # the large-photo set
    large_side: tuple[int, int] = (1500, 3000)


FULL = Sizes(images=256, side=(300, 500), canvas=256, loader_img=224, batch=32, repeats=5, wait_steps=24, workers=2)
TINY = Sizes(
    images=12,
    side=(48, 96),
    canvas=64,
    loader_img=64,
    batch=2,
    repeats=2,
    wait_steps=2,
    workers=1,
    large_images=2,
    large_side=(300, 400),
)


def make_data(root: Path, sizes: Sizes, seed: int = 0, large: bool = False) -> tuple[Path, Path]:
    """JPEGs under root/images, their store at root/store, and PNG masks per image (MultiMAE).
    large: the large-photo set (sizes.large_images of sizes.large_side)."""
    rng = np.random.default_rng(seed)
    images = root / "images"
    for sub in ("synth", "semseg", "instance"):
        (images / sub).mkdir(parents=True)
    keys, results = [], []
    count, side = (sizes.large_images, sizes.large_side) if large else (sizes.images, sizes.side)
    for i in range(count):
        h, w = (int(v) for v in rng.integers(side[0], side[1] + 1, 2))
        rgb, semantic, instance = synth_image(rng, h, w)
        keys.append(f"synth/{i:06d}.jpg")
        cv2.imwrite(str(images / keys[-1]), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
        cv2.imwrite(str(images / f"semseg/{i:06d}.png"), semantic.astype(np.uint8))
        cv2.imwrite(str(images / f"instance/{i:06d}.png"), instance.astype(np.uint16))
        results.append(image_result(semantic, instance, sizes.canvas))
    store = root / "store"
    shard_size = max(1, count // 4)
    layout = create_store(
        store, keys, [-1] * len(keys), label_space=LABEL_SPACE, canvas=sizes.canvas, shard_size=shard_size
    )
    for shard in range(layout.num_shards):
        start, stop = layout.shard_range(shard)
        write_shard(store, shard, results[start:stop])
    return store, images


class PerFileDataset:
    """The baseline: PIL decodes the JPEG and one PNG per mask at original size; same augmentation."""

    def __init__(self, cfg: DataConfig, images: Path, seed: int):
        self.cfg, self.images, self.seed = cfg, images, seed

    def __getitem__(self, item) -> dict:
        pos, epoch = item
        semantic = np.asarray(Image.open(self.images / f"semseg/{pos:06d}.png")).astype(np.int64)
        instance = np.asarray(Image.open(self.images / f"instance/{pos:06d}.png")).astype(np.int64)
        box, flip = draw(np.random.default_rng([self.seed, epoch, pos]), semantic.shape, self.cfg)
        size = self.cfg.img_size
        rgb = decode_crop(
            self.images / f"synth/{pos:06d}.jpg", box, (size, size), semantic.shape, draft=self.cfg.jpeg_draft
        )
        top, left, h, w = box
        sem, inst = (resize_labels(m[top : top + h, left : left + w], size, size) for m in (semantic, instance))
        if flip:
            rgb, sem, inst = rgb[:, ::-1], sem[:, ::-1], inst[:, ::-1]
        return {
            "image": torch.from_numpy(normalize(rgb, self.cfg.mean, self.cfg.std)),
            "semantic": torch.from_numpy(sem.copy()),
            "instance": torch.from_numpy(inst.copy()),
            "index": torch.tensor(pos),
        }


class CanvasPathDataset(StoreDataset):
    """The loader before RGB came from the original: the whole image decoded and shrunk onto the
    label canvas (area filter), the crop sampled in the valid region of the canvas, the RGB resized
    bilinearly (area filter past 1.5× shrink), the masks by nearest. Kept here for comparison."""

    def _sample(self, pos, epoch, semantic, instance) -> dict:
        index, size, (vh, vw) = int(self.indices[pos]), self.cfg.img_size, self.valid_hw[pos]
        canvas = image_to_canvas(decode_image(self.image_path(pos)), semantic.shape[0])
        rng = np.random.default_rng([self.seed, epoch, index])
        top, left, h, w = sample_crop(rng, int(vh), int(vw), self.cfg.scale, self.cfg.ratio)
        area = min(h, w) > 1.5 * size
        rgb = cv2.resize(
            canvas[top : top + h, left : left + w],
            (size, size),
            interpolation=cv2.INTER_AREA if area else cv2.INTER_LINEAR,
        )
        sem, inst = (
            resize_labels(m[top : top + h, left : left + w].astype(np.int64), size, size) for m in (semantic, instance)
        )
        if rng.random() < self.cfg.hflip:
            rgb, sem, inst = rgb[:, ::-1], sem[:, ::-1], inst[:, ::-1]
        return {
            "image": torch.from_numpy(normalize(rgb, self.cfg.mean, self.cfg.std)),
            "semantic": torch.from_numpy(sem.copy()),
            "instance": torch.from_numpy(inst.copy()),
            "index": torch.tensor(index),
        }


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench_loaders(
    store: Path, images: Path, sizes: Sizes, n: int, with_masks: bool = True
) -> tuple[dict[str, float], dict[str, float]]:
    """images/s of each reader over all `n` images, one process, repeats interleaved (one epoch each),
    and the ratios RATIOS as medians over repeats of each repeat's pair of passes (run back to back,
    so a load change on a shared machine hits both)."""
    cfg = DataConfig(img_size=sizes.loader_img, num_workers=0)
    ds = build_dataset(cfg, store, images, seed=0)
    no_draft = build_dataset(
        DataConfig(img_size=sizes.loader_img, num_workers=0, jpeg_draft=False), store, images, seed=0
    )
    canvas = CanvasPathDataset(cfg, store, images, seed=0)
    masks = open_store(store)
    baseline = PerFileDataset(cfg, images, seed=0)
    b = sizes.batch
    batches = [list(range(start, min(n, start + b))) for start in range(0, n, b)]
    passes = {
        NO_DRAFT: lambda e: [no_draft.__getitems__([(p, e) for p in batch]) for batch in batches],
        STORE_BATCHED: lambda e: [ds.__getitems__([(p, e) for p in batch]) for batch in batches],
        CANVAS: lambda e: [canvas.__getitems__([(p, e) for p in batch]) for batch in batches],
        "store dataset, one item per call": lambda e: [ds[(p, e)] for p in range(n)],
        BASELINE: lambda e: [baseline[(p, e)] for p in range(n)],
    }
    if with_masks:
        passes[MASKS_BATCHED] = lambda e: [masks.read_masks(batch) for batch in batches]
        passes[MASKS_ONE] = lambda e: [masks.read_masks([p]) for p in range(n)]
    for fn in passes.values():  # warm file and shard-index caches, untimed
        fn(0)
    times = {name: [] for name in passes}
    for epoch in range(1, sizes.repeats + 1):
        for name in _order(passes, epoch):
            times[name].append(_timed(functools.partial(passes[name], epoch)))
    ratios = {
        label: statistics.median(o / f for f, o in zip(times[fast], times[other]))
        for label, (fast, other) in RATIOS.items()
    }
    return {name: n / statistics.median(t) for name, t in times.items()}, ratios


def _order(names, repeat: int) -> list:
    """Forward on even repeats, backward on odd ones: drifting machine load hits all alike."""
    names = list(names)
    return names if repeat % 2 == 0 else names[::-1]


def _batch(store: Path, images: Path, sizes: Sizes) -> dict:
    """One collated batch of `sizes.batch` samples at the tiny model's 64 × 64 input."""
    ds = build_dataset(DataConfig(img_size=64, num_workers=0), store, images, seed=0)
    samples = ds.__getitems__([(p % len(ds), 0) for p in range(sizes.batch)])
    return {k: torch.stack([s[k] for s in samples]) for k in samples[0]}


def bench_steps(batch: dict, num_classes: int, repeats: int) -> tuple[dict[str, float], dict[str, float]]:
    """(median seconds of one optimizer step, median over repeats of its ratio to that repeat's mae
    step) per row of STEP_ROWS; rows interleaved within each repeat (alternating order), so
    machine load hits every row alike, and paired ratios cancel load that drifts between repeats."""
    n = batch["image"].shape[0]
    models, optims = {}, {}
    for name, (prefix, overrides, _) in STEP_ROWS.items():
        torch.manual_seed(0)
        models[name] = create_model(f"{prefix}_{ARCH}", num_classes=num_classes, **overrides)
        optims[name] = torch.optim.AdamW(models[name].parameters(), lr=1e-4, betas=(0.9, 0.95))
    strategy = torch.arange(n) % 3
    gen = torch.Generator().manual_seed(0)

    def step(name):
        out = models[name](batch, strategy, gen)
        if STEP_ROWS[name][2]:
            models[name].loss_probe(batch, strategy, out)
        optims[name].zero_grad(set_to_none=True)
        out["loss"].backward()
        optims[name].step()

    for name in STEP_ROWS:  # warm-up
        step(name)
    times = {name: [] for name in STEP_ROWS}
    for repeat in range(repeats):
        for name in _order(STEP_ROWS, repeat):
            times[name].append(_timed(functools.partial(step, name)))
    medians = {name: statistics.median(t) for name, t in times.items()}
    ratios = {name: statistics.median(a / b for a, b in zip(t, times["mae"])) for name, t in times.items()}
    return medians, ratios


def count_flops(rows: dict[str, tuple[str, dict, bool]], arch: str, n: int = 4) -> dict[str, float]:
    """FLOPs per image of forward + backward (``torch.utils.flop_counter``: matmuls and
    convolutions; attention runs as plain matmuls, the math backend, so that it is counted) per
    row at ``arch``, on a random batch of ``n`` 150-class label maps."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    size = model_config(f"mae_{arch}").img_size
    g = torch.Generator().manual_seed(0)
    batch = {
        "image": torch.randn(n, 3, size, size, generator=g),
        "semantic": torch.randint(0, 150, (n, size, size), generator=g),
        "instance": torch.randint(0, 6, (n, size, size), generator=g),
    }
    flops = {}
    for name, (prefix, overrides, probe) in rows.items():
        torch.manual_seed(0)
        model = create_model(f"{prefix}_{arch}", num_classes=150, **overrides)
        strategy = torch.arange(n) % 3
        with FlopCounterMode(display=False) as counter, sdpa_kernel(SDPBackend.MATH):
            out = model(batch, strategy, torch.Generator().manual_seed(1))
            if probe:
                model.loss_probe(batch, strategy, out)
            out["loss"].backward()
        flops[name] = counter.get_total_flops() / n
    return flops


def bench_wait(store: Path, images: Path, sizes: Sizes, num_classes: int) -> tuple[float, float]:
    """(fraction of loop time spent waiting for batches, steps/s) of a short c2fmae loop."""
    cfg = DataConfig(img_size=64, num_workers=sizes.workers, prefetch_factor=2)
    ds = build_dataset(cfg, store, images, seed=0)
    items = [(p % len(ds), p // len(ds)) for p in range(sizes.batch * (sizes.wait_steps + 1))]
    loader = DataLoader(ds, batch_size=sizes.batch, sampler=items, **loader_kwargs(cfg))
    model = create_model(f"c2fmae_{ARCH}", num_classes=num_classes)
    optim = torch.optim.AdamW(model.parameters(), lr=1e-4)
    gen = torch.Generator().manual_seed(0)
    batches = iter(loader)
    next(batches)  # worker start-up is not part of the steady state
    waited, start = 0.0, time.perf_counter()
    for _ in range(sizes.wait_steps):
        t = time.perf_counter()
        batch = next(batches)
        waited += time.perf_counter() - t
        out = model(batch, torch.arange(len(batch["index"])) % 3, gen)
        optim.zero_grad(set_to_none=True)
        out["loss"].backward()
        optim.step()
    total = time.perf_counter() - start
    return waited / total, sizes.wait_steps / total


def run(sizes: Sizes, steps_only: bool = False) -> dict:
    """All measurements in one temporary directory; returns them as a dict (steps_only: the step
    table alone)."""
    with tempfile.TemporaryDirectory() as tmp:
        store, images = make_data(Path(tmp) / "small", sizes)
        num_classes = max(LABEL_SPACE) + 1
        steps, step_ratios = bench_steps(_batch(store, images, sizes), num_classes, sizes.repeats)
        if steps_only:
            return {"steps": steps, "step_ratios": step_ratios}
        loaders, ratios = bench_loaders(store, images, sizes, sizes.images)
        large, large_ratios = bench_loaders(
            *make_data(Path(tmp) / "large", sizes, large=True), sizes, sizes.large_images, with_masks=False
        )
        wait, steps_per_s = bench_wait(store, images, sizes, num_classes)
    return {
        "loaders": loaders,
        "ratios": ratios,
        "large_loaders": large,
        "large_ratios": large_ratios,
        "steps": steps,
        "step_ratios": step_ratios,
        "wait_fraction": wait,
        "loop_steps_per_s": steps_per_s,
    }


def report(result: dict, sizes: Sizes) -> str:
    """The printed table: values and ratios."""
    lines = _step_table(result["steps"], result["step_ratios"], sizes)
    if "loaders" not in result:
        return "\n".join(lines)
    lines += _loader_table(
        result["loaders"],
        result["ratios"],
        f"loader, one process, {sizes.images} images of "
        f"{sizes.side[0]}-{sizes.side[1]} px, crop {sizes.loader_img}, batch {sizes.batch}",
    )
    one_by_one = result["loaders"][MASKS_BATCHED] / result["loaders"][MASKS_ONE]
    lines.append(f"  batched mask reads vs one by one: {one_by_one:.2f}x")
    lines += _loader_table(
        result["large_loaders"],
        result["large_ratios"],
        f"loader, large photos: {sizes.large_images} images of "
        f"{sizes.large_side[0]}-{sizes.large_side[1]} px, same settings",
    )
    lines.append(
        f"loop, c2fmae, {sizes.workers} loader worker(s): data-wait fraction "
        f"{result['wait_fraction']:.2f}, {result['loop_steps_per_s']:.2f} steps/s"
    )
    return "\n".join(lines)


def _step_table(steps: dict[str, float], ratios: dict[str, float], sizes: Sizes) -> list[str]:
    """Rows of the step comparison: ms per step and the ratio to mae (median of paired repeats)."""
    lines = [
        f"step, {ARCH} (64 tokens), batch {sizes.batch}, forward+backward+AdamW (median of {sizes.repeats})",
        f"  {'model':36s} {'ms/step':>10s} {'vs mae':>8s}",
    ]
    return lines + [f"  {name:36s} {t * 1e3:10.1f} {ratios[name]:8.2f}x" for name, t in steps.items()]


def _loader_table(loaders: dict, ratios: dict, title: str) -> list[str]:
    """Rows of one loader comparison, with the ratios of the new path to the old and of draft on/off."""
    base = loaders[BASELINE]
    lines = [title, f"  {'reader':34s} {'images/s':>10s} {'vs PIL':>8s}"]
    for name, ips in loaders.items():
        ratio = "" if name.startswith("  masks") else f"{ips / base:8.2f}x"
        lines.append(f"  {name:34s} {ips:10.1f} {ratio}")
    lines.append(
        "  " + "; ".join(f"{label}: {ratio:.2f}x" for label, ratio in ratios.items()) + " (median of paired repeats)"
    )
    return lines


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="seconds-long smoke run (tests)")
    parser.add_argument("--images", type=int, help="images in the generated dataset")
    parser.add_argument("--repeats", type=int, help="interleaved repeats per measurement")
    parser.add_argument("--steps-only", action="store_true", help="the step table alone (no loader runs)")
    parser.add_argument("--flops", action="store_true", help=f"count each step row's FLOPs at {FLOPS_ARCH} instead")
    args = parser.parse_args(argv)
    if args.flops:
        flops = count_flops(step_rows(FLOPS_ARCH), FLOPS_ARCH)
        print(f"FLOPs per image, forward + backward, {FLOPS_ARCH}, counted")
        print("\n".join(f"  {name:36s} {f / 1e9:8.1f} G {f / flops['mae']:6.2f}x" for name, f in flops.items()))
        return {"flops": flops}
    sizes = TINY if args.tiny else FULL
    sizes = Sizes(**{**vars(sizes), **{k: v for k, v in (("images", args.images), ("repeats", args.repeats)) if v}})
    torch.manual_seed(0)
    result = run(sizes, args.steps_only)
    print(report(result, sizes))
    return result


if __name__ == "__main__":
    main()
