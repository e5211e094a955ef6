"""The dataset card (README.md) of a release, built with huggingface_hub's DatasetCard and
DatasetCardData: the Hub's YAML metadata (licence, `configs:` and `dataset_info` for a Parquet
release), then prose.

Everything in it comes from the store's attributes (provenance, label space, geometry), from
`compute_stats()` and from what publish wrote; nothing is typed in by hand except the licence.
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass, field

from huggingface_hub import DatasetCard, DatasetCardData

from datasets_spec import schema
from datasets_spec.errors import StoreError
from datasets_spec.reader import Store

from .stats import format_stats

SIZE_CATEGORIES = (
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
)


@dataclass
class Release:
    """What publish wrote, as the card describes it. fmt: "parquet" or "zarr"; licence: the card's
    licence fields (plumbing.hub_licenses.check_license); features: the rows' YAML features (Parquet);
    rows: done images written (Parquet); data_files: the Parquet file names, under `data`;
    provenance: what the card and Croissant say of it (publish scrubs the local paths)."""

    fmt: str
    name: str
    licence: dict
    data: str = "data"
    files: dict = field(
        default_factory=lambda: {"stats": "stats.json", "plot": "stats.png", "croissant": "croissant.json"}
    )
    features: list | None = None
    rows: int = 0
    data_files: list = field(default_factory=list)
    num_bytes: int = 0  # the rows' size in Arrow (what `datasets` calls a split's num_bytes)
    file_bytes: int = 0  # the Parquet files' size
    provenance: dict = field(default_factory=dict)  # the store's, local paths scrubbed


def card_data(store: Store, release: Release) -> DatasetCardData:
    """The YAML metadata. A Parquet release gets `configs:` (its data files, split train) and
    `dataset_info` (the rows' features, the split's row count), which `datasets.load_dataset` reads;
    a Zarr release is not loadable by `datasets`, so its card turns the Hub's viewer off and types
    the arrays (Array2D, [2] lists) for the reader only."""
    n = store.layout.num_images
    size = next((name for limit, name in SIZE_CATEGORIES if n < limit), "n>10M")
    imagenet = release.provenance.get("input", {}).get("kind") == "imagenet"
    extra = {}
    if release.fmt == "parquet":
        extra["configs"] = [
            {"config_name": "default", "data_files": [{"split": "train", "path": f"{release.data}/train-*.parquet"}]}
        ]
        extra["dataset_info"] = {
            "features": release.features,
            "splits": [{"name": "train", "num_bytes": release.num_bytes, "num_examples": release.rows}],
            "download_size": release.file_bytes,
            "dataset_size": release.num_bytes,
        }
    else:
        extra["viewer"] = False
        extra["dataset_info"] = {"features": _zarr_features(store.layout.canvas)}
    data = DatasetCardData(
        pretty_name=f"c2fmae pseudo-labels: {release.name}",
        annotations_creators=["machine-generated"],
        source_datasets=["imagenet-1k" if imagenet else "original"],
        size_categories=[size],
        task_categories=["image-segmentation"],
        task_ids=["semantic-segmentation", "instance-segmentation"],
        tags=["pseudo-labels", "c2fmae"],
        **release.licence,
        **extra,
    )
    return data


def _zarr_features(canvas: int) -> list[dict]:
    mask = {"dtype": {"array2_d": {"shape": [canvas, canvas], "dtype": "uint16"}}}
    pair = {"list": "int32", "length": 2}
    return [
        {"name": "key", "dtype": "string"},
        {"name": "label", "dtype": "int32"},
        {"name": "status", "dtype": "uint8"},
        {"name": "orig_hw", **pair},
        {"name": "valid_hw", **pair},
        {"name": "semantic", **mask},
        {"name": "instance", **mask},
    ]


def check_card(card: DatasetCard, release: Release) -> None:
    """What the Hub checks offline-checkable: the YAML reads back to the same metadata, the size
    category and licence fields are the Hub's, and `configs:` names files that exist.
    StoreError (one line) otherwise. (RepoCard.validate asks the Hub over the network.)"""
    meta = DatasetCard(str(card)).data.to_dict()
    if meta != card.data.to_dict():
        raise StoreError("README.md: the card's YAML does not read back as written")
    if meta["license"] == "other" and not (meta.get("license_name") and meta.get("license_link")):
        raise StoreError("README.md: license other without license_name and license_link")
    if release.fmt == "parquet":
        pattern = meta["configs"][0]["data_files"][0]["path"]
        paths = [f"{release.data}/{name}" for name in release.data_files]
        if not paths or not all(fnmatch.fnmatch(p, pattern) for p in paths):
            raise StoreError(f"README.md: configs' {pattern} does not name the {len(paths)} Parquet file(s) written")


def weaknesses(store: Store, st: dict) -> list[str]:
    """Known weaknesses, read off the statistics and provenance."""
    out = []
    img = st["images"]
    if img["failed"]:
        reasons = ", ".join(f"{k} ×{v}" for k, v in st["failures"].items())
        out.append(f"{img['failed']} of {img['total']} images failed and have no labels ({reasons}).")
    if img["pending"]:
        out.append(f"{img['pending']} images were never labeled (pending).")
    unseen = [store.label_space[i] for i, c in enumerate(st["class_pixel_counts"]) if c == 0 and i in store.label_space]
    if unseen:
        out.append(
            f"{len(unseen)} of {len(store.label_space)} classes never occur: {', '.join(unseen[:12])}"
            + (" …" if len(unseen) > 12 else "")
            + "."
        )
    pixels = st["class_pixel_counts"]
    if sum(pixels) and max(pixels) / sum(pixels) > 0.5:
        top = store.label_space.get(pixels.index(max(pixels)), "?")
        out.append(f"Class imbalance: '{top}' covers {100 * max(pixels) / sum(pixels):.0f}% of labelled pixels.")
    cov = st["coverage"]["semantic"]
    if cov is not None and cov < 0.95:
        out.append(f"{100 * (1 - cov):.1f}% of image pixels have no semantic class.")
    hist = st["instances_per_image"]["histogram"]
    if img["done"] and hist[0]:
        out.append(f"{hist[0]} done images ({100 * hist[0] / img['done']:.1f}%) have no instance at all.")
    agree = st["instance_semantic_agreement"]
    if agree is not None and agree < 0.9:
        out.append(f"Instance and semantic maps agree on only {100 * agree:.1f}% of instance pixels.")
    backends = json.dumps(store.provenance.get("backends", {}))
    if '"classic"' in backends:
        out.append(
            "Labels come from the `classic` OpenCV backend: one central object per image and colour "
            "bands as background classes. Use them to test pipelines, not to train models you care about."
        )
    return out or ["None found by the automatic checks; see the statistics below."]


def render_card(store: Store, st: dict, release: Release) -> str:
    """README.md text, checked (check_card)."""
    prov = release.provenance
    files = release.files
    lines = [
        f"# c2fmae pseudo-labels: {release.name}",
        "",
        f"Semantic (scene-level) and instance (object-level) pseudo-masks for {store.layout.num_images} images, "
        f"made by machine with [c2fmae](https://arxiv.org/abs/2603.09955)'s `c2f-label`. **This release holds no "
        "image pixels**: join it with your own copy of the images by key (below).",
        "",
        "## Contents",
        "",
        *(_parquet_contents(store, st, release) if release.fmt == "parquet" else _zarr_contents(store, release)),
        f"- `{files['stats']}` and `{files['plot']}` — statistics (`c2f-data stats`).",
        f"- `{files['croissant']}` — MLCommons Croissant metadata"
        + (
            " (files, rows, annotations, label spaces, responsible-AI fields)."
            if release.fmt == "parquet"
            else ": the files, the per-instance records and the label spaces; Croissant has no Zarr reader, so the "
            "arrays are described here only."
        ),
        "- `SHA256SUMS` — every file's checksum; `c2f-data verify RELEASE` checks them and the data.",
        "",
        f"![statistics]({files['plot']})",
        "",
        "## How the labels were made",
        "",
        _provenance_lines(prov),
        "",
        "These are machine pseudo-labels: no person checked them. Licences: the labels derive from the "
        "source images (ImageNet's terms of access: non-commercial research and education) and from each "
        "model's weights (see its model card; `classic` has none). c2fmae itself is Apache-2.0.",
        "",
        "## Known weaknesses",
        "",
    ]
    lines += [f"- {w}" for w in weaknesses(store, st)]
    lines += ["", "## Statistics", "", "```", format_stats(st), "```", "", "## Joining with your ImageNet", ""]
    lines += [_JOIN_PARQUET if release.fmt == "parquet" else _JOIN_ZARR.format(data=release.data), ""]
    card = DatasetCard(f"---\n{card_data(store, release).to_yaml()}\n---\n\n" + "\n".join(lines))
    check_card(card, release)
    return str(card)


def _parquet_contents(store: Store, st: dict, release: Release) -> list[str]:
    s = store.layout.canvas
    img = st["images"]
    left_out = f"{img['failed']} failed" + (f" and {img['pending']} pending" if img["pending"] else "")
    return [
        f"- `{release.data}/train-*.parquet` — {len(release.data_files)} Parquet file(s), split `train`, one row "
        f"per labeled image ({release.rows} rows; the {left_out} images have no row: they are counted under "
        "Known weaknesses and in the statistics). Columns: `key` (image path, the join key), `index` (its "
        "index in the labeling store), `label` (ImageNet-1K class by wnid, -1 unknown), `height`, `width` "
        f"(original size after EXIF orientation), `valid_hw` (the image's region on the {s}×{s} canvas, "
        f"top-left anchored), `semantic` and `instance` (the canvas maps as 16-bit greyscale PNGs: class id, "
        f"{schema.SEMANTIC_IGNORE} = ignore; instance id, {schema.INSTANCE_NONE} = none), `instances` (per "
        "instance: id in the instance map, score, box [x, y, w, h], area, semantic class, source, prompt, "
        "COCO RLE {size, counts} at original size).",
    ]


def _zarr_contents(store: Store, release: Release) -> list[str]:
    s, k = store.layout.canvas, store.layout.shard_size
    return [
        f"- `{release.data}/` — the labels: a Zarr v3 store (schema version {schema.SCHEMA_VERSION}, consolidated "
        f"metadata): `semantic` and `instance` [N, {s}, {s}] uint16 on a {s}×{s} canvas, shards of {k} images; "
        "`key`, `label`, `status`, `orig_hw`, `valid_hw` per image; `records/` per-instance score, box, area, "
        "class, prompt and COCO RLE at original size; `markers/` completion markers; `reports/` the labeling "
        "job's report. For training from the store (`c2f-train --data`); `datasets.load_dataset` cannot "
        "read it (publish with `--format parquet` for that).",
    ]


def _provenance_lines(prov: dict) -> str:
    backends = prov.get("backends", {})
    lines = [f"- labeler: {prov.get('labeler', 'unknown')}; created {prov.get('created_at', 'unknown')}"]
    for role, ident in backends.items():
        lines.append(f"- {role}: `{json.dumps(ident, sort_keys=True)}`")
    if "input" in prov:
        inp = prov["input"]
        lines.append(f"- input list: {inp.get('count')} images, sha256 {inp.get('sha256')}")
    lines += [
        "",
        "Full provenance (from the store's attributes):",
        "",
        "```json",
        json.dumps(prov, indent=1, sort_keys=True),
        "```",
    ]
    return "\n".join(lines)


_JOIN_PARQUET = """Keys are image paths relative to the ImageNet root (`train/<wnid>/<file>.JPEG`).

