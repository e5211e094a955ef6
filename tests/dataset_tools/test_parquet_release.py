"""The Parquet release (c2f-data publish, the default format), read back with the real clients:
datasets.load_dataset offline and mlcroissant, against the store it was made from."""

import json
import os
import shutil

import datasets
import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml

from dataset_tools._checksums import write_sums
from dataset_tools.cli import main
from dataset_tools.parquet_release import (
    HUB_MAX_FILES,
    HUB_MAX_PER_FOLDER,
    mask_bytes_bound,
    parquet_plan,
    within_hub_limits,
    zarr_plan,
)
from datasets_spec import open_store
from datasets_spec.schema import Layout

from ..datasets_spec.store_fixtures import make_store

IMAGENET = 1_281_167


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """A store of 20 images (4 failed) and its Parquet release in files of ~3 kB (several files)."""
    root = tmp_path_factory.mktemp("hub")
    make_store(root / "ds", n=20, canvas=32, shard_size=8)
    args = ["-o", str(root / "rel"), "--quiet", "--license", "cc-by-nc-4.0", "--file-mb", "0.003"]
    assert main(["publish", str(root / "ds"), *args]) == 0
    return root


@pytest.fixture(scope="module")
def loaded(release, tmp_path_factory):
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    cache = tmp_path_factory.mktemp("hf-cache")
    return datasets.load_dataset(str(release / "rel"), split="train", cache_dir=str(cache))


def test_the_release_is_several_hub_named_parquet_files_and_verifies(release, capsys):
    rel = release / "rel"
    names = sorted(p.name for p in (rel / "data").iterdir())
    assert len(names) >= 2 and names == [f"train-{i:05d}-of-{len(names):05d}.parquet" for i in range(len(names))]
    assert sum(pq.ParquetFile(rel / "data" / n).metadata.num_rows for n in names) == 16
    assert main(["verify", str(rel)]) == 0
    assert "every checksum matches and the data is valid" in capsys.readouterr().out
    listed = [line.split("  ", 1)[1] for line in (rel / "SHA256SUMS").read_text().splitlines()]
    assert [f"data/{n}" for n in names] == [x for x in listed if x.startswith("data/")]


def test_load_dataset_offline_gives_the_store_bit_for_bit(release, loaded):
    store = open_store(release / "ds")
    done = store.done_indices()
    assert loaded.num_rows == len(done) == 16  # the 4 failed images have no row
    features = loaded.features
    assert features["label"].names[:2] == ["n01440764", "n01443537"] and len(features["label"].names) == 1000
    assert features["valid_hw"] == datasets.List(datasets.Value("int32"), length=2)
    assert isinstance(features["semantic"], datasets.Image)
    assert features["instances"].feature["semantic"].names == ["sky", "ground", "disc", "box", "triangle"]
    assert features["instances"].feature["box"] == datasets.List(datasets.Value("float64"), length=4)
    for row, index in zip(loaded, done):
        view = store.read(int(index), records=True)
        assert (row["key"], row["index"], row["label"]) == (view.key, index, view.label)
        assert (row["height"], row["width"]) == view.orig_hw and tuple(row["valid_hw"]) == view.valid_hw
        for name in ("semantic", "instance"):
            mask = np.array(row[name])
            assert mask.dtype == np.uint16 and np.array_equal(mask, getattr(view, name))
        assert row["instances"] == [{k: v for k, v in r.items() if k not in ("index", "key")} for r in view.records]


def test_the_card_is_the_hubs_and_says_what_happened_to_failed_images(release):
    text = (release / "rel" / "README.md").read_text()
    _, front, body = text.split("---", 2)
    meta = yaml.safe_load(front)
    assert meta["license"] == "cc-by-nc-4.0" and meta["configs"][0]["data_files"][0]["path"] == "data/train-*.parquet"
    assert meta["dataset_info"]["splits"][0]["num_examples"] == 16
    assert "the 4 failed images have no row" in body and "4 of 20 images failed" in body
    assert "load_dataset(" in body


def test_croissant_validates_without_warnings_and_its_records_load(release, loaded):
    import mlcroissant as mlc

    doc = json.loads((release / "rel" / "croissant.json").read_text())
    assert doc["datePublished"] and doc["rai:dataCollection"] and doc["rai:dataLimitations"]
    dataset = mlc.Dataset(jsonld=release / "rel" / "croissant.json")
    issues = dataset.metadata.ctx.issues
    assert not issues.warnings and not issues.errors
    classes = {r["semantic_classes/id"]: r["semantic_classes/name"] for r in dataset.records("semantic_classes")}
    assert classes == open_store(release / "ds").label_space
    imagenet = list(dataset.records("imagenet_classes"))
    assert len(imagenet) == 1000 and imagenet[0]["imagenet_classes/wnid"] == "n01440764"
    images = list(dataset.records("images"))
    assert len(images) == loaded.num_rows
    for got, row in zip(images, loaded):
        assert got["images/key"].decode() == row["key"] and got["images/label"] == row["label"]
        assert np.array_equal(np.array(got["images/semantic"]), np.array(row["semantic"]))
        instances = [{k.rsplit("/", 1)[1]: v for k, v in i.items()} for i in got["images/instances"]]
        assert [(i["id"], i["box"], i["semantic"], i["rle_size"]) for i in instances] == [
            (i["id"], i["box"], i["semantic"], i["rle"]["size"]) for i in row["instances"]
        ]
        assert [i["rle_counts"].decode() for i in instances] == [i["rle"]["counts"] for i in row["instances"]]


