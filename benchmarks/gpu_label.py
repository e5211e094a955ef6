"""One GPU: the labeling path at real model sizes (random weights) in images/s, next to SAM's AMG.

GPU machine (fill .gpu_wheels/ here first with `bash benchmarks/gpu_wheels.sh download`; carry it):
    bash benchmarks/gpu_wheels.sh install &&
        PYTHONPATH=.gpu_site:. PYTHONUNBUFFERED=1 python3 benchmarks/gpu_label.py --json $OUT/gpu_label.json
CPU smoke run (tiny models, same code path; it measures nothing, so it judges no goal):
    .venv/bin/python benchmarks/gpu_label.py --tiny

Models (random weights, nothing downloaded): Mask2Former with a Swin-L backbone (ADE-150 labels,
100 queries, 640 short side), Grounding DINO-T (Swin-T + BERT-base, 800 short side) with a BERT
tokenizer built from a small vocabulary, SAM vit_h. Inputs: 500×375 photos (every 4th one 375×500).
Stages, each through the project's own classes, in bf16 autocast on CUDA, capped by --budget-s:
  (a) semantic     HFSemantic.predict on batches of decoded images
  (b) grounded     GroundedSAM.predict: DINO boxes → SAM, one encoder pass per image, boxes batched
  (c) pipeline     ShardLabeler.label_shard: JPEG decode on threads + (a) + (b) + fusion + shard write
  (d) sam-amg      SamAMG.predict one image at a time, 32×32 grid, float32 (the naive reference)
plus references: SAM's image encoder alone (the floor of (b)) with its attention through SDPA (what
the backends run) and segment-anything's original attention, its FLOPs per image (counted by
torch's FlopCounterMode on the original) and the achieved TFLOP/s as a share of the card's bf16
dense peak; SAM's box decoding for a batch in one call (what the backends run) vs one call per
image; fusion alone (CPU, inline in (c)); and the two image processors on the CPU (as the backends
call them) and with `device=` on the GPU. Opt-in stage `encoder-compiled`: the SDPA encoder under
torch.compile (its compile time is not counted, but it takes minutes on vit_h).
Random weights make DINO's scores meaningless, so its thresholds are 0 and `--max-boxes` boxes per
image reach SAM (20, the backend default: more than ImageNet's usual 1–5, so (b) is pessimistic).
AMG's quality filters reject random masks, which skips its RLE/NMS work: its time is optimistic.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers is imported
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

import numpy as np  # noqa: E402
import torch  # noqa: E402

from plumbing.errors import one_line  # noqa: E402

IMAGENET_TRAIN = 1_281_167
GPUS = 8
GOAL_IMAGES_S = 15.0  # issue 3: ImageNet in < 3 h on 8 H100s
SMOKE_NOTE = "smoke run (--tiny): tiny random models check that the benchmark works and measure nothing; no goal judged"
BF16_PEAK_TFLOPS = {"H100 PCIe": 756.0, "H100": 989.0, "H200": 989.0}  # dense; "H100" = SXM
CLASS_NAMES = ["tabby cat", "goldfish", "crane bird", "golden retriever", "fire truck", "coffee mug", "volcano"]


@dataclass
class Sizes:
    """Everything that differs between the real run and the CPU smoke run."""

    image_hw: tuple[int, int] = (375, 500)  # ImageNet's most common size
    batch: int = 8  # images per model call (LabelConfig.batch_size default)
    semantic_size: dict = field(default_factory=lambda: {"shortest_edge": 640, "longest_edge": 2560})
    detector_size: dict = field(default_factory=lambda: {"shortest_edge": 800, "longest_edge": 1333})
    canvas: int = 256
    shard_size: int = 128  # LabelConfig default
    shards: int = 12  # the store's size; the pipeline stage stops at its budget or here
    amg_images: int = 3
    amg_grid: int = 32  # points per side (SamAutomaticMaskGenerator default)
    budget_s: float = 25.0  # per stage; the references get a quarter
    device: str = "cuda"


TINY = Sizes(
    image_hw=(75, 100),
    batch=4,
    semantic_size={"shortest_edge": 64, "longest_edge": 96},
    detector_size={"shortest_edge": 64, "longest_edge": 96},
    canvas=64,
    shard_size=8,
    shards=4,
    amg_images=1,
    amg_grid=8,
    budget_s=2.0,
    device="cpu",
)


@dataclass
class Row:
    """One line of the table: `images` processed in `seconds` (timed calls only), or an error."""

    name: str
    images: int = 0
    seconds: float = 0.0
    note: str = ""
    peak_gib: float | None = None
    error: str | None = None

    @property
    def images_s(self) -> float | None:
        return self.images / self.seconds if self.seconds > 0 else None


# ---------------------------------------------------------------- models (random weights) ----


def build_mask2former(tiny: bool, sizes: Sizes):
    """(Mask2FormerForUniversalSegmentation, its image processor): Swin-L backbone and ADE20K's 150
    classes, or the tiny one with 6 (labeling/backends/random_models.py)."""
    from transformers import Mask2FormerForUniversalSegmentation, Mask2FormerImageProcessor

    from labeling.backends.random_models import mask2former_config

    config = mask2former_config(6 if tiny else 150, "ade", tiny=tiny)
    return Mask2FormerForUniversalSegmentation(config), Mask2FormerImageProcessor(size=sizes.semantic_size)


def build_grounding_dino(tiny: bool, sizes: Sizes):
    """(GroundingDinoForObjectDetection, GroundingDinoProcessor): DINO-T defaults, or a tiny one.
    The BERT tokenizer's vocabulary is the class names' words (others → [UNK]); the full text encoder
    keeps BERT-base's 30522-entry embedding table."""
    from transformers import GroundingDinoForObjectDetection, GroundingDinoImageProcessor, GroundingDinoProcessor

    from labeling.backends.random_models import grounding_dino_config, word_tokenizer

    tokenizer = word_tokenizer(sorted({w for name in CLASS_NAMES for w in name.split()}))
    processor = GroundingDinoProcessor(
        image_processor=GroundingDinoImageProcessor(size=sizes.detector_size), tokenizer=tokenizer
    )
    return GroundingDinoForObjectDetection(grounding_dino_config(tokenizer.vocab_size, tiny=tiny)), processor


