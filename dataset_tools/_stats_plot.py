"""The PNG dashboard of `compute_stats()` output, drawn with matplotlib's Agg backend (c2f-data stats --plot).

Above: instances per image, instance area (fraction of the image, log scale), failures by reason,
images by status, coverage. Below: every class of the label space, sorted by pixel count, with its
pixel share, images and instances on log scales; the figure grows by CLASS_ROW_IN per class, so a
150-class label space stays readable. No display is needed (the figure never touches pyplot).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

DPI = 100
WIDTH_IN = 16.0
TOP_IN = 7.0  # the two rows of small panels
CLASS_ROW_IN = 0.2  # height per class in the class panels
CLASS_MIN_IN = 3.0
NAME_CHARS = 40
BAR = "#3c6eb4"
CLASS_PANELS = (  # (axes label, title, stats field); pixel counts are shown as a share in %
    ("class_pixels", "pixel share (%)", "class_pixel_counts"),
    ("class_images", "images containing the class", "class_image_counts"),
    ("class_instances", "instances of the class", "class_instance_counts"),
)


def plot_stats(st: dict, path) -> Path:
    """Write the dashboard of stats `st` to `path` (PNG of figure_size(st) × DPI pixels); return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = stats_figure(st)
    FigureCanvasAgg(fig).print_png(str(path))
    return path


def figure_size(st: dict) -> tuple[float, float]:
    """(width, height) in inches: the class panels grow with the label space."""
    return WIDTH_IN, TOP_IN + max(CLASS_MIN_IN, CLASS_ROW_IN * len(st["label_space"]) + 1.0)


def stats_figure(st: dict) -> Figure:
    """The dashboard as a matplotlib Figure (axes named by `Axes.get_label()`, e.g. "class_pixels")."""
    width, height = figure_size(st)
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    top, classes = fig.subfigures(2, 1, height_ratios=[TOP_IN, height - TOP_IN])
    grid = top.subplots(2, 3)
    _instances_per_image(grid[0, 0], st["instances_per_image"])
    _instance_area(grid[0, 1], st["instance_area"])
    _failures(grid[0, 2], st["failures"])
    _images(grid[1, 0], st["images"])
    _coverage(grid[1, 1], st)
    _headline(grid[1, 2], st)
    _class_panels(classes, st)
    return fig


def _instances_per_image(ax, per_image: dict) -> None:
    """Done images by their instance count; the last bin holds every count ≥ last_bin_means_at_least."""
    ax.set_label("instances_per_image")
    hist = np.asarray(per_image["histogram"])
    last = max(2, int(np.flatnonzero(hist)[-1]) + 1 if hist.any() else 2)
    ax.bar(np.arange(last), hist[:last], width=0.9, color=BAR)
    ticks = np.unique(np.linspace(0, last - 1, min(last, 11)).round().astype(int))
    at_least = last == len(hist)  # the last bin drawn is the open one
    ax.set_xticks(ticks, [f"≥{t}" if at_least and t == last - 1 else str(t) for t in ticks])
    ax.set_xlim(-0.6, last - 0.4)
    mean = per_image["mean"]
    ax.set_title(f"instances per image (mean {mean:.2f})" if mean is not None else "instances per image")
    ax.set_xlabel("instances in the image")
    ax.set_ylabel("done images")


def _instance_area(ax, area: dict) -> None:
    """Histogram of instance area / image area on log10 bins; COCO's size buckets in the title."""
    ax.set_label("instance_area")
    edges = 10.0 ** np.asarray(area["relative_log10_edges"])
    ax.stairs(area["relative_histogram"], edges, fill=True, color=BAR)
    ax.set_xscale("log")
    ax.set_xlim(edges[0], edges[-1])
    sizes = area["coco_sizes"]
    ax.set_title(f"instance area (COCO: small {sizes['small']}, medium {sizes['medium']}, large {sizes['large']})")
    ax.set_xlabel("instance area / image area")
    ax.set_ylabel("instances")


def _failures(ax, failures: dict) -> None:
    """Failed images by reason kind, largest first."""
    ax.set_label("failures")
    ax.set_title(f"failures by reason ({sum(failures.values())} images)")
    if not failures:
        _empty(ax, "no failed image")
        return
    _hbars(ax, [_short(k) for k in failures], list(failures.values()))
    ax.set_xlabel("failed images")


