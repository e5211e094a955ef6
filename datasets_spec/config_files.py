"""Config files for every command: bounded YAML, `base:` layers, `--set a.b=c`, pydantic validation.

    layers = read_config_chain("run.yaml") + [("--set", parse_sets(["optim.blr=1e-3"]))]
    cfg = build(TrainConfig, layers)   # later layers win; mappings merge key by key

A file may name a `base:` file (relative to itself) that it layers over. Every problem is one
`ConfigError` line naming the file (or `--set`) and the dotted key: an unknown key with the closest
valid one, a value pydantic refuses with its reason, a file that is not a small regular file or not
small YAML. What failed to parse is never echoed beyond a short quoted snippet.
"""

from __future__ import annotations

import difflib
import os
import re
import stat
import types
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any

import pydantic
import pydantic.dataclasses
import yaml

from .errors import ConfigError

MAX_CONFIG_BYTES = 1 << 20  # a config is a few KB; anything this large is not one
MAX_YAML_NODES = 10_000  # nodes after alias expansion: a billion-laughs file stops here
MAX_YAML_DEPTH = 50  # nested lists/mappings (deeper ones would exhaust Python's recursion)
BASE_KEY = "base"
SNIPPET = 40  # characters of a refused value quoted in an error
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,39}")  # keys that may be echoed in errors

Layer = tuple[str, dict]  # (source named in errors, tree of keys)

# Field types of config sections: strict where YAML could slip a wrong kind through (true as 1,
# "3" as 3, 2.0 as 2); tuples and nested sections still accept YAML's lists and mappings.
Float = Annotated[float, pydantic.Strict()]  # ints are accepted and become floats
Bool = Annotated[bool, pydantic.Strict()]
Str = Annotated[str, pydantic.Strict()]
Positive = Annotated[int, pydantic.Strict(), pydantic.Field(ge=1)]
Count = Annotated[int, pydantic.Strict(), pydantic.Field(ge=0)]
NonNegative = Annotated[float, pydantic.Strict(), pydantic.Field(ge=0)]
PositiveFloat = Annotated[float, pydantic.Strict(), pydantic.Field(gt=0)]
Fraction = Annotated[float, pydantic.Strict(), pydantic.Field(ge=0, lt=1)]
Probability = Annotated[float, pydantic.Strict(), pydantic.Field(ge=0, le=1)]


def section(cls: type | None = None, /, *, frozen: bool = False):
    """Decorator: a config section, a pydantic dataclass refusing unknown keys. It keeps the
    dataclass API (fields, replace, asdict) and validates on every construction."""
    config = pydantic.ConfigDict(extra="forbid")
    wrap = pydantic.dataclasses.dataclass(config=config, frozen=frozen)
    return wrap if cls is None else wrap(cls)


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
        raise ConfigError(f"{path}: config must be a mapping of keys to values, got {_kind(tree)}")
    return tree


def read_config_chain(path: str | Path) -> list[Layer]:
    """`path` and the files its `base:` keys name, base first, as layers (`base` removed)."""
    layers: list[Layer] = []
    seen: list[Path] = []
    current = Path(path)
    while True:
        resolved = current.resolve()
        if resolved in seen:
            raise ConfigError(f"{current}: `{BASE_KEY}:` chain loops back to itself")
        seen.append(resolved)
        tree = read_config_file(current)
        base = tree.pop(BASE_KEY, None)
        layers.insert(0, (str(current), tree))
        if base is None:
            return layers
        if not isinstance(base, str):
            raise ConfigError(f"{current}: {BASE_KEY} must be a file name, got {_kind(base)}")
        current = current.parent / base


def parse_sets(items: Sequence[str]) -> dict:
    """['optim.blr=1e-3', 'engine.amp=off'] -> {'optim': {'blr': 0.001}, 'engine': {'amp': 'off'}};
    each value is read as YAML (so numbers, lists and null are typed; text that is not YAML, such
    as `@file`, stays a string)."""
    tree: dict = {}
    for item in items:
        key, sep, raw = item.partition("=")
        parts = key.strip().split(".")
        if not sep or not all(parts):
            raise ConfigError(f"--set expects key=value with a dotted key, got {_snippet(item)}")
        node = tree
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {key}: {part!r} is set both as a value and a section")
        node[parts[-1]] = parse_yaml(raw, f"--set {key}", plain_if_invalid=True)
    return tree


def merge_layers(layers: Sequence[Layer]) -> tuple[dict, dict[tuple, str]]:
    """Deep-merge layers in order; returns the tree and, per key path, the layer that set it last."""
    tree: dict = {}
    origins: dict[tuple, str] = {}
    for source, layer in layers:
        if layer:  # an empty layer (no --set given) is named in no error
            tree = _merge(tree, layer, source, (), origins)
    return tree, origins


