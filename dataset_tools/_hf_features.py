"""The rows of a Parquet release, declared once: as an Arrow schema (what the files hold) and as
Hugging Face `datasets` features in the card's YAML (how `load_dataset` decodes them).

One row per done image:
  key str · index int64 · label ClassLabel(ImageNet wnids; -1 unknown) · height, width int32 (original)
  valid_hw [2] int32 (the image's region on the canvas, top-left) ·
  semantic, instance: Image {bytes: 16-bit greyscale PNG [S, S], path: null} ·
  instances: list of {id, score, box [4], area, semantic, source, prompt, rle {size [2], counts}}

Each feature below is a pair (Arrow type, YAML feature body), built by the small constructors, so
the two can never disagree. The YAML is `datasets`' own layout (`list` with `length`, `class_label`
with names keyed by id, `dtype: image`), parsed by datasets >= 4.
"""

from __future__ import annotations

import pyarrow as pa

_ARROW = {"string": pa.string(), "int32": pa.int32(), "int64": pa.int64(), "float64": pa.float64()}
IMAGE_ARROW = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def value(dtype: str) -> tuple[pa.DataType, dict]:
    return _ARROW[dtype], {"dtype": dtype}


def class_label(names: list[str]) -> tuple[pa.DataType, dict]:
    """Class ids 0..len(names)-1 (stored as int64, -1 or null for none) with their names."""
    return pa.int64(), {"dtype": {"class_label": {"names": {str(i): n for i, n in enumerate(names)}}}}


def image() -> tuple[pa.DataType, dict]:
    return IMAGE_ARROW, {"dtype": "image"}


def sequence(item: tuple[pa.DataType, dict], length: int | None = None) -> tuple[pa.DataType, dict]:
    """A list of `item`s; a fixed-size one when `length` is given (e.g. a box of 4)."""
    arrow, body = item
    inner = body["dtype"] if list(body) == ["dtype"] and isinstance(body["dtype"], str) else _unwrap(body)
    return (pa.list_(arrow, length) if length else pa.list_(arrow)), (
        {"list": inner, "length": length} if length else {"list": inner}
    )


def struct(fields: list[tuple[str, tuple[pa.DataType, dict]]]) -> tuple[pa.DataType, dict]:
    arrow = pa.struct([(name, item[0]) for name, item in fields])
    return arrow, {"struct": [{"name": name, **item[1]} for name, item in fields]}


def _unwrap(body: dict):
    """A YAML feature body as the item of a list: a struct's field list, or the body itself."""
    return body["struct"] if list(body) == ["struct"] else body


def row_features(imagenet_names: list[str], semantic_names: list[str] | None) -> list[tuple[str, tuple]]:
    """(column, feature) of a release row. semantic_names: the label space as contiguous ids
    0..C-1, or None when it is not (the instances' `semantic` is then a plain int64)."""
    semantic_class = class_label(semantic_names) if semantic_names is not None else value("int64")
    instance = struct(
        [
            ("id", value("int32")),
            ("score", value("float64")),
            ("box", sequence(value("float64"), 4)),
            ("area", value("int64")),
            ("semantic", semantic_class),
            ("source", value("string")),
            ("prompt", value("string")),
            ("rle", struct([("size", sequence(value("int32"), 2)), ("counts", value("string"))])),
        ]
    )
    return [
        ("key", value("string")),
        ("index", value("int64")),
        ("label", class_label(imagenet_names)),
        ("height", value("int32")),
        ("width", value("int32")),
        ("valid_hw", sequence(value("int32"), 2)),
        ("semantic", image()),
        ("instance", image()),
        ("instances", sequence(instance)),
    ]


def arrow_schema(features: list[tuple[str, tuple]]) -> pa.Schema:
    return pa.schema([(name, item[0]) for name, item in features])


def yaml_features(features: list[tuple[str, tuple]]) -> list[dict]:
    """The card's `dataset_info.features`."""
    return [{"name": name, **item[1]} for name, item in features]
