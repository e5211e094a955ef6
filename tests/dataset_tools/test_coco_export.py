import json

import numpy as np
from pycocotools.coco import COCO

from dataset_tools.cli import main
from datasets_spec import open_store
from datasets_spec.records import decode_rle

from ..datasets_spec.store_fixtures import LABEL_SPACE, make_store


def test_export_loads_in_pycocotools_and_matches_the_records(tmp_path, capsys):
    _, keys, results = make_store(tmp_path / "ds", n=20, canvas=32, shard_size=8)
    out = tmp_path / "instances.json"
    assert main(["export-coco", str(tmp_path / "ds"), "-o", str(out), "--quiet", "--json"]) == 0
    counts = json.loads(capsys.readouterr().out)
    coco = COCO(str(out))
    done = [i for i, r in enumerate(results) if not r.error]
    assert sorted(coco.getImgIds()) == [i + 1 for i in done]
    for i in done:
        img = coco.imgs[i + 1]
        assert (img["file_name"], (img["height"], img["width"])) == (keys[i], tuple(results[i].orig_hw))
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[i + 1]))
        recs = results[i].records
        assert [a["category_id"] for a in anns] == [r["semantic"] + 1 for r in recs]  # COCO ids from 1
        for a, r in zip(anns, recs):
            assert a["bbox"] == r["box"] and a["area"] == r["area"] and a["score"] == r["score"]
            assert (coco.annToMask(a).astype(bool) == decode_rle(r["rle"])).all()
    assert {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())} == {k + 1: v for k, v in LABEL_SPACE.items()}
    assert 0 not in coco.getCatIds() and coco.dataset["info"]["category_id_offset"] == 1
    assert counts == {"images": len(done), "annotations": len(coco.anns), "skipped_unclassed": 0}
    # Scores are kept, so the same annotations load as detections.
    dets = coco.loadRes(json.loads(out.read_text())["annotations"])
    assert len(dets.anns) == len(coco.anns)


def test_class_agnostic_export_has_one_category(tmp_path):
    make_store(tmp_path / "ds", n=12, canvas=32, shard_size=8)
    out = tmp_path / "agnostic.json"
    assert main(["export-coco", str(tmp_path / "ds"), "-o", str(out), "--quiet", "--class-agnostic"]) == 0
    doc = json.loads(out.read_text())
    assert doc["categories"] == [{"id": 1, "name": "object", "supercategory": "object"}]
    assert {a["category_id"] for a in doc["annotations"]} == {1}
    assert [a["id"] for a in doc["annotations"]] == list(range(1, len(doc["annotations"]) + 1))


def test_unclassed_instances_are_left_out_and_counted(tmp_path, capsys):
    make_store(tmp_path / "ds", n=8, canvas=32, shard_size=8, write=False)
    from datasets_spec import write_shard

    from ..datasets_spec.store_fixtures import make_results

    results = make_results(8, 32, fail_every=0)
    results[0].records[0]["semantic"] = None
    write_shard(tmp_path / "ds", 0, results)
    out = tmp_path / "x.json"
    assert main(["export-coco", str(tmp_path / "ds"), "-o", str(out), "--quiet"]) == 0
    assert "1 instances without a class left out" in capsys.readouterr().out
    total = sum(len(r.records) for r in results)
    assert len(json.loads(out.read_text())["annotations"]) == total - 1


def test_export_into_a_missing_folder_is_one_line(tmp_path, capsys):
    make_store(tmp_path / "ds", n=8, canvas=32, shard_size=8)
    assert main(["export-coco", str(tmp_path / "ds"), "-o", str(tmp_path / "no" / "x.json"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "x.json" in err
    assert not np.any([p.name.endswith(".tmp") for p in tmp_path.rglob("*")])
    assert open_store(tmp_path / "ds")  # the store is untouched