def build_sam(tiny: bool) -> torch.nn.Module:
    """segment-anything Sam: vit_h (636M parameters), or depth-2 width-64 at 256² for --tiny."""
    from segment_anything import sam_model_registry

    from labeling.backends.random_models import tiny_sam

    return tiny_sam(width=64, dim=32) if tiny else sam_model_registry["vit_h"](checkpoint=None).eval()


def save_hf(built, directory: Path) -> str:
    """(model, processor) → save_pretrained into `directory` (the hf/grounded backends load paths)."""
    model, processor = built
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return str(directory)


# ---------------------------------------------------------------- inputs ----


def sample_images(count: int, hw: tuple[int, int]) -> list[np.ndarray]:
    """`count` RGB uint8 images [H, W, 3] at hw (every 4th one transposed): skimage photos, else noise."""
    import cv2

    try:
        from skimage import data

        photos = [getattr(data, n)()[:, :, :3] for n in ("astronaut", "chelsea", "coffee", "rocket")]
    except Exception:  # noqa: BLE001 — scikit-image missing or broken: smooth noise will do
        rng = np.random.default_rng(0)
        photos = [cv2.GaussianBlur(rng.integers(0, 255, (hw[0], hw[1], 3), dtype=np.uint8), (0, 0), 5)]
    out = []
    for i in range(count):
        h, w = hw[::-1] if i % 4 == 3 else hw
        out.append(np.ascontiguousarray(cv2.resize(photos[i % len(photos)], (w, h), interpolation=cv2.INTER_AREA)))
    return out


