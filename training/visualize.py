"""One picture of a training batch and the model's output: a row per image, a column per view
(the engine writes it as a PNG and sends it to TensorBoard).

Columns: input, visible patches (masked ones grey), semantic target, semantic prediction, instance
target, instance prediction, RGB reconstruction. Label maps use a fixed palette (-1 = black);
instance ids are arbitrary per image, so their colours only tell regions apart. An instance
embedding [3, h, w] is shown as colours, each channel stretched to its range in that image.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from training.data.config import IMAGENET_MEAN, IMAGENET_STD

COLUMNS = ("input", "visible", "semantic", "sem. pred", "instance", "inst. pred", "rgb pred")
HEADER = 18  # pixels of column titles above the first row
GAP = 2  # pixels between tiles
_MASKED_GREY = 128
_NO_INSTANCE_GREY = 72
_PALETTE = np.random.default_rng(0).integers(48, 256, (4096, 3)).astype(np.uint8)


def draw_grid(batch: dict, out: dict, max_images: int = 8, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> np.ndarray:
    """The grid of the first `max_images` images: RGB uint8 [height, width, 3].

    batch: image [N, 3, H, W] normalised, semantic / instance [N, H, W] int64 (-1 ignore).
    out:   mask [N, L] (0 keep, 1 remove) and pred: rgb [N, 3, H, W] normalised, semantic
           [N, h, w] ids (or [N, C, h, w] logits), instance [N, h, w] ids or [N, 3, h, w] embedding;
           a missing prediction (e.g. the mae mode's labels) leaves a blank tile.
    height = HEADER + n · (H + GAP) - GAP, width = 7 · (W + GAP) - GAP.
    """
    rows = min(int(batch["image"].shape[0]), max_images)
    size = tuple(batch["image"].shape[-2:])
    pred = out.get("pred", {})
    image = _rgb(batch["image"], rows, mean, std)
    tiles = [
        image,
        _visible(image, _numpy(out["mask"], rows)),
        _labels(batch["semantic"], rows, size),
        _labels(pred.get("semantic"), rows, size),
        _labels(batch["instance"], rows, size, no_instance=True),
        _labels(pred.get("instance"), rows, size, no_instance=True),
        _rgb(pred.get("rgb"), rows, mean, std),
    ]
    return _assemble(tiles, rows, size)


def write_png(path, rgb: np.ndarray) -> Path:
    """Write RGB uint8 [H, W, 3] to `path` as a PNG (parent folders made); return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise OSError(f"{path}: cannot write PNG")
    return path


def _numpy(tensor: torch.Tensor, rows: int) -> np.ndarray:
    return tensor[:rows].detach().float().cpu().numpy()


def _rgb(image: torch.Tensor | None, rows: int, mean, std) -> np.ndarray | None:
    """Normalised [N, 3, H, W] → [rows, H, W, 3] uint8."""
    if image is None:
        return None
    x = _numpy(image, rows).transpose(0, 2, 3, 1) * np.asarray(std) + np.asarray(mean)
    return np.clip(np.round(x * 255), 0, 255).astype(np.uint8)


def _visible(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """rgb [N, H, W, 3] uint8, mask [N, L] (1 remove) → rgb with removed patches grey."""
    n, h, w, _ = rgb.shape
    side = int(round(mask.shape[1] ** 0.5))
    grid = mask.reshape(n, side, side) > 0.5
    removed = grid.repeat(h // side, axis=1).repeat(w // side, axis=2)
    out = rgb.copy()
    out[removed] = _MASKED_GREY
    return out


def _labels(labels: torch.Tensor | None, rows: int, size, no_instance: bool = False) -> np.ndarray | None:
    """Ids [N, h, w] (-1 ignore), logits [N, C, h, w] or embedding [N, 3, h, w] → [rows, H, W, 3].

    -1 is black; with `no_instance`, id 0 ("no instance") is dark grey.
    """
    if labels is None:
        return None
    x = labels[:rows].detach()
    if x.dim() == 4 and x.shape[1] != 3:
        x = x.argmax(dim=1)
    if x.dim() == 4:
        colours = _stretch(x.float().cpu().numpy()).transpose(0, 2, 3, 1)
    else:
        ids = x.long().cpu().numpy()
        colours = np.where(ids[..., None] < 0, 0, _PALETTE[ids % len(_PALETTE)]).astype(np.uint8)
        if no_instance:
            colours[ids == 0] = _NO_INSTANCE_GREY
    return np.stack([cv2.resize(c, size[::-1], interpolation=cv2.INTER_NEAREST) for c in colours])


def _stretch(x: np.ndarray) -> np.ndarray:
    """[N, 3, h, w] float → uint8, each image's channel scaled from its min..max to 0..255."""
    lo = x.min(axis=(2, 3), keepdims=True)
    span = np.maximum(x.max(axis=(2, 3), keepdims=True) - lo, 1e-6)
    return np.round((x - lo) / span * 255).astype(np.uint8)


def _assemble(tiles: list, rows: int, size) -> np.ndarray:
    """Tiles (each [rows, H, W, 3] or None = blank) → one RGB canvas with a title row."""
    h, w = size
    height = HEADER + rows * (h + GAP) - GAP
    width = len(tiles) * (w + GAP) - GAP
    grid = np.full((height, width, 3), 255, np.uint8)
    scale = 0.3 + 0.2 * min(1.0, w / 224)
    for col, (title, tile) in enumerate(zip(COLUMNS, tiles)):
        x = col * (w + GAP)
        strip = np.full((HEADER, w, 3), 255, np.uint8)  # drawn apart so a long title is clipped
        cv2.putText(strip, title, (2, HEADER - 5), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
        grid[:HEADER, x : x + w] = strip
        for row in range(rows):
            y = HEADER + row * (h + GAP)
            grid[y : y + h, x : x + w] = 220 if tile is None else tile[row]
    return grid
