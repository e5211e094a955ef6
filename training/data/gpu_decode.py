"""data.decode: gpu — loader workers send JPEG bytes; the training step decodes them in batches.

A worker draws the box and flip and cuts the masks exactly as with data.decode: cpu
(`transforms.draw`, `crop_masks`), but instead of decoding the RGB it sends the JPEG file's bytes
and the box in the file's stored pixels (`datasets_spec.decode.jpeg_crop`). `decode_batch` decodes
all of a batch's JPEGs in one `torchvision.io.decode_jpeg` call on the device, then per image cuts
the box, applies the EXIF orientation to the cut, resizes it as PIL does in `decode_crop` (torch's
antialiased bicubic is PIL's filter; one axis at a time, whole levels in between), flips and
normalises. Files that are not RGB/grey JPEGs, or above the pixel limit, are decoded in
the worker as with data.decode: cpu and travel as uint8 RGB.
The whole image is decoded (no DCT-domain draft as `data.jpeg_draft` gives the CPU path).
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.io import ImageReadMode, decode_jpeg

from datasets_spec.decode import jpeg_crop
from plumbing.errors import one_line
from training.errors import TrainingError

from .config import DataConfig

_NO_BYTES = torch.empty(0, dtype=torch.uint8)


def raw_pixels(dataset, pos: int, box, flip: bool) -> dict:
    """The worker's part for one sample of `dataset` (a StoreDataset): {"jpeg": uint8 [bytes] (empty
    when decoded here), "crop": int64 [8] (stored top, left, h, w; swap, flip_x, flip_y; flip),
    "rgb": uint8 [s, s, 3] or None}."""
    crop = jpeg_crop(dataset.image_path(pos), box, dataset.orig_hw[pos], max_pixels=dataset.max_pixels)
    if crop is None:
        size = dataset.cfg.img_size
        rgb = dataset.rgb(pos, box, (size, size))
        rgb = torch.from_numpy((rgb[:, ::-1] if flip else rgb).copy())
        return {"jpeg": _NO_BYTES, "crop": torch.zeros(8, dtype=torch.int64), "rgb": rgb}
    data = torch.frombuffer(bytearray(crop.data), dtype=torch.uint8)
    fields = [*crop.box, crop.swap, crop.flip_x, crop.flip_y, flip]
    return {"jpeg": data, "crop": torch.tensor(fields, dtype=torch.int64), "rgb": None}


def collate(samples: list[dict]) -> dict:
    """Samples of data.decode: gpu → a loader batch: semantic, instance, index stacked as usual;
    "jpeg": uint8 [bytes] all JPEG files one after the other, "jpeg_end": int64 [N] where sample
    i's file ends (empty: decoded in the worker), "crop": int64 [N, 8], "rgb": uint8 [K, s, s, 3]
    of the K samples decoded in the worker, "rgb_at": int64 [K] their rows. Few large tensors: a
    worker hands each tensor over in its own shared-memory segment."""
    at = [i for i, s in enumerate(samples) if s["rgb"] is not None]
    batch = {key: torch.stack([s[key] for s in samples]) for key in ("semantic", "instance", "index", "crop")}
    batch["jpeg"] = torch.cat([s["jpeg"] for s in samples])
    batch["jpeg_end"] = torch.cumsum(torch.tensor([len(s["jpeg"]) for s in samples], dtype=torch.int64), 0)
    batch["rgb_at"] = torch.tensor(at, dtype=torch.int64)
    batch["rgb"] = torch.stack([samples[i]["rgb"] for i in at]) if at else torch.empty(0, dtype=torch.uint8)
    return batch


def decode_batch(batch: dict, device: torch.device, cfg: DataConfig) -> dict:
    """A loader batch of data.decode: gpu → the training batch contract on `device`: image
    [N, 3, s, s] float32 normalised, semantic / instance [N, s, s] int64, index [N] int64."""
    device = torch.device(device)
    out = {key: batch[key].to(device, non_blocking=True) for key in ("semantic", "instance", "index")}
    size = cfg.img_size
    ends = batch["jpeg_end"].tolist()
    image = torch.empty(len(ends), 3, size, size, device=device)
    starts = [0, *ends[:-1]]
    at = [i for i in range(len(ends)) if ends[i] > starts[i]]
    if at:
        try:
            decoded = decode_jpegs([batch["jpeg"][starts[i] : ends[i]] for i in at], device)
        except RuntimeError as exc:
            raise TrainingError(
                f"decoding the JPEGs of store images {batch['index'][at].tolist()} on {device} failed: {one_line(exc)}"
            ) from None
        for i, pixels in zip(at, decoded):
            image[i] = crop_resize(pixels, batch["crop"][i].tolist(), size)
    if len(batch["rgb_at"]):
        rgb = batch["rgb"].to(device, non_blocking=True).permute(0, 3, 1, 2)
        image[batch["rgb_at"].to(device)] = rgb.float()
    mean = torch.tensor(cfg.mean, device=device).view(1, 3, 1, 1) * 255.0
    std = torch.tensor(cfg.std, device=device).view(1, 3, 1, 1) * 255.0
    out["image"] = image.sub_(mean).div_(std)
    return out


def decode_jpegs(files: list[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
    """JPEG files (uint8 [bytes] each, on the CPU) → [3, H, W] uint8 RGB each on `device`, in one
    call (nvjpeg's batched decode on CUDA). torchvision 0.29 deprecates its decoders for TorchCodec,
    which neither this project's environment nor the GPU machines have: its warning is silenced here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return decode_jpeg(files, mode=ImageReadMode.RGB, device=device)


def crop_resize(pixels: torch.Tensor, crop, size: int) -> torch.Tensor:
    """pixels [3, H, W] uint8 as stored in the file; crop: (top, left, h, w) in stored pixels,
    swap, flip_x, flip_y (orientation), flip (the augmentation) → [3, size, size] float32 levels
    0..255, whole numbers (as the CPU path's uint8)."""
    top, left, height, width, swap, flip_x, flip_y, flip = (int(v) for v in crop)
    cut = pixels[:, top : top + height, left : left + width]
    axes = [axis for axis, on in ((2, flip_x), (1, flip_y)) if on]
    cut = cut.flip(axes) if axes else cut
    cut = cut.transpose(1, 2) if swap else cut
    between = (size, cut.shape[2]) if _height_first(*cut.shape[1:], size) else (cut.shape[1], size)
    out = _resize(_resize(cut[None].float(), between), (size, size))[0]
    return out.flip(2) if flip else out


def _height_first(height: int, width: int, size: int) -> bool:
    """Whether Pillow resamples the height first: when that costs fewer filter taps (a fitted rule;
    how often it matches Pillow: docs/training.md)."""
    taps_x, taps_y = _taps(width, size), _taps(height, size)
    return taps_x * height + taps_y * size > 1.1 * (taps_y * width + taps_x * size)


@functools.lru_cache(maxsize=4096)
def _taps(src: int, dst: int) -> int:
    """Filter taps of one bicubic resampling pass from `src` to `dst` pixels (support 2 · scale)."""
    scale = src / dst
    centre = (np.arange(dst) + 0.5) * scale
    support = 2.0 * max(scale, 1.0)
    last = np.minimum(np.floor(centre + support + 0.5), src)
    return int((last - np.maximum(np.floor(centre - support + 0.5), 0)).sum())


def _resize(image: torch.Tensor, size) -> torch.Tensor:
    """[1, 3, h, w] → [1, 3, *size] float whole levels 0..255: one of PIL's two passes (it resamples
    each axis on its own, rounding to whole levels in between)."""
    return F.interpolate(image, size=size, mode="bicubic", antialias=True, align_corners=False).round_().clamp_(0, 255)


def require_cuda(cfg: DataConfig, device: torch.device) -> None:
    """Refuse data.decode: gpu on a device that is not CUDA (one line, for the start of a run)."""
    if cfg.decode == "gpu" and torch.device(device).type != "cuda":
        raise TrainingError(f"data.decode=gpu needs a CUDA device, this run is on {device}: set data.decode=cpu")
