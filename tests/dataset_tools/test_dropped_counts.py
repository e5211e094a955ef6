import json
from dataclasses import replace

import pytest

from dataset_tools.info import format_info, info
from datasets_spec import StoreError, open_store, write_shard
from datasets_spec.validate import validate

from ..datasets_spec.store_fixtures import make_store


def test_markers_sum_dropped_counts_and_info_totals_them(tmp_path):
    layout, _, results = make_store(tmp_path / "ds", n=16, shard_size=8, write=False)
    counts = [{"nms": 2, "overlap": 1}, {}, {"nms": 1, "canvas": 0}, {"min_area": 4}]
    results = [replace(r, dropped=counts[i % 4]) if r.error is None else r for i, r in enumerate(results)]
    markers = [write_shard(tmp_path / "ds", s, results[slice(*layout.shard_range(s))]) for s in range(2)]
    expected = [{}, {}]
    for i, r in enumerate(results):
        for reason, n in r.dropped.items():
            if n:
                expected[i // 8][reason] = expected[i // 8].get(reason, 0) + n
    assert [m["dropped"] for m in markers] == [dict(sorted(e.items())) for e in expected]
    store = open_store(tmp_path / "ds")
    assert store.marker(0)["dropped"] == markers[0]["dropped"]
    total = info(store)["dropped"]
    assert total == {k: expected[0].get(k, 0) + expected[1].get(k, 0) for k in ("min_area", "nms", "overlap")}
    assert "dropped    min_area ×" in format_info(info(store))
    assert validate(tmp_path / "ds") == []


def test_markers_without_dropped_counts_still_validate_and_read(tmp_path):
    make_store(tmp_path / "ds", n=8, shard_size=8)
    marker_path = tmp_path / "ds" / "markers" / "shard-000000.json"
    marker = json.loads(marker_path.read_text())
    del marker["dropped"]  # as written before drop counts existed
    marker_path.write_text(json.dumps(marker))
    assert validate(tmp_path / "ds") == []
    summary = info(open_store(tmp_path / "ds"))
    assert summary["dropped"] == {} and "\ndropped " not in format_info(summary)


def test_bad_dropped_counts_are_refused(tmp_path):
    layout, _, results = make_store(tmp_path / "ds", n=8, shard_size=8, write=False)
    results[0] = replace(results[0], dropped={"nms": -1})
    with pytest.raises(StoreError, match="dropped counts"):
        write_shard(tmp_path / "ds", 0, results)
