"""Config layers: `base:` chains of files and `--set` overrides."""

from __future__ import annotations

import pytest

from plumbing.config_layers import parse_sets, read_config_chain
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
