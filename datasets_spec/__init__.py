"""The c2fmae dataset contract: a Zarr v3 store of semantic and instance pseudo-masks.

This package is the contract and nothing else (docs/dataset-format.md is its text): the schema
(`schema`), errors, provenance (`meta`), the store's layout and byte I/O (`storage`; object storage's
transient faults retried by `retries`), array I/O (`_array_io`), `create`, the shard writer, the
reader, per-instance records, `validate`, the canvas `geometry`, `hashing`, the image decoder the
labeler and the trainer share (`decode`), the removal of killed writers' files (`stale_files`), and
the ImageNet-1K class table that `label` indexes (`imagenet`).
It never imports torch. The tools of c2f-data live in `dataset_tools`, the shared CLI and config
plumbing in `plumbing`.
"""

from ._array_io import consolidate_metadata
from .create import create_store
from .errors import StoreError
from .reader import ImageView, Store, open_store
from .schema import Layout
from .shard_writer import ImageResult, write_shard

__all__ = [
    "create_store",
    "consolidate_metadata",
    "open_store",
    "write_shard",
    "ImageResult",
    "ImageView",
    "Store",
    "StoreError",
    "Layout",
]
