"""A resume checks its done shards together: a few round trips each on object storage."""

from __future__ import annotations

import threading

from datasets_spec import open_store, storage
from datasets_spec.reader import Store
from labeling.job import _forget_damaged_and_retryable
from tests.datasets_spec.store_fixtures import make_store


def test_done_shards_are_checked_together_and_the_damaged_one_forgotten(tmp_path, monkeypatch):
    root = tmp_path / "ds"
    layout, _, _ = make_store(root)
    (root / storage.records_path(3)).unlink()
    arrived, check = threading.Barrier(layout.num_shards, timeout=60), Store.shard_damage

    def together(self, shard, marker=None):
        arrived.wait()  # passes only when every shard's check is in flight at once
        return check(self, shard, marker)

    monkeypatch.setattr(Store, "shard_damage", together)
    damaged, retried = _forget_damaged_and_retryable(root, open_store(root))
    assert damaged == {3: f"{storage.records_path(3)} is missing"} and retried == {}
    assert open_store(root).pending_shards() == [3]
