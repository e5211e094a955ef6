"""benchmarks/replicate_small.py: exact ground truth of the scenes, and the --quick run end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest

from datasets_spec import open_store

from .benchmark_modules import benchmark_module


def test_scene_ground_truth_is_consistent():
    scenes = benchmark_module("scenes")
    digits, classes, photos = scenes.load_sources()
    rng = np.random.default_rng(0)
    for _ in range(20):
        scene = scenes.make_scene(rng, digits, classes, photos, 48)
        ids = np.unique(scene.instance[scene.instance > 0])
        assert list(ids) == list(range(1, len(ids) + 1))  # fully occluded digits are dropped
        assert ((scene.instance > 0) == (scene.semantic > 0)).all()
        for k in ids:  # one digit class per instance
            assert len(np.unique(scene.semantic[scene.instance == k])) == 1
        areas = [(scene.instance == k).sum() for k in ids]
        largest = scene.semantic[scene.instance == ids[int(np.argmax(areas))]][0]
        assert scene.label == largest - 1


def test_the_ground_truth_store_joins_the_image_folders(tmp_path):
    scenes = benchmark_module("scenes")
    folder, store_path = scenes.write_split(tmp_path, "val", 12, 32, seed=0, sources=scenes.load_sources())
    store = open_store(store_path)
    assert len(store.done_indices()) == 12
    for i, key in enumerate(store.keys()):
        assert (folder / str(key)).is_file() and int(str(key).split("/")[0]) == store.labels()[i]
    assert sorted(p.name for p in folder.iterdir()) == [str(d) for d in range(10)]


@pytest.mark.slow
def test_quick_run_scores_every_method(tmp_path, capsys):
    # --quick, smaller still: what is checked is that every stage runs and reports, not the scores
    result = benchmark_module("replicate_small").main(
        [
            "--quick",
            "--seeds",
            "1",
            "--threads",
            "1",
            "--out",
            str(tmp_path),
            "--size",
            "train=32",
            "val=20",
            "epochs=2",
            "linear_epochs=10",
            "dense_epochs=10",
        ]
    )
    methods = ["random-init", "mae", "parallel", "c2fmae", "c2fmae-nocurr", "c2fmae-gt"]
    assert list(result["summary"]) == methods
    for metrics in result["summary"].values():
        assert 0 <= metrics["knn_top1"][0] <= 100 and 0 <= metrics["dense_miou"][0] <= 1
    assert 0 <= result["label_agreement"]["foreground_iou"] <= 1
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["summary"] == result["summary"]
    assert (tmp_path / "results.png").stat().st_size > 0
    assert "| c2fmae-gt |" in capsys.readouterr().out
