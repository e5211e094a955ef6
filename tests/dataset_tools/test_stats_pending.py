"""Statistics of a store most of whose shards are pending read nothing of those shards."""

from dataset_tools.stats import compute_stats
from datasets_spec import open_store, write_shard
from datasets_spec.reader import Store

from ..datasets_spec.store_fixtures import make_store


def test_stats_never_read_a_pending_shard(tmp_path, monkeypatch):
    layout, _, results = make_store(tmp_path / "ds", n=80, canvas=16, shard_size=8, write=False)
    done = [2, 7]
    for shard in done:
        write_shard(tmp_path / "ds", shard, results[slice(*layout.shard_range(shard))])
    touched = []
    for name in ("read_masks", "records", "marker", "read_shard"):
        original = getattr(Store, name)

        def spy(self, arg, *rest, _original=original, _name=name, **kw):
            shards = {layout.shard_of(int(i)) for i in arg} if _name == "read_masks" else {arg}
            touched.extend((_name, shard) for shard in shards)
            return _original(self, arg, *rest, **kw)

        monkeypatch.setattr(Store, name, spy)
    st = compute_stats(open_store(tmp_path / "ds"), progress=False)
    assert {shard for _, shard in touched} == set(done)
    assert ("read_masks", 2) in touched and ("records", 7) in touched
    assert st["images"]["pending"] == 80 - 16
    assert st["images"]["done"] + st["images"]["failed"] == 16
