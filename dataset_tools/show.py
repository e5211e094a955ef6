"""A picture of labeled images (c2f-data show): photo | semantic overlay | instance overlay + outlines.

One row per image, at display size TILE (longer side; rows as high as their image); masks are
resampled from the canvas by nearest pixel centre, the photo is read from the image root by key. A
legend beside each row names the classes present (largest first) with their colours.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps

from datasets_spec import schema
from datasets_spec.errors import StoreError
from datasets_spec.geometry import fit, resize_labels
from datasets_spec.reader import Store

TILE = 256
LEGEND_W = 300
HEADER = 24
GAP = 4
LEGEND_ROWS = 12
COLUMNS = ("photo", "semantic", "instances")
_FONT = ImageFont.load_default(size=13)


def palette(n: int) -> np.ndarray:
    """n distinct RGB colours [n, 3] uint8 (golden-ratio hues, alternating brightness)."""
    hues = (np.arange(n) * 0.618034) % 1.0
    hsv = np.stack([hues * 255, np.full(n, 200), np.where(np.arange(n) % 2, 255, 190)], axis=1)
    rgb = Image.fromarray(hsv.astype(np.uint8)[None], "HSV").convert("RGB")
    return np.asarray(rgb)[0]


def choose(store: Store, n: int, keys: list[str] | None, seed: int) -> list[int]:
    """Indices of the images to show: the given keys (each must be done), or n random done images."""
    status = store.status()
    if keys:
        where = {str(k): i for i, k in enumerate(store.keys())}
        missing = [k for k in keys if k not in where]
        if missing:
            raise StoreError(f"{store.path}: no image with key {missing[0]!r}")
        not_done = [k for k in keys if status[where[k]] != schema.DONE]
        if not_done:
            raise StoreError(
                f"{store.path}: image {not_done[0]!r} is not labeled (status {status[where[not_done[0]]]})"
            )
        return [where[k] for k in keys]
    done = store.done_indices()
    if done.size == 0:
        raise StoreError(f"{store.path}: no labeled image to show")
    rng = np.random.default_rng(seed)
    return sorted(rng.choice(done, size=min(n, done.size), replace=False).tolist())


def load_photo(path: Path) -> np.ndarray:
    """RGB [H, W, 3] uint8 after EXIF orientation; StoreError naming the file if unreadable."""
    try:
        with Image.open(path) as img:
            return np.asarray(ImageOps.exif_transpose(img).convert("RGB"))
    except (OSError, ValueError) as exc:
        raise StoreError(f"{path}: cannot read the photo ({exc})") from None


def show(store: Store, images, out, *, n: int = 16, keys: list[str] | None = None, seed: int = 0) -> Path:
    """Draw the grid of chosen images to `out` (PNG); return its path."""
    indices = choose(store, n, keys, seed)
    class_colours = palette(max(store.label_space, default=0) + 1)
    rows = [_row(store, store.read(i, records=True), Path(images), class_colours) for i in indices]
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


def _row(store: Store, view, images: Path, class_colours: np.ndarray):
    """(three tiles [h, TILE, 3], legend [(name, colour or None)], key) of one image."""
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
    inst_colour = palette(int(inst.max()) + 1)[inst]
    has = inst != schema.INSTANCE_NONE
    inst_tile = np.where(has[..., None], 0.45 * rgb + 0.55 * inst_colour, 0.5 * rgb)
    inst_tile[_outlines(inst)] = 255
    tiles = [_pad(t) for t in (rgb, sem_tile, inst_tile)]
    present = np.bincount(sem[labelled].ravel(), minlength=len(class_colours))
    legend = [
        (store.label_space.get(int(c), str(c)), tuple(int(v) for v in class_colours[c]))
        for c in np.argsort(-present, kind="stable")
        if present[c] > 0
    ][:LEGEND_ROWS]
    legend.append((f"{len(view.records)} instance(s)", None))
    return tiles, legend, view.key


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
