"""Config layers: `base:` chains of files and `--set` overrides."""

from __future__ import annotations

import pytest

from plumbing.config_layers import find_config, parse_sets, read_config_chain
from plumbing.errors import ConfigError

from .config_fixtures import BILLION_LAUGHS, write_config


@pytest.mark.parametrize("base", ["/dev/zero", "/dev/stdin"])
def test_a_base_that_is_not_a_regular_file_is_refused(tmp_path, base):
    with pytest.raises(ConfigError, match=f"^{base}: config is not a regular file$"):
        read_config_chain(write_config(tmp_path / "c.yaml", f"base: {base}\n"))


def test_base_loops_are_refused(tmp_path):
    write_config(tmp_path / "a.yaml", "base: b.yaml\n")
    write_config(tmp_path / "b.yaml", "base: a.yaml\n")
    with pytest.raises(ConfigError, match="loops back"):
        read_config_chain(tmp_path / "a.yaml")


def test_set_values_are_typed_yaml_and_malformed_sets_are_refused():
    assert parse_sets(["a.b=1e-4", "a.c=[1, 2]", "d=null", "e=off", "f=@x: [", "g=a=b"]) == {
        "a": {"b": 1e-4, "c": [1, 2]},
        "d": None,
        "e": "off",
        "f": "@x: [",
        "g": "a=b",
    }
    with pytest.raises(ConfigError, match="^--set a: expands to more than"):
        parse_sets(["a=" + BILLION_LAUGHS.replace("\n", ", ").join("{}")])
    for bad in ("novalue", "=1", "a..b=1"):
        with pytest.raises(ConfigError, match="--set expects key=value"):
            parse_sets([bad])
    with pytest.raises(ConfigError, match="set both as a value and a section"):
        parse_sets(["a=1", "a.b=2"])


def test_a_config_is_a_path_or_the_name_of_a_packaged_one(tmp_path, monkeypatch):
    packaged = tmp_path / "packaged"
    packaged.mkdir()
    write_config(packaged / "paper.yaml", "a: 1\n")
    write_config(packaged / "tiny.yaml", "base: paper.yaml\nb: 2\n")
    monkeypatch.chdir(tmp_path)
    assert find_config("tiny", packaged) == packaged / "tiny.yaml"
    assert read_config_chain(find_config("tiny", packaged)) == [
        (str(packaged / "paper.yaml"), {"a": 1}),
        (str(packaged / "tiny.yaml"), {"b": 2}),
    ]
    write_config(tmp_path / "tiny", "c: 3\n")  # a file that is there wins over a packaged name
    assert find_config("tiny", packaged).resolve() == tmp_path / "tiny"
    for path in ("mine.yaml", "sub/tiny", str(tmp_path / "elsewhere")):  # paths stay paths: read_config_file names them
        assert find_config(path, packaged) == type(packaged)(path)
    with pytest.raises(
        ConfigError, match=r"^papr: no such config file, nor a packaged config of that name; did you mean 'paper'\?$"
    ):
        find_config("papr", packaged)
    with pytest.raises(ConfigError, match=r"^zzz: .*; packaged configs: paper, tiny$"):
        find_config("zzz", packaged)
