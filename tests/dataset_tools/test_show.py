import numpy as np
import pytest
from PIL import Image

from dataset_tools.cli import main
from dataset_tools.show import GAP, HEADER, LEGEND_W, TILE, image_row, instance_labels, palette
from dataset_tools.show_selection import Filters, choose
from datasets_spec import open_store
from datasets_spec.geometry import fit
from datasets_spec.reader import Store

from ..datasets_spec.store_fixtures import LABEL_SPACE, make_store


@pytest.fixture
def synth(tmp_path):
    assert (
        main(["synth", str(tmp_path / "ds"), "--images", str(tmp_path / "img"), "--count", "12", "--shard-size", "4"])
        == 0
    )
    return tmp_path


def test_show_draws_photo_semantic_and_instance_columns(synth, capsys):
    key = "synth/000003.png"
    out = synth / "grid.png"
    assert main(["show", str(synth / "ds"), "--images", str(synth / "img"), "--keys", key, "-o", str(out)]) == 0
    grid = np.asarray(Image.open(out).convert("RGB")).astype(int)
    photo = Image.open(synth / "img" / key).convert("RGB")
    h, w = fit(photo.height, photo.width, TILE)
    assert grid.shape[1:] == (3 * (TILE + GAP) + 300, 3) and grid.shape[0] >= HEADER + h
    expected = np.asarray(photo.resize((w, h), Image.BILINEAR)).astype(int)
    assert np.abs(grid[HEADER : HEADER + h, :w] - expected).mean() < 1
    view = open_store(synth / "ds").read(3, records=True)
    sem_tile = grid[HEADER : HEADER + h, TILE + GAP : TILE + GAP + w]
    inst_tile = grid[HEADER : HEADER + h, 2 * (TILE + GAP) : 2 * (TILE + GAP) + w]
    # The overlays differ from the photo, and instance outlines are drawn white.
    assert np.abs(sem_tile - expected).mean() > 10
    assert (inst_tile == 255).all(axis=-1).sum() > 0 and len(view.records) > 0


def test_random_choice_is_seeded_and_only_done_images(synth):
    store = open_store(synth / "ds")
    a, b = choose(store, 5, None, seed=1), choose(store, 5, None, seed=1)
    assert a == b and len(set(a)) == 5 and choose(store, 5, None, seed=2) != a
    assert choose(store, 100, None, seed=0) == list(range(12))


