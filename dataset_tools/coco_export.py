"""COCO instance-segmentation JSON from a store, written as a stream (c2f-data export-coco).

images: one per done image, id = store index + 1, file_name = key, original width and height.
annotations: one per record: RLE at original size, bbox [x, y, w, h], area, score, iscrowd 0;
category_id = the record's semantic class id + CATEGORY_OFFSET (class-aware; instances without a
class are left out and counted) or 1 (class-agnostic). categories: the label space with the same
shift (COCO's ids count from 1; mmdetection, detectron2 and pycocotools treat 0 as nothing), or one
"object". The shift is written in the JSON's `info`.
The file is written shard by shard (nothing dataset-sized is held in memory), then renamed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from tqdm import tqdm

from datasets_spec import schema, storage
from datasets_spec.errors import StoreError
from datasets_spec.reader import Store
from plumbing.files import atomic_write

AGNOSTIC_CATEGORY = {"id": 1, "name": "object", "supercategory": "object"}
CATEGORY_OFFSET = 1  # COCO category_id = store class id + 1


def categories(store: Store, class_agnostic: bool) -> list[dict]:
    if class_agnostic:
        return [AGNOSTIC_CATEGORY]
    return [{"id": k + CATEGORY_OFFSET, "name": v, "supercategory": ""} for k, v in sorted(store.label_space.items())]


def iter_images(store: Store) -> Iterator[dict]:
    """COCO `images` entries of the done images, in store order."""
    status = store.status()
    orig_hw, _ = store.geometry()
    for shard, start, stop in store.iter_shards():
        if not (status[start:stop] == schema.DONE).any():
            continue
        for j, key in enumerate(store.shard_keys(shard)):
            i = start + j
            if status[i] == schema.DONE:
                yield {"id": i + 1, "file_name": key, "height": int(orig_hw[i, 0]), "width": int(orig_hw[i, 1])}


def iter_annotations(store: Store, class_agnostic: bool, skipped: list | None = None, progress=None) -> Iterator[dict]:
    """COCO `annotations` (with scores) from the records, shard by shard; ids count from 1.

    skipped: optional one-element list, incremented for each instance without a class (class-aware).
    progress: optional callable(1) after each shard.
    """
    ann_id = 0
    for shard in store.done_shards():
        for rec in store.records(shard):
            if class_agnostic:
                category = AGNOSTIC_CATEGORY["id"]
            elif rec.get("semantic") is None:
                if skipped is not None:
                    skipped[0] += 1
                continue
            else:
                category = int(rec["semantic"]) + CATEGORY_OFFSET
            ann_id += 1
            yield annotation(rec, ann_id, rec["index"] + 1, category)
        if progress:
            progress(1)


def annotation(rec: dict, ann_id: int, image_id: int, category: int) -> dict:
    """One record as a COCO annotation with its score (usable as a detection)."""
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": category,
        "segmentation": rec["rle"],
        "area": float(rec["area"]),
        "bbox": [float(v) for v in rec["box"]],
        "iscrowd": 0,
        "score": float(rec["score"]),
    }


def export_coco(store: Store, out, *, class_agnostic: bool = False, progress: bool = True) -> dict:
    """Write the COCO JSON of `store` to `out`; return counts {images, annotations, skipped_unclassed}."""
    out = Path(out)
    counts, skipped = {"images": 0, "annotations": 0}, [0]

    def write(f) -> None:
        with tqdm(total=len(store.done_shards()), desc="export", unit="shard", disable=not progress) as bar:
            head = {
                "info": _info(store, class_agnostic),
                "licenses": [],
                "categories": categories(store, class_agnostic),
            }
            f.write(json.dumps(head)[:-1].encode())
            counts["images"] = _write_list(f, "images", iter_images(store))
            counts["annotations"] = _write_list(
                f, "annotations", iter_annotations(store, class_agnostic, skipped, bar.update)
            )
            f.write(b"}\n")

    try:
        atomic_write(out, write)
    except OSError as exc:
        raise StoreError(f"{out}: cannot write ({exc})") from None
    return {**counts, "skipped_unclassed": skipped[0]}


def _info(store: Store, class_agnostic: bool) -> dict:
    """COCO `info`, saying how category ids relate to the store's class ids."""
    ids = (
        "category_id 1 = every instance (class-agnostic)"
        if class_agnostic
        else f"category_id = store class id + {CATEGORY_OFFSET} (COCO ids count from 1)"
    )
    return {
        "description": f"c2fmae pseudo-labels of {storage.name(store.path)}",
        "version": "1",
        "category_ids": ids,
        "category_id_offset": None if class_agnostic else CATEGORY_OFFSET,
    }


def _write_list(f, name: str, items) -> int:
    """Write `, "name": [item,...]` as JSON into binary file `f`; returns the item count."""
    f.write(f', "{name}": ['.encode())
    n = 0
    for item in items:
        f.write((("\n" if n == 0 else ",\n") + json.dumps(item, separators=(",", ":"))).encode())
        n += 1
    f.write(b"]")
    return n
