"""croissant.json: MLCommons Croissant metadata of a release, built with mlcroissant's Python API.

Record sets: `semantic_classes` and `imagenet_classes` (the label spaces, id -> name, inline), and
the annotations. A Parquet release has `images`: one record per labeled image read from its
Parquet files, with its masks (PNG images) and its `instances` (class, score, box, area, prompt,
COCO RLE). A Zarr release has `instances`: one record per instance read from the per-shard record
files (Croissant has no Zarr reader; the card describes the arrays). The responsible-AI fields
(rai:) say how the labels were made and what they cannot be trusted for. Built, then checked:
any issue mlcroissant reports (warnings included) is an error.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import mlcroissant as mlc

from datasets_spec.errors import StoreError
from datasets_spec.hashing import file_sha256
from datasets_spec.imagenet import imagenet_names, imagenet_wnids
from datasets_spec.reader import Store

from ._card import Release

CITE = "C2FMAE: From Semantics to Pixels, arXiv:2603.09955"
PAPER = "https://arxiv.org/abs/2603.09955"
CROISSANT_1_1 = "http://mlcommons.org/croissant/1.1"
T = mlc.DataType
# (field, data type(s), description[, fixed length]) of an instance, as the records and the Parquet rows hold it
INSTANCE_FIELDS = [
    ("id", T.INTEGER, "instance id in the image's instance map"),
    ("score", T.FLOAT, "the labeler's confidence"),
    ("box", [T.FLOAT, T.BOUNDING_BOX], "bounding box [x, y, w, h] in original pixels (COCO)", 4),
    ("area", T.INTEGER, "instance area in original pixels"),
    ("semantic", T.INTEGER, "semantic class id (semantic_classes), or null"),
    ("source", T.TEXT, "the backend that found it"),
    ("prompt", T.TEXT, "the text prompt that found it, or null"),
]
# the instance's mask: COCO compressed RLE at original size, its two parts as two fields
RLE_FIELDS = [
    ("rle_size", T.INTEGER, "COCO RLE size [H, W] (the original image's)", 2),
    ("rle_counts", T.TEXT, "COCO compressed RLE counts (pycocotools' mask.decode)"),
]
PNG = "canvas map as a 16-bit greyscale PNG [S, S]"


def croissant(store: Store, root: Path, release: Release) -> dict:
    """The JSON-LD document of the release at `root`; StoreError if mlcroissant finds any issue."""
    if release.fmt == "parquet":
        files = [_file_set("parquet-files", f"{release.data}/train-*.parquet", mlc.EncodingFormat.PARQUET)]
        annotations = _images()
    else:
        files = [_file_set("record-files", f"{release.data}/records/*.jsonl.gz", mlc.EncodingFormat.JSON_LINES)]
        annotations = _instances()
    files.append(
        mlc.FileObject(
            id="card",
            name="card",
            content_url="README.md",
            encoding_formats=["text/markdown"],
            sha256=file_sha256(root / "README.md"),
            description="the dataset card: contents, provenance, weaknesses, statistics",
        )
    )
    metadata = mlc.Metadata(
        ctx=mlc.Context(conforms_to=CROISSANT_1_1),  # 1.1: fields with isArray / arrayShape
        name=f"c2fmae-pseudo-labels-{release.name}",
        description=(
            f"Machine-generated semantic and instance masks for {store.layout.num_images} images "
            "(no image pixels; join by key). See README.md."
        ),
        url=PAPER,
        cite_as=CITE,
        version="1.0.0",
        date_published=datetime.datetime.now(datetime.UTC).replace(microsecond=0),
        license=[_licence_text(release.licence)],
        keywords=["pseudo-labels", "semantic segmentation", "instance segmentation", "ImageNet"],
        distribution=files,
        record_sets=[*_label_spaces(store), annotations],
        **_rai(release.provenance),
    )
    issues = metadata.ctx.issues
    if issues.errors or issues.warnings:
        raise StoreError(f"croissant.json: mlcroissant reports {issues.report()}".replace("\n", " "))
    return metadata.to_json()


def _file_set(ident: str, pattern: str, fmt: str) -> mlc.FileSet:
    return mlc.FileSet(id=ident, name=ident, includes=[pattern], encoding_formats=[fmt])


def _licence_text(licence: dict) -> str:
    return licence.get("license_link") or licence["license"]


def _field(record_set: str, name: str, kind, text: str, source: dict, path: str | None = None, shape=None):
    """A leaf field read from `source` (a file set and a column), through the JSONPath `path` when
    given; `shape`: the length of a fixed-size list value (e.g. 4 for a box)."""
    kinds = [kind] if not isinstance(kind, list) else kind
    return mlc.Field(
        id=f"{record_set}/{name}",
        name=name,
        description=text,
        data_types=kinds,
        source=mlc.Source(**source, transforms=[mlc.Transform(json_path=path)] if path else []),
        is_array=True if shape else None,
        array_shape=str(shape) if shape else None,
    )


def _column(file_set: str, name: str) -> dict:
    return {"file_set": file_set, "extract": mlc.Extract(column=name)}


def _label_spaces(store: Store) -> list[mlc.RecordSet]:
    semantic = [{"semantic_classes/id": i, "semantic_classes/name": n} for i, n in sorted(store.label_space.items())]
    wnids, names = imagenet_wnids(), imagenet_names()
    imagenet = [
        {"imagenet_classes/id": i, "imagenet_classes/wnid": w, "imagenet_classes/name": n}
        for i, (w, n) in enumerate(zip(wnids, names))
    ]
    return [
        mlc.RecordSet(
            id="semantic_classes",
            name="semantic_classes",
            description="the label space of the semantic maps and of each instance's class",
            key=["semantic_classes/id"],
            fields=[
                mlc.Field(id="semantic_classes/id", name="id", data_types=[T.INTEGER]),
                mlc.Field(id="semantic_classes/name", name="name", data_types=[T.TEXT]),
            ],
            data=semantic,
        ),
        mlc.RecordSet(
            id="imagenet_classes",
            name="imagenet_classes",
            description="ImageNet-1K classes: the images' `label` (-1 = unknown)",
            key=["imagenet_classes/id"],
            fields=[
                mlc.Field(id="imagenet_classes/id", name="id", data_types=[T.INTEGER]),
                mlc.Field(id="imagenet_classes/wnid", name="wnid", data_types=[T.TEXT]),
                mlc.Field(id="imagenet_classes/name", name="name", data_types=[T.TEXT]),
            ],
            data=imagenet,
        ),
    ]


def _images() -> mlc.RecordSet:
    """One record per Parquet row; `instances` is a repeated field whose sub-fields pick each
    instance's entries out of the nested column (JSONPath)."""
    rs, files = "images", "parquet-files"
    fields = [
        _field(rs, "key", T.TEXT, "image path relative to the image root: the join key", _column(files, "key")),
        _field(rs, "index", T.INTEGER, "the image's index in the labeling store", _column(files, "index")),
        _field(rs, "label", T.INTEGER, "ImageNet-1K class (imagenet_classes), -1 unknown", _column(files, "label")),
        _field(rs, "height", T.INTEGER, "original height (after EXIF orientation)", _column(files, "height")),
        _field(rs, "width", T.INTEGER, "original width", _column(files, "width")),
        _field(rs, "valid_hw", T.INTEGER, "(h, w) of the image on the canvas", _column(files, "valid_hw"), shape=2),
        _field(rs, "semantic", T.IMAGE_OBJECT, f"{PNG}: class id, 65535 = ignore", _column(files, "semantic"), "bytes"),
        _field(rs, "instance", T.IMAGE_OBJECT, f"{PNG}: instance id, 0 = none", _column(files, "instance"), "bytes"),
    ]
    instances = _column(files, "instances")
    sub = [_field(f"{rs}/instances", *spec[:3], instances, spec[0], *spec[3:]) for spec in INSTANCE_FIELDS]
    sub += [
        _field(f"{rs}/instances", name, kind, text, instances, f"rle.{name[4:]}", *shape)
        for name, kind, text, *shape in RLE_FIELDS
    ]
    fields.append(
        mlc.Field(
            id=f"{rs}/instances", name="instances", description="the image's instances", is_array=True, sub_fields=sub
        )
    )
    return mlc.RecordSet(id=rs, name=rs, description="one record per labeled image", key=[f"{rs}/key"], fields=fields)