def test_show_errors_are_one_line_naming_the_problem(synth, capsys):
    args = ["show", str(synth / "ds"), "--images", str(synth / "img"), "-o", str(synth / "g.png")]
    assert main(args + ["--keys", "nope.png"]) == 2
    assert "no image with key 'nope.png'" in capsys.readouterr().err
    (synth / "img" / "synth" / "000001.png").unlink()
    assert main(args + ["--keys", "synth/000001.png"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "000001.png: cannot read the photo" in err
    Image.new("RGB", (7, 5)).save(synth / "img" / "synth" / "000002.png")
    assert main(args + ["--keys", "synth/000002.png"]) == 2
    assert "not the image that was labeled" in capsys.readouterr().err


def _records_by_image(store) -> dict[int, list[dict]]:
    return {
        i: [r for s in range(store.layout.num_shards) for r in store.records(s) if r["index"] == i]
        for i in range(store.layout.num_images)
    }


def test_choice_by_class_and_instance_count_follows_the_records(synth):
    store = open_store(synth / "ds")
    records = _records_by_image(store)
    with_disc = [i for i, recs in records.items() if any(r["semantic"] == 2 for r in recs)]
    crowded = [i for i, recs in records.items() if len(recs) >= 3]
    assert 0 < len(with_disc) < 12 and 0 < len(crowded) < 12
    assert choose(store, 100, None, 0, Filters(class_name="disc")) == with_disc
    assert choose(store, 100, None, 0, Filters(class_name="DISC")) == with_disc  # any case
    assert choose(store, 100, None, 0, Filters(min_instances=3)) == crowded
    both = sorted(set(with_disc) & set(crowded))
    assert choose(store, 100, None, 0, Filters(class_name="disc", min_instances=3)) == both
    few = choose(store, 2, None, 5, Filters(class_name="disc"))
    assert len(few) == 2 and set(few) <= set(with_disc) and few == choose(store, 2, None, 5, Filters(class_name="disc"))


def test_choosing_reads_no_mask_and_stops_at_the_shards_it_needs(synth, monkeypatch):
    store = open_store(synth / "ds")

    def no_masks(*args, **kwargs):
        raise AssertionError("choosing read masks")

    for name in ("read", "read_masks", "read_shard"):
        monkeypatch.setattr(Store, name, no_masks)
    shards_read = []
    records = Store.records
    monkeypatch.setattr(Store, "records", lambda self, shard: shards_read.append(shard) or records(self, shard))
    # Every synthetic image has an instance: the first shard visited holds the one image asked for.
    assert len(choose(store, 1, None, 0, Filters(min_instances=1))) == 1
    assert len(shards_read) == 1
    assert choose(store, 1, None, 0) and len(shards_read) == 1  # no filter on instances: no records read


def test_failed_images_are_chosen_and_drawn_with_their_reason(tmp_path):
    make_store(tmp_path / "ds", n=20, canvas=32, shard_size=8)  # images 4, 9, 14, 19 failed
    store = open_store(tmp_path / "ds")
    assert choose(store, 100, None, 0, Filters(status="failed")) == [4, 9, 14, 19]
    photo = tmp_path / "img" / store.keys()[9]
    photo.parent.mkdir(parents=True)
    Image.new("RGB", (60, 30), (255, 0, 0)).save(photo)
    tiles, legend, key = image_row(store, 9, tmp_path / "img", palette(5))
    assert key == str(store.keys()[9])
    assert " ".join(text for text, _ in legend) == "failed: truncated image file: image 9"
    assert (
        tiles[0].shape == (TILE // 2, TILE, 3)
        and (np.abs(tiles[0].astype(int) - (255, 0, 0)) < 8).all(axis=-1).mean() > 0.9
    )
    out = tmp_path / "failed.png"
    assert (
        main(["show", str(tmp_path / "ds"), "--images", str(tmp_path / "img"), "--status", "failed", "-o", str(out)])
        == 0
    )
    with Image.open(out) as img:  # four rows (three photos missing: a grey tile of TILE // 2 each)
        assert img.size == (3 * (TILE + GAP) + LEGEND_W, HEADER + 4 * (TILE // 2 + GAP))


def test_each_instance_is_drawn_with_its_box_and_a_class_and_score_label(synth):
    key = "synth/000003.png"
    out = synth / "grid.png"
    assert main(["show", str(synth / "ds"), "--images", str(synth / "img"), "--keys", key, "-o", str(out)]) == 0
    view = open_store(synth / "ds").read(3, records=True)
    assert instance_labels(view.records, LABEL_SPACE) == [f"{LABEL_SPACE[r['semantic']]} 1.00" for r in view.records]
    assert instance_labels([{"semantic": None, "score": 0.5}], LABEL_SPACE) == ["no class 0.50"]
    grid = np.asarray(Image.open(out).convert("RGB"))
    h, w = fit(*view.orig_hw, TILE)
    tile = grid[HEADER : HEADER + h, 2 * (TILE + GAP) : 2 * (TILE + GAP) + w]
    colours = palette(max(r["id"] for r in view.records) + 1)
    for rec in view.records:  # the left side of each box is drawn in the instance's colour
        x, y, bw, bh = rec["box"]
        left, top, bottom = (
            round(x * w / view.orig_hw[1]),
            round(y * h / view.orig_hw[0]),
            round((y + bh) * h / view.orig_hw[0]),
        )
        side = tile[top + 1 : bottom - 1, left]
        assert (side == colours[rec["id"]]).all(axis=-1).mean() > 0.5, rec


def test_show_filters_reach_the_command_line(synth, capsys):
    args = ["show", str(synth / "ds"), "--images", str(synth / "img"), "-o", str(synth / "g.png")]
    store = open_store(synth / "ds")
    with_box = [i for i, recs in _records_by_image(store).items() if any(r["semantic"] == 3 for r in recs)]
    assert main(args + ["--class", "box", "-n", "100"]) == 0
    with Image.open(synth / "g.png") as img:  # one row per image with a box, each at most TILE high
        assert HEADER + len(with_box) * GAP < img.height <= HEADER + len(with_box) * (TILE + GAP)
    no_box = next(i for i in range(12) if i not in with_box)
    assert main(args + ["--class", "box", "--keys", str(store.keys()[no_box])]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not a done image with an instance of 'box'" in err


def test_unknown_class_and_impossible_filters_are_one_line_errors(synth, capsys):
    args = ["show", str(synth / "ds"), "--images", str(synth / "img"), "-o", str(synth / "g.png")]
    assert main(args + ["--class", "disk"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no class 'disk' in the label space; did you mean 'disc'?" in err
    assert main(args + ["--class", "zebra"]) == 2
    assert "its classes: box, disc, ground, sky, triangle" in capsys.readouterr().err
    assert main(args + ["--class", "sky"]) == 2  # a class of the semantic map only: no instance carries it
    assert "no done image with an instance of 'sky' to show" in capsys.readouterr().err
    assert main(args + ["--status", "failed"]) == 2
    assert "no failed image to show" in capsys.readouterr().err
    assert main(args + ["--status", "failed", "--min-instances", "1"]) == 2
    assert "failed images have no instances" in capsys.readouterr().err
    assert main(args + ["--min-instances", "-1"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
