"""A typed config from layers, every problem one line naming its layer and the dotted key.

    layers = read_config_chain("run.yaml") + [("--set", parse_sets(["optim.blr=1e-3"]))]
    cfg = build(TrainConfig, layers)   # later layers win; mappings merge key by key

`build` validates the merged layers with pydantic and turns its first error into one ConfigError
line: an unknown key with the closest valid one, or a value pydantic refuses with its reason.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any

import pydantic

from .config_layers import Layer, merge_layers
from .config_yaml import snippet
from .errors import ConfigError, did_you_mean

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,39}")  # keys that may be echoed in errors


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


def _prepared(prepare: Callable[[dict], dict], layer: dict, source: str) -> dict:
    try:
        return prepare(layer)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{source}: {exc}") from None


def _explain(exc: pydantic.ValidationError, cls: type, tree: dict, origins: dict[tuple, str]) -> str:
    """The first error of `exc` as one line: its source, the dotted key and what is wrong."""
    error = exc.errors(include_url=False)[0]
    loc = _data_path(tree, error["loc"])
    source = _origin(origins, loc)
    key = _dotted(loc)
    if error["type"] in ("unexpected_keyword_argument", "extra_forbidden"):
        names = _field_names(cls, loc[:-1])
        hint = did_you_mean(str(loc[-1]), names, "valid keys", show=lambda name: _dotted(loc[:-1] + (name,)))
        if not _NAME.fullmatch(str(loc[-1])):  # e.g. a line of a file that is no config
            return f"{source}: a key that is no config name ({len(str(loc[-1]))} characters); {hint}"
        return f"{source}: unknown key {key!r}; {hint}"
    message = str(error["msg"]).removeprefix("Value error, ")
    got = "" if error["type"] == "missing" or not loc else f", got {snippet(error.get('input'))}"
    return f"{source}: {key or 'config'}: {message}{got}"


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
