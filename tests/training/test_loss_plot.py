"""RUN/losses.png: the panels follow what log.jsonl holds, and a damaged log still draws."""

import json

import cv2
import numpy as np

from training.logs import read_records
from training.loss_plot import TARGET_COLOURS, _cascade_order, save_loss_plot


def _write_log(path, probed: bool, steps=(10, 20, 30)) -> None:
    lines = []
    for i, step in enumerate(steps):
        record = {"step": step, "loss": 12.0 / (i + 1), "loss_rgb": 1.0, "loss_semantic": 2.0, "lr": 1e-4}
        record["loss_instance"] = 9.0 / (i + 1)
        if probed:
            record.update({"grad_share/rgb": 0.2, "grad_share/semantic": 0.3, "grad_share/instance": 0.5})
            record.update({"loss_rgb/semantic_masks": 1.1, "loss_instance/random_masks": 8.0 / (i + 1)})
        lines.append(json.dumps(record))
    path.write_text("\n".join(lines) + "\n")


def _has_colour(image_bgr: np.ndarray, name: str) -> bool:
    from matplotlib.colors import to_rgb

    rgb = (np.array(to_rgb(name)) * 255).round()
    return bool((np.abs(image_bgr[..., ::-1].astype(int) - rgb).max(-1) <= 10).sum() > 20)


def test_a_plain_log_draws_one_panel_with_every_target(tmp_path):
    _write_log(tmp_path / "log.jsonl", probed=False)
    path = save_loss_plot(tmp_path / "log.jsonl", tmp_path / "losses.png")
    image = cv2.imread(str(path))
    assert image.shape == (260, 700, 3)
    assert all(_has_colour(image, colour) for colour in TARGET_COLOURS.values())


def test_a_probed_log_adds_the_gradient_share_and_strategy_panels(tmp_path):
    _write_log(tmp_path / "log.jsonl", probed=True)
    image = cv2.imread(str(save_loss_plot(tmp_path / "log.jsonl", tmp_path / "losses.png")))
    assert image.shape == (780, 700, 3)


def test_a_line_cut_short_is_skipped_and_an_empty_log_draws_nothing(tmp_path):
    log = tmp_path / "log.jsonl"
    _write_log(log, probed=False)
    log.write_text('{"note": "no step"}\n' + log.read_text() + '{"step": 40, "loss": 1.')  # a crash mid-write
    assert [r["step"] for r in read_records(log)] == [10, 20, 30]
    log.write_text("")
    assert save_loss_plot(log, tmp_path / "losses.png") is None and not (tmp_path / "losses.png").exists()
    assert save_loss_plot(tmp_path / "missing.jsonl", tmp_path / "losses.png") is None


def test_series_follow_the_cascade_then_the_strategy():
    keys = ["loss_rgb/random_masks", "grad_share/rgb", "loss_rgb", "loss_rgb/semantic_masks", "loss_semantic", "loss"]
    assert sorted(keys, key=_cascade_order) == [
        "loss",
        "loss_semantic",
        "grad_share/rgb",
        "loss_rgb",
        "loss_rgb/semantic_masks",
        "loss_rgb/random_masks",
    ]
