"""The ImageNet-1K label space of the store's `label` (class index in sorted-wnid order, -1 unknown),
read from timm's class table so that dataset_tools needs no copy of its own."""

from __future__ import annotations

import functools


@functools.cache
def imagenet_wnids() -> list[str]:
    """The 1000 wnids, index = class index ("n01440764", ...)."""
    from timm.data import ImageNetInfo  # imports torch: only when a release is built

    return list(ImageNetInfo().label_names())


@functools.cache
def imagenet_descriptions() -> list[str]:
    """The 1000 classes' lemmas ("tench, Tinca tinca", ...), index = class index."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    return [info.index_to_description(i) for i in range(1000)]
