import json

import numpy as np
import pytest
from PIL import Image

from dataset_tools.cli import main
from dataset_tools.semantic_export import png_format, png_path
from dataset_tools.semantic_truth import GtValues, convention_warning
from datasets_spec import open_store, schema
from datasets_spec.errors import StoreError
from datasets_spec.geometry import labels_from_canvas

from ..datasets_spec.store_fixtures import LABEL_SPACE, make_store


@pytest.fixture
def exported(tmp_path, capsys):
    """A store of 16 images (3 failed) in two shards, exported to tmp_path / "png"."""
    make_store(tmp_path / "ds", n=16, canvas=32, shard_size=8)
    assert main(["export-semantic", str(tmp_path / "ds"), "-o", str(tmp_path / "png"), "--quiet", "--json"]) == 0
    return tmp_path / "ds", tmp_path / "png", json.loads(capsys.readouterr().out)


def _eval(ds, gt, capsys, *flags) -> tuple[dict, str]:
    assert main(["eval", str(ds), "--gt-semantic", str(gt), "--json", "--quiet", *flags]) == 0
    out = capsys.readouterr()
    return json.loads(out.out), out.err


def test_pngs_are_the_class_ids_at_original_size(exported):
    ds, out, counts = exported
    store = open_store(ds)
    done = store.done_indices()
    assert counts == {"images": len(done), "failed": 3, "pending": 0, "bit_depth": 8, "ignore": 255}
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == sorted(
        str(store.keys()[i]).replace(".JPEG", ".png") for i in done
    )
    for i in done:
        view = store.read(int(i))
        with Image.open(out / view.key.replace(".JPEG", ".png")) as img:
            assert img.mode == "L"
            pixels = np.asarray(img)
        expected = labels_from_canvas(view.semantic, *view.orig_hw)
        assert pixels.shape == view.orig_hw
        assert (pixels == np.where(expected == schema.SEMANTIC_IGNORE, 255, expected)).all()
    classes = json.loads((out / "classes.json").read_text())
    assert classes["classes"] == {str(k): v for k, v in LABEL_SPACE.items()}
    assert (classes["ignore"], classes["bit_depth"], classes["images"]) == (255, 8, len(done))


def test_unlabeled_pixels_take_the_ignore_value(tmp_path):
    from datasets_spec import write_shard

    from ..datasets_spec.store_fixtures import make_results

    make_store(tmp_path / "ds", n=8, canvas=32, shard_size=8, write=False)
    results = make_results(8, 32, fail_every=0)
    results[0].semantic[:4] = schema.SEMANTIC_IGNORE  # "no class" inside the valid region
    write_shard(tmp_path / "ds", 0, results)
    assert main(["export-semantic", str(tmp_path / "ds"), "-o", str(tmp_path / "png"), "--quiet"]) == 0
    view = open_store(tmp_path / "ds").read(0)
    pixels = np.asarray(Image.open(png_path(tmp_path / "png", view.key)))
    unlabeled = labels_from_canvas(view.semantic, *view.orig_hw) == schema.SEMANTIC_IGNORE
    assert unlabeled.any() and (pixels[unlabeled] == 255).all() and (pixels[~unlabeled] < 5).all()


def test_export_round_trips_through_eval(exported, capsys):
    ds, out, counts = exported
    result, err = _eval(ds, out, capsys)
    assert result["mean_iou"] == 1.0 and result["pixel_accuracy"] == 1.0
    assert result["images_compared"] == counts["images"]
    assert result["ground_truth"]["warning"] is None and err == ""


def test_ade20k_style_truth_needs_reduce_zero_label(exported, tmp_path, capsys):
    ds, out, _ = exported
    shifted = tmp_path / "ade"
    for path in out.rglob("*.png"):  # ADE20K's convention: 0 = other, class k stored as k + 1
        pixels = np.asarray(Image.open(path)).astype(np.int64)
        target = shifted / path.relative_to(out)
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.where(pixels == 255, 0, pixels + 1).astype(np.uint8)).save(target)
    result, err = _eval(ds, shifted, capsys, "--reduce-zero-label")
    assert result["mean_iou"] == 1.0 and result["ground_truth"]["warning"] is None and err == ""
    # Without the flag the values are taken as class ids, as asked, and one line says they look shifted.
    result, err = _eval(ds, shifted, capsys)
    assert result["mean_iou"] < 0.5
    assert result["ground_truth"]["largest_value"] == len(LABEL_SPACE)
    assert err.count("\n") == 1 and "warning" in err and "--reduce-zero-label" in err
    # The flag on PNGs of class ids: computed as asked, with one line saying they match one class up.
    result, err = _eval(ds, out, capsys, "--reduce-zero-label")
    assert result["mean_iou"] < 0.5 and err.count("\n") == 1 and "drop the flag" in err