def write_jpegs(images: list[np.ndarray], root: Path, count: int) -> list:
    """`count` JPEG files under root (hard links to one file per image, quality 90) → ImageItems."""
    import cv2

    from labeling.sources import ImageItem

    sources = []
    for i, image in enumerate(images):
        path = root / f"source_{i}.JPEG"
        path.write_bytes(cv2.imencode(".jpg", image[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes())
        sources.append(path)
    items = []
    for i in range(count):
        key = f"img_{i:06d}.JPEG"
        os.link(sources[i % len(sources)], root / key)
        items.append(ImageItem(key, 0, CLASS_NAMES[i % len(CLASS_NAMES)]))
    return items


# ---------------------------------------------------------------- timing ----


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(step, device: torch.device, budget_s: float, warmup: int = 1, max_calls: int | None = None) -> list[float]:
    """Call step() `warmup` times untimed, then timed (synchronized) until one more call would pass
    `budget_s` counted from the first warm-up, or `max_calls`; at least one timed call. → seconds each."""
    start = time.perf_counter()
    for _ in range(warmup):
        step()
    times: list[float] = []
    while not times or (
        time.perf_counter() - start + float(np.median(times)) <= budget_s
        and (max_calls is None or len(times) < max_calls)
    ):
        synchronize(device)
        t0 = time.perf_counter()
        step()
        synchronize(device)
        times.append(time.perf_counter() - t0)
    return times


def stage(rows: list[Row], name: str, device: torch.device, fn) -> None:
    """Run one stage → Row appended; an exception becomes a one-line error and the run goes on."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    try:
        row = fn()
    except Exception as exc:  # noqa: BLE001 — report and go on with the next stage
        where = traceback.extract_tb(exc.__traceback__)[-1]
        row = Row(name, error=f"{one_line(exc, named=True, limit=200)} ({Path(where.filename).name}:{where.lineno})")
        print(f"stage {name!r} failed: {row.error}", flush=True)
    if device.type == "cuda":
        row.peak_gib = torch.cuda.max_memory_allocated(device) / 2**30
    rows.append(row)


# ---------------------------------------------------------------- stages ----


@dataclass
class Setup:
    """What the stages share: sizes, device, a scratch dir, decoded images and the built models."""

    sizes: Sizes
    device: torch.device
    work: Path
    max_boxes: int
    images: list[np.ndarray] = field(default_factory=list)
    semantic_dir: str | None = None
    detector_dir: str | None = None
    sam: torch.nn.Module | None = None
    original_encoder: torch.nn.Module | None = None  # SAM's encoder with segment-anything's own attention
    last: dict = field(default_factory=dict)  # the last outputs of (a) and (b), for the fusion reference

    def need(self, *names: str) -> None:
        missing = [n for n in names if getattr(self, n) is None]
        if missing:
            raise RuntimeError(f"not built: {', '.join(missing)}")

    def semantic_params(self) -> dict:
        return {"model": self.semantic_dir, "batch_size": self.sizes.batch, "device": str(self.device)}

    def grounded_params(self) -> dict:
        """Thresholds 0: random scores would otherwise keep an arbitrary number of boxes."""
        return {
            "detector": self.detector_dir,
            "sam_model": self.sam,
            "sam_variant": "sam",
            "box_threshold": 0.0,
            "text_threshold": 0.0,
            "max_boxes": self.max_boxes,
            "batch_size": self.sizes.batch,
            "device": str(self.device),
        }


def canvas_sizes(images: list[np.ndarray], canvas: int) -> list[tuple[int, int]]:
    from datasets_spec.geometry import fit

    return [fit(image.shape[0], image.shape[1], canvas) for image in images]


def bench_semantic(s: Setup) -> Row:
    """(a) HFSemantic.predict on one batch of decoded images → class maps [h, w] on the canvas."""
    from labeling.backends import create_backend

    s.need("semantic_dir")
    t0 = time.perf_counter()
    backend = create_backend("semantic", "hf", **s.semantic_params())
    load = time.perf_counter() - t0
    images = s.images[: s.sizes.batch]
    sizes, out = canvas_sizes(images, s.sizes.canvas), {}
    times = measure(lambda: out.update(maps=backend.predict(images, sizes)), s.device, s.sizes.budget_s)
    s.last["semantic"] = out["maps"]
    note = f"batch {len(images)}, short side {s.sizes.semantic_size['shortest_edge']}, load {load:.0f} s"
    return Row("(a) semantic: Mask2Former", len(images) * len(times), sum(times), note)


def bench_grounded(s: Setup) -> Row:
    """(b) GroundedSAM.predict: DINO-T boxes from the class prompt → SAM vit_h masks at original size."""
    from labeling.backends import create_backend

    s.need("detector_dir", "sam")
    t0 = time.perf_counter()
    backend = create_backend("instance", "grounded", **s.grounded_params())
    load = time.perf_counter() - t0
    images = s.images[: s.sizes.batch]
    prompts = [[CLASS_NAMES[i % len(CLASS_NAMES)]] for i in range(len(images))]
    out = {}
    times = measure(lambda: out.update(found=backend.predict(images, prompts)), s.device, s.sizes.budget_s)
    s.last["instances"] = out["found"]
    boxes = np.mean([len(found) for found in out["found"]])
    note = f"batch {len(images)}, {boxes:.1f} boxes/image, load {load:.0f} s"
    return Row("(b) grounded: DINO boxes + SAM masks", len(images) * len(times), sum(times), note)


def bench_encoder(s: Setup, name: str, encoder: torch.nn.Module) -> Row:
    """SAM's image encoder alone on [B, 3, S, S] (S = 1024 for vit_h), bf16 on CUDA."""
    side = encoder.img_size
    batch = torch.randn(s.sizes.batch, 3, side, side, device=s.device)

    @torch.inference_mode()
    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=s.device.type == "cuda"):
            encoder(batch)

    times = measure(step, s.device, s.sizes.budget_s / 4)
    return Row(name, s.sizes.batch * len(times), sum(times), f"batch {s.sizes.batch}, {side}²")


def bench_sam_encoder(s: Setup) -> Row:
    """Reference: the encoder as the backends run it (attention through SDPA); also counts its FLOPs
    per image on the original encoder (FlopCounterMode does not see every fused kernel)."""
    from labeling.backends.sam_sdpa import fuse_attention

    s.need("sam", "original_encoder")
    s.last["encoder_flops"] = encoder_flops(s.original_encoder.to(s.device))
    return bench_encoder(s, "(ref) SAM image encoder, SDPA (default)", fuse_attention(s.sam.to(s.device).image_encoder))


def bench_original_encoder(s: Setup) -> Row:
    """Reference: the same weights with segment-anything's own attention (scores written out)."""
    s.need("original_encoder")
    return bench_encoder(s, "(ref) SAM image encoder, original attention", s.original_encoder.to(s.device))


def bench_compiled_encoder(s: Setup) -> Row:
    """Opt-in: the SDPA encoder under torch.compile (a copy; compiled during the warm-up call)."""
    from labeling.backends.sam_sdpa import fuse_attention

    s.need("sam")
    compiled = fuse_attention(copy.deepcopy(s.sam.image_encoder).to(s.device), compile=True)
    return bench_encoder(s, "(ref) SAM image encoder, SDPA + torch.compile", compiled)


def encoder_flops(encoder: torch.nn.Module) -> int:
    """FLOPs of one forward pass of a segment-anything image encoder on one [1, 3, S, S] image, as
    torch.utils.flop_counter counts them (matmuls and convolutions; a multiply-add is 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    device = next(encoder.parameters()).device
    image = torch.zeros(1, 3, encoder.img_size, encoder.img_size, device=device)
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        encoder(image)
    return int(counter.get_total_flops())


def bench_box_decoding(s: Setup, batched: bool) -> Row:
    """Reference: SAM's low-resolution box decoding for a batch of images with `max_boxes` boxes
    each, on random embeddings: all boxes of the batch in one prompt-encoder + mask-decoder call
    (SamBoxes.decode_boxes, what `grounded` runs) or one call per image (the route before)."""
    from labeling.backends.sam_boxes import SamBoxes, _autocast

    s.need("sam")
    sam = s.sam.to(s.device)
    segmenter = SamBoxes(sam, None, s.device)
    count, per_image = s.sizes.batch, s.max_boxes
    gen = torch.Generator(s.device).manual_seed(0)
    embeddings = torch.randn(
        count, sam.prompt_encoder.embed_dim, *sam.prompt_encoder.image_embedding_size, generator=gen, device=s.device
    )
    corners = torch.rand(count * per_image, 2, 2, generator=gen, device=s.device) * sam.image_encoder.img_size
    boxes = corners.sort(dim=1).values.reshape(-1, 4)  # xyxy in model input pixels
    image_of_box = torch.arange(count, device=s.device).repeat_interleave(per_image)

    @torch.inference_mode()
    def one_call():
        segmenter.decode_boxes(embeddings, image_of_box, boxes)

    @torch.inference_mode()
    def per_image_calls():
        for i, part in enumerate(boxes.split(per_image)):
            sparse, dense = sam.prompt_encoder(points=None, boxes=part, masks=None)
            with _autocast(s.device):
                sam.mask_decoder(
                    image_embeddings=embeddings[i : i + 1],
                    image_pe=sam.prompt_encoder.get_dense_pe(),
                    sparse_prompt_embeddings=sparse,
                    dense_prompt_embeddings=dense,
                    multimask_output=False,
                )

    times = measure(one_call if batched else per_image_calls, s.device, s.sizes.budget_s / 4)
    name = "(ref) box decoding, one call per batch" if batched else "(ref) box decoding, one call per image"
    return Row(name, count * len(times), sum(times), f"batch {count}, {per_image} boxes/image, low-res masks")


def bench_fusion(s: Setup) -> Row:
    """Reference: fuse() on (a)'s maps and (b)'s masks, one CPU thread (the pipeline runs it inline)."""
    from labeling.fusion import fuse

    semantic, instances = s.last.get("semantic"), s.last.get("instances")
    if semantic is None or instances is None:
        raise RuntimeError("needs the outputs of stages (a) and (b)")
    images = s.images[: len(semantic)]

    def step():
        for sem, inst, image in zip(semantic, instances, images):
            fuse(sem, inst, image.shape[:2], s.sizes.canvas)

    times = measure(step, s.device, s.sizes.budget_s / 4)
    masks = np.mean([len(inst) for inst in instances])
    return Row("(ref) fusion alone (CPU, 1 thread)", len(images) * len(times), sum(times), f"{masks:.1f} masks/image")


def bench_preprocess(s: Setup, device: str | None = None) -> Row:
    """Reference: the two image processors on one batch ([B, 3, H', W'] float32 each), as the backends
    call them (on the CPU, then copied), or with the processors' `device=` option when given."""
    from transformers import AutoProcessor

    s.need("semantic_dir", "detector_dir")
    semantic = AutoProcessor.from_pretrained(s.semantic_dir)
    detector = AutoProcessor.from_pretrained(s.detector_dir).image_processor
    images, target = s.images[: s.sizes.batch], device or str(s.device)
    kwargs = {"input_data_format": "channels_last", **({"device": device} if device else {})}  # as the backends

    def step():
        for processor in (semantic, detector):
            {k: v.to(target) for k, v in processor(images=images, return_tensors="pt", **kwargs).items()}

    times = measure(step, s.device, s.sizes.budget_s / 4)
    where = f"device={device}" if device else "CPU, then copied"
    return Row(
        f"(ref) Mask2Former + DINO processors, {'GPU' if device else 'CPU'}",
        len(images) * len(times),
        sum(times),
        f"batch {len(images)}, {where}",
    )


def bench_pipeline(s: Setup) -> Row:
    """(c) ShardLabeler.label_shard, as a Ray worker runs it: JPEG files → decode threads → (a) → (b)
    → fusion → whole-shard write into a fresh store. One call = one shard; the first is the warm-up."""
    from datasets_spec import create_store
    from labeling.config import BackendConfig, LabelConfig
    from labeling.worker import ShardLabeler

    s.need("semantic_dir", "detector_dir", "sam")
    cfg = LabelConfig(
        semantic=BackendConfig("hf", s.semantic_params()),
        instance=BackendConfig("grounded", s.grounded_params()),
        canvas=s.sizes.canvas,
        shard_size=s.sizes.shard_size,
        batch_size=s.sizes.batch,
    )
    t0 = time.perf_counter()
    labeler = ShardLabeler(cfg, device=str(s.device))
    load = time.perf_counter() - t0
    root, store = s.work / "jpegs", s.work / "store"
    root.mkdir()
    items = write_jpegs(s.images, root, cfg.shard_size * s.sizes.shards)
    create_store(
        store,
        [it.key for it in items],
        [it.label for it in items],
        label_space=labeler.label_space(),
        canvas=cfg.canvas,
        shard_size=cfg.shard_size,
    )
    shards, failed = iter(range(s.sizes.shards)), []

    def step():
        shard = next(shards)
        part = items[shard * cfg.shard_size : (shard + 1) * cfg.shard_size]
        failed.append(labeler.label_shard(str(store), shard, str(root), part)["failed"])

    times = measure(step, s.device, s.sizes.budget_s, max_calls=s.sizes.shards - 1)
    if sum(failed):
        raise RuntimeError(f"{sum(failed)} images failed in the pipeline")
    note = f"shard {cfg.shard_size}, {cfg.decode_threads} decode threads, load {load:.0f} s"
    return Row("(c) pipeline: decode + a + b + fusion + write", cfg.shard_size * len(times), sum(times), note)


def bench_amg(s: Setup) -> Row:
    """(d) SamAMG.predict, one image per call, default thresholds, 32×32 grid (--tiny: 8×8), float32."""
    from labeling.backends import create_backend

    s.need("sam")
    grid = s.sizes.amg_grid
    backend = create_backend("instance", "sam-amg", sam_model=s.sam, device=str(s.device), points_per_side=grid)
    images = iter(s.images * (s.sizes.amg_images + 1))
    times = measure(
        lambda: backend.predict([next(images)], [[]]), s.device, s.sizes.budget_s, max_calls=s.sizes.amg_images
    )
    return Row("(d) sam-amg: one image per call", len(times), sum(times), f"{grid}×{grid} grid, float32")


STAGES = {  # name → stage, run in this order (fusion reuses the outputs of semantic and grounded)
    "semantic": bench_semantic,
    "grounded": bench_grounded,
    "encoder": bench_sam_encoder,
    "encoder-original": bench_original_encoder,
    "encoder-compiled": bench_compiled_encoder,
    "boxes-batched": lambda s: bench_box_decoding(s, batched=True),
    "boxes-per-image": lambda s: bench_box_decoding(s, batched=False),
    "fusion": bench_fusion,
    "preprocess": bench_preprocess,
    "preprocess-gpu": lambda s: bench_preprocess(s, device=str(s.device)),
    "pipeline": bench_pipeline,
    "amg": bench_amg,
}
CUDA_ONLY = {"preprocess-gpu"}
OPT_IN = {"encoder-compiled"}  # not in the default --stages


# ---------------------------------------------------------------- setup, report, main ----


def build(label: str, fn):
    """fn() timed and printed; an exception → one line, None."""
    t0 = time.perf_counter()
    try:
        built = fn()
    except Exception as exc:  # noqa: BLE001 — the stages that need it report "not built"
        print(f"building {label} failed: {one_line(exc, named=True, limit=200)}")
        return None
    print(f"built {label} in {time.perf_counter() - t0:.1f} s", flush=True)
    return built


def built_on(device: torch.device, fn):
    """fn() with `device` as the default device (random init of ~1B parameters is much faster on the
    GPU); on the CPU if that raises."""
    if device.type != "cuda":
        return fn()
    try:
        with device:
            return fn()
    except Exception as exc:  # noqa: BLE001
        print(f"note: building on {device} failed ({one_line(exc, named=True)}); building on the CPU")
        return fn()


def prepare(setup: Setup, tiny: bool) -> None:
    """Random-weight models: the transformers ones saved to the scratch dir, SAM kept in memory."""
    torch.manual_seed(0)
    setup.images = sample_images(max(setup.sizes.batch, 8), setup.sizes.image_hw)
    device = setup.device
    setup.semantic_dir = build(
        "Mask2Former" + ("" if tiny else " Swin-L"),
        lambda: save_hf(built_on(device, lambda: build_mask2former(tiny, setup.sizes)), setup.work / "mask2former"),
    )
    setup.detector_dir = build(
        "Grounding DINO" + ("" if tiny else "-T"),
        lambda: save_hf(
            built_on(device, lambda: build_grounding_dino(tiny, setup.sizes)), setup.work / "grounding_dino"
        ),
    )
    setup.sam = build("SAM" + ("" if tiny else " vit_h"), lambda: built_on(device, lambda: build_sam(tiny)).to(device))
    if setup.sam is not None:  # before any backend switches its attention to SDPA (in place)
        setup.original_encoder = copy.deepcopy(setup.sam.image_encoder)


def hours(images_s: float | None) -> float | None:
    """ImageNet-1k train on GPUS GPUs at images_s per GPU, in hours."""
    return IMAGENET_TRAIN / (images_s * GPUS) / 3600 if images_s else None


def fmt(value: float | None, spec: str, unit: str = "") -> str:
    return "n/a" if value is None else format(value, spec) + unit


def bf16_peak_tflops(card: str) -> float | None:
    """The card's dense bf16 peak in TFLOP/s from its name (torch.cuda.get_device_name), None if unknown."""
    return next((peak for name, peak in BF16_PEAK_TFLOPS.items() if name in card), None)


def ratio(speed: dict, top: str, bottom: str) -> float | None:
    return speed[top] / speed[bottom] if speed.get(top) and speed.get(bottom) else None


def report(rows: list[Row], card: str = "", encoder_flops: int | None = None, smoke: bool = False) -> dict:
    """Print the table and the ratios; → the same as a JSON-able dict. card: the device's name (for
    its bf16 peak); encoder_flops: FLOPs of SAM's image encoder per image; smoke: a --tiny run,
    which checks that the benchmark works and measures nothing, so no goal is judged."""
    print(f"\n{'stage':<46} {'images/s':>9} {'ms/image':>9} {'peak GiB':>9}  note")
    for row in rows:
        if row.error:
            print(f"{row.name:<46} {'FAILED':>9} {'':>9} {'':>9}  {row.error}")
            continue
        peak = f"{row.peak_gib:.1f}" if row.peak_gib is not None else "-"
        print(f"{row.name:<46} {row.images_s:>9.2f} {1e3 / row.images_s:>9.1f} {peak:>9}  {row.note}")
    done = [row for row in rows if not row.error]  # by letter, "(a)" .. "(d)", and by whole name
    speed = {row.name.split(")")[0] + ")": row.images_s for row in done} | {row.name: row.images_s for row in done}
    pipeline, amg = speed.get("(c)"), speed.get("(d)")
    over_amg = ratio(speed, "(c)", "(d)")
    serial = 1 / (1 / speed["(a)"] + 1 / speed["(b)"]) if speed.get("(a)") and speed.get("(b)") else None
    over_models = pipeline / serial if pipeline and serial else None
    sdpa = ratio(speed, "(ref) SAM image encoder, SDPA (default)", "(ref) SAM image encoder, original attention")
    boxes = ratio(speed, "(ref) box decoding, one call per batch", "(ref) box decoding, one call per image")
    encoder_s = speed.get("(ref) SAM image encoder, SDPA (default)")
    tflops = encoder_flops * encoder_s / 1e12 if encoder_flops and encoder_s else None
    peak = bf16_peak_tflops(card)
    share = tflops / peak if tflops and peak else None
    print(f"\nratio pipeline / sam-amg: {fmt(over_amg, '.1f', 'x')}")
    print(f"pipeline / models alone, 1/(1/a + 1/b) = {fmt(serial, '.2f')} images/s: {fmt(over_models, '.0%')}")
    print(f"SAM image encoder, SDPA / original attention: {fmt(sdpa, '.2f', 'x')}")
    print(f"box decoding, one call per batch / one call per image: {fmt(boxes, '.2f', 'x')}")
    print(
        f"SAM image encoder: {fmt(encoder_flops and encoder_flops / 1e12, '.3g')} TFLOP/image, "
        f"{fmt(tflops, '.3g')} TFLOP/s = {fmt(share, '.1%')} of the bf16 dense peak "
        f"({fmt(peak, '.0f')} TFLOP/s{'' if peak else ': unknown for ' + (card or 'this device')})"
    )
    print(
        f"ImageNet-1k train ({IMAGENET_TRAIN:,} images) on {GPUS} GPUs: pipeline {fmt(hours(pipeline), '.1f')} h, "
        f"sam-amg {fmt(hours(amg), '.1f')} h"
    )
    if smoke:
        goal = None
        print(SMOKE_NOTE)
    else:
        goal = "n/a" if not pipeline else ("met" if pipeline >= GOAL_IMAGES_S else "NOT met")
        print(f"goal >= {GOAL_IMAGES_S:.0f} images/s per GPU end to end (< 3 h on {GPUS} GPUs): {goal}")
    return {
        "rows": [vars(row) | {"images_s": row.images_s} for row in rows],
        "pipeline_over_amg": over_amg,
        "pipeline_over_models": over_models,
        "encoder_sdpa_over_original": sdpa,
        "boxes_batched_over_per_image": boxes,
        "encoder_flops_per_image": encoder_flops,
        "encoder_tflops": tflops,
        "bf16_peak_tflops": peak,
        "encoder_peak_share": share,
        "card": card,
        "hours_8_gpus": {"pipeline": hours(pipeline), "sam_amg": hours(amg)},
        "goal": goal,
    }


def card_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({os.cpu_count()} cores)"


def environment(device: torch.device, sizes: Sizes, tiny: bool) -> str:
    import transformers

    card = card_name(device)
    models = "tiny models" if tiny else "Mask2Former Swin-L (ADE-150), Grounding DINO-T, SAM vit_h"
    return (
        f"{card}; torch {torch.__version__}, transformers {transformers.__version__}; {models}, random weights; "
        f"images {sizes.image_hw[1]}×{sizes.image_hw[0]}, budget {sizes.budget_s:g} s per stage"
    )


def quiet_progress_bars() -> None:
    """transformers' load/save bars would interleave with the table."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny random models on the CPU (smoke run)")
    parser.add_argument("--device", help="cuda (default) | cuda:N | cpu (--tiny: cpu)")
    parser.add_argument("--budget-s", type=float, help="seconds per stage, warm-up included (25; --tiny: 2)")
    parser.add_argument("--batch", type=int, help="images per model call (8; --tiny: 4)")
    parser.add_argument("--max-boxes", type=int, default=20, help="boxes per image handed to SAM (20)")
    parser.add_argument("--amg-images", type=int, help="images timed through sam-amg (3; --tiny: 1)")
    default = ",".join(name for name in STAGES if name not in OPT_IN)
    parser.add_argument(
        "--stages",
        default=default,
        help=f"comma-separated subset of {','.join(STAGES)} (default: all but {','.join(sorted(OPT_IN))})",
    )
    parser.add_argument("--json", help="also write the results to this JSON file")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    overrides = {"device": args.device, "budget_s": args.budget_s, "batch": args.batch, "amg_images": args.amg_images}
    sizes = replace(TINY if args.tiny else Sizes(), **{k: v for k, v in overrides.items() if v is not None})
    unknown = set(args.stages.split(",")) - set(STAGES)
    if unknown:
        print(f"unknown stages {sorted(unknown)}; valid: {', '.join(STAGES)}")
        return 2
    device = torch.device(sizes.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA device here: use --tiny (tiny models on the CPU) or --device cpu")
        return 2
    quiet_progress_bars()
    print(environment(device, sizes, args.tiny), flush=True)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="gpu_label_") as tmp:
        setup = Setup(sizes, device, Path(tmp), args.max_boxes)
        prepare(setup, args.tiny)
        for name, fn in STAGES.items():
            if name in args.stages.split(",") and (device.type == "cuda" or name not in CUDA_ONLY):
                stage(rows, name, device, lambda fn=fn: fn(setup))
    results = report(rows, card_name(device), setup.last.get("encoder_flops"), smoke=args.tiny)
    if args.json:
        results = {"environment": environment(device, sizes, args.tiny), **results}
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 1 if any(row.error for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
