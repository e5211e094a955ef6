"""c2f-train --data s3://...: training reads a store on object storage exactly as a local one."""

from __future__ import annotations

from datasets_spec import storage
from training.cli import main as c2f_train

from .engine_fixtures import read_log, train_argv, write_tiny_yaml


def test_training_from_a_store_on_s3_matches_training_from_the_local_copy(tiny_store, s3_bucket, tmp_path):
    url = f"{s3_bucket}/tiny"
    for rel in storage.list_all(tiny_store.path):
        storage.write_bytes(url, rel, storage.read_bytes(tiny_store.path, rel))
    # no loader workers (TINY): a forkserver started by an earlier test lacks this test's S3 settings
    config = write_tiny_yaml(tmp_path / "tiny.yaml")
    for data, out in ((url, "remote"), (str(tiny_store.path), "local")):
        assert c2f_train(train_argv(config, data, tiny_store.images, tmp_path / out, "--max-steps", 3)) == 0
    remote, local = read_log(tmp_path / "remote" / "log.jsonl"), read_log(tmp_path / "local" / "log.jsonl")
    assert [r["step"] for r in remote] == [1, 2, 3]
    assert [r["loss"] for r in remote] == [r["loss"] for r in local]
