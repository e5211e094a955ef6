"""The c2fmae dataset contract: a Zarr v3 store of semantic and instance pseudo-masks.

See docs/dataset-format.md for the format; this package creates, writes, reads and validates it.
"""

from .create import create_store
from .errors import StoreError
from .reader import ImageView, Store, open_store
from .schema import Layout
from .shard_writer import ImageResult, write_shard

__all__ = ["create_store", "open_store", "write_shard", "ImageResult", "ImageView", "Store", "StoreError", "Layout"]
