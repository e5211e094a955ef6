"""croissant.json: MLCommons Croissant 1.0 metadata of a release (JSON-LD).

Describes the files (the Zarr group document, the per-shard record files, the array chunks) and
one record set, `instances`, whose fields are the columns of the per-instance records. Croissant
has no Zarr reader; the arrays are described as files and documented in the dataset card.
"""

from __future__ import annotations

from pathlib import Path

from datasets_spec.hashing import file_sha256
from datasets_spec.reader import Store

CONTEXT = {
    "@language": "en",
    "@vocab": "https://schema.org/",
    "citeAs": "cr:citeAs",
    "column": "cr:column",
    "conformsTo": "dct:conformsTo",
    "cr": "http://mlcommons.org/croissant/",
    "rai": "http://mlcommons.org/croissant/RAI/",
    "data": {"@id": "cr:data", "@type": "@json"},
    "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
    "dct": "http://purl.org/dc/terms/",
    "equivalentProperty": "cr:equivalentProperty",
    "examples": {"@id": "cr:examples", "@type": "@json"},
    "extract": "cr:extract",
    "field": "cr:field",
    "fileProperty": "cr:fileProperty",
    "fileObject": "cr:fileObject",
    "fileSet": "cr:fileSet",
    "format": "cr:format",
    "includes": "cr:includes",
    "isLiveDataset": "cr:isLiveDataset",
    "jsonPath": "cr:jsonPath",
    "key": "cr:key",
    "md5": "cr:md5",
    "parentField": "cr:parentField",
    "path": "cr:path",
    "recordSet": "cr:recordSet",
    "references": "cr:references",
    "regex": "cr:regex",
    "repeated": "cr:repeated",
    "replace": "cr:replace",
    "samplingRate": "cr:samplingRate",
    "sc": "https://schema.org/",
    "separator": "cr:separator",
    "source": "cr:source",
    "subField": "cr:subField",
    "transform": "cr:transform",
}
# (record column, Croissant data type, description)
RECORD_FIELDS = [
    ("index", "sc:Integer", "image index in the store"),
    ("key", "sc:Text", "image path relative to the image root (join key)"),
    ("id", "sc:Integer", "instance id in the image's instance map"),
    ("score", "sc:Float", "labeler's score"),
    ("area", "sc:Integer", "instance area in original pixels"),
    ("semantic", "sc:Integer", "semantic class id (label space in data/zarr.json), or null"),
    ("source", "sc:Text", "backend that found the instance"),
    ("prompt", "sc:Text", "text prompt that found it, or null"),
]


def croissant(store: Store, root: Path, data: str, license_id: str, name: str) -> dict:
    """The JSON-LD document for the release at `root` whose store is root/`data`, named `name`."""
    group = f"{data}/zarr.json"
    files = [
        {
            "@type": "cr:FileObject",
            "@id": "zarr-group",
            "name": "zarr-group",
            "contentUrl": group,
            "encodingFormat": "application/json",
            "sha256": file_sha256(root / group),
            "description": "Zarr v3 group document: schema version, label space, canvas geometry, provenance",
        },
        {
            "@type": "cr:FileSet",
            "@id": "records",
            "name": "records",
            "includes": f"{data}/records/*.jsonl.gz",
            "encodingFormat": "application/jsonlines",
            "description": "per-instance records, gzipped JSON Lines per shard",
        },
        {
            "@type": "cr:FileSet",
            "@id": "arrays",
            "name": "arrays",
            "includes": f"{data}/**/c/**",
            "encodingFormat": "application/octet-stream",
            "description": "Zarr v3 chunks of semantic, instance, key, label, status, orig_hw, valid_hw",
        },
    ]
    fields = [
        {
            "@type": "cr:Field",
            "@id": f"instances/{name}",
            "name": name,
            "description": text,
            "dataType": kind,
            "source": {"fileSet": {"@id": "records"}, "extract": {"column": name}},
        }
        for name, kind, text in RECORD_FIELDS
    ]
    return {
        "@context": CONTEXT,
        "@type": "sc:Dataset",
        "name": f"c2fmae-pseudo-labels-{name}",
        "description": (
            f"Machine-generated semantic and instance masks for {store.layout.num_images} images "
            "(no image pixels; join by key). See README.md."
        ),
        "conformsTo": "http://mlcommons.org/croissant/1.0",
        "license": license_id,
        "url": "https://arxiv.org/abs/2603.09955",
        "version": "1.0.0",
        "citeAs": "C2FMAE: From Semantics to Pixels, arXiv:2603.09955",
        "distribution": files,
        "recordSet": [
            {
                "@type": "cr:RecordSet",
                "@id": "instances",
                "name": "instances",
                "description": "one record per instance",
                "field": fields,
            }
        ],
    }
