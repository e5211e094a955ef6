"""How good the pseudo-labels are against ground truth a user holds (c2f-data eval).

Instances: COCOeval (segm) against a COCO JSON whose images are matched to ours by file_name = key,
class-aware (categories matched by name) and class-agnostic, at most 100 detections per image.
Semantic: a confusion matrix, with Dask one task per done shard (reading only its semantic maps;
pending shards cost nothing), against a second store (on the canvas) or a folder of label PNGs
named like the keys (DIR/<key without suffix>.png, at original size).
The PNGs' convention is the caller's to state, never guessed (semantic_truth.py).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
from pathlib import Path

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from datasets_spec import schema
from datasets_spec.errors import StoreError
from datasets_spec.geometry import labels_from_canvas
from datasets_spec.reader import Store, open_store

from .coco_export import AGNOSTIC_CATEGORY, annotation
from .dask_shards import run_tasks, shard_task
from .semantic_truth import GtValues, convention_warning, gt_classes, gt_values, read_png

log = logging.getLogger(__name__)

COCO_STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


# --- instances against COCO ground truth ---------------------------------------------------
def eval_coco(store: Store, gt_path) -> dict:
    """COCO segm AP/AR of the store's instances on the ground-truth images it has labeled."""
    gt_doc = _load_json(gt_path)
    gt_ids = {img["file_name"]: img["id"] for img in gt_doc["images"]}
    keys = store.keys()
    ours = {int(i): gt_ids[str(keys[i])] for i in store.done_indices() if str(keys[i]) in gt_ids}
    if not ours:
        raise StoreError(f"{gt_path}: no image file_name matches a done image's key in {store.path}")
    records = _records_of(store, ours)
    by_name = {c["name"].casefold(): c["id"] for c in gt_doc["categories"]}
    ours_to_gt = {k: by_name[v.casefold()] for k, v in store.label_space.items() if v.casefold() in by_name}
    aware = [
        annotation(r, n + 1, ours[r["index"]], ours_to_gt[r["semantic"]])
        for n, r in enumerate(records)
        if r.get("semantic") in ours_to_gt
    ]
    agnostic = [annotation(r, n + 1, ours[r["index"]], AGNOSTIC_CATEGORY["id"]) for n, r in enumerate(records)]
    image_ids = sorted(ours.values())
    return {
        "images_evaluated": len(image_ids),
        "gt_images_not_labeled": len(gt_ids) - len(image_ids),
        "class_aware": _cocoeval(gt_doc, aware, image_ids) if ours_to_gt else None,
        "classes_matched_by_name": len(ours_to_gt),
        "class_agnostic": _cocoeval(_agnostic(gt_doc), agnostic, image_ids),
    }


def _records_of(store: Store, indices: dict) -> list[dict]:
    """Records of the images in `indices`, reading only the shards that hold them."""
    shards = sorted({store.layout.shard_of(i) for i in indices})
    return [r for s in shards for r in store.records(s) if r["index"] in indices]


def _load_json(path) -> dict:
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise StoreError(f"{path}: unreadable COCO JSON ({exc})") from None
    if not all(isinstance(doc.get(k), list) for k in ("images", "annotations", "categories")):
        raise StoreError(f"{path}: not COCO instances JSON (needs images, annotations, categories)")
    return doc


def _agnostic(gt_doc: dict) -> dict:
    anns = [dict(a, category_id=AGNOSTIC_CATEGORY["id"]) for a in gt_doc["annotations"]]
    return {**gt_doc, "annotations": anns, "categories": [AGNOSTIC_CATEGORY]}


def _cocoeval(gt_doc: dict, dets: list[dict], image_ids: list[int]) -> dict:
    """COCOeval segm over `image_ids`; {name: value} for COCO_STAT_NAMES (-1 = undefined)."""
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = gt_doc
        gt.createIndex()
        if not dets:
            return {name: 0.0 for name in COCO_STAT_NAMES}
        ev = COCOeval(gt, gt.loadRes(dets), iouType="segm")
        ev.params.imgIds = image_ids
        ev.params.maxDets = [1, 10, 100]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {name: round(float(v), 6) for name, v in zip(COCO_STAT_NAMES, ev.stats)}


# --- semantic maps against a store or a folder of PNGs ------------------------------------
def eval_semantic(
    store: Store, gt, *, reduce_zero_label: bool = False, scheduler: str | None = None, progress: bool = True
) -> dict:
    """mIoU, per-class IoU and the confusion matrix [C, C + 1] (last column: predicted no class).

    reduce_zero_label: the ground-truth PNGs count classes from 1 and 0 is "other" (ADE20K).
    """
    num_classes = max(store.label_space, default=-1) + 1
    gt = Path(gt)
    gt_store = open_store(gt) if (gt / "zarr.json").is_file() else None
    if gt_store is not None and gt_store.layout.canvas != store.layout.canvas:
        raise StoreError(f"{gt}: canvas {gt_store.layout.canvas} differs from {store.path}'s {store.layout.canvas}")
    if gt_store is None and not gt.is_dir():
        raise StoreError(f"{gt}: neither a store nor a folder of label PNGs")
    if gt_store is not None and reduce_zero_label:
        raise StoreError(f"{gt}: a store holds class ids of its label space; --reduce-zero-label is for label PNGs")
    gt_index = _gt_index(store, gt_store)
    status = store.status()
    orig_hw, valid_hw = store.geometry()
    keys = store.keys()
    tasks = []
    for shard in store.done_shards():  # a pending shard holds no labels: never read
        start, stop = store.layout.shard_range(shard)
        done = [i for i in range(start, stop) if status[i] == schema.DONE]
        if not done:
            continue
        where = [(i, gt_index[i] if gt_store else str(keys[i])) for i in done]
        tasks.append(
            shard_task(
                shard_confusion,
                shard,
                store,
                shard,
                where,
                gt_store or gt,
                orig_hw[start:stop],
                valid_hw[start:stop],
                num_classes,
                reduce_zero_label,
            )
        )
    conf, compared, values = run_tasks(
        tasks,
        _add,
        (np.zeros((num_classes, num_classes + 1), np.int64), 0, GtValues()),
        scheduler=scheduler,
        desc="eval",
        progress=progress,
    )
    result = _semantic_summary(store, conf, compared)
    warning = convention_warning(values, conf, store.label_space, reduce_zero_label, pngs=gt_store is None)
    if warning:
        log.warning(warning)
    return {**result, "ground_truth": {"reduce_zero_label": reduce_zero_label, **values.as_dict(), "warning": warning}}


