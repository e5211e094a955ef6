"""The committed schema-v1 store (fixtures/store_v1, written once by fixtures/make_store_v1.py)
opens, reads and validates exactly as when it was written, in every later version."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from datasets_spec import open_store, schema
from datasets_spec.records import decode_rle
from datasets_spec.validate import validate

FIXTURES = Path(__file__).parent / "fixtures"
EXPECTED = json.loads((FIXTURES / "expected_v1.json").read_text(encoding="utf-8"))


@pytest.fixture
def store_v1(tmp_path):
    """A copy, so that nothing a reader might write can change the committed files."""
    return open_store(shutil.copytree(FIXTURES / "store_v1", tmp_path / "store_v1"))


def _sha256(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array, dtype="<u2").tobytes()).hexdigest()


def test_store_v1_opens_with_its_layout_keys_and_labels(store_v1):
    assert store_v1.attrs["schema_version"] == EXPECTED["schema_version"] == schema.SCHEMA_VERSION
    assert (store_v1.layout.num_images, store_v1.layout.shard_size, store_v1.layout.canvas) == (
        EXPECTED["num_images"],
        EXPECTED["shard_size"],
        EXPECTED["canvas"],
    )
    assert {str(k): v for k, v in store_v1.label_space.items()} == EXPECTED["label_space"]
    assert store_v1.keys().tolist() == EXPECTED["keys"]
    assert store_v1.labels().tolist() == EXPECTED["labels"]
    assert store_v1.done_shards() == [0, 1, 2] and store_v1.pending_shards() == []


def test_store_v1_reads_every_array_and_record_as_written(store_v1):
    images = EXPECTED["images"]
    assert store_v1.status().tolist() == [im["status"] for im in images]
    orig, valid = store_v1.geometry()
    assert orig.tolist() == [im["orig_hw"] for im in images]
    assert valid.tolist() == [im["valid_hw"] for im in images]
    semantic, instance = store_v1.read_masks(range(len(images)))
    for index, want in enumerate(images):
        view = store_v1.read(index, records=True)
        assert (view.key, view.label, view.status) == (
            EXPECTED["keys"][index],
            EXPECTED["labels"][index],
            want["status"],
        )
        assert [list(view.orig_hw), list(view.valid_hw)] == [want["orig_hw"], want["valid_hw"]]
        assert np.array_equal(view.semantic, semantic[index]) and np.array_equal(view.instance, instance[index])
        assert view.records == want["records"]
        if want["status"] == schema.FAILED:
            assert (view.semantic == schema.SEMANTIC_IGNORE).all() and (view.instance == schema.INSTANCE_NONE).all()
            continue
        assert (_sha256(view.semantic), _sha256(view.instance)) == (want["semantic_sha256"], want["instance_sha256"])
        assert np.unique(view.semantic).tolist() == want["semantic_ids"]
        assert np.unique(view.instance).tolist() == want["instance_ids"]
        for record in view.records:
            assert list(decode_rle(record["rle"]).shape) == want["orig_hw"]
    assert [r for shard in range(3) for r in store_v1.records(shard)] == [r for im in images for r in im["records"]]


def test_store_v1_keeps_its_failure_and_validates_clean(store_v1):
    failures = [f for shard in range(3) for f in store_v1.marker(shard)["failures"]]
    assert [{k: f[k] for k in ("index", "key", "reason")} for f in failures] == EXPECTED["failures"]
    assert validate(store_v1.path) == []


def test_the_committed_files_hold_no_local_paths():
    for path in (FIXTURES / "store_v1").rglob("*"):
        if path.is_file() and path.suffix == ".json":
            text = path.read_text(encoding="utf-8")
            assert "/work/" not in text and "/home/" not in text and "/tmp/" not in text, path
