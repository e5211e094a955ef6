"""Labeled image folders: ImageNet-style class folders, and ImageNet's flat validation layout.

- Class folders: `DIR/<class>/**/<image>`; the classes are the sorted sub-folder names of the
  training folder, and a validation folder must use the same names (any subset).
- ImageNet's validation layout: the images lie flat in `DIR` and `LOC_val_solution.csv` (Kaggle's
  ImageNet release: `ImageId,PredictionString`, the first word of which is the wnid) sits in `DIR`
  or its parent.
Hidden files and names without an image extension are skipped; items are sorted by path.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from torch.utils.data import Dataset

from training.errors import TrainingError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
VAL_SOLUTION = "LOC_val_solution.csv"


@dataclass(frozen=True)
class LabeledFolder:
    root: Path
    classes: tuple[str, ...]
    items: tuple[tuple[Path, int], ...]  # (image path, class index)

    @property
    def labels(self) -> list[int]:
        return [label for _, label in self.items]


def scan_folder(root: str | Path, classes: tuple[str, ...] | None = None) -> LabeledFolder:
    """The labeled images of `root`; `classes` (from the training folder) fixes the class indices."""
    root = Path(root)
    if not root.is_dir():
        raise TrainingError(f"{root}: not a directory of labeled images")
    subdirs = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if subdirs:
        pairs = [(path, name) for name in subdirs for path in _images(root / name, recursive=True)]
    else:
        pairs = _flat_with_solution(root)
    names = tuple(subdirs) if subdirs else tuple(sorted({name for _, name in pairs}))
    classes = names if classes is None else classes
    index = {name: i for i, name in enumerate(classes)}
    unknown = sorted({name for _, name in pairs} - set(index))
    if unknown:
        raise TrainingError(f"{root}: class {unknown[0]!r} is not a class of the training folder")
    if not pairs:
        raise TrainingError(f"{root}: no images found (expected DIR/<class>/<image> folders)")
    return LabeledFolder(root, classes, tuple((path, index[name]) for path, name in pairs))


def _images(folder: Path, recursive: bool) -> list[Path]:
    found = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(
        p
        for p in found
        if p.suffix.lower() in IMAGE_EXTENSIONS
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def _flat_with_solution(root: Path) -> list[tuple[Path, str]]:
    """(image, wnid) pairs of ImageNet's flat validation folder, from LOC_val_solution.csv."""
    solution = next((d / VAL_SOLUTION for d in (root, root.parent) if (d / VAL_SOLUTION).is_file()), None)
    if solution is None:
        raise TrainingError(f"{root}: no class folders and no {VAL_SOLUTION} in it or its parent")
    wnids = {}
    with solution.open(newline="") as f:
        for row in csv.DictReader(f):
            try:
                wnids[row["ImageId"]] = row["PredictionString"].split()[0]
            except (KeyError, IndexError, AttributeError):
                raise TrainingError(f"{solution}: expected columns ImageId,PredictionString") from None
    pairs = []
    for path in _images(root, recursive=False):
        if path.stem not in wnids:
            raise TrainingError(f"{solution}: no label for {path.name}")
        pairs.append((path, wnids[path.stem]))
    return pairs


class FolderDataset(Dataset):
    """(transform(RGB PIL image), class index) for each item of a LabeledFolder."""

    def __init__(self, folder: LabeledFolder, transform):
        self.folder, self.transform = folder, transform

    def __len__(self) -> int:
        return len(self.folder.items)

    def __getitem__(self, i: int):
        path, label = self.folder.items[i]
        return self.transform(load_image(path)), label


def load_image(path: Path) -> Image.Image:
    """The RGB image at `path`; an unreadable file is a TrainingError naming it."""
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, ValueError) as exc:
        raise TrainingError(f"{path}: cannot read image ({exc})") from None