def _instances() -> mlc.RecordSet:
    """One record per line of the per-shard records (Zarr release)."""
    rs, files = "instances", "record-files"
    fields = [
        _field(rs, "index", T.INTEGER, "the image's index in the store", _column(files, "index")),
        _field(rs, "key", T.TEXT, "image path relative to the image root: the join key", _column(files, "key")),
        *(_field(rs, *spec[:3], _column(files, spec[0]), None, *spec[3:]) for spec in INSTANCE_FIELDS),
        *(
            _field(rs, name, kind, text, _column(files, "rle"), name[4:], *shape)
            for name, kind, text, *shape in RLE_FIELDS
        ),
    ]
    return mlc.RecordSet(id=rs, name=rs, description="one record per instance", fields=fields)


def _rai(prov: dict) -> dict:
    """The responsible-AI fields, from the (scrubbed) provenance."""
    backends = ", ".join(f"{role}: {ident}" for role, ident in sorted(prov.get("backends", {}).items())) or "unknown"
    return {
        "data_collection": (
            "No data was collected: the masks are computed from an existing image collection "
            "(ImageNet-1K's training images for the paper's dataset) by c2fmae's c2f-label."
        ),
        "data_collection_type": ["Machine-generated annotations of existing images"],
        "data_annotation_protocol": [
            "Machine pseudo-labels, not reviewed by people: each image is labeled by the backends "
            f"({backends}); masks on a fixed canvas, instances as COCO RLE at original size."
        ],
        "machine_annotation_tools": [f"c2fmae c2f-label ({prov.get('labeler', 'unknown labeler')})"],
        "annotations_per_item": "one semantic map, one instance map and zero or more instances per image",
        "data_biases": [
            "The labels inherit the source images' biases (ImageNet's class, geographic and demographic "
            "skew) and the labeling models' (classes they were trained on, objects they miss)."
        ],
        "data_limitations": [
            "Pseudo-labels: wrong classes, missed or merged objects and coarse boundaries occur; the "
            "card lists the weaknesses found automatically. Not ground truth: not for evaluating models.",
            "Failed images (undecodable files) have no labels.",
        ],
        "data_use_cases": ["Pre-training (C2FMAE) and other uses that tolerate label noise."],
        "personal_sensitive_information": [
            "No image pixels are released; people pictured in the source images appear as masks only."
        ],
        "data_release_maintenance_plan": "Regenerated with c2f-label and republished; versions are not patched.",
    }
