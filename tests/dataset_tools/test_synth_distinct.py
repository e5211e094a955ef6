"""`c2f-data synth --distinct K`: a big store from K drawn images, repeated."""

import os

from dataset_tools.cli import main
from datasets_spec import open_store
from datasets_spec.validate import validate


def test_synth_repeats_k_images_as_hard_links(tmp_path, capsys):
    args = ["synth", str(tmp_path / "ds"), "--images", str(tmp_path / "img"), "--count", "40", "--shard-size", "8"]
    assert main([*args, "--canvas", "16", "--distinct", "4"]) == 0
    store = open_store(tmp_path / "ds")
    assert validate(tmp_path / "ds") == [] and len(store.done_indices()) == 40
    photos = sorted((tmp_path / "img" / "synth").glob("*.png"))
    assert len(photos) == 40 and len({os.stat(p).st_ino for p in photos}) == 4
    assert (store.read(6).instance == store.read(2).instance).all() and store.read(6).orig_hw == store.read(2).orig_hw


def test_synth_refuses_no_distinct_image(tmp_path, capsys):
    args = ["synth", str(tmp_path / "ds"), "--images", str(tmp_path / "img"), "--distinct", "0"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--distinct must be at least 1" in err
