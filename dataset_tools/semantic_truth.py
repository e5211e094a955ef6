"""Ground-truth semantic maps in their own convention, stated by the user, never guessed (c2f-data eval).

Default: a value IS the store's class id (what export-semantic writes). reduce_zero_label
(ADE20K's PNGs: 0 = "other", classes 1..150): 0 is ignored and v is class v - 1. Ignored either
way: 255 in 8-bit maps (PASCAL VOC's "void"), 65535 in 16-bit maps and stores; values beyond the
label space are left out and counted. When the values look like the other convention, one warning
line says so (`convention_warning`); the numbers are computed as asked regardless.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from datasets_spec import schema
from datasets_spec.errors import StoreError

PNG_IGNORE = 255  # PASCAL VOC's "void" in 8-bit label PNGs; 65535 (our ignore) in 16-bit ones


@dataclass(frozen=True)
class GtValues:
    """What the ground truth's values look like, summed over images (for the convention warning).

    largest: the largest value that is not the ignore value, as stored (-1: none); zeros: pixels
    of stored value 0; beyond: pixels left out for being no class (after reduce_zero_label).
    """

    largest: int = -1
    zeros: int = 0
    beyond: int = 0

    def __add__(self, other: GtValues) -> GtValues:
        return GtValues(max(self.largest, other.largest), self.zeros + other.zeros, self.beyond + other.beyond)

    def as_dict(self) -> dict:
        return {"largest_value": self.largest, "zero_pixels": self.zeros, "pixels_beyond_label_space": self.beyond}


def gt_classes(truth: np.ndarray, reduce_zero_label: bool) -> tuple[np.ndarray, np.ndarray]:
    """(class id [H, W] int64, ignored [H, W] bool) of a ground-truth map in its convention.

    Ignored: 255 in uint8 maps, 65535 otherwise; and 0 with reduce_zero_label (then v -> v - 1).
    """
    ignored = truth == void_value(truth)
    classes = truth.astype(np.int64)
    if reduce_zero_label:
        ignored |= truth == 0
        classes -= 1
    return classes, ignored


def void_value(truth: np.ndarray) -> int:
    """The value that means "no label" in a map of truth's dtype."""
    return PNG_IGNORE if truth.dtype == np.uint8 else schema.SEMANTIC_IGNORE


def gt_values(truth: np.ndarray, ignored: np.ndarray, kept: np.ndarray) -> GtValues:
    """GtValues of one map. ignored, kept: [H, W] bool, as in shard_confusion."""
    labeled = truth[truth != void_value(truth)]
    largest = int(labeled.max()) if labeled.size else -1
    return GtValues(largest, int((truth == 0).sum()), int((~ignored & ~kept).sum()))


def read_png(root: Path, key: str, hw: tuple[int, int]) -> np.ndarray | None:
    """root/<key with suffix .png> [H, W] as stored (uint8 or uint16); None if absent."""
    path = (root / key).with_suffix(".png")
    if not path.is_file():
        return None
    with Image.open(path) as img:
        truth = np.asarray(img)
    if truth.ndim != 2 or truth.shape != hw:
        raise StoreError(f"{path}: label map of shape {truth.shape}, expected one channel of {hw}")
    return truth


def convention_warning(
    values: GtValues, conf: np.ndarray, label_space: dict, reduce_zero_label: bool, *, pngs: bool = True
) -> str | None:
    """One line when label PNGs look like the other convention, or when truth holds values of no class.

    pngs: False for a ground-truth store (its values are class ids: only values beyond are told).
    conf: [C, C + 1] as eval_semantic counts it.
    """
    hint = _shift_hint(values, conf, label_space, reduce_zero_label) if pngs else None
    if hint is None and values.beyond:
        hint = f"{values.beyond} ground-truth pixels hold values beyond the {conf.shape[0]} classes and were left out"
    return hint


def _shift_hint(values: GtValues, conf: np.ndarray, label_space: dict, reduce_zero_label: bool) -> str | None:
    """The signs of the other convention: values up to C, or 0 without a class 0 (ADE20K-style PNGs
    read as ids); or the predictions matching the truth one class off better than as given."""
    n = conf.shape[0]
    agree = int(np.trace(conf[:, :n]))
    if reduce_zero_label:
        off = int(np.trace(conf[:, :n], offset=1))  # true class t predicted as t + 1
        if off > agree:
            return (
                f"with --reduce-zero-label, {off} pixels match the truth one class up but only {agree} as given: "
                "if the PNGs hold the store's class ids, drop the flag"
            )
        return None
    off = int(np.trace(conf[:, :n], offset=-1))  # true class t predicted as t - 1
    no_zero_class = values.zeros and 0 not in label_space
    if values.largest == n or no_zero_class or off > agree:
        return (
            f"the ground truth looks counted from 1 (largest value {values.largest} for {n} classes; "
            f"{values.zeros} pixels of 0{', no class 0' if no_zero_class else ''}; {off} pixels match one "
            f"class down, {agree} as given): if 0 means 'other' (ADE20K-style), rerun with --reduce-zero-label"
        )
    return None