def test_reduce_zero_label_is_refused_for_a_store_and_for_coco(exported, capsys):
    ds, _, _ = exported
    assert main(["eval", str(ds), "--gt-semantic", str(ds), "--reduce-zero-label", "--quiet"]) == 2
    assert "--reduce-zero-label is for label PNGs" in capsys.readouterr().err
    assert main(["eval", str(ds), "--gt-coco", "x.json", "--reduce-zero-label"]) == 2
    assert "applies to --gt-semantic" in capsys.readouterr().err


def test_a_non_empty_output_folder_is_refused_and_left_as_is(exported, capsys):
    ds, out, _ = exported
    before = sorted(out.rglob("*"))
    assert main(["export-semantic", str(ds), "-o", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not an empty folder" in err
    assert sorted(out.rglob("*")) == before
    (out.parent / "empty").mkdir()
    assert main(["export-semantic", str(ds), "-o", str(out.parent / "empty"), "--quiet"]) == 0
    assert "wrote 13 8-bit label PNGs (ignore = 255)" in capsys.readouterr().out


def test_colliding_keys_fail_and_leave_nothing(tmp_path, capsys):
    from datasets_spec import create_store, write_shard

    from ..datasets_spec.store_fixtures import make_results

    create_store(tmp_path / "ds", ["a/x.jpg", "a/x.jpeg"], [0, 0], label_space=LABEL_SPACE, canvas=16, shard_size=2)
    write_shard(tmp_path / "ds", 0, make_results(2, 16, fail_every=0))
    assert main(["export-semantic", str(tmp_path / "ds"), "-o", str(tmp_path / "png"), "--quiet"]) == 2
    assert "also maps to a/x.png" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_large_label_spaces_get_16_bit_pngs_and_unsafe_keys_are_refused(tmp_path):
    assert png_format({0: "a", 254: "b"}) == (np.uint8, 255)
    assert png_format({0: "a", 255: "b"}) == (np.uint16, 65535)
    assert png_path(tmp_path, "n01/x.JPEG") == tmp_path / "n01" / "x.png"
    for key in ("../x.jpg", "/etc/x.jpg", "a/../../x.jpg"):
        with pytest.raises(StoreError, match="not a relative path"):
            png_path(tmp_path, key)


def test_convention_warning_signs():
    conf = np.diag([10, 10, 10]) @ np.eye(3, 4, dtype=np.int64)  # truth = prediction, 3 classes
    classes = {0: "a", 1: "b", 2: "c"}
    assert convention_warning(GtValues(2, 5, 0), conf, classes, False) is None
    assert "rerun with --reduce-zero-label" in convention_warning(GtValues(3, 5, 0), conf, classes, False)
    no_zero = {1: "b", 2: "c"}
    assert "no class 0" in convention_warning(GtValues(2, 5, 0), conf, no_zero, False)
    assert "7 ground-truth pixels hold values beyond" in convention_warning(GtValues(9, 5, 7), conf, classes, False)
    # A store's values are class ids: only the values beyond are worth a line.
    assert convention_warning(GtValues(3, 5, 0), conf, classes, False, pngs=False) is None
    shifted_up = np.roll(conf, 1, axis=1)  # every true class t predicted as t + 1
    assert "drop the flag" in convention_warning(GtValues(3, 5, 0), shifted_up, classes, True)


def test_export_reads_no_instance_maps(exported, tmp_path):
    ds, out, _ = exported
    for shard in (0, 1):  # instance data that cannot be decoded: reading it would fail the export
        (ds / "instance" / "c" / str(shard) / "0" / "0").write_bytes(b"garbled")
    assert main(["export-semantic", str(ds), "-o", str(tmp_path / "again"), "--quiet"]) == 0
    pngs = sorted(p.relative_to(out) for p in out.rglob("*.png"))
    assert pngs == sorted(p.relative_to(tmp_path / "again") for p in (tmp_path / "again").rglob("*.png"))
    assert all((out / p).read_bytes() == (tmp_path / "again" / p).read_bytes() for p in pngs)
