"""c2f-train does not train on a damaged store: refused at start, or named when a read fails."""

from __future__ import annotations

import shutil

import pytest

import training.engine as engine
from datasets_spec import _array_io, schema
from training.errors import TrainingError

from .engine_fixtures import tiny_config


@pytest.fixture
def damaged_copy(tiny_store, tmp_path):
    path = tmp_path / "store"
    shutil.copytree(tiny_store.path, path)
    return path


def test_a_store_whose_geometry_disagrees_with_its_canvas_is_refused(tiny_store, damaged_copy, tmp_path):
    arr = _array_io.open_array(damaged_copy / schema.VALID_HW, write=True)
    valid = _array_io.read_range(arr, 4, 8)
    valid[0] = valid[0] - 1
    _array_io.write_slabs([(arr, 4, valid)])
    with pytest.raises(TrainingError, match=r"image 4 .* expected .*: the store is damaged"):
        engine.train(tiny_config(), damaged_copy, tiny_store.images, tmp_path / "run", max_steps=1)


def test_an_unreadable_shard_mid_run_is_one_line_naming_it(tiny_store, damaged_copy, tmp_path):
    (damaged_copy / "instance/c/2/0/0").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(TrainingError, match=r"reading the masks of shard\(s\) 2 failed") as err:
        engine.train(tiny_config(), damaged_copy, tiny_store.images, tmp_path / "run", max_steps=4)
    assert "\n" not in str(err.value)