```python
from pathlib import Path
import numpy as np
from datasets import load_dataset
from PIL import Image, ImageOps
from datasets_spec.geometry import labels_from_canvas   # pip install c2fmae; or the mapping in the format doc

labels = load_dataset("RELEASE_DIR_OR_HUB_REPO", split="train")
imagenet = Path("/path/to/ILSVRC2012")                  # your copy
row = labels[0]
image = ImageOps.exif_transpose(Image.open(imagenet / row["key"])).convert("RGB")
assert image.size == (row["width"], row["height"])
semantic = labels_from_canvas(np.array(row["semantic"]), row["height"], row["width"])  # [H, W] uint16
```
The canvas holds the image scaled to longer side S, top-left anchored (`valid_hw`); instance masks
at original size are the `instances`' COCO RLE (pycocotools' `mask.decode`)."""

_JOIN_ZARR = """Keys are image paths relative to the ImageNet root (`train/<wnid>/<file>.JPEG`).

```python
from pathlib import Path
from PIL import Image, ImageOps
from datasets_spec import open_store                     # pip install c2fmae; or plain zarr, see the format doc
from datasets_spec.geometry import labels_from_canvas

store = open_store("{data}")
imagenet = Path("/path/to/ILSVRC2012")                  # your copy
for i in store.done_indices()[:3]:
    view = store.read(int(i), records=True)
    image = ImageOps.exif_transpose(Image.open(imagenet / view.key)).convert("RGB")
    assert image.size[::-1] == view.orig_hw             # (H, W) after EXIF orientation
    semantic = labels_from_canvas(view.semantic, *view.orig_hw)   # [H, W] at full resolution
```
The canvas holds the image scaled to longer side S, top-left anchored (`valid_hw`); instance masks
at original size are in the records as COCO RLE. `c2f-data export-coco` writes COCO JSON."""
