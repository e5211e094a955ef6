"""Atomic checkpoints, weights_only loading, RNG round trip, fallback and shape refusal."""

from __future__ import annotations

import logging
import random

import numpy as np
import pytest
import torch
from torch import nn

from training.checkpoint import (
    LATEST,
    PREVIOUS,
    capture_rng,
    check_compatible,
    keep_name,
    load_checkpoint,
    make_state,
    restore_rng,
    save_checkpoint,
)
from training.errors import TrainingError


def _state(step: int, width: int = 4) -> dict:
    model = nn.Linear(width, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95))
    model(torch.randn(3, width)).sum().backward()
    opt.step()
    return make_state(
        model=model,
        optimizer=opt,
        scaler=None,
        config={"model": {"width": width}, "optim": {"betas": [0.9, 0.95]}},
        step=step,
        nonfinite=1,
        num_classes=7,
    )


def test_state_round_trips_with_weights_only(tmp_path):
    state = _state(6)
    save_checkpoint(tmp_path, state)
    loaded, path = load_checkpoint(tmp_path)
    assert path.name == LATEST
    assert (loaded["step"], loaded["nonfinite"], loaded["num_classes"]) == (6, 1, 7)
    assert torch.equal(loaded["model"]["weight"], state["model"]["weight"])
    assert loaded["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.95)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file is left


def test_rng_states_restore_every_stream():
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    saved = capture_rng()
    expected = (random.random(), np.random.rand(), torch.rand(2))
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    restore_rng(saved)
    got = (random.random(), np.random.rand(), torch.rand(2))
    assert got[:2] == expected[:2] and torch.equal(got[2], expected[2])


def test_each_save_keeps_the_previous_one_and_periodic_keeps(tmp_path):
    save_checkpoint(tmp_path, _state(1), keep=True)
    save_checkpoint(tmp_path, _state(2))
    save_checkpoint(tmp_path, _state(3))
    assert torch.load(tmp_path / PREVIOUS, weights_only=True)["step"] == 2
    assert torch.load(tmp_path / keep_name(1), weights_only=True)["step"] == 1
    assert keep_name(1) == "ckpt-0000001.pt"


def test_no_checkpoint_is_none(tmp_path):
    assert load_checkpoint(tmp_path) is None


@pytest.mark.parametrize("damage", [b"", b"not a checkpoint at all", None])
def test_corrupt_latest_falls_back_to_the_newest_good_file(tmp_path, caplog, damage):
    save_checkpoint(tmp_path, _state(4), keep=True)
    save_checkpoint(tmp_path, _state(5))
    save_checkpoint(tmp_path, _state(6))  # previous = 5, keep = 4
    latest = tmp_path / LATEST
    latest.write_bytes(latest.read_bytes()[:200] if damage is None else damage)
    with caplog.at_level(logging.WARNING, logger="training"):
        state, path = load_checkpoint(tmp_path)
    assert (state["step"], path.name) == (5, PREVIOUS)
    assert len(caplog.records) == 1 and "latest.pt" in caplog.records[0].getMessage()
    (tmp_path / PREVIOUS).write_bytes(b"junk")
    state, path = load_checkpoint(tmp_path)
    assert (state["step"], path.name) == (4, keep_name(4))


def test_a_keep_newer_than_previous_wins(tmp_path):
    save_checkpoint(tmp_path, _state(1))
    save_checkpoint(tmp_path, _state(2), keep=True)  # previous = 1, keep = 2 = latest
    (tmp_path / LATEST).write_bytes(b"x")
    assert load_checkpoint(tmp_path)[0]["step"] == 2


def test_nothing_readable_is_one_clear_error(tmp_path):
    (tmp_path / LATEST).write_bytes(b"garbage")
    with pytest.raises(TrainingError, match="no readable checkpoint.*latest.pt"):
        load_checkpoint(tmp_path)


def test_a_different_model_shape_is_refused_naming_the_setting(tmp_path):
    state = _state(1, width=4)
    check_compatible(state, nn.Linear(4, 2), {"width": 4}, tmp_path / LATEST)
    with pytest.raises(TrainingError, match=r"different model shape \(model.width: 4 -> 8\)"):
        check_compatible(state, nn.Linear(8, 2), {"width": 8}, tmp_path / LATEST)


def test_checkpoints_from_before_the_new_switches_read_with_their_old_values(tmp_path):
    state = _state(2)
    state["config"]["curriculum"] = {"shape": "linear"}
    save_checkpoint(tmp_path, state)
    config = load_checkpoint(tmp_path)[0]["config"]
    assert config["model"] == {
        "width": 4,
        "decoder_context_embed": False,
        "patch_bias_init": "zeros",
        "init_from": None,
        "arch": None,
    }
    assert config["curriculum"] == {"shape": "linear", "mix": "sample"}
    state["config"]["model"]["decoder_context_embed"] = True
    save_checkpoint(tmp_path, state)
    assert load_checkpoint(tmp_path)[0]["config"]["model"]["decoder_context_embed"] is True
