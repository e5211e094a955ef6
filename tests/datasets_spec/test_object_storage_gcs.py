"""gs:// through tensorstore's gcs kvstore, against a GCS emulator on loopback.

Only the object layer is tested here: the emulator (gcp-storage-emulator) answers with object
generations that tensorstore's zarr3 driver refuses ("Malformed StorageGeneration"), so whole
stores on gs:// are tested on s3:// only (test_object_storage.py), through the same code.
"""

from __future__ import annotations

from datasets_spec import storage


def test_objects_and_the_conditional_create_on_gcs(gcs_bucket):
    assert storage.create_exclusive(gcs_bucket, "lock", b"first")
    assert not storage.create_exclusive(gcs_bucket, "lock", b"second")
    storage.write_bytes(gcs_bucket, "markers/shard-000003.json", b"{}")
    assert storage.read_bytes(gcs_bucket, "markers/shard-000003.json") == b"{}"
    # the emulator lists the whole bucket, whatever the range: "lock" must not show up as a marker
    assert storage.list_names(gcs_bucket, "markers") == ["shard-000003.json"]
    assert storage.read_bytes(gcs_bucket, "lock") == b"first"
    storage.delete(gcs_bucket, "markers/shard-000003.json")
    assert storage.list_all(gcs_bucket) == ["lock"]
