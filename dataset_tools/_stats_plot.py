"""One PNG dashboard of `compute_stats()` output, drawn with Pillow (c2f-data stats --plot).

Six panels: pixel share per class, images per class, instances per image, instance area
(fraction of the image, log scale), instances per class, and the headline numbers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

PANEL_W, PANEL_H = 520, 330
TOP_CLASSES = 15
BAR = (60, 110, 180)
_FONT = ImageFont.load_default(size=13)
_TITLE = ImageFont.load_default(size=15)


def plot_stats(st: dict, path) -> Path:
    """Write the dashboard of stats `st` to `path` (PNG, 3 × 2 panels); return the path."""
    names = st["label_space"]
    img = Image.new("RGB", (3 * PANEL_W, 2 * PANEL_H), "white")
    draw = ImageDraw.Draw(img)
    pixels = np.asarray(st["class_pixel_counts"], np.float64)
    share = 100 * pixels / max(pixels.sum(), 1)
    _class_bars(draw, (0, 0), "pixel share per class (%)", share, names, "{:.1f}")
    _class_bars(
        draw, (PANEL_W, 0), "images containing the class", np.asarray(st["class_image_counts"]), names, "{:.0f}"
    )
    _class_bars(draw, (2 * PANEL_W, 0), "instances per class", np.asarray(st["class_instance_counts"]), names, "{:.0f}")
    hist = st["instances_per_image"]["histogram"]
    last = _trim(hist)
    ticks = [str(i) for i in range(last - 1)] + [f">={last - 1}" if last == len(hist) else str(last - 1)]
    _columns(draw, (0, PANEL_H), "instances per image (images)", hist[:last], ticks[:last])
    edges = st["instance_area"]["relative_log10_edges"]
    _columns(
        draw,
        (PANEL_W, PANEL_H),
        "instance area / image area (instances)",
        st["instance_area"]["relative_histogram"],
        [f"1e{e:.2g}" if float(e).is_integer() else "" for e in edges[:-1]],
    )
    _text_panel(draw, (2 * PANEL_W, PANEL_H), st)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


def _trim(hist) -> int:
    """Number of leading bins to draw: up to the last non-empty one (at least 2)."""
    nonzero = np.flatnonzero(hist)
    return max(2, int(nonzero[-1]) + 1 if nonzero.size else 2)


def _class_bars(draw, origin, title, values: np.ndarray, names: dict, fmt: str) -> None:
    """Horizontal bars of the TOP_CLASSES largest values, labelled with class names."""
    x0, y0 = origin
    draw.text((x0 + 10, y0 + 6), title, fill="black", font=_TITLE)
    order = [int(i) for i in np.argsort(-values, kind="stable")[:TOP_CLASSES] if values[i] > 0]
    if not order:
        draw.text((x0 + 10, y0 + 40), "(none)", fill="grey", font=_FONT)
        return
    label_w, row = 250, (PANEL_H - 40) // TOP_CLASSES
    scale = (PANEL_W - label_w - 70) / max(float(values[order[0]]), 1e-9)
    for r, i in enumerate(order):
        y = y0 + 32 + r * row
        name = names.get(str(i), str(i))
        draw.text((x0 + 10, y), name if len(name) <= 36 else name[:35] + "…", fill="black", font=_FONT)
        width = max(1, int(values[i] * scale))
        draw.rectangle([x0 + label_w, y + 2, x0 + label_w + width, y + row - 3], fill=BAR)
        draw.text((x0 + label_w + width + 4, y), fmt.format(values[i]), fill="black", font=_FONT)


def _columns(draw, origin, title, counts, ticks) -> None:
    """Vertical bars of `counts` with tick labels under them (empty tick = none)."""
    x0, y0 = origin
    draw.text((x0 + 10, y0 + 6), title, fill="black", font=_TITLE)
    left, bottom, top = x0 + 50, y0 + PANEL_H - 40, y0 + 34
    width = (PANEL_W - 70) / max(len(counts), 1)
    peak = max(max(counts, default=0), 1)
    draw.line([left, top, left, bottom, x0 + PANEL_W - 16, bottom], fill="black")
    draw.text((x0 + 8, top - 2), str(peak), fill="black", font=_FONT)
    for k, (count, tick) in enumerate(zip(counts, ticks)):
        x = left + k * width
        h = (bottom - top) * count / peak
        if count:
            draw.rectangle([x + 1, bottom - h, x + width - 1, bottom], fill=BAR)
        if tick:
            draw.text((x + width / 2, bottom + 4), tick, fill="black", font=_FONT, anchor="ma")


def _text_panel(draw, origin, st: dict) -> None:
    x0, y0 = origin
    img, cov = st["images"], st["coverage"]
    sizes = st["instance_area"]["coco_sizes"]
    lines = [
        f"images: {img['total']} ({img['done']} done, {img['failed']} failed, {img['pending']} pending)",
        f"semantic coverage: {_pct(cov['semantic'])} of valid pixels",
        f"instance coverage: {_pct(cov['instance'])} of valid pixels",
        f"instance/semantic agreement: {_pct(st['instance_semantic_agreement'])}",
        f"instances: {st['instances']} (mean {st['instances_per_image']['mean'] or 0:.2f} per image)",
        f"COCO sizes: small {sizes['small']}, medium {sizes['medium']}, large {sizes['large']}",
        f"instances without a class: {st['unclassed_instances']}",
        "failures: " + ("none" if not st["failures"] else ""),
    ]
    lines += [f"  {v} x {k}" for k, v in list(st["failures"].items())[:4]]
    draw.text((x0 + 10, y0 + 6), "summary", fill="black", font=_TITLE)
    for r, line in enumerate(lines):
        draw.text((x0 + 10, y0 + 34 + 22 * r), line[:70], fill="black", font=_FONT)


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"
