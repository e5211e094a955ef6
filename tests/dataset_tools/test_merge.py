import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import zarr

from dataset_tools.cli import main
from datasets_spec import create_store, open_store, write_shard
from datasets_spec.validate import validate
from scripts.make_samples import make_samples

from ..datasets_spec.store_fixtures import LABEL_SPACE, make_results

ARRAYS = ("semantic", "instance", "status", "orig_hw", "valid_hw", "key", "label")


def _store(path, prefix, n=10, canvas=32, shard_size=4, label_space=LABEL_SPACE, provenance=None, seed=0):
    keys = [f"{prefix}/img_{i:03d}.JPEG" for i in range(n)]
    create_store(
        path,
        keys,
        [1] * n,
        label_space=label_space,
        canvas=canvas,
        shard_size=shard_size,
        provenance=provenance or {"backends": {"semantic": "test"}},
    )
    results = make_results(n, canvas, seed)
    for shard in range(-(-n // shard_size)):
        write_shard(path, shard, results[shard * shard_size : (shard + 1) * shard_size])


def test_merge_of_synthetic_stores_validates_and_keeps_every_image(tmp_path, capsys):
    _store(tmp_path / "a", "a", n=10, seed=1)
    _store(tmp_path / "b", "b", n=7, seed=2)
    assert main(["merge", str(tmp_path / "a"), str(tmp_path / "b"), "-o", str(tmp_path / "c"), "--quiet"]) == 0
    assert validate(tmp_path / "c") == []
    a, b, c = (open_store(tmp_path / x) for x in "abc")
    assert c.keys().tolist() == a.keys().tolist() + b.keys().tolist()
    for i in range(17):
        src, j = (a, i) if i < 10 else (b, i - 10)
        va, vc = src.read(j, records=True), c.read(i, records=True)
        assert np.array_equal(va.semantic, vc.semantic) and va.status == vc.status
        assert [r["rle"] for r in va.records] == [r["rle"] for r in vc.records]
    assert c.provenance["merged_from"][1]["path"] == str(tmp_path / "b")


@pytest.mark.parametrize(
    "change, message",
    [
        ({"prefix": "a"}, "share 10 image key(s)"),
        ({"label_space": {**LABEL_SPACE, 4: "pyramid"}}, "different label spaces (class 4: 'triangle' vs 'pyramid')"),
        ({"canvas": 16}, "different canvases (32 vs 16)"),
        ({"provenance": {"backends": {"semantic": "other-model"}}}, "labeled differently (backends differs)"),
    ],
)
def test_merge_refuses_incompatible_stores_with_one_line(tmp_path, capsys, change, message):
    _store(tmp_path / "a", "a")
    _store(tmp_path / "b", **{"prefix": "b", **change})
    assert main(["merge", str(tmp_path / "a"), str(tmp_path / "b"), "-o", str(tmp_path / "c"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and not (tmp_path / "c").exists()


def _label(images: Path, out: Path):
    """c2f-label in this process, on the session's Ray (one Ray start for the three jobs)."""
    from labeling.cli import main as label

    assert (
        label([str(images), "-o", str(out), "--backend", "classic", "--shard-size", "4", "--canvas", "48", "--quiet"])
        == 0
    )


def _contents(path: Path) -> dict:
    """Everything a store holds except its provenance and job reports."""
    group = zarr.open_group(path, mode="r")
    out = {name: np.asarray(group[name][:]) for name in ARRAYS}
    for sub in ("records", "markers"):
        for f in sorted((path / sub).glob("shard-*")):
            out[f"{sub}/{f.name}"] = gzip.decompress(f.read_bytes()) if f.suffix == ".gz" else json.loads(f.read_text())
    return out


@pytest.mark.slow
def test_merge_equals_one_run_of_classic_on_the_same_images(tmp_path, ray_session):
    make_samples(tmp_path / "all", per_class=2, side=96)
    classes = sorted(p.name for p in (tmp_path / "all" / "train").iterdir())
    for part, wnids in (("a", classes[:2]), ("b", classes[2:])):
        for wnid in wnids:
            shutil.copytree(tmp_path / "all" / "train" / wnid, tmp_path / part / "train" / wnid)
        _label(tmp_path / part, tmp_path / f"ds_{part}")
    _label(tmp_path / "all", tmp_path / "ds_all")
    assert (
        main(["merge", str(tmp_path / "ds_a"), str(tmp_path / "ds_b"), "-o", str(tmp_path / "merged"), "--quiet"]) == 0
    )
    assert validate(tmp_path / "merged") == []
    merged, one_run = _contents(tmp_path / "merged"), _contents(tmp_path / "ds_all")
    assert merged.keys() == one_run.keys()
    for name in merged:
        assert (
            np.array_equal(merged[name], one_run[name])
            if isinstance(merged[name], np.ndarray)
            else merged[name] == one_run[name]
        ), name
    # 6 + 4 images in shards of 4: merged shard 1 holds the last two of A and the first two of B.
    status = open_store(tmp_path / "merged").status()
    assert status.size == 10 and (status == 2).sum() == 2  # the two broken sample files are recorded failures
