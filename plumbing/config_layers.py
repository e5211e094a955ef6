"""Config layers: a file and the `base:` files under it, `--set a.b=c` overrides, and their merge.

A layer is (source named in errors, tree of keys). A file may name a `base:` file (relative to
itself) that it layers over; later layers win, and mappings merge key by key.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .config_yaml import kind_of, parse_yaml, read_config_file, snippet
from .errors import ConfigError, did_you_mean

BASE_KEY = "base"

Layer = tuple[str, dict]  # (source named in errors, tree of keys)


def find_config(ref: str | Path, packaged: Path) -> Path:
    """The config file `ref` names: a path, or the name of a config shipped in the folder
    `packaged` (`label_paper` for `packaged/label_paper.yaml`), so an installed wheel finds its
    presets outside a checkout. A path that is there wins over a packaged name."""
    path = Path(ref)
    if path.exists() or path.suffix in (".yaml", ".yml") or len(path.parts) > 1:
        return path
    shipped = sorted(p.stem for p in packaged.glob("*.yaml"))
    if path.name in shipped:
        return packaged / f"{path.name}.yaml"
    hint = did_you_mean(path.name, shipped, "packaged configs")
    raise ConfigError(f"{ref}: no such config file, nor a packaged config of that name; {hint}")


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
            raise ConfigError(f"{current}: {BASE_KEY} must be a file name, got {kind_of(base)}")
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
            raise ConfigError(f"--set expects key=value with a dotted key, got {snippet(item)}")
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
