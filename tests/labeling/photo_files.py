"""Folders of small real photos (skimage.data, shipped with scikit-image: no download)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from datasets_spec import storage


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


def upload(local_root: Path, url: str) -> None:
    """Every file below `local_root` as an object under `url`, at its relative path."""
    for path in sorted(p for p in local_root.rglob("*") if p.is_file()):
        storage.write_bytes(url, path.relative_to(local_root).as_posix(), path.read_bytes())
