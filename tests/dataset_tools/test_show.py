import numpy as np
import pytest
from PIL import Image

from dataset_tools.cli import main
from dataset_tools.show import GAP, HEADER, TILE, choose
from datasets_spec import open_store
from datasets_spec.geometry import fit


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
