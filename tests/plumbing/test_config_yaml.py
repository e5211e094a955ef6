"""Bounded YAML: config files that are too large, too deep, expand too far or are no regular file
are refused in one line that does not echo them."""

from __future__ import annotations

import os

import pytest

from plumbing.config_yaml import MAX_CONFIG_BYTES, read_config_file
from plumbing.errors import ConfigError

from .config_fixtures import BILLION_LAUGHS, SECRET, write_config


def test_billion_laughs_is_refused_before_it_expands(tmp_path):
    assert len(BILLION_LAUGHS) <= 370
    with pytest.raises(ConfigError, match=r"laughs.yaml: expands to more than \d+ values"):
        read_config_file(write_config(tmp_path / "laughs.yaml", BILLION_LAUGHS))


def test_deep_nesting_is_refused_not_a_recursion_error(tmp_path):
    with pytest.raises(ConfigError, match=r"deep.yaml: nests deeper than \d+ levels"):
        read_config_file(write_config(tmp_path / "deep.yaml", "[" * 100_000))


def test_a_few_aliases_are_fine(tmp_path):
    tree = read_config_file(write_config(tmp_path / "ok.yaml", "a: &x [1, 2]\nb: *x\nc: {<<: {k: 1}}\n"))
    assert tree == {"a": [1, 2], "b": [1, 2], "c": {"k": 1}}


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/stdin", "/dev/null"])
def test_only_regular_files_are_read(device):
    with pytest.raises(ConfigError, match=f"{device}: config is not a regular file"):
        read_config_file(device)


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    os.mkfifo(tmp_path / "pipe.yaml")
    with pytest.raises(ConfigError, match="not a regular file"):
        read_config_file(tmp_path / "pipe.yaml")


def test_a_huge_file_is_refused_unread(tmp_path):
    path = tmp_path / "big.yaml"
    with open(path, "wb") as f:
        f.truncate(MAX_CONFIG_BYTES + 1)
    with pytest.raises(ConfigError, match=f"larger than {MAX_CONFIG_BYTES} bytes"):
        read_config_file(path)


@pytest.mark.parametrize(
    "text", [SECRET + "\nline two\n", f"key: [{SECRET}\n", f"{SECRET}: [1,\n", f"- {SECRET}\n", f"\t{SECRET}\n"]
)
def test_what_failed_to_parse_is_not_echoed(tmp_path, text):
    with pytest.raises(ConfigError) as info:
        read_config_file(write_config(tmp_path / "shadow", text))
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'shadow'}: ") and "\n" not in message
    assert "s3cr3t" not in message