def build(cls: type, layers: Sequence[Layer], prepare: Callable[[dict], dict] | None = None) -> Any:
    """`cls` (a pydantic model or dataclass) from the merged layers; `prepare(layer)` rewrites
    each layer first (e.g. a preset name into its values). Any problem is one ConfigError line."""
    if prepare is not None:
        layers = [(source, _prepared(prepare, layer, source)) for source, layer in layers]
    tree, origins = merge_layers(layers)
    try:
        return pydantic.TypeAdapter(cls).validate_python(tree)
    except pydantic.ValidationError as exc:
        raise ConfigError(_explain(exc, cls, tree, origins)) from None


def _explain(exc: pydantic.ValidationError, cls: type, tree: dict, origins: dict[tuple, str]) -> str:
    """The first error of `exc` as one line: its source, the dotted key and what is wrong."""
    error = exc.errors(include_url=False)[0]
    loc = _data_path(tree, error["loc"])
    source = _origin(origins, loc)
    key = _dotted(loc)
    if error["type"] in ("unexpected_keyword_argument", "extra_forbidden"):
        names = _field_names(cls, loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), names, n=1, cutoff=0.6)
        valid = [_dotted(loc[:-1] + (name,)) for name in close or names]
        hint = f"did you mean {valid[0]!r}?" if close else f"valid keys: {', '.join(valid)}"
        if not _NAME.fullmatch(str(loc[-1])):  # e.g. a line of a file that is no config
            return f"{source}: a key that is no config name ({len(str(loc[-1]))} characters); {hint}"
        return f"{source}: unknown key {key!r}; {hint}"
    message = str(error["msg"]).removeprefix("Value error, ")
    got = "" if error["type"] == "missing" or not loc else f", got {_snippet(error.get('input'))}"
    return f"{source}: {key or 'config'}: {message}{got}"


def _prepared(prepare: Callable[[dict], dict], layer: dict, source: str) -> dict:
    try:
        return prepare(layer)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{source}: {exc}") from None


def _merge(base: dict, layer: dict, source: str, path: tuple, origins: dict) -> dict:
    origins[path] = source
    out = dict(base)
    for key, value in layer.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value, source, path + (key,), origins)
        else:
            out[key] = value
            _mark(value, source, path + (key,), origins)
    return out


def _mark(value: Any, source: str, path: tuple, origins: dict) -> None:
    origins[path] = source
    if isinstance(value, dict):
        for key, item in value.items():
            _mark(item, source, path + (key,), origins)


def _data_path(tree: Any, loc: Sequence) -> tuple:
    """The part of pydantic's `loc` that is a path in the data (unions add type names to it)."""
    out: list = []
    node = tree
    for part in loc:
        if isinstance(node, dict):
            out.append(part)
            if part not in node:  # an unknown or a missing key ends the path
                break
            node = node[part]
        elif isinstance(node, (list, tuple)) and isinstance(part, int):
            out.append(part)
            if part >= len(node):  # a missing item ends the path
                break
            node = node[part]
        else:
            break
    return tuple(out)


def _origin(origins: dict[tuple, str], loc: tuple) -> str:
    """The layer that last set `loc` or the nearest section above it."""
    for end in range(len(loc), -1, -1):
        if loc[:end] in origins:
            return origins[loc[:end]]
    return "defaults"


def _field_names(cls: Any, path: tuple) -> list[str]:
    """Field names of the section of `cls` at key path `path` ([] if it is not a section)."""
    section = _section_type(cls)
    for part in path:
        fields = getattr(section, "__pydantic_fields__", None) or getattr(section, "model_fields", {})
        if part not in fields:
            return []
        section = _section_type(fields[part].annotation)
    fields = getattr(section, "__pydantic_fields__", None) or getattr(section, "model_fields", {})
    return list(fields)


def _section_type(tp: Any) -> Any:
    """The class inside Optional[...] / Annotated[...], if any."""
    if isinstance(tp, type):
        return tp
    if typing.get_origin(tp) in (typing.Union, types.UnionType, typing.Annotated):
        for arg in typing.get_args(tp):
            found = _section_type(arg)
            if found is not None and (hasattr(found, "__pydantic_fields__") or hasattr(found, "model_fields")):
                return found
    return None


def _dotted(loc: Sequence) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _snippet(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= SNIPPET else text[: SNIPPET - 3] + "..."


def _kind(value: Any) -> str:
    return {str: "a string", list: "a list", int: "a number", float: "a number", bool: "true/false"}.get(
        type(value), type(value).__name__
    )
