"""The store's group attributes (schema version, layout, label space, provenance): build and check."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

from plumbing.errors import one_line

from . import schema, storage
from .errors import StoreError


def package_version() -> str:
    try:
        return version("c2fmae")
    except PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True)
class Meta:
    """Everything the group attributes say, parsed and checked."""

    layout: schema.Layout
    label_space: dict[int, str]
    provenance: dict
    raw: dict


def build_attrs(layout: schema.Layout, label_space: dict[int, str], provenance: dict) -> dict:
    """The JSON object stored under the group attribute `c2fmae`."""
    return {
        "schema_version": schema.SCHEMA_VERSION,
        "package_version": package_version(),
        "num_images": layout.num_images,
        "shard_size": layout.shard_size,
        "canvas": {
            "size": layout.canvas,
            "anchor": "top-left",
            "resample": "nearest pixel centre",
            "semantic_ignore": schema.SEMANTIC_IGNORE,
            "instance_none": schema.INSTANCE_NONE,
        },
        "status_codes": {str(k): v for k, v in schema.STATUS_NAMES.items()},
        "label_space": {str(int(k)): str(v) for k, v in sorted(label_space.items())},
        "provenance": provenance,
    }


def read_meta(path) -> Meta:
    """Parse and check the group attributes of the store at `path` (a local path or a URL);
    StoreError names what is wrong."""
    path = storage.normalize(path)
    if not storage.is_url(path) and not path.is_dir():
        raise StoreError(f"{path}: no such dataset directory")
    try:
        doc = json.loads(storage.read_bytes(path, "zarr.json"))
    except FileNotFoundError:
        what = "no such dataset (no zarr.json)" if storage.is_url(path) else "not a Zarr v3 store (no zarr.json)"
        raise StoreError(f"{path}: {what}") from None
    except (OSError, ValueError) as exc:
        raise StoreError(f"{storage.join(path, 'zarr.json')}: unreadable ({one_line(exc)})") from None
    if doc.get("zarr_format") != 3 or doc.get("node_type") != "group":
        raise StoreError(f"{path}: not a Zarr v3 group")
    attrs = doc.get("attributes", {}).get(schema.ATTRS_KEY)
    if not isinstance(attrs, dict):
        raise StoreError(f"{path}: not a c2fmae dataset (no '{schema.ATTRS_KEY}' group attribute)")
    found = attrs.get("schema_version")
    if found != schema.SCHEMA_VERSION:
        raise StoreError(
            f"{path}: schema version {found!r} is not supported "
            f"(this c2fmae {package_version()} reads version {schema.SCHEMA_VERSION})"
        )
    try:
        layout = schema.Layout(int(attrs["num_images"]), int(attrs["shard_size"]), int(attrs["canvas"]["size"]))
        label_space = {int(k): str(v) for k, v in attrs["label_space"].items()}
    except (KeyError, TypeError, ValueError) as exc:
        raise StoreError(f"{path}: malformed '{schema.ATTRS_KEY}' attributes ({exc!r})") from None
    return Meta(layout, label_space, attrs.get("provenance", {}), attrs)
