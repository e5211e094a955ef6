import json
import subprocess
import sys

import datasets
import numpy as np
import pytest
import yaml

from dataset_tools.cli import main
from datasets_spec import open_store
from datasets_spec.validate import validate

from ..datasets_spec.store_fixtures import make_store


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    root = tmp_path_factory.mktemp("pub")
    make_store(root / "ds", n=20, canvas=32, shard_size=8)
    rel = ["-o", str(root / "rel"), "--format", "zarr", "--quiet", "--license", "cc-by-4.0"]
    assert main(["publish", str(root / "ds"), *rel]) == 0
    return root


def test_publish_then_verify_passes(release, capsys):
    rel = release / "rel"
    assert main(["verify", str(rel)]) == 0
    assert "every checksum matches and the data is valid" in capsys.readouterr().out
    listed = [line.split("  ", 1)[1] for line in (rel / "SHA256SUMS").read_text().splitlines()]
    on_disk = sorted(p.relative_to(rel).as_posix() for p in rel.rglob("*") if p.is_file() and p.name != "SHA256SUMS")
    assert listed == on_disk and "data/zarr.json" in listed and "README.md" in listed
    # The store is a valid copy with consolidated metadata, and no image file came along.
    assert validate(rel / "data") == []
    assert "consolidated_metadata" in json.loads((rel / "data" / "zarr.json").read_text())
    assert not [p for p in rel.rglob("*") if p.suffix.lower() in (".jpeg", ".jpg", ".png") and p.name != "stats.png"]
    a, b = open_store(release / "ds"), open_store(rel / "data")
    assert (a.read_masks(range(20))[0] == b.read_masks(range(20))[0]).all()


def test_card_front_matter_and_content(release):
    text = (release / "rel" / "README.md").read_text()
    _, front, body = text.split("---", 2)
    meta = yaml.safe_load(front)
    assert meta["license"] == "cc-by-4.0" and meta["annotations_creators"] == ["machine-generated"]
    assert meta["size_categories"] == ["n<1K"] and meta["task_categories"] == ["image-segmentation"]
    assert meta["pretty_name"] == "c2fmae pseudo-labels: ds"  # named after the store, not the copy
    assert meta["viewer"] is False and "configs" not in meta  # datasets cannot load a Zarr store
    features = datasets.Features._from_yaml_list(meta["dataset_info"]["features"])
    assert features["semantic"] == datasets.Array2D((32, 32), "uint16")
    assert features["orig_hw"] == datasets.List(datasets.Value("int32"), length=2)
    assert "4 of 20 images failed" in body and "truncated image file ×4" in body
    assert "input_list_sha256" in body  # provenance is carried over
    assert "Joining with your ImageNet" in body and "![statistics](stats.png)" in body


@pytest.mark.parametrize("fmt", ["zarr", "parquet"])
def test_a_release_names_no_path_of_the_publishers_machine(tmp_path, fmt):
    make_store(tmp_path / "ds", n=8, canvas=32, shard_size=8)
    root = tmp_path / "ds" / "zarr.json"
    doc = json.loads(root.read_text())
    doc["attributes"]["c2fmae"]["provenance"]["input"] = {"kind": "imagenet", "root": "/home/alice/imagenet"}
    doc["attributes"]["c2fmae"]["provenance"]["backends"] = {
        "instance": {"sam_checkpoint": "/home/alice/sam.pth", "sha256": "ab" * 32}
    }
    root.write_text(json.dumps(doc))
    (tmp_path / "ds" / "reports" / "label-1.json").write_text(json.dumps({"store": "/home/alice/ds"}))
    logs = tmp_path / "ds" / "reports" / "label-1-logs"  # c2f-label -v keeps a local run's worker logs
    logs.mkdir()
    (logs / "worker-1.err").write_text("File /home/alice/c2fmae/labeling/worker.py, line 3\n")
    assert main(["publish", str(tmp_path / "ds"), "-o", str(tmp_path / "rel"), "--format", fmt, "--quiet"]) == 0
    texts = [p.read_bytes().decode(errors="replace") for p in (tmp_path / "rel").rglob("*") if p.is_file()]
    assert not [t for t in texts if "/home/alice" in t]
    assert "<local>/sam.pth" in (tmp_path / "rel" / "README.md").read_text()
    assert main(["verify", str(tmp_path / "rel")]) == 0
    if fmt == "zarr":  # the store's copy: its job report kept, its worker logs not, its provenance scrubbed
        reports = sorted(p.name for p in (tmp_path / "rel" / "data" / "reports").iterdir())
        assert reports == ["label-1.json", "zarr.json"]
        provenance = open_store(tmp_path / "rel" / "data").provenance
        assert provenance["input"]["root"] == "<local>/imagenet"
        assert provenance["backends"]["instance"] == {"sam_checkpoint": "<local>/sam.pth", "sha256": "ab" * 32}


