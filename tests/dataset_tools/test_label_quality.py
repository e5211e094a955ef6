import json

import cv2
import numpy as np
import pytest
from PIL import Image

from dataset_tools.cli import main
from dataset_tools.label_quality import eval_semantic
from datasets_spec import open_store, schema, write_shard
from datasets_spec.geometry import labels_from_canvas
from datasets_spec.reader import Store
from datasets_spec.records import decode_rle, encode_rle

from ..datasets_spec.store_fixtures import make_results, make_store


@pytest.fixture
def exported(tmp_path):
    make_store(tmp_path / "ds", n=24, canvas=64, shard_size=8)
    out = tmp_path / "gt.json"
    assert main(["export-coco", str(tmp_path / "ds"), "-o", str(out), "--quiet"]) == 0
    return tmp_path / "ds", json.loads(out.read_text())


def _eval(tmp_path, ds, gt_doc, capsys):
    path = tmp_path / "gt_perturbed.json"
    path.write_text(json.dumps(gt_doc))
    assert main(["eval", str(ds), "--gt-coco", str(path), "--json", "--quiet"]) == 0
    return json.loads(capsys.readouterr().out)


def test_export_scored_against_itself_is_perfect(tmp_path, exported, capsys):
    ds, gt = exported
    result = _eval(tmp_path, ds, gt, capsys)
    assert result["class_aware"]["AP"] == 1.0 and result["class_agnostic"]["AP"] == 1.0
    assert result["class_agnostic"]["AR100"] == 1.0
    assert result["images_evaluated"] == len(gt["images"]) and result["classes_matched_by_name"] == 5


def test_swapped_classes_hurt_only_the_class_aware_score(tmp_path, exported, capsys):
    ds, gt = exported
    swap = {3: 4, 4: 3}  # disc <-> box (COCO ids = class ids + 1)
    gt["annotations"] = [dict(a, category_id=swap.get(a["category_id"], a["category_id"])) for a in gt["annotations"]]
    result = _eval(tmp_path, ds, gt, capsys)
    # disc and box now score 0, triangle stays 1; sky and ground have no instances (excluded).
    assert result["class_aware"]["AP"] == pytest.approx(1 / 3)
    assert result["class_agnostic"]["AP"] == 1.0


def test_dropped_instances_cost_precision_not_recall(tmp_path, exported, capsys):
    ds, gt = exported
    gt["annotations"] = gt["annotations"][1::2]
    result = _eval(tmp_path, ds, gt, capsys)["class_agnostic"]
    assert result["AR100"] == 1.0 and result["AP"] < 0.9


def test_eroded_masks_lower_recall_by_their_iou(tmp_path, exported, capsys):
    ds, gt = exported
    ious = []
    for a in gt["annotations"]:
        mask = decode_rle(a["segmentation"])
        eroded = cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        ious.append(eroded.sum() / mask.sum())  # eroded ⊂ mask
        a["segmentation"], a["area"] = encode_rle(eroded), float(eroded.sum())
    result = _eval(tmp_path, ds, gt, capsys)["class_agnostic"]
    thresholds = np.linspace(0.5, 0.95, 10)
    expected_ar = np.mean([(np.asarray(ious) >= t - 1e-12).mean() for t in thresholds])
    assert result["AR100"] == pytest.approx(expected_ar, abs=1e-6)
    assert result["AP"] < 0.95 and result["AP50"] > result["AP75"]


def test_semantic_eval_against_a_store_and_pngs(tmp_path, capsys):
    make_store(tmp_path / "ds", n=16, canvas=32, shard_size=8)
    assert main(["eval", str(tmp_path / "ds"), "--gt-semantic", str(tmp_path / "ds"), "--json", "--quiet"]) == 0
    same = json.loads(capsys.readouterr().out)
    assert same["mean_iou"] == 1.0 and same["images_compared"] == 13
    conf = np.asarray(same["confusion"]["matrix"])
    assert (conf == np.diag(np.diag(conf[:, :5])) @ np.eye(5, 6, dtype=np.int64)).all()
    # Ground truth with sky and ground swapped, as a store: those two classes score 0.
    make_store(tmp_path / "gt", n=16, canvas=32, shard_size=8, write=False)
    results = make_results(16, 32)
    for r in results:
        if r.error is None:
            sky = r.semantic == 0
            r.semantic[r.semantic == 1], r.semantic[sky] = 0, 1
    for shard in range(2):
        write_shard(tmp_path / "gt", shard, results[shard * 8 : (shard + 1) * 8])
    assert main(["eval", str(tmp_path / "ds"), "--gt-semantic", str(tmp_path / "gt"), "--json", "--quiet"]) == 0
    swapped = json.loads(capsys.readouterr().out)
    assert swapped["per_class_iou"]["sky"] == 0 and swapped["per_class_iou"]["ground"] == 0
    assert swapped["mean_iou"] == pytest.approx(3 / 5)
    # The same ground truth as PNGs at original size (255 = void): perfect again.
    store = open_store(tmp_path / "ds")
    for i in store.done_indices():
        view = store.read(int(i))
        truth = labels_from_canvas(view.semantic, *view.orig_hw)
        path = (tmp_path / "png" / view.key).with_suffix(".png")
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.where(truth == 65535, 255, truth).astype(np.uint8)).save(path)
    assert main(["eval", str(tmp_path / "ds"), "--gt-semantic", str(tmp_path / "png"), "--quiet"]) == 0
    assert "mIoU       1.000" in capsys.readouterr().out


def test_semantic_eval_reads_the_semantic_maps_of_done_shards_only(tmp_path, monkeypatch):
    make_store(tmp_path / "ds", n=24, canvas=32, shard_size=8)
    make_store(tmp_path / "gt", n=24, canvas=32, shard_size=8)  # the same maps
    (tmp_path / "ds" / "markers" / "shard-000001.json").unlink()
    reads, read_shard, read_masks = [], Store.read_shard, Store.read_masks

    def spy_shard(self, shard, *args, **kwargs):
        got = read_shard(self, shard, *args, **kwargs)
        reads.append((self.path.name, shard, tuple(got)))
        return got

    def spy_masks(self, indices):
        indices = list(indices)
        reads.append((self.path.name, self.layout.shard_of(indices[0]), (schema.SEMANTIC, schema.INSTANCE)))
        return read_masks(self, indices)

    monkeypatch.setattr(Store, "read_shard", spy_shard)
    monkeypatch.setattr(Store, "read_masks", spy_masks)
    store = open_store(tmp_path / "ds")
    result = eval_semantic(store, tmp_path / "gt", progress=False)
    assert sorted(r for r in reads if r[0] == "ds") == [("ds", 0, (schema.SEMANTIC,)), ("ds", 2, (schema.SEMANTIC,))]
    assert result["mean_iou"] == 1.0 and result["images_compared"] == len(store.done_indices()) == 14


def test_eval_errors_are_one_line(tmp_path, capsys):
    make_store(tmp_path / "ds", n=8, canvas=32, shard_size=8)
    (tmp_path / "bad.json").write_text("{")
    assert main(["eval", str(tmp_path / "ds"), "--gt-coco", str(tmp_path / "bad.json")]) == 2
    assert "bad.json: unreadable COCO JSON" in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "ds"), "--gt-semantic", str(tmp_path / "nothing")]) == 2
    assert "neither a store nor a folder" in capsys.readouterr().err
