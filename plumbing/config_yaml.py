"""Bounded YAML for config files: a file or a `--set` value is read with limits on its size, on the
values it expands to (a billion-laughs file stops early) and on its nesting, with YAML 1.2 scalars.
Errors name the file (or `--set key`) and never echo more of what failed to parse than a short
quoted snippet (`snippet`)."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

MAX_CONFIG_BYTES = 1 << 20  # a config is a few KB; anything this large is not one
MAX_YAML_NODES = 10_000  # nodes after alias expansion: a billion-laughs file stops here
MAX_YAML_DEPTH = 50  # nested lists/mappings (deeper ones would exhaust Python's recursion)
SNIPPET = 40  # characters of a refused value quoted in an error


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that counts the nodes a document expands to (each alias counts its whole
    subtree again) and its nesting, and refuses documents beyond MAX_YAML_NODES or
    MAX_YAML_DEPTH before building anything."""

    def compose_document(self):
        self._sizes: dict[int, int] = {}
        self._depth = 0
        return super().compose_document()

    def compose_node(self, parent, index):
        self._depth += 1
        if self._depth > MAX_YAML_DEPTH:
            raise ConfigError(f"nests deeper than {MAX_YAML_DEPTH} levels")
        node = super().compose_node(parent, index)
        self._depth -= 1
        size = self._sizes.get(id(node))
        if size is None:  # a new node (an alias returns one already counted)
            size = 1 + sum(self._sizes.get(id(child), 1) for child in _children(node))
            self._sizes[id(node)] = size
        if size > MAX_YAML_NODES:
            raise ConfigError(f"expands to more than {MAX_YAML_NODES} values (YAML aliases)")
        return node


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return list(node.value) if isinstance(node, yaml.SequenceNode) else []


# YAML 1.2 scalars where 1.1 surprises: 1e-4 (no dot) is a number, and only true/false are
# booleans (1.1 reads `amp: off` as false).
_BoundedLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_BoundedLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_BoundedLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789")
)


def parse_yaml(text: str, source: str, *, plain_if_invalid: bool = False) -> Any:
    """The value of YAML `text`, bounded in expansion and depth; errors name `source`, never
    echo `text`. `plain_if_invalid`: text that is not YAML is returned as the string itself."""
    try:
        return yaml.load(text, Loader=_BoundedLoader)  # noqa: S506 (a SafeLoader subclass)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    except yaml.YAMLError as exc:
        if plain_if_invalid:
            return text
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise ConfigError(f"{source}: not valid YAML: {problem}{where}") from None


def read_config_file(path: str | Path) -> dict:
    """One config file as a mapping: a regular file of at most MAX_CONFIG_BYTES, UTF-8 YAML."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO must not block the open
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"{path}: config is not a regular file")
        if info.st_size > MAX_CONFIG_BYTES:
            raise ConfigError(f"{path}: config is larger than {MAX_CONFIG_BYTES} bytes")
        data = f.read(MAX_CONFIG_BYTES + 1)
    if len(data) > MAX_CONFIG_BYTES:  # grew while we read it
        raise ConfigError(f"{path}: config is larger than {MAX_CONFIG_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: config is not UTF-8 text") from None
    tree = parse_yaml(text, str(path))
    if tree is None:
        return {}
    if not isinstance(tree, dict):
        raise ConfigError(f"{path}: config must be a mapping of keys to values, got {kind_of(tree)}")
    return tree


def snippet(value: Any) -> str:
    """`repr(value)` cut to SNIPPET characters: how an error quotes a value it refuses."""
    text = repr(value)
    return text if len(text) <= SNIPPET else text[: SNIPPET - 3] + "..."


def kind_of(value: Any) -> str:
    """What a YAML value is, in words, for an error ('a string', 'a list', 'a number', ...)."""
    return {str: "a string", list: "a list", int: "a number", float: "a number", bool: "true/false"}.get(
        type(value), type(value).__name__
    )