def _images(ax, images: dict) -> None:
    ax.set_label("images")
    ax.set_title(f"images by status ({images['total']})")
    names = ["done", "failed", "pending"]
    _hbars(ax, names, [images[k] for k in names])
    ax.set_xlabel("images")


def _coverage(ax, st: dict) -> None:
    """Shares of valid pixels with a class / inside an instance, and instance-semantic agreement (%)."""
    ax.set_label("coverage")
    ax.set_title("coverage of the valid pixels")
    cov = st["coverage"]
    values = {
        "semantic class": cov["semantic"],
        "inside an instance": cov["instance"],
        "instance agrees with semantic": st["instance_semantic_agreement"],
    }
    shown = ["n/a" if v is None else f"{100 * v:.1f}%" for v in values.values()]
    _hbars(ax, list(values), [100 * (v or 0) for v in values.values()], shown)
    ax.set_xlim(0, 100)
    ax.set_xlabel("%")


def _headline(ax, st: dict) -> None:
    ax.set_label("headline")
    ax.axis("off")
    img = st["images"]
    lines = [
        f"{img['done']} of {img['total']} images labeled",
        f"{st['instances']} instances ({st['unclassed_instances']} without a class)",
        f"{sum(1 for c in st['class_pixel_counts'] if c)} of {len(st['label_space'])} classes seen",
        str(st["path"])[-60:],
    ]
    ax.text(0.02, 0.95, "\n".join(lines), va="top", ha="left", fontsize=11, transform=ax.transAxes)


def _class_panels(subfig, st: dict) -> None:
    """Every class of the label space, one row each, sorted by pixel count (then id), on log x scales."""
    ids = sorted((int(k) for k in st["label_space"]), key=lambda c: (-_at(st["class_pixel_counts"], c), c))
    names = [f"{_short(st['label_space'][str(c)])} ({c})" for c in ids]
    axes = subfig.subplots(1, len(CLASS_PANELS), sharey=True)
    for ax, (label, title, field) in zip(axes, CLASS_PANELS):
        ax.set_label(label)
        values = np.array([_at(st[field], c) for c in ids], np.float64)
        if field == "class_pixel_counts":
            values = 100 * values / max(values.sum(), 1)
        ax.barh(np.arange(len(ids)), values, color=BAR, height=0.8)
        positive = values[values > 0]
        low, high = 0, 1  # nothing seen: one empty decade
        if positive.size:  # whole decades, one below the least value, so every bar shows and has ticks
            low, high = np.floor(np.log10(positive.min())) - 1, np.ceil(np.log10(positive.max()))
        ax.set_xlim(10**low, 10**high)  # before the scale, which would autoscale on no positive value
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(title)
        ax.set_xlabel("log scale")
        ax.grid(axis="x", which="major", alpha=0.3)
    axes[0].set_yticks(np.arange(len(ids)), names, fontsize=8)
    axes[0].set_ylim(max(len(ids), 1) - 0.5, -0.5)  # largest on top
    subfig.suptitle(f"all {len(ids)} classes, by pixel share (a missing bar: never seen)")


def _hbars(ax, names: list[str], values: list, shown: list[str] | None = None) -> None:
    """Horizontal bars labelled with their names (y) and values (`shown`, default the numbers, at the bar's end)."""
    y = np.arange(len(names))
    bars = ax.barh(y, values, color=BAR, height=0.7)
    ax.bar_label(bars, labels=shown or [f"{v:g}" for v in values], padding=3, fontsize=9)
    ax.set_yticks(y, names)
    ax.set_ylim(len(names) - 0.5, -0.5)
    ax.margins(x=0.15)


def _empty(ax, text: str) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    ax.text(0.5, 0.5, text, ha="center", va="center", color="grey", transform=ax.transAxes)


def _at(values: list, i: int) -> float:
    return values[i] if i < len(values) else 0


def _short(name: str) -> str:
    return name if len(name) <= NAME_CHARS else name[: NAME_CHARS - 1] + "…"
