import json

import pytest

from dataset_tools.cli import main
from datasets_spec import StoreError, open_store
from datasets_spec.validate import validate

from ..datasets_spec.store_fixtures import make_store


def test_info_counts_and_json(tmp_path, capsys):
    make_store(tmp_path / "ds", n=20, shard_size=8)
    assert main(["info", str(tmp_path / "ds"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["images"], summary["done"], summary["failed"], summary["pending"]) == (20, 16, 4, 0)
    assert summary["shards"] == {"total": 3, "done": 3, "complete": 3, "size": 8}
    assert summary["canvas"]["size"] == 32 and summary["label_space_size"] == 5
    assert summary["failure_reasons"] == {"truncated image file": 4}
    assert summary["provenance"]["backends"] == {"semantic": "test"}
    assert main(["info", str(tmp_path / "ds")]) == 0
    text = capsys.readouterr().out
    assert "20: 16 done (80.0%), 4 failed, 0 pending" in text


def test_info_counts_unmarked_shards_as_pending(tmp_path, capsys):
    make_store(tmp_path / "ds", n=20, shard_size=8)
    (tmp_path / "ds" / "markers" / "shard-000001.json").unlink()
    assert main(["info", str(tmp_path / "ds"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["pending"] == 8 and summary["shards"]["complete"] == 2 == summary["shards"]["done"]


def test_user_errors_are_one_line(tmp_path, capsys):
    assert main(["info", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("c2f-data: error: ") and "no such dataset directory" in err


def test_synth_makes_a_valid_store_and_its_images(tmp_path, capsys):
    assert (
        main(["synth", str(tmp_path / "ds"), "--images", str(tmp_path / "img"), "--count", "10", "--shard-size", "4"])
        == 0
    )
    assert validate(tmp_path / "ds") == []
    assert len(list((tmp_path / "img" / "synth").glob("*.png"))) == 10


@pytest.mark.parametrize("command", ["validate", "info", "verify", "stats"])
def test_a_missing_store_is_one_line_on_stderr_and_exit_2_for_every_command(tmp_path, capsys, command):
    assert main([command, str(tmp_path / "missing")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith("c2f-data: error: ")
    assert str(tmp_path / "missing") in err


@pytest.mark.parametrize("count", [12, 6])
def test_info_on_a_store_with_an_edited_image_count_is_one_line(tmp_path, capsys, count):
    make_store(tmp_path / "ds", n=8, shard_size=4)
    doc = json.loads((tmp_path / "ds" / "zarr.json").read_text())
    doc["attributes"]["c2fmae"]["num_images"] = count
    (tmp_path / "ds" / "zarr.json").write_text(json.dumps(doc))
    assert main(["info", str(tmp_path / "ds")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("c2f-data: error: ")
    assert f"semantic has shape (8, 32, 32) but the store's attributes say ({count}, 32, 32)" in err
    assert main(["validate", str(tmp_path / "ds"), "--quiet"]) == 1  # the damage is validate's report


@pytest.mark.parametrize("shard_size", [2, 8])
def test_a_store_with_an_edited_shard_size_is_refused_on_open(tmp_path, capsys, shard_size):
    """Its masks are sharded 4 by 4: reading or writing it by other shards would cross them."""
    store = tmp_path / "ds"
    make_store(store, n=8, shard_size=4)
    doc = json.loads((store / "zarr.json").read_text())
    doc["attributes"]["c2fmae"]["shard_size"] = shard_size
    (store / "zarr.json").write_text(json.dumps(doc))
    with pytest.raises(StoreError) as refused:
        open_store(store)
    assert str(refused.value) == (
        f"{store}: semantic has shards (4, 32, 32) with inner chunks (1, 32, 32) but the store's attributes say "
        f"shard_size {shard_size} (shards ({shard_size}, 32, 32) with inner chunks (1, 32, 32)): its attributes "
        "or arrays were changed; c2f-data validate lists the damage"
    )
    assert main(["info", str(store)]) == 2
    err = capsys.readouterr().err
    assert err == f"c2f-data: error: {refused.value}\n"
    assert main(["validate", str(store), "--quiet"]) == 1  # the damage is validate's report
    assert validate(store) == [
        f"{name}: shards (4, 32, 32) with inner chunks (1, 32, 32), expected ({shard_size}, 32, 32) with (1, 32, 32)"
        for name in ("semantic", "instance")
    ]


def test_usage_errors_are_one_line_with_exit_2(capsys):
    for argv in ([], ["validate"], ["no-such-command"], ["info", "x", "--bogus"]):
        assert main(argv) == 2
        out, err = capsys.readouterr()
        assert out == "" and err.count("\n") == 1 and err.startswith("c2f-data: error: "), err
        assert "see c2f-data" in err


def test_logging_is_set_up_once_and_its_level_checked(tmp_path, capsys, monkeypatch):
    import logging

    from plumbing.cli_boundary import _StderrHandler

    make_store(tmp_path / "ds", n=4, shard_size=4)
    for _ in range(2):
        assert main(["-v", "info", str(tmp_path / "ds")]) == 0
    assert sum(isinstance(h, _StderrHandler) for h in logging.getLogger().handlers) == 1
    capsys.readouterr()
    logging.getLogger("datasets_spec.test").info("a diagnostic")  # -v: our info lines are shown
    logging.getLogger("some.library").info("chatter")  # other libraries' only from warning up
    assert capsys.readouterr().err == "c2f-data: info: a diagnostic\n"
    monkeypatch.setenv("C2F_LOG_LEVEL", "loud")
    assert main(["info", str(tmp_path / "ds")]) == 2
    assert capsys.readouterr().err == "c2f-data: error: C2F_LOG_LEVEL=LOUD: expected DEBUG, INFO, WARNING or ERROR\n"
