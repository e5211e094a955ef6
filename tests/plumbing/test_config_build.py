"""A typed config from layers: later layers win, and every problem is one line naming the layer
and the dotted key (an unknown key with the closest valid one)."""

from __future__ import annotations

from dataclasses import field

import pydantic
import pytest

from plumbing.config_build import build
from plumbing.config_fields import Count, Positive, section
from plumbing.config_layers import parse_sets, read_config_chain
from plumbing.errors import ConfigError

from .config_fixtures import SECRET, write_config


@section
class Inner:
    size: Positive = 3
    count: Count = 0


@section
class Outer:
    inner: Inner = field(default_factory=Inner)
    rate: float = 0.5


def test_base_names_a_file_relative_to_its_own(tmp_path):
    (tmp_path / "sub").mkdir()
    write_config(tmp_path / "base.yaml", "inner: {size: 5, count: 2}\nrate: 0.25\n")
    child = write_config(tmp_path / "sub" / "child.yaml", "base: ../base.yaml\ninner: {count: 7}\n")
    cfg = build(Outer, read_config_chain(child) + [("--set", parse_sets(["rate=1e-4"]))])
    assert (cfg.inner.size, cfg.inner.count, cfg.rate) == (5, 7, 1e-4)


def test_unknown_key_names_its_file_and_the_closest_key(tmp_path):
    path = write_config(tmp_path / "typo.yaml", "inner:\n  szie: 4\n")
    with pytest.raises(ConfigError, match=r"typo.yaml: unknown key 'inner.szie'; did you mean 'inner.size'\?$"):
        build(Outer, read_config_chain(path))
    with pytest.raises(ConfigError, match=r"^--set: unknown key 'rat'; did you mean 'rate'\?$"):
        build(Outer, [("--set", parse_sets(["rat=1"]))])
    with pytest.raises(ConfigError, match=r"unknown key 'inner.zzz'; valid keys: inner.size, inner.count$"):
        build(Outer, [("--set", parse_sets(["inner.zzz=1"]))])


def test_bad_values_name_the_layer_that_set_them_and_the_key(tmp_path):
    path = write_config(tmp_path / "c.yaml", "inner: {size: 0}\n")
    with pytest.raises(
        ConfigError,
        match=r"c.yaml: inner.size: Input should be greater than or "
        r"equal to 1, got 0$",
    ):
        build(Outer, read_config_chain(path))
    layers = read_config_chain(path) + [("--set", parse_sets(["inner.size=2", "inner.count=true"]))]
    with pytest.raises(ConfigError, match=r"^--set: inner.count: Input should be a valid integer, got True$"):
        build(Outer, layers)
    with pytest.raises(ConfigError, match=r"--set: inner.count: .*, got 'x{36}[.]{3}$"):
        build(Outer, [("--set", parse_sets(["inner.count=" + "x" * 500]))])


def test_a_file_that_is_no_config_is_not_echoed_as_its_keys(tmp_path):
    shadow = write_config(tmp_path / "shadow", SECRET + "\n")  # YAML reads the line as a mapping key
    with pytest.raises(ConfigError, match="a key that is no config name") as info:
        build(Outer, read_config_chain(shadow))
    assert "s3cr3t" not in str(info.value)


def test_an_error_of_a_whole_section_names_the_layer_that_last_touched_it(tmp_path):
    path = write_config(tmp_path / "c.yaml", "inner: {size: 2}\n")
    layers = read_config_chain(path) + [("--set", {})]  # an empty layer is never blamed
    with pytest.raises(
        ConfigError, match=r"d.yaml: inner: Input should be a dictionary or an instance of Inner, got 3$"
    ):
        build(Outer, read_config_chain(write_config(tmp_path / "d.yaml", "inner: 3\n")))
    with pytest.raises(ConfigError, match=r"^.*c.yaml: config: .*inner.size 2 with rate 0.5$"):
        build(Whole, layers)


@section
class Whole:
    inner: Inner = field(default_factory=Inner)
    rate: float = 0.5

    @pydantic.model_validator(mode="after")
    def _check(self):
        if self.inner.size == 2:
            raise ValueError(f"inner.size 2 with rate {self.rate}")
        return self