def test_croissant_of_a_zarr_release_validates_and_loads_the_records(release):
    import mlcroissant as mlc

    dataset = mlc.Dataset(jsonld=release / "rel" / "croissant.json")
    assert not dataset.metadata.ctx.issues.warnings and not dataset.metadata.ctx.issues.errors
    assert [rs.name for rs in dataset.metadata.record_sets] == ["semantic_classes", "imagenet_classes", "instances"]
    store = open_store(release / "ds")
    expected = [rec for shard in store.done_shards() for rec in store.records(shard)]
    loaded = list(dataset.records("instances"))
    assert len(loaded) == len(expected) and expected
    for got, want in zip(loaded, expected):
        assert got["instances/key"].decode() == want["key"] and got["instances/box"] == want["box"]
        assert got["instances/rle_counts"].decode() == want["rle"]["counts"]


@pytest.mark.parametrize("damage", ["flip", "delete", "add"])
@pytest.mark.parametrize(
    "target", ["data/semantic/c/1/0/0", "data/records/shard-000000.jsonl.gz", "README.md", "data/zarr.json"]
)
def test_verify_names_a_damaged_missing_or_added_file(release, tmp_path, damage, target, capsys):
    import shutil

    rel = tmp_path / "rel"
    shutil.copytree(release / "rel", rel)
    path = rel / target
    if damage == "flip":
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))
        expected = f"{target}: checksum mismatch"
    elif damage == "delete":
        path.unlink()
        expected = f"{target}: missing"
    else:
        path = path.with_name(path.name + ".extra")
        path.write_text("x")
        expected = f"{target}.extra: not listed"
    assert main(["verify", str(rel)]) == 1
    out = capsys.readouterr().out
    assert f"{rel}/{expected}" in out and len(out.splitlines()) == 1


def test_rechunked_release_verifies_and_reads_the_same(tmp_path, capsys):
    make_store(tmp_path / "ds", n=20, canvas=32, shard_size=8)
    for how, chunk in (("shards", 8), ("images", 1)):
        rel = tmp_path / f"rel-{how}"
        assert (
            main(["publish", str(tmp_path / "ds"), "-o", str(rel), "--format", "zarr", "--rechunk", how, "--quiet"])
            == 0
        )
        doc = json.loads((rel / "data" / "semantic" / "zarr.json").read_text())
        assert doc["chunk_grid"]["configuration"]["chunk_shape"] == [chunk, 32, 32]
        assert main(["verify", str(rel)]) == 0
        a, b = open_store(tmp_path / "ds"), open_store(rel / "data")
        for i in range(20):
            assert np.array_equal(a.read(i).instance, b.read(i).instance)


def test_publish_refuses_an_existing_output_and_an_invalid_store(tmp_path, capsys):
    make_store(tmp_path / "ds", n=8, canvas=32, shard_size=8)
    (tmp_path / "rel").mkdir()
    assert main(["publish", str(tmp_path / "ds"), "-o", str(tmp_path / "rel"), "--quiet"]) == 2
    assert "already exists" in capsys.readouterr().err
    (tmp_path / "ds" / "records" / "shard-000000.jsonl.gz").write_bytes(b"broken")
    assert main(["publish", str(tmp_path / "ds"), "-o", str(tmp_path / "rel2"), "--quiet"]) == 2
    assert "not valid" in capsys.readouterr().err and not (tmp_path / "rel2").exists()


def test_publish_imports_no_torch(release):
    """A release needs the ImageNet class table, which the contract ships: no timm, no torch."""
    probe = (
        "import sys; from dataset_tools.cli import main; "
        "code = main(['publish', sys.argv[1], '-o', sys.argv[2], '--quiet']); print(code, 'torch' in sys.modules)"
    )
    args = [str(release / "ds"), str(release / "rel-no-torch")]
    out = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True)
    assert out.stdout.splitlines()[-1] == "0 False", out.stdout + out.stderr
