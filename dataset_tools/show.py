"""A picture of labeled images (c2f-data show): photo | semantic overlay | instance overlay + outlines.

One row per image, at display size TILE (longer side; rows as high as their image); masks are
resampled from the canvas by nearest pixel centre, the photo is read from the image root by key. Each
instance gets its box (in its colour) and a label "class score" from its record; a legend beside the
row names the classes present (largest first) with their colours. A failed image has no masks: its
row is the photo (a grey tile when it cannot be read, often the very reason) and the failure reason.
Which images: dataset_tools.show_selection (status, class, instance count; no mask read to choose).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps

from datasets_spec import schema
from datasets_spec.errors import StoreError
from datasets_spec.geometry import fit, resize_labels
from datasets_spec.reader import Store

from .show_selection import Filters, choose

TILE = 256
LEGEND_W = 300
HEADER = 24
GAP = 4
LEGEND_ROWS = 12
COLUMNS = ("photo", "semantic", "instances")
_FONT = ImageFont.load_default(size=13)
_SMALL = ImageFont.load_default(size=10)


def palette(n: int) -> np.ndarray:
    """n distinct RGB colours [n, 3] uint8 (golden-ratio hues, alternating brightness)."""
    hues = (np.arange(n) * 0.618034) % 1.0
    hsv = np.stack([hues * 255, np.full(n, 200), np.where(np.arange(n) % 2, 255, 190)], axis=1)
    rgb = Image.fromarray(hsv.astype(np.uint8)[None], "HSV").convert("RGB")
    return np.asarray(rgb)[0]


def load_photo(path: Path) -> np.ndarray:
    """RGB [H, W, 3] uint8 after EXIF orientation; StoreError naming the file if unreadable."""
    try:
        with Image.open(path) as img:
            return np.asarray(ImageOps.exif_transpose(img).convert("RGB"))
    except (OSError, ValueError) as exc:
        raise StoreError(f"{path}: cannot read the photo ({exc})") from None


def show(
    store: Store,
    images,
    out,
    *,
    n: int = 16,
    keys: list[str] | None = None,
    seed: int = 0,
    filters: Filters | None = None,
) -> Path:
    """Draw the grid of the images `choose(store, n, keys, seed, filters)` picks to `out` (PNG); return its path."""
    indices = choose(store, n, keys, seed, filters)
    class_colours = palette(max(store.label_space, default=0) + 1)
    rows = [image_row(store, i, Path(images), class_colours) for i in indices]
    heights = [max(tiles[0].shape[0], _legend_height(legend)) for tiles, legend, _ in rows]
    width = 3 * (TILE + GAP) + LEGEND_W
    grid = Image.new("RGB", (width, HEADER + sum(heights) + GAP * len(rows)), "white")
    draw = ImageDraw.Draw(grid)
    for c, title in enumerate(COLUMNS):
        draw.text((c * (TILE + GAP) + 4, 5), title, fill="black", font=_FONT)
    y = HEADER
    for (tiles, legend, key), height in zip(rows, heights):
        for c, tile in enumerate(tiles):
            grid.paste(Image.fromarray(tile), (c * (TILE + GAP), y))
        _legend(draw, (3 * (TILE + GAP), y), key, legend)
        y += height + GAP
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    grid.save(out)
    return out


def image_row(store: Store, index: int, images: Path, class_colours: np.ndarray):
    """(three tiles [h, TILE, 3] uint8, legend [(text, colour or None)], key) of image `index`:
    its masks and records are read here, for this image alone."""
    view = store.read(index, records=True)
    if view.status != schema.DONE:
        return _failed_row(store, view, images)
    photo = load_photo(images / view.key)
    if photo.shape[:2] != tuple(view.orig_hw):
        raise StoreError(
            f"{images / view.key}: photo is {photo.shape[1]}×{photo.shape[0]}, the store says "
            f"{view.orig_hw[1]}×{view.orig_hw[0]}: not the image that was labeled"
        )
    h, w = fit(*view.orig_hw, TILE)
    vh, vw = view.valid_hw
    rgb = np.asarray(Image.fromarray(photo).resize((w, h), Image.BILINEAR)).astype(np.float32)
    sem = resize_labels(view.semantic[:vh, :vw], h, w)
    inst = resize_labels(view.instance[:vh, :vw], h, w)
    labelled = sem != schema.SEMANTIC_IGNORE
    sem_colour = np.where(labelled[..., None], class_colours[np.where(labelled, sem, 0)], rgb)
    sem_tile = np.where(labelled[..., None], 0.4 * rgb + 0.6 * sem_colour, 0.5 * rgb)
    inst_tile = _instance_tile(rgb, inst, view, store.label_space)
    tiles = [_pad(t) for t in (rgb, sem_tile, inst_tile)]
    present = np.bincount(sem[labelled].ravel(), minlength=len(class_colours))
    legend = [
        (store.label_space.get(int(c), str(c)), tuple(int(v) for v in class_colours[c]))
        for c in np.argsort(-present, kind="stable")
        if present[c] > 0
    ][:LEGEND_ROWS]
    legend.append((f"{len(view.records)} instance(s)", None))
    return tiles, legend, view.key


def _instance_tile(rgb: np.ndarray, inst: np.ndarray, view, names: dict[int, str]) -> np.ndarray:
    """The instance overlay [h, w, 3] of photo rgb [h, w, 3] and ids inst [h, w]: each instance in its
    colour with a white outline, its record's box (original pixels, scaled) and label drawn on it."""
    colours = palette(max([int(inst.max()), *(rec["id"] for rec in view.records)]) + 1)
    has = inst != schema.INSTANCE_NONE
    tile = np.where(has[..., None], 0.45 * rgb + 0.55 * colours[inst], 0.5 * rgb)
    tile[_outlines(inst)] = 255
    img = Image.fromarray(np.clip(tile, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    scale_y, scale_x = inst.shape[0] / view.orig_hw[0], inst.shape[1] / view.orig_hw[1]
    for rec, text in zip(view.records, instance_labels(view.records, names)):
        x, y, w, h = rec["box"]  # original pixels → tile pixels, the last row / column inside
        x0, y0 = round(x * scale_x), round(y * scale_y)
        box = [x0, y0, max(x0, round((x + w) * scale_x) - 1), max(y0, round((y + h) * scale_y) - 1)]
        colour = tuple(int(v) for v in colours[rec["id"]])
        draw.rectangle(box, outline=colour)
        left, top, right, bottom = draw.textbbox((box[0], box[1]), text, font=_SMALL)
        lift = bottom - top + 2 if box[1] >= bottom - top + 2 else 0  # above the box where there is room
        draw.rectangle([left, top - lift - 1, right + 1, bottom - lift], fill=colour)
        draw.text((box[0], box[1] - lift), text, fill="black", font=_SMALL)
    return np.asarray(img)


def instance_labels(records: list[dict], names: dict[int, str]) -> list[str]:
    """The label drawn on each instance: "<class name> <score>", e.g. "disc 0.93" ("no class" when none)."""
    labels = []
    for rec in records:
        cls = rec.get("semantic")
        name = "no class" if cls is None else names.get(int(cls), str(cls))
        labels.append(name if rec.get("score") is None else f"{name} {rec['score']:.2f}")
    return labels


def _failed_row(store: Store, view, images: Path):
    """The row of a failed image: its photo if it can be read, grey tiles for the masks, and the reason."""
    try:
        photo = load_photo(images / view.key)
        h, w = fit(*photo.shape[:2], TILE)
        first = np.asarray(Image.fromarray(photo).resize((w, h), Image.BILINEAR))
    except StoreError:
        first = _note_tile(TILE // 2, "the photo cannot be read")
    blank = _note_tile(first.shape[0], "failed: no masks")
    reason = textwrap.wrap(f"failed: {failure_reason(store, view.index)}", 40)[:LEGEND_ROWS]
    return [_pad(first), blank, blank], [(line, None) for line in reason], view.key


def _note_tile(height: int, text: str) -> np.ndarray:
    """A grey tile [height, TILE, 3] uint8 with `text` in it."""
    img = Image.new("RGB", (TILE, height), (200, 200, 200))
    ImageDraw.Draw(img).text((TILE // 2, height // 2), text, fill="black", font=_FONT, anchor="mm")
    return np.asarray(img)


def failure_reason(store: Store, index: int) -> str:
    """The reason the completion marker records for failed image `index`."""
    for failure in store.marker(store.layout.shard_of(index)).get("failures", []):
        if failure.get("index") == index:
            return str(failure.get("reason"))
    return "no reason recorded"


def _outlines(ids: np.ndarray) -> np.ndarray:
    """bool [h, w]: pixels with a 4-neighbour of another id (instance borders, both sides)."""
    edge = np.zeros(ids.shape, bool)
    edge[:, :-1] |= ids[:, :-1] != ids[:, 1:]
    edge[:-1, :] |= ids[:-1, :] != ids[1:, :]
    edge[:, 1:] |= ids[:, 1:] != ids[:, :-1]
    edge[1:, :] |= ids[1:, :] != ids[:-1, :]
    return edge


def _pad(tile: np.ndarray) -> np.ndarray:
    """[h, w, 3] float → [h, TILE, 3] uint8, padded grey on the right."""
    out = np.full((tile.shape[0], TILE, 3), 235, np.uint8)
    out[:, : tile.shape[1]] = np.clip(tile, 0, 255).astype(np.uint8)
    return out


def _legend_height(entries) -> int:
    return 22 + 18 * len(entries)


def _legend(draw, origin, key: str, entries) -> None:
    x, y = origin
    draw.text((x + 4, y + 2), key if len(key) <= 40 else "…" + key[-39:], fill="black", font=_FONT)
    for r, (name, colour) in enumerate(entries):
        top = y + 22 + 18 * r
        if colour is not None:
            draw.rectangle([x + 4, top + 2, x + 16, top + 14], fill=colour, outline="black")
        draw.text((x + 22, top), name if len(name) <= 40 else name[:39] + "…", fill="black", font=_FONT)