def _add(a: tuple, b: tuple) -> tuple:
    return tuple(x + y for x, y in zip(a, b))


def _gt_index(store: Store, gt_store: Store | None) -> np.ndarray:
    """For each of our images, the index of the same key in the ground-truth store (-1 if absent)."""
    if gt_store is None:
        return np.full(store.layout.num_images, -1)
    done = set(gt_store.done_indices().tolist())
    where = {str(k): i for i, k in enumerate(gt_store.keys()) if i in done}
    return np.array([where.get(str(k), -1) for k in store.keys()])


def shard_confusion(
    store: Store, shard: int, where: list, gt, orig_hw, valid_hw, num_classes: int, reduce_zero_label: bool
):
    """(confusion [C, C + 1] int64, images compared, GtValues) of the images `where` [(index, gt
    reference)] of one shard, reading its semantic maps [K, S, S] uint16 only."""
    start, _ = store.layout.shard_range(shard)
    semantic = store.read_shard(shard, (schema.SEMANTIC,))[schema.SEMANTIC]
    conf = np.zeros((num_classes, num_classes + 1), np.int64)
    compared, values = 0, GtValues()
    for i, ref in where:
        j = i - start
        h, w = valid_hw[j]
        pred = semantic[j, :h, :w]
        if isinstance(gt, Store):
            if ref < 0:
                continue
            truth = gt.read(int(ref)).semantic[:h, :w]
        else:
            truth = read_png(Path(gt), ref, tuple(orig_hw[j]))
            if truth is None:
                continue
            pred = labels_from_canvas(semantic[j], *orig_hw[j])
        classes, ignored = gt_classes(truth, reduce_zero_label)
        kept = ~ignored & (classes < num_classes)
        values = values + gt_values(truth, ignored, kept)
        conf += _confusion(classes[kept], pred[kept], num_classes)
        compared += 1
    return conf, compared, values


def _confusion(truth: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts [C, C + 1] of (true class, predicted class or C = none). truth: [M] class ids < C."""
    p = pred.astype(np.int64)
    p[p >= num_classes] = num_classes
    return np.bincount(truth * (num_classes + 1) + p, minlength=num_classes * (num_classes + 1)).reshape(
        num_classes, num_classes + 1
    )


def _semantic_summary(store: Store, conf: np.ndarray, compared: int) -> dict:
    if compared == 0:
        raise StoreError(f"{store.path}: no done image has ground truth to compare with")
    c = conf.shape[0]
    tp = np.diag(conf[:, :c]).astype(np.float64)
    union = conf.sum(1) + conf[:, :c].sum(0) - tp
    iou = {
        store.label_space.get(k, str(k)): (round(float(tp[k] / union[k]), 6) if union[k] else None) for k in range(c)
    }
    present = union > 0
    return {
        "images_compared": compared,
        "pixel_accuracy": round(float(tp.sum() / max(conf.sum(), 1)), 6),
        "mean_iou": round(float((tp[present] / union[present]).mean()), 6) if present.any() else None,
        "per_class_iou": iou,
        "confusion": {"rows": "true class id", "columns": "predicted class id, then 'none'", "matrix": conf.tolist()},
    }


def format_eval(result: dict) -> str:
    """Human-readable form of eval_coco() or eval_semantic() output."""
    if "mean_iou" in result:
        reduced = result["ground_truth"]["reduce_zero_label"]
        lines = [
            f"images     {result['images_compared']} compared",
            f"mIoU       {_num(result['mean_iou'])}   pixel accuracy {_num(result['pixel_accuracy'])}",
            "truth      " + ("0 = other, value v = class v - 1" if reduced else "value v = class v"),
        ]
        lines += [f"IoU        {name}: {_num(v)}" for name, v in result["per_class_iou"].items() if v is not None]
        return "\n".join(lines)
    lines = [
        f"images     {result['images_evaluated']} evaluated ({result['gt_images_not_labeled']} ground-truth "
        "images not labeled here)"
    ]
    for mode in ("class_aware", "class_agnostic"):
        stats = result[mode]
        if stats is None:
            lines.append(f"{mode:<15}n/a: no class name in common with the ground truth")
            continue
        shown = ("AP", "AP50", "AP75", "AR100")
        lines.append(f"{mode:<15}" + "  ".join(f"{k} {_num(stats[k])}" for k in shown))
    return "\n".join(lines)


def _num(x) -> str:
    return "n/a" if x is None or x < 0 else f"{x:.3f}"
