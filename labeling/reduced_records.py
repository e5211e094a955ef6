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
    mask brought to orig_hw = (H, W), equal to computing them on the H × W mask. Work and memory
    scale with the mask's bounding box on the small mask."""
    height, width = int(orig_hw[0]), int(orig_hw[1])
    rows = canvas_index(np.arange(height), height, mask.shape[0])  # reduced row of each original row
    cols = canvas_index(np.arange(width), width, mask.shape[1])
    row_start = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=mask.shape[0]))])
    col_start = np.concatenate([[0], np.cumsum(np.bincount(cols, minlength=mask.shape[1]))])
    r, c = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    x, y = int(col_start[c[0]]), int(row_start[r[0]])
    box = [float(x), float(y), float(col_start[c[-1] + 1] - x), float(row_start[r[-1] + 1] - y)]
    counts = _run_lengths(
        mask[r[0] : r[-1] + 1, c[0] : c[-1] + 1],
        row_start[r[0] : r[-1] + 2],
        cols[x : int(col_start[c[-1] + 1])] - c[0],
        x,
        height,
        width,
    )
    rle = mask_utils.frPyObjects({"size": [height, width], "counts": counts.tolist()}, height, width)
    return {
        "box": box,
        "area": int(counts[1::2].sum()),
        "rle": {"size": [height, width], "counts": rle["counts"].decode("ascii")},
    }


def _run_lengths(
    band: np.ndarray, bounds: np.ndarray, band_cols: np.ndarray, first_col: int, height: int, width: int
) -> np.ndarray:
    """pycocotools' run lengths (column-major, zeros first) of an H × W mask that is zero outside
    original columns [first_col, first_col + len(band_cols)), whose column first_col + i shows
    `band` [b, k] column band_cols[i] stretched so that band row t covers rows [bounds[t], bounds[t+1])."""
    padded = np.pad(band, ((1, 1), (0, 0)))  # zeros above and below the band (maybe zero rows long)
    col, edge = np.nonzero((padded[1:] != padded[:-1]).T)  # value changes, by band column then row
    offsets = bounds[edge]  # original row where each change happens
    per_col = np.bincount(col, minlength=band.shape[1])
    first = np.cumsum(per_col) - per_col
    n = per_col[band_cols]  # changes in each original column of the band
    within = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
    starts = (first_col + np.arange(len(band_cols), dtype=np.int64)) * height
    changes = offsets[np.repeat(first[band_cols], n) + within] + np.repeat(starts, n)
    # a band touching a column's top or bottom: a change there into the next column's top may be
    # undone at once (1 → 0 → 1 across zero rows); keep positions changed an odd number of times
    changes, times = np.unique(changes, return_counts=True)
    changes = changes[(times % 2 == 1) & (changes < height * width)]
    return np.diff(np.concatenate([[0], changes, [height * width]]))
