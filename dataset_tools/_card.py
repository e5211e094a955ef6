"""The dataset card (README.md) of a release: Hugging Face-style YAML front matter, then prose.

Everything in it comes from the store's attributes (provenance, label space, geometry) and from
`compute_stats()`; nothing is typed in by hand except the licence the publisher chooses.
"""

from __future__ import annotations

import json

import yaml

from datasets_spec import schema
from datasets_spec.reader import Store

from .stats import format_stats

SIZE_CATEGORIES = (
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
)
FEATURES = [
    ("key", "string"),
    ("label", "int32"),
    ("status", "uint8"),
    ("orig_hw", "int32"),
    ("valid_hw", "int32"),
    ("semantic", "uint16"),
    ("instance", "uint16"),
]


def front_matter(store: Store, license_id: str, name: str) -> dict:
    n = store.layout.num_images
    size = next((name for limit, name in SIZE_CATEGORIES if n < limit), "n>10M")
    imagenet = store.provenance.get("input", {}).get("kind") == "imagenet"
    return {
        "license": license_id,
        "pretty_name": f"c2fmae pseudo-labels: {name}",
        "annotations_creators": ["machine-generated"],
        "source_datasets": ["imagenet-1k" if imagenet else "original"],
        "size_categories": [size],
        "task_categories": ["image-segmentation"],
        "task_ids": ["semantic-segmentation", "instance-segmentation"],
        "dataset_info": {
            "features": [{"name": k, "dtype": v} for k, v in FEATURES]
            + [{"name": "records", "dtype": "string", "description": "gzipped JSON Lines per shard"}]
        },
    }


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


def render_card(store: Store, st: dict, license_id: str, files: dict, name: str) -> str:
    """README.md text. files: names of the release's parts (data, stats, plot, croissant); name: the dataset's."""
    s, k = store.layout.canvas, store.layout.shard_size
    prov = store.provenance
    lines = [
        "---",
        yaml.safe_dump(front_matter(store, license_id, name), sort_keys=False).strip(),
        "---",
        "",
        f"# c2fmae pseudo-labels: {name}",
        "",
        f"Semantic (scene-level) and instance (object-level) pseudo-masks for {store.layout.num_images} images, "
        f"made by machine with [c2fmae](https://arxiv.org/abs/2603.09955)'s `c2f-label`. **This release holds no "
        "image pixels**: join it with your own copy of the images by key (below).",
        "",
        "## Contents",
        "",
        f"- `{files['data']}/` — the labels: a Zarr v3 store (schema version {schema.SCHEMA_VERSION}, consolidated "
        f"metadata): `semantic` and `instance` [N, {s}, {s}] uint16 on a {s}×{s} canvas, shards of {k} images; "
        "`key`, `label`, `status`, `orig_hw`, `valid_hw` per image; `records/` per-instance score, box, area, "
        "class, prompt and COCO RLE at original size; `markers/` completion markers; `reports/` the labeling "
        "job's report.",
        f"- `{files['stats']}` and `{files['plot']}` — statistics (`c2f-data stats`).",
        f"- `{files['croissant']}` — MLCommons Croissant metadata.",
        "- `SHA256SUMS` — every file's checksum; `c2f-data verify RELEASE` checks them and the store.",
        "",
        f"![statistics]({files['plot']})",
        "",
        "## How the labels were made",
        "",
        _provenance_lines(prov),
        "",
        "Licences: the labels derive from the source images (ImageNet's terms of access: non-commercial "
        "research and education) and from each model's weights (see its model card; `classic` has none). "
        "c2fmae itself is Apache-2.0.",
        "",
        "## Known weaknesses",
        "",
    ]
    lines += [f"- {w}" for w in weaknesses(store, st)]
    lines += [
        "",
        "## Statistics",
        "",
        "```",
        format_stats(st),
        "```",
        "",
        "## Joining with your ImageNet",
        "",
        _JOIN.format(data=files["data"]),
        "",
    ]
    return "\n".join(lines)


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


_JOIN = """Keys are image paths relative to the ImageNet root (`train/<wnid>/<file>.JPEG`).

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
