"""benchmarks/small_evidence.py: the shape scenes' ground truth, the pre-registered rule, the cache
key, and the --quick run end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest

from datasets_spec import open_store

from .benchmark_modules import benchmark_module


def test_shape_scenes_have_exact_consistent_ground_truth():
    shapes = benchmark_module("shapes")
    photos = benchmark_module("scenes").load_sources()[2]
    rng = np.random.default_rng(0)
    seconds = 0
    for n in range(60):
        main = n % len(shapes.CLASSES)
        scene = shapes.make_shape_scene(rng, photos, 32, main, second=0.5)
        ids = np.unique(scene.instance[scene.instance > 0])
        assert list(ids) == list(range(1, len(ids) + 1))
        assert ((scene.instance > 0) == (scene.semantic > 0)).all()
        for k in ids:
            assert len(np.unique(scene.semantic[scene.instance == k])) == 1
        areas = [(scene.instance == k).sum() for k in ids]
        largest = scene.semantic[scene.instance == ids[int(np.argmax(areas))]][0]
        assert scene.label == main == largest - 1  # image class = the main shape = the largest instance
        seconds += len(ids) == 2
    assert 10 < seconds < 50  # about half the scenes hold a second, visible shape


def test_every_shape_class_draws_a_distinct_mask():
    shapes = benchmark_module("shapes")
    masks = [shapes.shape_mask(name, 32, (16.0, 16.0), 10.0, 0.3) for name in shapes.CLASSES]
    assert all(m.sum() > 40 for m in masks)
    for i in range(len(masks)):
        for j in range(i + 1, len(masks)):
            assert (masks[i] != masks[j]).sum() > 10, (shapes.CLASSES[i], shapes.CLASSES[j])


def test_shape_split_is_balanced_and_joins_its_store(tmp_path):
    shapes = benchmark_module("shapes")
    photos = benchmark_module("scenes").load_sources()[2]
    folder, store_path = shapes.write_shape_split(tmp_path, "val", 24, 32, seed=0, photos=photos)
    store = open_store(store_path)
    assert len(store.done_indices()) == 24 and store.label_space == shapes.LABEL_SPACE
    for i, key in enumerate(store.keys()):
        assert int(str(key).split("/")[0]) == store.labels()[i] and (folder / str(key)).is_file()
    assert sorted(len(list((folder / str(c)).iterdir())) for c in range(6)) == [4] * 6


@pytest.mark.parametrize(
    ("a", "b", "verdict"),
    [
        ([60.0, 62.0, 61.0], [50.0, 51.0, 52.0], "A beats B"),  # gaps 10, 11, 9: mean 10 > 2 x 1
        ([50.0, 51.0, 52.0], [60.0, 62.0, 61.0], "B beats A"),
        ([60.0, 50.0, 58.0], [50.0, 55.0, 52.0], "no difference shown"),  # gaps 10, -5, 6
        ([60.0, 62.0], [50.0, 51.0], "too few seeds (rule needs 3)"),
    ],
)
def test_the_paired_rule(a, b, verdict):
    record = benchmark_module("evidence_report").paired_verdict(a, b, "A", "B")
    assert record["verdict"] == verdict
    assert record["gaps"] == [x - y for x, y in zip(a, b)]


def test_calibration_needs_the_rule_and_the_margin():
    report = benchmark_module("evidence_report")
    assert report.calibrated([90.0, 91.0, 92.0], [40.0, 41.0, 42.0])[0]
    assert not report.calibrated([45.0, 46.0, 47.0], [40.0, 41.0, 42.0])[0]  # beats, by 5 < 10 points
    assert not report.calibrated([90.0, 30.0, 92.0], [40.0, 41.0, 42.0])[0]  # spread too wide


def test_cached_encoders_are_keyed_by_code_and_config(tmp_path):
    se = benchmark_module("small_evidence")
    first = se.Bench(tmp_path, se.PRESETS["quick"], "quick", {}, 0)
    first.data = {"root": tmp_path / "data-x"}
    path, key = first._encoder("random-init", 0)
    assert (path / "config.json").is_file() and key in path.name
    assert first._encoder("random-init", 0) == (path, key)  # same code, same config: reused
    fixed = se.Bench(tmp_path, se.PRESETS["quick"], "quick", {}, 0)
    fixed.data, fixed.code = first.data, "another-code"
    assert fixed._encoder("random-init", 0)[0] != path  # a code change: a new encoder
    larger = se.Bench(tmp_path, {**se.PRESETS["quick"], "pretrain_epochs": 9}, "quick", {}, 0)
    larger.data = first.data
    assert larger._encoder("random-init", 0)[0] != path  # a config change: a new encoder


def test_code_version_follows_the_sources(tmp_path, monkeypatch):
    se = benchmark_module("small_evidence")
    for entry in se.CODE_PATHS:
        target = tmp_path / entry
        if entry.endswith(".py"):
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("x = 1\n")
        else:
            (target / "sub").mkdir(parents=True)
            (target / "sub" / "a.py").write_text("y = 1\n")
    monkeypatch.setattr(se, "ROOT", tmp_path)
    before = se.code_version()
    (tmp_path / "training" / "sub" / "a.py").write_text("y = 2\n")
    assert se.code_version() != before


def test_a_variant_names_its_base_and_settings():
    se = benchmark_module("small_evidence")
    assert se._variants(["drop=c2fmae:model.x=1,model.y=2"]) == {"drop": ("c2fmae", ["model.x=1", "model.y=2"])}
    with pytest.raises(SystemExit, match="--variant expects"):
        se._variants(["mae=c2fmae:model.x=1"])  # a row name the grid already has
    with pytest.raises(SystemExit, match="--variant expects"):
        se._variants(["c2fmae-drop50=c2fmae:model.x=1"])  # ... or a switch row's


@pytest.mark.slow
def test_quick_grid_runs_every_row_and_reuses_its_cache(tmp_path, capsys):
    se = benchmark_module("small_evidence")
    argv = ["--quick", "--stage", "grid", "--force-grid", "--seeds", "1", "--out", str(tmp_path)]
    result = se.main(argv)
    rows = ["pixels", "supervised", "random-init", "mae", "parallel", "c2fmae", "c2fmae-nocurr", "c2fmae-gt"]
    rows += ["c2fmae-budget16", "c2fmae-drop50"]  # the switches
    assert list(result["per_seed"]) == rows and result["forced"]
    compared = {(v["a"], v["b"]) for v in result["verdicts"]}
    assert {
        ("c2fmae-gt", "mae"),
        ("c2fmae-budget16", "c2fmae"),
        ("c2fmae-budget16", "mae"),
        ("c2fmae-drop50", "mae"),
    } <= compared
    for row in rows:
        assert 0 <= result["per_seed"][row][0]["ft_all"] <= 100
    assert "rgb" in json.dumps(result["pretrain"]["mae/seed0"]["final"])  # final pre-training losses
    assert set(result["pretrain"]["c2fmae/seed0"]["final"]) >= {"loss"}
    assert result["walls_s"]["total_s"] > 0 and len(result["load_average"]["start"]) == 3
    assert 0 <= result["classic_foreground_iou"] <= 1
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["per_seed"] == result["per_seed"]
    assert (tmp_path / "results.png").stat().st_size > 0
    assert "c2fmae vs mae" in capsys.readouterr().out
    encoders = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "encoders").iterdir()}
    again = se.main(argv)
    assert again["per_seed"] == result["per_seed"]  # read back from the cache ...
    assert again["walls_s"]["mae/seed0_s"] == result["walls_s"]["mae/seed0_s"] > 0  # with its compute time
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "encoders").iterdir()} == encoders  # ... not redone
    probe = "c2fmae-probe=c2fmae:engine.loss_probe=true,engine.log_every=1"
    one = se.main([*argv, "--variant", probe, "--only-row", "c2fmae-probe"])
    assert list(one["per_seed"]) == ["c2fmae-probe"]
    final = one["pretrain"]["c2fmae-probe/seed0"]["final"]
    assert sum(v for k, v in final.items() if k.startswith("grad_share/")) == pytest.approx(1.0)
    (run,) = (tmp_path / "runs").glob("c2fmae-probe-seed0-*")
    assert (run / "losses.png").is_file() and not list(run.glob("*.pt"))  # the log kept, checkpoints not


def test_only_row_names_a_row_of_the_stage(tmp_path):
    se = benchmark_module("small_evidence")
    with pytest.raises(SystemExit, match="--only-row parallel: not a row of the pilot stage"):
        se.main(["--quick", "--only-row", "parallel", "--out", str(tmp_path)])
    assert not list(tmp_path.iterdir())  # refused before any work


def test_the_gpu_prediction_prices_every_grid_row_and_switch():
    se, cost = benchmark_module("small_evidence"), benchmark_module("evidence_cost")
    result = cost.predict(se.PRESETS["quick"], se.MODEL, 2, se.switch_configs())
    rows = result["rows_per_seed_s"]
    assert set(rows) == {"supervised", "random-init", *se.PRETRAINED, *se.SWITCH_ROWS}
    assert all(s > 0 for s in rows.values())
    assert result["seconds"] == pytest.approx(2 * sum(rows.values()))
    assert rows["mae"] < rows["c2fmae"]  # c2fmae's encoder sees three inputs' tokens
