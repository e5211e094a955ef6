"""Instance record fields at the true resolution for masks found on a reduced decode.

A JPEG above the pixel limit is labeled on a decode at 1/2, 1/4 or 1/8 size (datasets_spec.decode).
Its records must still hold `box`, `area` and `rle` at the original H × W (docs/dataset-format.md),
i.e. of the mask brought to H × W by nearest pixel centre, the rule of the canvas. Building that
H × W mask would cost what the reduction saved, so the fields are computed from the small mask:
each reduced row (column) stands for a known run of original rows (columns).
"""

from __future__ import annotations

import numpy as np
from pycocotools import mask as mask_utils

from datasets_spec.geometry import canvas_index


def upsampled_fields(mask: np.ndarray, orig_hw) -> dict:
    """mask bool [h, w] (h ≤ H, w ≤ W; not empty) → {"box": [x, y, w, h], "area", "rle"} of the
    mask brought to orig_hw = (H, W), equal to computing them on the H × W mask."""
    height, width = int(orig_hw[0]), int(orig_hw[1])
    rows = canvas_index(np.arange(height), height, mask.shape[0])  # reduced row of each original row
    cols = canvas_index(np.arange(width), width, mask.shape[1])
    row_start = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=mask.shape[0]))])
    col_start = np.concatenate([[0], np.cumsum(np.bincount(cols, minlength=mask.shape[1]))])
    area = int(np.diff(row_start) @ mask.astype(np.int64) @ np.diff(col_start))
    r, c = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    x, y = int(col_start[c[0]]), int(row_start[r[0]])
    box = [float(x), float(y), float(col_start[c[-1] + 1] - x), float(row_start[r[-1] + 1] - y)]
    return {"box": box, "area": area, "rle": _rle(mask, row_start, cols, height, width)}


def _rle(mask: np.ndarray, row_start: np.ndarray, cols: np.ndarray, height: int, width: int) -> dict:
    """pycocotools' compressed RLE (column-major runs, zeros first) of the upsampled mask."""
    # where each reduced column changes value, in original rows: [changes] sorted by column
    col, row = np.nonzero((mask[1:] != mask[:-1]).T)
    offsets = row_start[row + 1]
    per_col = np.bincount(col, minlength=mask.shape[1])
    first = np.cumsum(per_col) - per_col
    n = per_col[cols]  # changes inside each original column
    within = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
    inside = offsets[np.repeat(first[cols], n) + within] + np.repeat(np.arange(width, dtype=np.int64) * height, n)
    seams = np.flatnonzero(mask[0, cols[1:]] != mask[-1, cols[:-1]]) + 1  # a column starts unlike the last ended
    changes = np.sort(np.concatenate([inside, seams.astype(np.int64) * height]))
    counts = np.diff(np.concatenate([[0], changes, [height * width]]))
    if mask[0, cols[0]]:
        counts = np.concatenate([[0], counts])
    rle = mask_utils.frPyObjects({"size": [height, width], "counts": counts.tolist()}, height, width)
    return {"size": [height, width], "counts": rle["counts"].decode("ascii")}
