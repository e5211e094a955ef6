"""Config files: bounded YAML, `base:` layers, `--set` overrides, one-line pydantic errors."""

from __future__ import annotations

import os
from dataclasses import field

import pydantic
import pytest

from datasets_spec.config_files import (
    MAX_CONFIG_BYTES,
    Count,
    Positive,
    build,
    parse_sets,
    read_config_chain,
    read_config_file,
    section,
)
from datasets_spec.errors import ConfigError

# 370 bytes that expand to 10^9 strings when every alias is followed
BILLION_LAUGHS = """a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""
SECRET = "root:$6$s3cr3tHASH$abcdefghijklmnop:19000:0:99999:7:::"


@section
class Inner:
    size: Positive = 3
    count: Count = 0


@section
class Outer:
    inner: Inner = field(default_factory=Inner)
    rate: float = 0.5


def _write(path, text: str):
    path.write_text(text)
    return path


def test_billion_laughs_is_refused_before_it_expands(tmp_path):
    assert len(BILLION_LAUGHS) <= 370
    with pytest.raises(ConfigError, match=r"laughs.yaml: expands to more than \d+ values"):
        read_config_file(_write(tmp_path / "laughs.yaml", BILLION_LAUGHS))


def test_deep_nesting_is_refused_not_a_recursion_error(tmp_path):
    with pytest.raises(ConfigError, match=r"deep.yaml: nests deeper than \d+ levels"):
        read_config_file(_write(tmp_path / "deep.yaml", "[" * 100_000))


def test_a_few_aliases_are_fine(tmp_path):
    tree = read_config_file(_write(tmp_path / "ok.yaml", "a: &x [1, 2]\nb: *x\nc: {<<: {k: 1}}\n"))
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
        read_config_file(_write(tmp_path / "shadow", text))
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'shadow'}: ") and "\n" not in message
    assert "s3cr3t" not in message


def test_base_names_a_file_relative_to_its_own(tmp_path):
    (tmp_path / "sub").mkdir()
    _write(tmp_path / "base.yaml", "inner: {size: 5, count: 2}\nrate: 0.25\n")
    child = _write(tmp_path / "sub" / "child.yaml", "base: ../base.yaml\ninner: {count: 7}\n")
    cfg = build(Outer, read_config_chain(child) + [("--set", parse_sets(["rate=1e-4"]))])
    assert (cfg.inner.size, cfg.inner.count, cfg.rate) == (5, 7, 1e-4)


@pytest.mark.parametrize("base", ["/dev/zero", "/dev/stdin"])
def test_a_base_that_is_not_a_regular_file_is_refused(tmp_path, base):
    with pytest.raises(ConfigError, match=f"^{base}: config is not a regular file$"):
        read_config_chain(_write(tmp_path / "c.yaml", f"base: {base}\n"))


def test_base_loops_are_refused(tmp_path):
    _write(tmp_path / "a.yaml", "base: b.yaml\n")
    _write(tmp_path / "b.yaml", "base: a.yaml\n")
    with pytest.raises(ConfigError, match="loops back"):
        read_config_chain(tmp_path / "a.yaml")


def test_unknown_key_names_its_file_and_the_closest_key(tmp_path):
    path = _write(tmp_path / "typo.yaml", "inner:\n  szie: 4\n")
    with pytest.raises(ConfigError, match=r"typo.yaml: unknown key 'inner.szie'; did you mean 'inner.size'\?$"):
        build(Outer, read_config_chain(path))
    with pytest.raises(ConfigError, match=r"^--set: unknown key 'rat'; did you mean 'rate'\?$"):
        build(Outer, [("--set", parse_sets(["rat=1"]))])
    with pytest.raises(ConfigError, match=r"unknown key 'inner.zzz'; valid keys: inner.size, inner.count$"):
        build(Outer, [("--set", parse_sets(["inner.zzz=1"]))])


def test_bad_values_name_the_layer_that_set_them_and_the_key(tmp_path):
    path = _write(tmp_path / "c.yaml", "inner: {size: 0}\n")
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


def test_a_file_that_is_no_config_is_not_echoed_as_its_keys(tmp_path):
    shadow = _write(tmp_path / "shadow", SECRET + "\n")  # YAML reads the line as a mapping key
    with pytest.raises(ConfigError, match="a key that is no config name") as info:
        build(Outer, read_config_chain(shadow))
    assert "s3cr3t" not in str(info.value)


def test_an_error_of_a_whole_section_names_the_layer_that_last_touched_it(tmp_path):
    path = _write(tmp_path / "c.yaml", "inner: {size: 2}\n")
    layers = read_config_chain(path) + [("--set", {})]  # an empty layer is never blamed
    with pytest.raises(
        ConfigError, match=r"d.yaml: inner: Input should be a dictionary or an instance of Inner, got 3$"
    ):
        build(Outer, read_config_chain(_write(tmp_path / "d.yaml", "inner: 3\n")))
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
