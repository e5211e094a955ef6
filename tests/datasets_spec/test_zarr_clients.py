"""The store through the clients people read it with, without c2fmae: xarray and Dask open it in
chunks of one shard as docs/dataset-format.md shows (its examples run here as written), with the
values our reader gives; neither they nor zarr-python warn (warnings are errors in this module)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import xarray as xr
import zarr

from dataset_tools.publish import publish
from datasets_spec import open_store, schema, storage
from datasets_spec.validate import validate

from .store_fixtures import make_store, open_as_documented

pytestmark = pytest.mark.filterwarnings("error")

DOC = Path(__file__).resolve().parents[2] / "docs" / "dataset-format.md"
N, K, S = 44, 8, 16  # 6 shards, the last one short
SHARDS = (K,) * 5 + (4,)


def _doc_block(containing: str) -> str:
    """The one ```python block of docs/dataset-format.md that contains `containing`."""
    blocks = [b for b in re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S) if containing in b]
    assert len(blocks) == 1, containing
    return blocks[0]


def _assert_equals_reader(ds: xr.Dataset, path) -> None:
    store = open_store(path)
    assert ds["key"].values.tolist() == store.keys().tolist()
    assert np.array_equal(ds["label"].values, store.labels())
    assert np.array_equal(ds["status"].values, store.status())
    for shard in range(store.layout.num_shards):
        start, stop = store.layout.shard_range(shard)
        for name, values in store.read_shard(shard).items():
            assert np.array_equal(ds[name][start:stop].values, values), (name, shard)


def test_xarray_opens_every_array_in_chunks_of_one_shard_with_our_values(tmp_path):
    make_store(tmp_path / "ds", n=N, canvas=S, shard_size=K)
    ds = open_as_documented(tmp_path / "ds")
    for name in schema.ALL_ARRAYS:
        assert ds[name].chunks[0] == SHARDS, name
        assert all(len(c) == 1 for c in ds[name].chunks[1:]), name  # y, x, hw whole
    assert ds["semantic"].dims == ("image", "y", "x") and ds["orig_hw"].dims == ("image", "hw")
    _assert_equals_reader(ds, tmp_path / "ds")
    # Without `chunks`, the masks come one image per chunk (Zarr's inner chunk), quietly too.
    assert xr.open_zarr(tmp_path / "ds")["semantic"].chunks[0] == (1,) * N


def test_dask_reads_the_masks_and_keys_one_shard_per_block(tmp_path):
    _, keys, results = make_store(tmp_path / "ds", n=N, canvas=S, shard_size=K)
    sem = zarr.open_array(tmp_path / "ds" / "semantic", mode="r")
    blocks = da.from_zarr(sem, chunks=sem.shards)
    assert blocks.chunks == (SHARDS, (S,), (S,))
    assert np.array_equal(blocks[8].compute(), results[8].semantic)
    by_default = da.from_zarr(str(tmp_path / "ds" / "key"))  # its inner chunk is a shard
    assert by_default.chunks == (SHARDS,) and by_default.compute().tolist() == keys


def test_the_docs_examples_run_as_written(tmp_path, monkeypatch):
    make_store(tmp_path / "DATASET", n=N, canvas=S, shard_size=K)
    monkeypatch.chdir(tmp_path)
    plain = {}
    exec(_doc_block('g = zarr.open_group("DATASET"'), plain)
    assert np.array_equal(plain["sem"], open_store("DATASET").read(42).semantic) and plain["done"]
    clients = {}
    exec(_doc_block('xr.open_zarr("DATASET"'), clients)
    assert clients["ds"]["instance"].chunks[0] == SHARDS and clients["sem_all"].chunks[0] == SHARDS
    _assert_equals_reader(clients["ds"], "DATASET")


def test_the_docs_object_storage_example_runs_against_s3(s3_bucket):
    url = f"{s3_bucket}/ds"
    _, _, results = make_store(url, n=N, canvas=S, shard_size=K)
    code = _doc_block("storage_options=opts").replace('"s3://bucket/ds"', repr(url))
    names = {}
    exec(code, names)
    assert np.array_equal(names["sem"], results[42].semantic) and names["marker_done"]
    assert names["sem_all"].chunks[0] == SHARDS and names["ds"]["semantic"].chunks[0] == SHARDS
    _assert_equals_reader(names["ds"], url)


def test_a_release_rechunked_by_publish_opens_quietly_with_fresh_consolidated_metadata(tmp_path):
    make_store(tmp_path / "ds", n=N, canvas=S, shard_size=K)
    publish(open_store(tmp_path / "ds"), tmp_path / "rel", rechunk="images", fmt="zarr", progress=False)
    ds = open_as_documented(tmp_path / "rel" / "data")
    assert ds["semantic"].encoding["chunks"] == (1, S, S) and ds["semantic"].chunks[0] == SHARDS
    _assert_equals_reader(ds, tmp_path / "rel" / "data")
    assert validate(tmp_path / "rel" / "data") == []


def test_validate_reports_consolidated_metadata_that_differs_from_the_arrays(tmp_path):
    make_store(tmp_path / "ds", n=N, canvas=S, shard_size=K)
    doc = json.loads(storage.read_bytes(tmp_path / "ds", "label/zarr.json"))
    storage.write_bytes(tmp_path / "ds", "label/zarr.json", json.dumps({**doc, "attributes": {"x": 1}}).encode())
    shutil.rmtree(tmp_path / "ds" / schema.REPORTS_DIR)
    group = json.loads((tmp_path / "ds" / "zarr.json").read_text())
    del group["consolidated_metadata"]["metadata"][schema.STATUS]
    (tmp_path / "ds" / "zarr.json").write_text(json.dumps(group))
    assert validate(tmp_path / "ds") == [
        "status: missing from the consolidated metadata",
        "label: its zarr.json differs from its copy in the consolidated metadata (stale)",
        "reports: in the consolidated metadata but not in the store",
    ]


def test_a_store_created_without_consolidated_metadata_stays_valid_and_opens(tmp_path):
    make_store(tmp_path / "ds", n=N, canvas=S, shard_size=K)
    group = json.loads((tmp_path / "ds" / "zarr.json").read_text())
    del group["consolidated_metadata"]
    (tmp_path / "ds" / "zarr.json").write_text(json.dumps(group))
    assert validate(tmp_path / "ds") == []
    ds = xr.open_zarr(tmp_path / "ds", chunks={"image": K}, consolidated=False)  # as the docs say
    _assert_equals_reader(ds, tmp_path / "ds")
    with pytest.warns(RuntimeWarning, match="consolidated metadata"):
        xr.open_zarr(tmp_path / "ds")
