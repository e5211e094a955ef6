"""Folders of small real photos (skimage.data, shipped with scikit-image: no download)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def photo(name: str) -> np.ndarray:
    """A skimage.data photo as [H, W, 3] uint8 RGB."""
    from skimage import data

    image = getattr(data, name)()
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    return np.ascontiguousarray(image[:, :, :3])


def write_photos(root: Path, names: tuple[str, ...], scale: float, suffix: str) -> Path:
    """Each skimage.data photo `name`, resized by `scale` (area filter), as root/NAME{suffix};
    grey photos stay grey. Returns root."""
    import cv2
    from skimage import data

    for name in names:
        image = cv2.resize(getattr(data, name)(), None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        if image.ndim == 3:
            image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)  # OpenCV writes BGR
        cv2.imwrite(str(root / f"{name}{suffix}"), image)
    return root