def _resummed_copy(release, tmp_path):
    rel = tmp_path / "rel"
    shutil.copytree(release / "rel", rel)
    return rel


def test_verify_finds_a_missing_file_and_a_bad_mask_even_with_fresh_checksums(release, tmp_path, capsys):
    rel = _resummed_copy(release, tmp_path)
    (rel / "data" / "train-00001-of-00003.parquet").unlink()
    write_sums(rel)
    assert main(["verify", str(rel)]) == 1
    assert capsys.readouterr().out == f"{rel}/data/train-00001-of-00003.parquet: missing (the files say there are 3)\n"

    rel = _resummed_copy(release, tmp_path / "b")
    path = rel / "data" / "train-00000-of-00003.parquet"
    table = pq.read_table(path)
    rows = table.to_pylist()
    rows[1]["semantic"] = {"bytes": b"not a png", "path": None}
    pq.write_table(table.from_pylist(rows, schema=table.schema), path)
    write_sums(rel)
    assert main(["verify", str(rel)]) == 1
    out = capsys.readouterr().out
    assert "train-00000-of-00003.parquet: row group 0: image 1: semantic is not a square 16-bit" in out


@pytest.mark.parametrize(
    "args, error",
    [
        (["--license", "other"], "--license other needs --license-name NAME and --license-link URL"),
        (["--license", "cc-by-5.0"], "is not a licence id the Hugging Face Hub accepts"),
        (["--license", "mit", "--license-name", "x"], "go with --license other only"),
        (["--rechunk", "shards"], "goes with --format zarr only"),
    ],
)
def test_bad_licence_or_options_are_one_line_errors(release, tmp_path, capsys, args, error):
    assert main(["publish", str(release / "ds"), "-o", str(tmp_path / "rel"), "--quiet", *args]) == 2
    err = capsys.readouterr().err
    assert error in err and err.count("\n") == 1 and not (tmp_path / "rel").exists()


def test_licence_other_carries_its_name_and_link(release, tmp_path):
    link = "https://example.org/terms"
    args = ["--license", "other", "--license-name", "imagenet-terms", "--license-link", link]
    assert main(["publish", str(release / "ds"), "-o", str(tmp_path / "rel"), "--quiet", *args]) == 0
    meta = yaml.safe_load((tmp_path / "rel" / "README.md").read_text().split("---")[1])
    assert (meta["license"], meta["license_name"], meta["license_link"]) == ("other", "imagenet-terms", link)
    assert json.loads((tmp_path / "rel" / "croissant.json").read_text())["license"] == link


def test_at_imagenet_size_parquet_fits_the_hubs_limits_and_zarr_does_not():
    """The plan, not a release: 1,281,167 images even with incompressible 256-px masks and 64 kB of
    instance records each, against the Zarr release of the same store (shards of 128)."""
    plan = parquet_plan(IMAGENET, bytes_per_image=mask_bytes_bound(256) + (64 << 10))
    assert within_hub_limits(plan) and plan["files"] < 2_000 and plan["max_per_folder"] < 2_000
    zarr = zarr_plan(Layout(IMAGENET, 128, 256))
    assert (zarr["files"], zarr["max_per_folder"]) == (70_401, 10_010 + 1)
    assert zarr["files"] < HUB_MAX_FILES and zarr["max_per_folder"] >= HUB_MAX_PER_FOLDER
    assert not within_hub_limits(zarr)


def test_the_plans_count_what_publish_writes(release, tmp_path):
    assert main(["publish", str(release / "ds"), "-o", str(tmp_path / "z"), "--format", "zarr", "--quiet"]) == 0
    written = sum(1 for p in (tmp_path / "z").rglob("*") if p.is_file())
    assert zarr_plan(Layout(20, 8, 32), reports=0)["files"] == written  # no job report in this store
    rel = release / "rel"
    files = sorted((rel / "data").iterdir())
    per_row = max(p.stat().st_size for p in files) // min(pq.ParquetFile(p).metadata.num_rows for p in files) + 1
    plan = parquet_plan(16, target_bytes=3145, bytes_per_image=per_row)
    assert plan["data_files"] >= len(files) and plan["files"] >= sum(1 for p in rel.rglob("*") if p.is_file())
    pngs = pq.read_table(files[0])["semantic"].combine_chunks().field("bytes").to_pylist()
    assert mask_bytes_bound(32) // 2 >= max(map(len, pngs))  # the bound is for two masks
